//! Abuse signals: what identifies the person or machine behind a trial beyond its org id, kept
//! only as keyed hashes, and the policy that turns "another org used this recently" into a
//! verdict.
//!
//! Invariant: a signal's clear value (a normalized email, a domain, an IP range, a device id)
//! never leaves this module; callers get a [`Signal`], the hex HMAC-SHA256 of the value under
//! `SIGNAL_SECRET`, domain-separated by kind (`trials-signal-v1:<kind>:<value>`), so the same
//! string under two kinds never collides and the store holds nothing it could leak. Cost: one
//! HMAC per signal (at most four per start) and a few lower-case copies of short strings.
//! Changing `SIGNAL_SECRET` makes every stored signal unmatchable: reuse is then not detected
//! until the window has refilled.
//! Without `SIGNAL_SECRET`, the email signal alone is derived, under
//! [`SignalSecret::fallback`] (a key fixed per deployment: the table name), so one trial per
//! person holds everywhere; its hashes are then no better than an unkeyed SHA-256 against
//! whoever knows the table name.
//!
//! # Signals
//! | kind | value | when |
//! |---|---|---|
//! | [`SignalKind::Email`] | the normalized email (below) | an email was given |
//! | [`SignalKind::Domain`] | the email's domain, lower-case (canonical for the providers below) | the domain is not a public mail provider ([`PublicMailDomains`]) |
//! | [`SignalKind::IpRange`] | the client IP's network: `a.b.c.0/24` for IPv4, the `/64` for IPv6 (an IPv4-mapped IPv6 address counts as IPv4) | `client_ip` was given |
//! | [`SignalKind::Device`] | the device id as given (trimmed, case kept) | `device_id` was given |
//!
//! # Email normalization
//! Every address is lower-cased (local part included: no provider that matters treats case as
//! significant, and for abuse matching a merge beats a miss). Then, for **every** domain, the
//! `+` sub-address ("tag") is cut: Google Workspace, Microsoft 365 and most mail servers
//! (Postfix, Exim, Fastmail, …) deliver `ada+x@` to `ada@`, so a custom domain's `+tag` is a
//! second trial for the same person; a domain where `+` is part of a real mailbox name is rare,
//! and for abuse matching a merge beats a miss. For the providers below, the provider's own tag
//! separator is cut too and the characters it ignores are removed. When cutting would leave
//! nothing (`+x@gmail.com`, `+x@corp.example`) the lower-cased local part is kept.
//!
//! | provider | domains | tag separator | ignored | canonical domain |
//! |---|---|---|---|---|
//! | any domain (not listed below) | | `+` | none (dots are significant) | unchanged |
//! | Google | gmail.com, googlemail.com | `+` | `.` | gmail.com (googlemail.com is the same mailbox) |
//! | Microsoft | outlook.\*, hotmail.\*, live.\*, msn.com | `+` | none (dots are significant) | unchanged (separate accounts) |
//! | Yahoo | yahoo.com, .co.uk, .ca, .de, .fr, .it, .es, .in, .com.au, .com.br; ymail.com, rocketmail.com (not yahoo.co.jp: Yahoo Japan is another company) | `-` (disposable addresses are `base-keyword`; Yahoo ids cannot contain `-`), and `+` as everywhere (Yahoo ids cannot contain it either) | none | unchanged |
//! | Apple | icloud.com, me.com, mac.com | `+` | none | icloud.com (an @me.com or @mac.com owner also owns the @icloud.com name) |
//! | Fastmail | fastmail.com, fastmail.fm | `+` | none | unchanged |
//! | Proton | proton.me, protonmail.com, protonmail.ch, pm.me | `+` | `.` `-` `_` | proton.me (one username across Proton's domains) |
//!
//! Sources: validator.js `normalizeEmail` (Google, Microsoft, Yahoo, Apple rules and domain
//! lists); Proton's support page on addresses (`+` aliases, one username across domains) and its
//! web client's `removeEmailAlias` (which drops `.`, `-`, `_`); Fastmail's plus addressing.
//! `name.*` stands for `name.` followed by a country or generic suffix: one or two labels of two
//! or three ASCII letters (`de`, `com`, `co.uk`, `com.br`), so `live.co.uk` matches and
//! `live.acmecorp.com` does not.
//!
//! # Policy
//! Per kind an action, [`SignalAction::Block`], [`SignalAction::Flag`] or
//! [`SignalAction::Ignore`], and one reuse window. Defaults: a reused email blocks; a reused
//! domain, IP range or device flags; window 365 days. Signals of every kind are derived and
//! recorded whatever their action, so loosening or tightening the policy later applies to the
//! history already stored. See [`SignalPolicy::decide`] for how several matches combine.
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use ring::hmac;

