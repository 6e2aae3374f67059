//! The body of `POST /v1/trials/{id}/extend`, parsed once at the edge: `{"days": n}` or
//! `{"until": "<RFC 3339>"}`, plus an optional `reason`. Only the shape is checked here; whether
//! the new end suits the trial (later than its end, within the plan's maximum) is
//! `Trial::extend`'s question, since it needs the trial.
use super::ErrorCode;
use chrono::DateTime;
use serde_json::{Map, Value};

use super::state_machine::ExtendFrom;

const DAY_SECS: i64 = 86_400;
/// The most days one request may add.
pub const MAX_EXTENSION_DAYS: i64 = 365;
/// The longest `reason` accepted, in characters: it travels in the `trial.extended` event.
pub const MAX_REASON_CHARS: usize = 500;

/// How far to extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// `n` more days (1..=365): after the current end while the trial is ACTIVE, after now when
    /// it is revived from EXPIRED (the time spent expired is not given back).
    Days(i64),
    /// Until this instant, epoch seconds (a fractional second is dropped).
    Until(i64),
}

impl Extension {
    /// The end this extension asks for.
    pub fn new_end(self, from: ExtendFrom, expires_at: i64, now: i64) -> i64 {
        match (self, from) {
            (Extension::Days(n), ExtendFrom::Continuing) => expires_at + n * DAY_SECS,
            (Extension::Days(n), ExtendFrom::Revived) => now + n * DAY_SECS,
            (Extension::Until(at), _) => at,
        }
    }
}

/// A parsed extend request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendRequest {
    pub extension: Extension,
    /// Why (free text from the operator, trimmed; `None` when absent, null or blank).
    pub reason: Option<String>,
}

/// Why an extend body is refused: 422 `invalid_extension`, one message each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionInputError {
    /// Neither or both of `days` and `until`.
    OneOfDaysOrUntil,
    /// `days` is not a whole number in 1..=365.
    Days,
    /// `until` is not an RFC 3339 string.
    Until,
    /// `reason` is not a string of at most 500 characters.
    Reason,
}

impl ExtensionInputError {
    pub fn code(self) -> ErrorCode {
        ErrorCode::InvalidExtension
    }

    pub fn message(self) -> &'static str {
        match self {
            ExtensionInputError::OneOfDaysOrUntil => "Give exactly one of days or until",
            ExtensionInputError::Days => "days must be a whole number from 1 to 365",
            ExtensionInputError::Until => {
                "until must be an RFC 3339 timestamp, e.g. 2026-04-06T10:00:00Z"
            }
            ExtensionInputError::Reason => "reason must be a string of at most 500 characters",
        }
    }
}

impl ExtendRequest {
    /// Parses the body's object. Unknown fields are ignored, as `POST /v1/trials/start` does.
    pub fn parse(body: &Map<String, Value>) -> Result<ExtendRequest, ExtensionInputError> {
        let present = |name: &str| body.get(name).filter(|v| !v.is_null());
        let extension = match (present("days"), present("until")) {
            (Some(days), None) => Extension::Days(
                days.as_i64()
                    .filter(|n| (1..=MAX_EXTENSION_DAYS).contains(n))
                    .ok_or(ExtensionInputError::Days)?,
            ),
            (None, Some(until)) => Extension::Until(
                until
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|at| at.timestamp())
                    .ok_or(ExtensionInputError::Until)?,
            ),
            _ => return Err(ExtensionInputError::OneOfDaysOrUntil),
        };
        let reason = match present("reason") {
            None => None,
            Some(Value::String(text)) if text.chars().count() <= MAX_REASON_CHARS => {
                Some(text.trim().to_owned()).filter(|t| !t.is_empty())
            }
            Some(_) => return Err(ExtensionInputError::Reason),
        };
        Ok(ExtendRequest { extension, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<ExtendRequest, ExtensionInputError> {
        match body {
            Value::Object(map) => ExtendRequest::parse(&map),
            other => panic!("test body must be an object: {other}"),
        }
    }

    #[test]
    fn days_or_until_with_an_optional_reason() {
        assert_eq!(
            parse(json!({ "days": 7 })),
            Ok(ExtendRequest {
                extension: Extension::Days(7),
                reason: None
            })
        );
        assert_eq!(
            parse(json!({ "until": "2026-04-06T12:00:00+02:00", "reason": "  sales call " })),
            Ok(ExtendRequest {
                extension: Extension::Until(1_775_469_600),
                reason: Some("sales call".into())
            })
        );
        assert_eq!(
            parse(json!({ "until": "2026-04-06T10:00:00.900Z", "reason": null })),
            Ok(ExtendRequest {
                extension: Extension::Until(1_775_469_600),
                reason: None
            })
        );
        assert_eq!(
            parse(json!({ "days": 365, "reason": "   " })).map(|r| r.reason),
            Ok(None)
        );
    }

    #[test]
    fn bad_bodies_name_what_is_wrong() {
        use ExtensionInputError as E;
        let cases = [
            (json!({}), E::OneOfDaysOrUntil),
            (json!({ "days": null, "until": null }), E::OneOfDaysOrUntil),
            (
                json!({ "days": 7, "until": "2026-04-06T10:00:00Z" }),
                E::OneOfDaysOrUntil,
            ),
            (json!({ "days": 0 }), E::Days),
            (json!({ "days": -1 }), E::Days),
            (json!({ "days": 366 }), E::Days),
            (json!({ "days": 1.5 }), E::Days),
            (json!({ "days": "7" }), E::Days),
            (json!({ "until": "2026-04-06" }), E::Until),
            (json!({ "until": "2026-04-06 10:00:00" }), E::Until),
            (json!({ "until": 1_775_469_600 }), E::Until),
            (json!({ "days": 7, "reason": 42 }), E::Reason),
            (json!({ "days": 7, "reason": "x".repeat(501) }), E::Reason),
        ];
        for (body, err) in cases {
            assert_eq!(parse(body.clone()), Err(err), "{body}");
            assert_eq!(
                (err.code().as_str(), err.code().status()),
                ("invalid_extension", 422)
            );
        }
        assert!(parse(json!({ "days": 7, "reason": "é".repeat(500) })).is_ok());
    }

    #[test]
    fn days_count_from_the_end_or_from_now_when_revived() {
        let (expires_at, now) = (1_000, 5_000);
        assert_eq!(
            Extension::Days(2).new_end(ExtendFrom::Continuing, expires_at, now),
            1_000 + 2 * DAY_SECS
        );
        assert_eq!(
            Extension::Days(2).new_end(ExtendFrom::Revived, expires_at, now),
            5_000 + 2 * DAY_SECS
        );
        assert_eq!(
            Extension::Until(9_999).new_end(ExtendFrom::Revived, expires_at, now),
            9_999
        );
    }
}
