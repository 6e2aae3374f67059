//! What an admin key may do to a trial that a standard key may not: set its `expires_at`
//! (Edge Impulse's `expirationDate`) and its `notes`, at start and later with `PATCH`.
use super::error::ApiError;
use crate::domain::catalog::TrialTerms;
use crate::domain::time::rfc3339;
use crate::domain::ErrorCode;

/// An admin's `expires_at` for a trial started at `started_at` on `terms`, checked at `now`:
/// later than now, and no later than the plan's maximum after the start (the catalog's
/// `max_total_trial_secs`, the ceiling on a trial's total length, snapshot at start); else 422
/// `invalid_expiration`.
pub fn check_expiration(
    expires_at: i64,
    now: i64,
    started_at: i64,
    terms: &TrialTerms,
) -> Result<i64, ApiError> {
    let latest = started_at + terms.max_total_trial_secs;
    if expires_at <= now {
        return Err(ApiError::new(
            ErrorCode::InvalidExpiration,
            "expires_at must be later than now",
        ));
    }
    if expires_at > latest {
        return Err(ApiError::new(
            ErrorCode::InvalidExpiration,
            format!(
                "expires_at must be at most {} after the trial's start for plan {} ({})",
                span(terms.max_total_trial_secs),
                terms.plan,
                rfc3339(latest)
            ),
        ));
    }
    Ok(expires_at)
}

/// `90 days`, or `36 hours` for a maximum that is not whole days, or seconds.
fn span(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3_600 == 0 => format!("{} hours", s / 3_600),
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Catalog;

    #[test]
    fn expiration_is_after_now_and_within_the_plans_maximum() {
        let mut terms = Catalog::builtin().get("growth").unwrap().snapshot();
        let start = 1_000_000;
        let now = start + 10;
        assert_eq!(check_expiration(now + 1, now, start, &terms), Ok(now + 1));
        let latest = start + terms.max_total_trial_secs;
        assert_eq!(check_expiration(latest, now, start, &terms), Ok(latest));
        for bad in [now, now - 1, latest + 1] {
            let err = check_expiration(bad, now, start, &terms).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidExpiration, "{bad}");
            assert_eq!(err.status(), 422);
        }
        // The maximum is the trial's own terms', not a constant.
        terms.max_total_trial_secs = 14 * 86_400;
        let err = check_expiration(start + 15 * 86_400, now, start, &terms).unwrap_err();
        assert!(err.message.contains("14 days"), "{}", err.message);
        assert!(check_expiration(start + 14 * 86_400, now, start, &terms).is_ok());
    }
}