use super::applicant::{Applicant, ClientIp, Email};
use crate::crypto::hex;

/// What a signal identifies. Ordered by weight: [`SignalPolicy::decide`] reports the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalKind {
    Email,
    Domain,
    IpRange,
    Device,
}

impl SignalKind {
    pub const ALL: [SignalKind; 4] = [
        SignalKind::Email,
        SignalKind::Domain,
        SignalKind::IpRange,
        SignalKind::Device,
    ];

    /// The name in `SIGNAL_POLICY`, in the HMAC's domain separation and in API responses.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Email => "email",
            SignalKind::Domain => "domain",
            SignalKind::IpRange => "ip_range",
            SignalKind::Device => "device",
        }
    }

    pub fn parse(s: &str) -> Option<SignalKind> {
        SignalKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signal as stored: its kind and the lowercase hex HMAC-SHA256 (64 digits) of its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signal {
    pub kind: SignalKind,
    pub hmac: String,
}

/// The HMAC key behind every signal (`SIGNAL_SECRET`). `Debug` never shows it.
#[derive(Clone)]
pub struct SignalSecret(hmac::Key);

impl SignalSecret {
    /// 32 characters, e.g. `openssl rand -hex 16`; `openssl rand -hex 32` is better.
    pub const MIN_CHARS: usize = 32;

    /// The error never quotes the secret.
    pub fn new(secret: &str) -> Result<SignalSecret, String> {
        if secret.chars().count() < Self::MIN_CHARS {
            return Err(format!(
                "must be at least {} characters (generate one with `openssl rand -hex 32`)",
                Self::MIN_CHARS
            ));
        }
        Ok(SignalSecret(hmac::Key::new(
            hmac::HMAC_SHA256,
            secret.as_bytes(),
        )))
    }

    /// The key used when `SIGNAL_SECRET` is unset: derived from `deployment` (the table name),
    /// so it is fixed per deployment and known to whoever knows the table. It keeps the one
    /// rule that must hold without a secret, one trial per person (the email signal, see
    /// [`email_signal`]), at the price of privacy: anyone who reads the table can test a
    /// guessed email against the stored hashes, as with an unkeyed SHA-256.
    pub fn fallback(deployment: &str) -> SignalSecret {
        let key = format!("trials-signal-fallback-v1:{deployment}");
        SignalSecret(hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()))
    }

    /// The kind is part of the signed message, so equal values of different kinds differ.
    fn sign(&self, kind: SignalKind, value: &str) -> Signal {
        let mut message = Vec::with_capacity(32 + value.len());
        message.extend_from_slice(b"trials-signal-v1:");
        message.extend_from_slice(kind.as_str().as_bytes());
        message.push(b':');
        message.extend_from_slice(value.as_bytes());
        Signal {
            kind,
            hmac: hex(hmac::sign(&self.0, &message).as_ref()),
        }
    }
}

impl fmt::Debug for SignalSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignalSecret(***)")
    }
}

/// One row of the normalization table in the module doc.
struct Provider {
    exact: &'static [&'static str],
    families: &'static [&'static str],
    tag: char,
    ignored: &'static [char],
    canonical_domain: Option<&'static str>,
}

