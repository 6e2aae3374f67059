//! Durations as operators write them (`7d`, `72h`, `90s`) and timestamps as the API shows them.
use chrono::{DateTime, SecondsFormat, Utc};

/// Parses `<n>d`, `<n>h`, `<n>m` or `<n>s` into seconds. Zero and overflow are rejected.
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!("invalid duration {s:?}: expected a positive number with a unit d, h, m or s (e.g. 7d, 72h, 90s)")
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let scale = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(bad()),
    };
    let n: i64 = s[..s.len() - 1].parse().map_err(|_| bad())?;
    if n <= 0 {
        return Err(bad());
    }
    n.checked_mul(scale).ok_or_else(bad)
}

/// RFC 3339, UTC, whole seconds: `2026-04-06T10:00:00Z`.
/// A duration as [`parse_duration_secs`] reads it, in the largest whole unit: `7d`, `36h`,
/// `90m`, `45s` (what a plan file would say).
pub fn format_duration_secs(secs: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs != 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

pub fn rfc3339(epoch_secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(epoch_secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 timestamp (any offset) into epoch seconds; `None` if it is not one.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_their_largest_whole_unit_and_read_back() {
        for (secs, text) in [
            (604_800, "7d"),
            (259_200, "3d"),
            (129_600, "36h"),
            (5_400, "90m"),
            (45, "45s"),
        ] {
            assert_eq!(format_duration_secs(secs), text);
            assert_eq!(parse_duration_secs(text), Ok(secs));
        }
        // No plan has a zero duration; it still prints as one.
        assert_eq!(format_duration_secs(0), "0s");
    }

    #[test]
    fn parses_rfc3339_with_any_offset() {
        assert_eq!(parse_rfc3339("2026-04-06T10:00:00Z"), Some(1_775_469_600));
        assert_eq!(
            parse_rfc3339("2026-04-06T12:00:00+02:00"),
            Some(1_775_469_600)
        );
        assert_eq!(parse_rfc3339("2026-04-06"), None);
        assert_eq!(parse_rfc3339("6h"), None);
    }

    #[test]
    fn parses_operator_durations() {
        assert_eq!(parse_duration_secs("7d"), Ok(604_800));
        assert_eq!(parse_duration_secs("72h"), Ok(259_200));
        assert_eq!(parse_duration_secs("90s"), Ok(90));
        assert_eq!(parse_duration_secs("5m"), Ok(300));
        for bad in [
            "",
            "7",
            "d",
            "0d",
            "-1d",
            "7w",
            "1.5h",
            "99999999999999999d",
        ] {
            assert!(parse_duration_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_seconds_precision_utc() {
        assert_eq!(rfc3339(1_775_469_600), "2026-04-06T10:00:00Z");
    }
}
