//! `Stripe-Signature` verification.
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 keyed by the endpoint secret (the whole
//! `whsec_...` string) and sends `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`
//! (other schemes such as `v0` may appear and are ignored). A delivery is genuine when any `v1`
//! matches the MAC under any configured secret (several during a rotation) and `t` is within the
//! tolerance of our clock, either way.
//!
//! The MAC is computed once per secret and compared to every candidate in constant time, so a
//! header stuffed with candidates costs one hash of the body per secret, not one per candidate.
use std::fmt;

use crate::config::Secret;
use crate::crypto::{constant_time_eq, decode_hex, hmac_sha256};

/// The header, as Stripe names it (HTTP header names are case-insensitive).
pub const HEADER: &str = "stripe-signature";

/// The only scheme Stripe signs live events with.
const SCHEME: &str = "v1";
/// Length of a SHA-256 MAC.
const MAC_LEN: usize = 32;

/// Why a delivery was refused. For the log only: the client gets the same answer for every
/// cause. Never carries a secret or a MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// No secret is configured: nothing can be verified.
    NotConfigured,
    Missing,
    /// Not `t=<seconds>,v1=<hex>...`; the text says which part.
    Malformed(&'static str),
    /// Well formed, but no `v1` is the MAC of this body under any configured secret.
    NoMatch,
    /// Genuine but signed `age` seconds ago, beyond the tolerance (a replay or a stuck queue).
    TooOld {
        age: i64,
    },
    /// Genuine but signed `ahead` seconds in our future, beyond the tolerance (clock skew).
    InFuture {
        ahead: i64,
    },
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::NotConfigured => {
                f.write_str("no webhook secret configured (STRIPE_WEBHOOK_SECRET)")
            }
            SignatureError::Missing => f.write_str("no Stripe-Signature header"),
            SignatureError::Malformed(what) => write!(f, "malformed Stripe-Signature: {what}"),
            SignatureError::NoMatch => f.write_str("no v1 signature matches a configured secret"),
            SignatureError::TooOld { age } => {
                write!(f, "timestamp {age} s in the past, beyond the tolerance")
            }
            SignatureError::InFuture { ahead } => {
                write!(f, "timestamp {ahead} s in the future, beyond the tolerance")
            }
        }
    }
}

impl std::error::Error for SignatureError {}

/// A parsed `Stripe-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    /// The `v1` MACs that decode as 32 bytes of hex; others cannot match and are dropped.
    pub v1: Vec<Vec<u8>>,
}

impl SignatureHeader {
    /// Parses `t=...,v1=...`: exactly one `t` (decimal seconds), at least one `v1`; unknown
    /// schemes are ignored, as Stripe documents.
    pub fn parse(header: &str) -> Result<SignatureHeader, SignatureError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        let mut saw_v1 = false;
        for part in header.split(',') {
            let (key, value) = part
                .trim()
                .split_once('=')
                .ok_or(SignatureError::Malformed("an element without '='"))?;
            match key.trim() {
                "t" => {
                    if timestamp.is_some() {
                        return Err(SignatureError::Malformed("more than one t"));
                    }
                    timestamp = Some(parse_timestamp(value.trim())?);
                }
                SCHEME => {
                    saw_v1 = true;
                    if let Some(mac) = decode_hex(value.trim()).filter(|m| m.len() == MAC_LEN) {
                        v1.push(mac);
                    }
                }
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed("no t"))?;
        if !saw_v1 {
            return Err(SignatureError::Malformed("no v1"));
        }
        if v1.is_empty() {
            return Err(SignatureError::Malformed("no v1 is 64 hex digits"));
        }
        Ok(SignatureHeader { timestamp, v1 })
    }
}

fn parse_timestamp(raw: &str) -> Result<i64, SignatureError> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed("t is not a number of seconds"));
    }
    raw.parse()
        .map_err(|_| SignatureError::Malformed("t is not a number of seconds"))
}