const PROVIDERS: &[Provider] = &[
    Provider {
        exact: &["gmail.com", "googlemail.com"],
        families: &[],
        tag: '+',
        ignored: &['.'],
        canonical_domain: Some("gmail.com"),
    },
    Provider {
        exact: &["msn.com"],
        families: &["outlook", "hotmail", "live"],
        tag: '+',
        ignored: &[],
        canonical_domain: None,
    },
    // An explicit list, not `yahoo.*`: Yahoo Japan (yahoo.co.jp) is another company whose ids
    // may hold `-`, and a wrong merge here blocks under the default policy.
    Provider {
        exact: &[
            "yahoo.com",
            "yahoo.co.uk",
            "yahoo.ca",
            "yahoo.de",
            "yahoo.fr",
            "yahoo.it",
            "yahoo.es",
            "yahoo.in",
            "yahoo.com.au",
            "yahoo.com.br",
            "ymail.com",
            "rocketmail.com",
        ],
        families: &[],
        tag: '-',
        ignored: &[],
        canonical_domain: None,
    },
    Provider {
        exact: &["icloud.com", "me.com", "mac.com"],
        families: &[],
        tag: '+',
        ignored: &[],
        canonical_domain: Some("icloud.com"),
    },
    Provider {
        exact: &["fastmail.com", "fastmail.fm"],
        families: &[],
        tag: '+',
        ignored: &[],
        canonical_domain: None,
    },
    Provider {
        exact: &["proton.me", "protonmail.com", "protonmail.ch", "pm.me"],
        families: &[],
        tag: '+',
        ignored: &['.', '-', '_'],
        canonical_domain: Some("proton.me"),
    },
];

/// `domain` is `family.` plus one or two labels of two or three ASCII letters.
fn in_family(domain: &str, family: &str) -> bool {
    let Some(suffix) = domain
        .strip_prefix(family)
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return false;
    };
    let labels: Vec<&str> = suffix.split('.').collect();
    (1..=2).contains(&labels.len())
        && labels
            .iter()
            .all(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase()))
}

fn provider(domain: &str) -> Option<&'static Provider> {
    PROVIDERS
        .iter()
        .find(|p| p.exact.contains(&domain) || p.families.iter().any(|f| in_family(domain, f)))
}

/// The address as the abuse check sees it: see the table in the module doc.
pub fn normalize_email(email: &Email) -> String {
    let local = email.local_part().to_lowercase();
    let domain = email.domain().to_lowercase();
    let p = provider(&domain);
    // `+` for every domain; then the provider's own separator (Yahoo's `-`).
    let mut untagged = local.split(ANY_DOMAIN_TAG).next().unwrap_or_default();
    if let Some(p) = p {
        untagged = untagged.split(p.tag).next().unwrap_or_default();
    }
    let ignored = p.map_or(&[][..], |p| p.ignored);
    let stripped: String = untagged.chars().filter(|c| !ignored.contains(c)).collect();
    let local = if stripped.is_empty() { local } else { stripped };
    let domain = p.and_then(|p| p.canonical_domain).unwrap_or(&domain);
    format!("{local}@{domain}")
}

/// The sub-address separator cut for every domain (the first row of the module doc's table).
const ANY_DOMAIN_TAG: char = '+';

/// The email's domain, lower-case, canonical for the providers of the table.
pub fn email_domain(email: &Email) -> String {
    let domain = email.domain().to_lowercase();
    match provider(&domain).and_then(|p| p.canonical_domain) {
        Some(canonical) => canonical.to_owned(),
        None => domain,
    }
}

/// `a.b.c.0/24` or the `/64` prefix of an IPv6 address (`2001:db8:1:2::/64`). IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`) is its IPv4 address: a dual-stack proxy must not split one /24 in two.
pub fn ip_range(ip: ClientIp) -> String {
    match ip.ip().to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// The built-in list of public mail providers (`PUBLIC_MAIL_DOMAINS` replaces it): addresses
/// there say nothing about a company, so their domain is no signal.
pub const BUILTIN_PUBLIC_MAIL_DOMAINS: &str = "gmail.com, googlemail.com, \
    outlook.*, hotmail.*, live.*, msn.com, yahoo.*, ymail.com, rocketmail.com, aol.com, \
    icloud.com, me.com, mac.com, proton.me, protonmail.com, protonmail.ch, pm.me, \
    fastmail.com, fastmail.fm, tutanota.com, tuta.io, zoho.com, hey.com, mail.com, \
    gmx.*, web.de, mail.ru, inbox.ru, list.ru, bk.ru, yandex.*, ya.ru, \
    qq.com, 163.com, 126.com, yeah.net, sina.com, naver.com, hanmail.net, rediffmail.com";

/// A set of public mail domains: exact names and `name.*` families (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicMailDomains {
    exact: BTreeSet<String>,
    families: BTreeSet<String>,
}

