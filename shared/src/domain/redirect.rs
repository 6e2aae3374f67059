//! The `redirect_url` of a started trial, built so that it can only ever point at an origin the
//! operator allowed: no open redirect.
//!
//! Invariant: [`redirect_url`] returns `https://<allowed host>[:port]<TRIAL_REDIRECT_PATH>/<trial
//! id>[?<query>]`, where the origin part is the operator's own normalized allow-list entry (never
//! the client's spelling), the path is validated configuration, the trial id has a closed
//! alphabet, and every query byte the client chose is percent-encoded. Cost: a few short string
//! scans; no URL library (the grammar accepted is small enough to check by hand, and a strict
//! hand check refuses what a lenient parser would "fix").
//!
//! # What counts as an origin
//! `https://` (scheme case-insensitive), then an ASCII host, then optionally `:port`, and nothing
//! else: no userinfo (`@`), no path (not even `/`), no query, no fragment, no backslash, no
//! percent-encoding, no whitespace or control characters, no non-ASCII (write IDNs in punycode,
//! `xn--…`), no IPv6 literal, no trailing dot. The host is lower-cased and `:443` dropped, so
//! `HTTPS://Good.COM:443` equals `https://good.com`. Anything else is `invalid_redirect_origin`,
//! as is a well-formed origin that is not in `REDIRECT_ORIGINS` (compared after the same
//! normalization, exactly: `https://good.com` does not allow `https://app.good.com`).
//!
//! # Where the trial id goes
//! As the last path segment (`https://good.com/trial/trial_0123…`), not as a query parameter: the
//! client chooses the query, and a `trial_id` of its own must not be able to shadow ours.
//!
//! # Query parameters
//! `redirect_url_query_params` is the seed's query string (`utm_source=google&utm_medium=cpc`).
//! It is decoded as `application/x-www-form-urlencoded` and encoded again, so whatever it holds
//! (`#`, `/`, spaces, stray `%`) ends up as data inside the query and cannot add a fragment or
//! change the path. Pairs with an empty name are dropped; order and repeats are kept.
use std::fmt;

use super::TrialId;

/// The API code for every [`RedirectError`].
pub const INVALID_REDIRECT_ORIGIN: &str = "invalid_redirect_origin";

/// `TRIAL_REDIRECT_PATH`'s default.
pub const DEFAULT_TRIAL_REDIRECT_PATH: &str = "/trial";

const MAX_HOST_CHARS: usize = 253;
const MAX_TRIAL_PATH_CHARS: usize = 200;

/// Why a string is not a plain https origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginError {
    NotHttps,
    /// Whitespace, control, non-ASCII, `\` or `%`.
    ForbiddenCharacter,
    Userinfo,
    PathQueryOrFragment,
    InvalidHost,
    InvalidPort,
}

impl OriginError {
    pub fn message(self) -> &'static str {
        match self {
            OriginError::NotHttps => "must start with https://",
            OriginError::ForbiddenCharacter => {
                "must be plain ASCII without spaces, backslashes or percent-encoding (punycode for international names)"
            }
            OriginError::Userinfo => "must not contain a user name (@)",
            OriginError::PathQueryOrFragment => {
                "must be an origin only, like https://example.com: no path (not even /), query or fragment"
            }
            OriginError::InvalidHost => "must have a valid host name",
            OriginError::InvalidPort => "must have a port between 1 and 65535, if any",
        }
    }
}

/// A normalized https origin: `https://host` or `https://host:port` (port not 443).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

