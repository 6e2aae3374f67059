//! Usage against a limited option: what recording `quantity` more does, decided from the value
//! read. Pure; the store's write re-checks the read in its condition (see `store::usage`).
//!
//! **Invariant.** Usage never exceeds the option's value, and each of `trial.limit_warning`
//! (the first time usage reaches 80 % of the value, rounded up) and `trial.limit_reached` is
//! emitted by exactly the one recording that crosses it.

/// The largest quantity one call may record (documented in openapi.yaml): far above any real
/// batch, far below the largest option value, so `used + quantity` never overflows.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// The usage at which the warning fires: 80 % of `value`, rounded up (at least 1).
pub fn warning_threshold(value: i64) -> i64 {
    ((value.saturating_mul(4) + 4) / 5).max(1)
}

/// What adding `quantity` to `used` does to an option of limit `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageStep {
    /// Over the limit: nothing is recorded; `remaining` is what is left.
    Exceeded { remaining: i64 },
    /// Recorded: `after` is the new usage; `warns` / `reaches` say whether this step crosses
    /// the warning threshold / the limit.
    Recorded {
        after: i64,
        warns: bool,
        reaches: bool,
    },
}

pub fn step(value: i64, used: i64, quantity: i64) -> UsageStep {
    let remaining = (value - used).max(0);
    if quantity > remaining {
        return UsageStep::Exceeded { remaining };
    }
    let after = used + quantity;
    let threshold = warning_threshold(value);
    UsageStep::Recorded {
        after,
        warns: used < threshold && after >= threshold,
        reaches: used < value && after == value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_round_up() {
        assert_eq!(warning_threshold(100), 80);
        assert_eq!(warning_threshold(3), 3);
        assert_eq!(warning_threshold(10), 8);
        assert_eq!(warning_threshold(1), 1);
        assert!(warning_threshold(9_007_199_254_740_991) > 0);
    }

    #[test]
    fn each_crossing_happens_once() {
        assert_eq!(
            step(100, 0, 79),
            UsageStep::Recorded {
                after: 79,
                warns: false,
                reaches: false
            }
        );
        assert_eq!(
            step(100, 79, 1),
            UsageStep::Recorded {
                after: 80,
                warns: true,
                reaches: false
            }
        );
        assert_eq!(
            step(100, 80, 19),
            UsageStep::Recorded {
                after: 99,
                warns: false,
                reaches: false
            }
        );
        assert_eq!(
            step(100, 0, 100),
            UsageStep::Recorded {
                after: 100,
                warns: true,
                reaches: true
            }
        );
        assert_eq!(step(100, 99, 2), UsageStep::Exceeded { remaining: 1 });
        assert_eq!(step(100, 100, 1), UsageStep::Exceeded { remaining: 0 });
    }
}