impl Default for PublicMailDomains {
    fn default() -> Self {
        PublicMailDomains::builtin()
    }
}

impl PublicMailDomains {
    pub fn builtin() -> PublicMailDomains {
        match PublicMailDomains::parse(BUILTIN_PUBLIC_MAIL_DOMAINS) {
            Ok(list) => list,
            // The constant is checked by a unit test; an empty set only loses domain signals.
            Err(_) => PublicMailDomains {
                exact: BTreeSet::new(),
                families: BTreeSet::new(),
            },
        }
    }

    /// Comma-separated, case-insensitive, spaces around entries ignored. Each entry is a domain
    /// name (labels of letters, digits and hyphens) or `name.*`. An empty entry or list is an
    /// error: silently treating every domain as a company's would flag every gmail user.
    pub fn parse(list: &str) -> Result<PublicMailDomains, String> {
        let mut exact = BTreeSet::new();
        let mut families = BTreeSet::new();
        for raw in list.split(',') {
            let entry = raw.trim().to_ascii_lowercase();
            let (name, family) = match entry.strip_suffix(".*") {
                Some(base) => (base, true),
                None => (entry.as_str(), false),
            };
            let valid = !name.is_empty()
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !valid {
                return Err(format!(
                    "invalid entry {entry:?}: expected a domain such as example.com or a family such as gmx.*"
                ));
            }
            if family {
                families.insert(name.to_owned());
            } else {
                exact.insert(name.to_owned());
            }
        }
        Ok(PublicMailDomains { exact, families })
    }

    pub fn is_public(&self, domain: &str) -> bool {
        let domain = domain.to_lowercase();
        self.exact.contains(&domain) || self.families.iter().any(|f| in_family(&domain, f))
    }
}

/// The clear values, in kind order. Private: only HMACs leave the module.
fn signal_values(applicant: &Applicant, public: &PublicMailDomains) -> Vec<(SignalKind, String)> {
    let mut values = Vec::with_capacity(4);
    if let Some(email) = &applicant.email {
        values.push((SignalKind::Email, normalize_email(email)));
        let domain = email_domain(email);
        // Both spellings are checked: an operator list may name me.com but not icloud.com.
        if !public.is_public(&domain) && !public.is_public(email.domain()) {
            values.push((SignalKind::Domain, domain));
        }
    }
    if let Some(ip) = applicant.client_ip {
        values.push((SignalKind::IpRange, ip_range(ip)));
    }
    if let Some(device) = &applicant.device_id {
        values.push((SignalKind::Device, device.as_str().to_owned()));
    }
    values
}

/// The applicant's signals, at most one per kind, in [`SignalKind`] order.
pub fn signals_for(
    applicant: &Applicant,
    secret: &SignalSecret,
    public: &PublicMailDomains,
) -> Vec<Signal> {
    signal_values(applicant, public)
        .into_iter()
        .map(|(kind, value)| secret.sign(kind, &value))
        .collect()
}

/// The applicant's email signal alone (none without an email): what a start checks when
/// `SIGNAL_SECRET` is unset, under [`SignalSecret::fallback`]. The other kinds stay off then:
/// a shared domain, IP range or device only flags, and is not worth the weaker privacy.
pub fn email_signal(applicant: &Applicant, key: &SignalSecret) -> Vec<Signal> {
    applicant
        .email
        .iter()
        .map(|email| key.sign(SignalKind::Email, &normalize_email(email)))
        .collect()
}

/// What a reused signal of one kind does to a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalAction {
    /// `403 trial_not_eligible`, `reason: "signal_reused"`, and a `trial.blocked` event.
    Block,
    /// The start succeeds; `trial.started` names the matched kinds.
    Flag,
    /// Recorded, never acted on.
    Ignore,
}