/// Verifies `header` for the raw `body` at `now` (unix seconds): `Ok` when some `v1` is the MAC
/// of `"{t}.{body}"` under some secret and `|now - t| <= tolerance_secs`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[Secret],
    tolerance_secs: i64,
    now: i64,
) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NotConfigured);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let parsed = SignatureHeader::parse(header)?;

    let mut signed = Vec::with_capacity(body.len() + 21);
    signed.extend_from_slice(parsed.timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    // Every secret and every candidate is compared (no early exit), so the time taken does not
    // tell which secret or which candidate matched.
    let mut matched = false;
    for secret in secrets {
        let expected = hmac_sha256(secret.expose().as_bytes(), &signed);
        for candidate in &parsed.v1 {
            matched |= constant_time_eq(&expected, candidate);
        }
    }
    if !matched {
        return Err(SignatureError::NoMatch);
    }

    // Checked after the MAC so a stale or future timestamp in the log means a genuine delivery.
    let age = now.saturating_sub(parsed.timestamp);
    if age > tolerance_secs {
        return Err(SignatureError::TooOld { age });
    }
    if -age > tolerance_secs {
        return Err(SignatureError::InFuture { ahead: -age });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;

    const NOW: i64 = 1_775_469_600;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;

    fn secrets(list: &[&str]) -> Vec<Secret> {
        list.iter().map(|s| Secret::new(*s)).collect()
    }

    fn mac(secret: &str, t: i64, body: &[u8]) -> String {
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(body);
        hex(&hmac_sha256(secret.as_bytes(), &signed))
    }

    /// What Stripe sends for `body` signed with `secret` at `t`.
    fn sign(body: &[u8], secret: &str, t: i64) -> String {
        format!("t={t},v1={}", mac(secret, t, body))
    }

    fn check(header: &str) -> Result<(), SignatureError> {
        verify(Some(header), BODY, &secrets(&["whsec_a"]), 300, NOW)
    }

    #[test]
    fn matches_stripes_documented_algorithm() {
        // Computed independently: printf '%s' "1775469600.$BODY" | openssl dgst -sha256 -hmac whsec_a
        let header = sign(BODY, "whsec_a", NOW);
        assert_eq!(
            header,
            "t=1775469600,v1=1da17f4474905eacd48a7961ec79781296dda94c77814785312b0a353ce4f413"
        );
        assert_eq!(check(&header), Ok(()));
    }

    #[test]
    fn parses_several_v1_and_ignores_other_schemes_and_spaces() {
        let good = mac("whsec_a", NOW, BODY);
        let other = mac("whsec_other", NOW, BODY);
        let header = format!("t={NOW}, v1={other},v0={good}, v1={good}");
        let parsed = SignatureHeader::parse(&header).unwrap();
        assert_eq!(parsed.timestamp, NOW);
        assert_eq!(parsed.v1.len(), 2);
        assert_eq!(check(&header), Ok(()));
        // The valid MAC only under a scheme we do not accept.
        assert_eq!(
            check(&format!("t={NOW},v1={other},v0={good}")),
            Err(SignatureError::NoMatch)
        );
        // A garbled candidate next to a valid one does not spoil it.
        assert_eq!(check(&format!("t={NOW},v1=zz,v1={good}")), Ok(()));
    }

    #[test]
    fn garbled_headers_are_malformed() {
        let good = mac("whsec_a", NOW, BODY);
        for header in [
            "",
            "garbage",
            "t=,v1=00",
            &format!("v1={good}"),
            &format!("t={NOW}"),
            &format!("t={NOW},v0={good}"),
            &format!("t=-5,v1={good}"),
            &format!("t=1e9,v1={good}"),
            &format!("t=99999999999999999999,v1={good}"),
            &format!("t={NOW},t={NOW},v1={good}"),
            &format!("t={NOW},v1=abc"),
            &format!("t={NOW},v1={}", &good[..62]),
            &format!("t={NOW};v1={good}"),
        ] {
            assert!(
                matches!(check(header), Err(SignatureError::Malformed(_))),
                "{header:?}: {:?}",
                check(header)
            );
        }
        assert_eq!(
            verify(None, BODY, &secrets(&["whsec_a"]), 300, NOW),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn any_configured_secret_may_match() {
        let both = secrets(&["whsec_old", "whsec_new"]);
        for secret in ["whsec_old", "whsec_new"] {
            let header = sign(BODY, secret, NOW);
            assert_eq!(verify(Some(&header), BODY, &both, 300, NOW), Ok(()));
        }
        let header = sign(BODY, "whsec_other", NOW);
        assert_eq!(
            verify(Some(&header), BODY, &both, 300, NOW),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&header), BODY, &[], 300, NOW),
            Err(SignatureError::NotConfigured)
        );
    }

    #[test]
    fn the_mac_covers_body_and_timestamp() {
        let header = sign(BODY, "whsec_a", NOW);
        let tampered = br#"{"id":"evt_2","type":"checkout.session.completed"}"#;
        assert_eq!(
            verify(Some(&header), tampered, &secrets(&["whsec_a"]), 300, NOW),
            Err(SignatureError::NoMatch)
        );
        let moved = header.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert_eq!(check(&moved), Err(SignatureError::NoMatch));
    }

    #[test]
    fn tolerance_holds_either_way_inclusive() {
        for (t, expected) in [
            (NOW - 300, Ok(())),
            (NOW + 300, Ok(())),
            (NOW - 301, Err(SignatureError::TooOld { age: 301 })),
            (NOW + 301, Err(SignatureError::InFuture { ahead: 301 })),
        ] {
            assert_eq!(check(&sign(BODY, "whsec_a", t)), expected, "t = {t}");
        }
    }

    #[test]
    fn during_a_rotation_stripe_signs_with_each_secret_and_either_verifies() {
        let old = mac("whsec_old", NOW, BODY);
        let new = mac("whsec_new", NOW, BODY);
        let header = format!("t={NOW},v1={old},v1={new}");
        for configured in [
            &["whsec_old", "whsec_new"][..],
            &["whsec_new", "whsec_old"],
            &["whsec_old"],
            &["whsec_new"],
        ] {
            assert_eq!(
                verify(Some(&header), BODY, &secrets(configured), 300, NOW),
                Ok(()),
                "{configured:?}"
            );
        }
        // Several matches never cancel out, however many there are.
        let good = mac("whsec_a", NOW, BODY);
        for n in 2..=4 {
            let header = format!("t={NOW}{}", format!(",v1={good}").repeat(n));
            assert_eq!(check(&header), Ok(()), "{n} copies");
        }
    }

    #[test]
    fn timestamps_are_at_most_twelve_digits() {
        let good = mac("whsec_a", NOW, BODY);
        let parsed = SignatureHeader::parse(&format!("t=999999999999,v1={good}")).unwrap();
        assert_eq!(parsed.timestamp, 999_999_999_999);
        assert_eq!(
            SignatureHeader::parse(&format!("t=0001775469600,v1={good}")),
            Err(SignatureError::Malformed("t is not a number of seconds"))
        );
        assert_eq!(
            SignatureHeader::parse(&format!("t=0,v1={good}")).map(|h| h.timestamp),
            Ok(0)
        );
    }

    #[test]
    fn each_refusal_says_why_in_the_log() {
        let shown = |e: SignatureError| e.to_string();
        assert_eq!(
            shown(SignatureError::NotConfigured),
            "no webhook secret configured (STRIPE_WEBHOOK_SECRET)"
        );
        assert_eq!(shown(SignatureError::Missing), "no Stripe-Signature header");
        assert_eq!(
            shown(SignatureError::Malformed("no t")),
            "malformed Stripe-Signature: no t"
        );
        assert_eq!(
            shown(SignatureError::NoMatch),
            "no v1 signature matches a configured secret"
        );
        assert_eq!(
            shown(SignatureError::TooOld { age: 301 }),
            "timestamp 301 s in the past, beyond the tolerance"
        );
        assert_eq!(
            shown(SignatureError::InFuture { ahead: 9 }),
            "timestamp 9 s in the future, beyond the tolerance"
        );
    }

    #[test]
    fn errors_never_show_a_secret_or_a_mac() {
        let good = mac("whsec_a", NOW, BODY);
        for err in [
            check(&format!("t={NOW},v1={}", mac("whsec_b", NOW, BODY))),
            check(&format!(
                "t={},v1={}",
                NOW - 900,
                mac("whsec_a", NOW - 900, BODY)
            )),
            check(&format!("t=x,v1={good}")),
        ] {
            let text = format!("{} {:?}", err.as_ref().unwrap_err(), err);
            assert!(
                !text.contains("whsec") && !text.contains(&good[..16]),
                "{text}"
            );
        }
    }
}