fn valid_host(host: &str) -> bool {
    host.len() <= MAX_HOST_CHARS
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl Origin {
    pub fn parse(s: &str) -> Result<Origin, OriginError> {
        // Checked first, on the whole string: a browser strips or reinterprets these (tabs and
        // newlines vanish, `\` becomes `/`), so what we validated would not be what it follows.
        if s.chars()
            .any(|c| !c.is_ascii_graphic() || c == '\\' || c == '%')
        {
            return Err(OriginError::ForbiddenCharacter);
        }
        let (scheme, rest) = s.split_once("://").ok_or(OriginError::NotHttps)?;
        if !scheme.eq_ignore_ascii_case("https") {
            return Err(OriginError::NotHttps);
        }
        if rest.contains('@') {
            return Err(OriginError::Userinfo);
        }
        if rest.contains(['/', '?', '#']) {
            return Err(OriginError::PathQueryOrFragment);
        }
        let (host, port) = match rest.split_once(':') {
            None => (rest, None),
            Some((host, port)) => (host, Some(port)),
        };
        let host = host.to_ascii_lowercase();
        if !valid_host(&host) {
            return Err(OriginError::InvalidHost);
        }
        let port = match port {
            None => None,
            Some(digits) => {
                // `u16::from_str` alone would accept a leading `+`.
                let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
                match digits.parse::<u16>() {
                    Ok(p) if all_digits && p != 0 => Some(p),
                    _ => return Err(OriginError::InvalidPort),
                }
            }
        };
        Ok(Origin(match port {
            None | Some(443) => format!("https://{host}"),
            Some(port) => format!("https://{host}:{port}"),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `REDIRECT_ORIGINS`: the origins a trial may send its user to. Empty by default, which refuses
/// every `redirect_url_origin`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<Origin>);

impl AllowedOrigins {
    /// Comma-separated origins, spaces around entries ignored; every entry must be a plain https
    /// origin (the same rules as a request's). Empty entries are skipped, so a trailing comma
    /// is harmless.
    pub fn parse(list: &str) -> Result<AllowedOrigins, String> {
        let mut origins = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let origin = Origin::parse(entry)
                .map_err(|e| format!("invalid origin {entry:?}: {}", e.message()))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(AllowedOrigins(origins))
    }

    pub fn contains(&self, origin: &Origin) -> bool {
        self.0.contains(origin)
    }

    pub fn origins(&self) -> &[Origin] {
        &self.0
    }
}

/// `TRIAL_REDIRECT_PATH`: starts with `/`; only unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// and `/`; no empty, `.` or `..` segment; at most 200 characters. A trailing `/` is dropped,
/// so `/` alone puts the trial id right after the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialPath(String);

impl Default for TrialPath {
    fn default() -> Self {
        TrialPath(DEFAULT_TRIAL_REDIRECT_PATH.to_owned())
    }
}

impl TrialPath {
    pub fn parse(s: &str) -> Result<TrialPath, String> {
        let bad = |why: &str| Err(format!("invalid path {s:?}: {why}"));
        if !s.starts_with('/') {
            return bad("must start with /");
        }
        if s.len() > MAX_TRIAL_PATH_CHARS {
            return bad("must be at most 200 characters");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/'))
        {
            return bad("may hold only letters, digits, - . _ ~ and /");
        }
        let trimmed = s.strip_suffix('/').unwrap_or(s);
        if trimmed
            .split('/')
            .skip(1)
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return bad("must not have an empty, . or .. segment");
        }
        Ok(TrialPath(trimmed.to_owned()))
    }

    /// Without a trailing `/`; empty for the root.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why no redirect URL was made. Both map to `400 invalid_redirect_origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectError {
    NotAnOrigin(OriginError),
    NotAllowed,
}

impl RedirectError {
    pub fn code(self) -> &'static str {
        INVALID_REDIRECT_ORIGIN
    }

    /// For the client; never quotes its input.
    pub fn message(self) -> String {
        match self {
            RedirectError::NotAnOrigin(e) => format!("redirect_url_origin {}", e.message()),
            RedirectError::NotAllowed => {
                "redirect_url_origin is not one of the allowed origins".to_owned()
            }
        }
    }
}

impl fmt::Display for RedirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for RedirectError {}

/// The URL to send the user to after a start; see the module doc for every rule.
pub fn redirect_url(
    origin: &str,
    allowed: &AllowedOrigins,
    trial_path: &TrialPath,
    trial_id: &TrialId,
    query_params: Option<&str>,
) -> Result<String, RedirectError> {
    let origin = Origin::parse(origin).map_err(RedirectError::NotAnOrigin)?;
    let Some(origin) = allowed.0.iter().find(|o| **o == origin) else {
        return Err(RedirectError::NotAllowed);
    };
    let mut url = format!("{origin}{}/{trial_id}", trial_path.as_str());
    if let Some(query) = query_params {
        let mut pairs = form_urlencoded::parse(query.as_bytes())
            .filter(|(name, _)| !name.is_empty())
            .peekable();
        if pairs.peek().is_some() {
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            url.push('?');
            url.push_str(&encoded);
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "trial_0123456789abcdef01234567";

    fn id() -> TrialId {
        TrialId::parse(ID).unwrap()
    }

    fn allowed() -> AllowedOrigins {
        AllowedOrigins::parse("https://good.com, https://app.example.org:8443").unwrap()
    }

    fn url(origin: &str, query: Option<&str>) -> Result<String, RedirectError> {
        redirect_url(origin, &allowed(), &TrialPath::default(), &id(), query)
    }

    #[test]
    fn builds_origin_path_id_and_query() {
        assert_eq!(
            url("https://good.com", Some("utm_source=google&utm_medium=cpc")).unwrap(),
            format!("https://good.com/trial/{ID}?utm_source=google&utm_medium=cpc")
        );
        assert_eq!(
            url("https://app.example.org:8443", None).unwrap(),
            format!("https://app.example.org:8443/trial/{ID}")
        );
        let root = TrialPath::parse("/").unwrap();
        assert_eq!(
            redirect_url("https://good.com", &allowed(), &root, &id(), None).unwrap(),
            format!("https://good.com/{ID}")
        );
        let nested = TrialPath::parse("/en/start-trial/").unwrap();
        assert_eq!(
            redirect_url("https://good.com", &allowed(), &nested, &id(), Some("")).unwrap(),
            format!("https://good.com/en/start-trial/{ID}")
        );
    }

    #[test]
    fn case_and_the_default_port_are_normalized_and_the_output_is_canonical() {
        for spelling in [
            "https://good.com",
            "HTTPS://GOOD.COM",
            "https://Good.Com:443",
            "hTTps://good.com:00443",
        ] {
            assert_eq!(
                url(spelling, None).unwrap(),
                format!("https://good.com/trial/{ID}"),
                "{spelling}"
            );
        }
        assert_eq!(
            Origin::parse("https://Example.org:8443").unwrap().as_str(),
            "https://example.org:8443"
        );
    }

    #[test]
    fn no_open_redirect() {
        use OriginError::*;
        for (input, expected) in [
            (
                "https://evil.com@good.com",
                RedirectError::NotAnOrigin(Userinfo),
            ),
            (
                "https://good.com@evil.com",
                RedirectError::NotAnOrigin(Userinfo),
            ),
            ("https://good.com.evil.com", RedirectError::NotAllowed),
            ("https://evil.com", RedirectError::NotAllowed),
            ("https://app.good.com", RedirectError::NotAllowed),
            ("https://good.com:8443", RedirectError::NotAllowed),
            ("https://app.example.org", RedirectError::NotAllowed),
            ("http://good.com", RedirectError::NotAnOrigin(NotHttps)),
            ("javascript:alert(1)", RedirectError::NotAnOrigin(NotHttps)),
            (
                "javascript://good.com",
                RedirectError::NotAnOrigin(NotHttps),
            ),
            ("data:text/html,hi", RedirectError::NotAnOrigin(NotHttps)),
            ("//good.com", RedirectError::NotAnOrigin(NotHttps)),
            ("good.com", RedirectError::NotAnOrigin(NotHttps)),
            ("https:good.com", RedirectError::NotAnOrigin(NotHttps)),
            ("https:/good.com", RedirectError::NotAnOrigin(NotHttps)),
            (
                "https:///good.com",
                RedirectError::NotAnOrigin(PathQueryOrFragment),
            ),
            (
                "https://good.com/",
                RedirectError::NotAnOrigin(PathQueryOrFragment),
            ),
            (
                "https://good.com/path",
                RedirectError::NotAnOrigin(PathQueryOrFragment),
            ),
            (
                "https://good.com?x=1",
                RedirectError::NotAnOrigin(PathQueryOrFragment),
            ),
            (
                "https://good.com#frag",
                RedirectError::NotAnOrigin(PathQueryOrFragment),
            ),
            (
                "https://good.com//evil.com",
                RedirectError::NotAnOrigin(PathQueryOrFragment),
            ),
            (
                "https://good.com\\@evil.com",
                RedirectError::NotAnOrigin(ForbiddenCharacter),
            ),
            (
                "https://good.com\\evil.com",
                RedirectError::NotAnOrigin(ForbiddenCharacter),
            ),
            (
                "https://good%2ecom",
                RedirectError::NotAnOrigin(ForbiddenCharacter),
            ),
            (
                "https://good.com ",
                RedirectError::NotAnOrigin(ForbiddenCharacter),
            ),
            (
                " https://good.com",
                RedirectError::NotAnOrigin(ForbiddenCharacter),
            ),
            (
                "https://go\tod.com",
                RedirectError::NotAnOrigin(ForbiddenCharacter),
            ),
            (
                "https://good.com\n",
                RedirectError::NotAnOrigin(ForbiddenCharacter),
            ),
            // Cyrillic о: a homograph of good.com.
            (
                "https://gооd.com",
                RedirectError::NotAnOrigin(ForbiddenCharacter),
            ),
            ("https://good.com.", RedirectError::NotAnOrigin(InvalidHost)),
            ("https://", RedirectError::NotAnOrigin(InvalidHost)),
            ("https://:443", RedirectError::NotAnOrigin(InvalidHost)),
            ("https://good_com", RedirectError::NotAnOrigin(InvalidHost)),
            ("https://-good.com", RedirectError::NotAnOrigin(InvalidHost)),
            ("https://[::1]", RedirectError::NotAnOrigin(InvalidHost)),
            ("https://good.com:", RedirectError::NotAnOrigin(InvalidPort)),
            (
                "https://good.com:0",
                RedirectError::NotAnOrigin(InvalidPort),
            ),
            (
                "https://good.com:65536",
                RedirectError::NotAnOrigin(InvalidPort),
            ),
            (
                "https://good.com:+443",
                RedirectError::NotAnOrigin(InvalidPort),
            ),
            (
                "https://good.com:443:443",
                RedirectError::NotAnOrigin(InvalidPort),
            ),
            ("", RedirectError::NotAnOrigin(NotHttps)),
        ] {
            let err = url(input, None).unwrap_err();
            assert_eq!(err, expected, "{input:?}");
            assert_eq!(err.code(), "invalid_redirect_origin");
            if !input.is_empty() {
                assert!(!err.message().contains(input), "{input:?} echoed");
            }
        }
        // An empty allow-list accepts nothing, however well-formed.
        let none = AllowedOrigins::default();
        assert_eq!(
            redirect_url(
                "https://good.com",
                &none,
                &TrialPath::default(),
                &id(),
                None
            ),
            Err(RedirectError::NotAllowed)
        );
    }

    #[test]
    fn query_params_are_re_encoded_and_cannot_escape_the_query() {
        let got = url(
            "https://good.com",
            Some("next=/admin#x&q=a b&pct=%&amp=a%26b&=dropped&trial_id=spoof&utm=1&utm=2"),
        )
        .unwrap();
        assert_eq!(
            got,
            format!(
                "https://good.com/trial/{ID}?next=%2Fadmin%23x&q=a+b&pct=%25&amp=a%26b&trial_id=spoof&utm=1&utm=2"
            )
        );
        let (before_query, query) = got.split_once('?').unwrap();
        assert_eq!(before_query, format!("https://good.com/trial/{ID}"));
        assert!(!query.contains(['#', '/', ' ']), "{query}");
        let unicode = url("https://good.com", Some("name=Zoë&city=東京")).unwrap();
        assert!(
            unicode.ends_with("?name=Zo%C3%AB&city=%E6%9D%B1%E4%BA%AC"),
            "{unicode}"
        );
        assert_eq!(
            url("https://good.com", Some("&&=x")).unwrap(),
            format!("https://good.com/trial/{ID}")
        );
    }

    #[test]
    fn allow_list_and_path_configuration() {
        let list = AllowedOrigins::parse(" HTTPS://Good.com:443 , https://good.com,").unwrap();
        assert_eq!(list.origins().len(), 1);
        assert_eq!(list.origins()[0].as_str(), "https://good.com");
        assert_eq!(
            AllowedOrigins::parse("").unwrap(),
            AllowedOrigins::default()
        );
        for bad in [
            "http://good.com",
            "https://good.com/",
            "good.com",
            "https://a.com,https://b.com/x",
        ] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }

        assert_eq!(TrialPath::default().as_str(), "/trial");
        assert_eq!(TrialPath::parse("/").unwrap().as_str(), "");
        assert_eq!(
            TrialPath::parse("/a/b-c_d.e~f/").unwrap().as_str(),
            "/a/b-c_d.e~f"
        );
        for bad in [
            "",
            "trial",
            "//evil.com",
            "/a//b",
            "/a/../b",
            "/./a",
            "/a?b",
            "/a#b",
            "/a b",
            "/a%2e",
            "/a\\b",
            "/é",
        ] {
            assert!(TrialPath::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TrialPath::parse(&format!("/{}", "a".repeat(200))).is_err());
    }
}