impl SignalAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalAction::Block => "block",
            SignalAction::Flag => "flag",
            SignalAction::Ignore => "ignore",
        }
    }

    pub fn parse(s: &str) -> Option<SignalAction> {
        [
            SignalAction::Block,
            SignalAction::Flag,
            SignalAction::Ignore,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// The outcome of the signal check for one start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The reused kinds whose action is flag, in [`SignalKind`] order, without repeats.
    Flagged(Vec<SignalKind>),
    /// The first reused kind (in [`SignalKind`] order) whose action is block.
    Blocked(SignalKind),
}

pub const DEFAULT_SIGNAL_POLICY: &str = "email=block,domain=flag,ip_range=flag,device=flag";
pub const DEFAULT_SIGNAL_WINDOW_SECS: i64 = 365 * 86_400;

/// Per kind an action, and how long a use counts (`SIGNAL_POLICY`, `SIGNAL_WINDOW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalPolicy {
    pub email: SignalAction,
    pub domain: SignalAction,
    pub ip_range: SignalAction,
    pub device: SignalAction,
    pub window_secs: i64,
}

impl Default for SignalPolicy {
    fn default() -> Self {
        SignalPolicy {
            email: SignalAction::Block,
            domain: SignalAction::Flag,
            ip_range: SignalAction::Flag,
            device: SignalAction::Flag,
            window_secs: DEFAULT_SIGNAL_WINDOW_SECS,
        }
    }
}

impl SignalPolicy {
    /// `kind=action` pairs, comma-separated (`email=block,domain=flag`); spaces around items and
    /// case are ignored. Kinds not named keep their default action, so `device=ignore` alone is a
    /// valid policy. Unknown kinds or actions, empty items and a kind named twice are errors.
    pub fn with_actions(mut self, spec: &str) -> Result<SignalPolicy, String> {
        let mut seen = BTreeSet::new();
        for item in spec.split(',') {
            let item = item.trim().to_ascii_lowercase();
            let Some((kind, action)) = item.split_once('=') else {
                return Err(format!(
                    "invalid item {item:?}: expected kind=action, e.g. email=block"
                ));
            };
            let kind = SignalKind::parse(kind.trim()).ok_or_else(|| {
                format!("unknown signal kind {kind:?}: expected email, domain, ip_range or device")
            })?;
            let action = SignalAction::parse(action.trim()).ok_or_else(|| {
                format!("unknown action {action:?} for {kind}: expected block, flag or ignore")
            })?;
            if !seen.insert(kind) {
                return Err(format!("{kind} is given twice"));
            }
            *self.action_mut(kind) = action;
        }
        Ok(self)
    }

    fn action_mut(&mut self, kind: SignalKind) -> &mut SignalAction {
        match kind {
            SignalKind::Email => &mut self.email,
            SignalKind::Domain => &mut self.domain,
            SignalKind::IpRange => &mut self.ip_range,
            SignalKind::Device => &mut self.device,
        }
    }

    pub fn action(&self, kind: SignalKind) -> SignalAction {
        match kind {
            SignalKind::Email => self.email,
            SignalKind::Domain => self.domain,
            SignalKind::IpRange => self.ip_range,
            SignalKind::Device => self.device,
        }
    }

    /// The oldest use that still counts: a use at `last_used_at` counts as reuse when
    /// `last_used_at > window_start(now)`, i.e. strictly less than one window ago. The store
    /// puts this in its condition so the check and the record are one conditional write.
    pub fn window_start(&self, now: i64) -> i64 {
        now.saturating_sub(self.window_secs)
    }

    pub fn counts_as_reuse(&self, last_used_at: i64, now: i64) -> bool {
        last_used_at > self.window_start(now)
    }

    /// `checks` pairs each of the applicant's signals with whether another org used it within
    /// the window. Any reused kind whose action is block wins (the first in kind order, so the
    /// answer does not depend on the order of `checks`); otherwise the reused kinds whose
    /// action is flag are reported; ignored kinds and unused signals change nothing.
    pub fn decide(&self, checks: &[(SignalKind, bool)]) -> Verdict {
        let reused: BTreeSet<SignalKind> = checks
            .iter()
            .filter(|(_, reused)| *reused)
            .map(|(kind, _)| *kind)
            .collect();
        if let Some(kind) = reused
            .iter()
            .find(|k| self.action(**k) == SignalAction::Block)
        {
            return Verdict::Blocked(*kind);
        }
        let flagged: Vec<SignalKind> = reused
            .into_iter()
            .filter(|k| self.action(*k) == SignalAction::Flag)
            .collect();
        if flagged.is_empty() {
            Verdict::Allow
        } else {
            Verdict::Flagged(flagged)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::applicant::Privilege;
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    fn applicant(v: serde_json::Value) -> Applicant {
        Applicant::parse(v.as_object().unwrap(), Privilege::Standard).unwrap()
    }

    #[test]
    fn normalization_table() {
        for (input, expected) in [
            // Everyone: lower-case, +tag cut; dots and hyphens kept.
            ("Fred.Flint+x@Example.COM", "fred.flint@example.com"),
            ("ada+x@analytical.example", "ada@analytical.example"),
            ("ada+x+y@analytical.example", "ada@analytical.example"),
            ("+only@corp.example", "+only@corp.example"),
            ("a-b@corp.example", "a-b@corp.example"),
            // Google: dots and +tags ignored, googlemail is gmail.
            ("Fred.Flint+trial@gmail.com", "fredflint@gmail.com"),
            ("f.r.e.d@GoogleMail.com", "fred@gmail.com"),
            ("+only@gmail.com", "+only@gmail.com"),
            // Microsoft: +tags only, dots significant, domains stay apart.
            ("fred.flint+x@outlook.com", "fred.flint@outlook.com"),
            ("Fred+x@Hotmail.co.uk", "fred@hotmail.co.uk"),
            ("fred+x@live.com", "fred@live.com"),
            ("fred+x@msn.com", "fred@msn.com"),
            // Yahoo: -keyword disposable addresses; + cut as for every domain.
            ("fred-shopping@yahoo.com", "fred@yahoo.com"),
            ("fred-a-b@yahoo.co.uk", "fred@yahoo.co.uk"),
            ("fred.flint@ymail.com", "fred.flint@ymail.com"),
            ("fred+x@yahoo.com", "fred@yahoo.com"),
            ("fred-x@yahoo.co.jp", "fred-x@yahoo.co.jp"),
            // Apple: +tags, me.com and mac.com are icloud.com.
            ("Fred+x@me.com", "fred@icloud.com"),
            ("fred.flint+x@mac.com", "fred.flint@icloud.com"),
            // Fastmail: +tags only.
            ("fred.flint+x@fastmail.com", "fred.flint@fastmail.com"),
            // Proton: +tags, . - _ ignored, one username across domains.
            ("Fred.Flint_x-y+tag@protonmail.com", "fredflintxy@proton.me"),
            ("fred@pm.me", "fred@proton.me"),
            // Not a provider although it looks like a family: only the rule for every domain.
            ("fred+x@live.acmecorp.com", "fred@live.acmecorp.com"),
            ("fred-x@yahoo.example.org", "fred-x@yahoo.example.org"),
        ] {
            assert_eq!(normalize_email(&email(input)), expected, "{input}");
        }
    }

    #[test]
    fn domain_is_canonical_and_a_signal_only_when_not_public() {
        assert_eq!(email_domain(&email("a@GoogleMail.com")), "gmail.com");
        assert_eq!(email_domain(&email("a@Flintstones.ORG")), "flintstones.org");
        let builtin = PublicMailDomains::builtin();
        let kinds = |e: &str| -> Vec<SignalKind> {
            signal_values(&applicant(json!({ "email": e })), &builtin)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            kinds("a@flintstones.org"),
            [SignalKind::Email, SignalKind::Domain]
        );
        for public in [
            "a@gmail.com",
            "a@GMX.de",
            "a@gmx.co.uk",
            "a@yandex.ru",
            "a@hotmail.com.br",
            "a@me.com",
            "a@qq.com",
        ] {
            assert_eq!(kinds(public), [SignalKind::Email], "{public}");
        }
        // An operator list replaces the built-in one; the raw spelling counts too.
        let custom = PublicMailDomains::parse("me.com").unwrap();
        let values = signal_values(&applicant(json!({"email": "a@me.com"})), &custom);
        assert_eq!(values.len(), 1);
        let values = signal_values(&applicant(json!({"email": "a@gmail.com"})), &custom);
        assert_eq!(values[1], (SignalKind::Domain, "gmail.com".to_owned()));
    }

    #[test]
    fn public_domain_lists_parse_and_families_stay_narrow() {
        let builtin = PublicMailDomains::parse(BUILTIN_PUBLIC_MAIL_DOMAINS).unwrap();
        assert_eq!(builtin, PublicMailDomains::builtin());
        assert!(builtin.is_public("gmx.net"));
        assert!(builtin.is_public("yahoo.com.br"));
        assert!(!builtin.is_public("gmx.example.com"));
        assert!(!builtin.is_public("gmxx.de"));
        assert!(!builtin.is_public("mail.gmx.de"));
        assert!(!builtin.is_public("gmx.a.b.c"));
        assert!(!builtin.is_public("acme.com"));

        let list = PublicMailDomains::parse(" Example.COM , corp-mail.* ").unwrap();
        assert!(list.is_public("example.com"));
        assert!(list.is_public("corp-mail.de"));
        assert!(!list.is_public("gmail.com"));
        for bad in [
            "",
            "a.com,,b.com",
            "*",
            "*.example.com",
            "exa mple.com",
            "-a.com",
            "a..com",
            "a.com/x",
        ] {
            assert!(PublicMailDomains::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ip_ranges_are_slash_24_and_slash_64() {
        let range = |s: &str| ip_range(ClientIp::parse(s).unwrap());
        assert_eq!(range("203.0.113.7"), "203.0.113.0/24");
        assert_eq!(range("203.0.113.255"), "203.0.113.0/24");
        assert_ne!(range("203.0.114.7"), range("203.0.113.7"));
        assert_eq!(range("::ffff:203.0.113.9"), "203.0.113.0/24");
        assert_eq!(
            range("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            "2001:db8:1:2::/64"
        );
        assert_eq!(range("2001:DB8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(range("2001:db8:1:3::1"), range("2001:db8:1:2::1"));
        assert_eq!(range("::1"), "::/64");
    }

    #[test]
    fn hmac_is_stable_keyed_and_separated_by_kind() {
        let secret = SignalSecret::new(SECRET).unwrap();
        // Independently computed: Python's hmac.new(SECRET, b"trials-signal-v1:email:fred@gmail.com", sha256).
        assert_eq!(
            secret.sign(SignalKind::Email, "fred@gmail.com").hmac,
            "0ddb3747b2484ab1b53999e62827c06a766a5347626cc35d598455a656688155"
        );
        let a = secret.sign(SignalKind::Device, "same");
        assert_eq!(a, secret.sign(SignalKind::Device, "same"));
        assert_eq!(a.hmac.len(), 64);
        assert_ne!(a.hmac, secret.sign(SignalKind::Domain, "same").hmac);
        let other = SignalSecret::new("another-secret-of-enough-length!!").unwrap();
        assert_ne!(a.hmac, other.sign(SignalKind::Device, "same").hmac);
    }

    #[test]
    fn signals_for_uses_normalized_values_and_never_the_clear_text() {
        let secret = SignalSecret::new(SECRET).unwrap();
        let public = PublicMailDomains::builtin();
        let a = applicant(json!({
            "email": "Fred.Flint+1@corp.example",
            "client_ip": "198.51.100.23",
            "device_id": "dev-1",
        }));
        let signals = signals_for(&a, &secret, &public);
        let kinds: Vec<SignalKind> = signals.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, SignalKind::ALL);
        let text = format!("{signals:?} {secret:?}");
        for clear in ["fred", "corp.example", "198.51.100", "dev-1", SECRET] {
            assert!(!text.contains(clear), "{clear} in {text}");
        }
        // Same person, other case and another host in the same /24: same signals.
        let b = applicant(json!({
            "email": "FRED.Flint+1@CORP.example",
            "client_ip": "198.51.100.200",
            "device_id": " dev-1 ",
        }));
        assert_eq!(signals_for(&b, &secret, &public), signals);
        // Not a listed provider: its +tag is cut all the same (issue 26), so the email and
        // the domain match; another local part is another email on the same domain.
        let c = applicant(json!({"email": "fred.flint+2@corp.example"}));
        let c = signals_for(&c, &secret, &public);
        assert_eq!(c[0], signals[0]);
        assert_eq!(c[1], signals[1]);
        let d = applicant(json!({"email": "wilma.flint@corp.example"}));
        let d = signals_for(&d, &secret, &public);
        assert_ne!(d[0], signals[0]);
        assert_eq!(d[1], signals[1]);
        let email = |e: &str| signals_for(&applicant(json!({ "email": e })), &secret, &public);
        assert_eq!(
            email("ada+x@analytical.example")[0],
            email("ada@analytical.example")[0]
        );
        let gmail = |e: &str| signals_for(&applicant(json!({ "email": e })), &secret, &public);
        assert_eq!(gmail("f.r.e.d+x@googlemail.com"), gmail("fred@gmail.com"));
        assert!(signals_for(&Applicant::default(), &secret, &public).is_empty());
    }

    #[test]
    fn short_secrets_are_refused_without_being_quoted() {
        let err = SignalSecret::new("short-secret").unwrap_err();
        assert!(!err.contains("short-secret"), "{err}");
        assert!(SignalSecret::new(&"x".repeat(SignalSecret::MIN_CHARS)).is_ok());
    }

    #[test]
    fn policy_parses_with_defaults_for_unnamed_kinds() {
        let default = SignalPolicy::default();
        assert_eq!(default.with_actions(DEFAULT_SIGNAL_POLICY), Ok(default));
        let p = default
            .with_actions(" Device=Ignore , ip_range=block ")
            .unwrap();
        assert_eq!(p.email, SignalAction::Block);
        assert_eq!(p.domain, SignalAction::Flag);
        assert_eq!(p.ip_range, SignalAction::Block);
        assert_eq!(p.device, SignalAction::Ignore);
        for (bad, hint) in [
            ("", "kind=action"),
            ("email", "kind=action"),
            ("email=block,", "kind=action"),
            ("phone=block", "unknown signal kind"),
            ("email=deny", "unknown action"),
            ("email=block,email=flag", "twice"),
        ] {
            let err = default.with_actions(bad).unwrap_err();
            assert!(err.contains(hint), "{bad:?}: {err}");
        }
    }

    #[test]
    fn reuse_window_boundary() {
        let p = SignalPolicy {
            window_secs: 100,
            ..SignalPolicy::default()
        };
        assert_eq!(p.window_start(1_000), 900);
        assert!(p.counts_as_reuse(901, 1_000));
        assert!(p.counts_as_reuse(1_000, 1_000));
        assert!(!p.counts_as_reuse(900, 1_000));
        assert_eq!(SignalPolicy::default().window_secs, 31_536_000);
        assert_eq!(p.window_start(i64::MIN + 5), i64::MIN);
    }

    #[test]
    fn decisions() {
        use SignalKind::*;
        let p = SignalPolicy::default();
        assert_eq!(p.decide(&[]), Verdict::Allow);
        assert_eq!(
            p.decide(&[
                (Email, false),
                (Domain, false),
                (IpRange, false),
                (Device, false)
            ]),
            Verdict::Allow
        );
        assert_eq!(
            p.decide(&[(Email, true), (Domain, true)]),
            Verdict::Blocked(Email)
        );
        assert_eq!(
            p.decide(&[(Device, true), (Email, false), (IpRange, true)]),
            Verdict::Flagged(vec![IpRange, Device])
        );
        assert_eq!(
            p.decide(&[(Device, true), (Device, true)]),
            Verdict::Flagged(vec![Device])
        );

        let strict = p
            .with_actions("email=flag,ip_range=block,device=block")
            .unwrap();
        // Several blocking kinds: the first in kind order, whatever the input order.
        assert_eq!(
            strict.decide(&[(Device, true), (IpRange, true), (Email, true)]),
            Verdict::Blocked(IpRange)
        );
        assert_eq!(
            strict.decide(&[(Email, true)]),
            Verdict::Flagged(vec![Email])
        );

        let lax = p.with_actions("email=ignore,domain=ignore").unwrap();
        assert_eq!(lax.decide(&[(Email, true), (Domain, true)]), Verdict::Allow);
        assert_eq!(
            lax.decide(&[(Email, true), (IpRange, true)]),
            Verdict::Flagged(vec![IpRange])
        );
    }
}
