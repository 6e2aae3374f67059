//! Structured JSON logs: one object per line, as CloudWatch Logs Insights expects.
//!
//! # What a log line may carry
//! Logs are kept longer and read by more people than the table, so a value that reaches a log
//! line whole (a domain event's detail, a trial view) goes through [`redact`] first: only the
//! fields named in [`SAFE_FIELDS`] keep their value, at any depth (objects inside objects and
//! arrays); every other field's value becomes [`REDACTED`]. An allow-list rather than a
//! deny-list, so a field added tomorrow (another applicant field, a free-text reason) is hidden
//! until someone decides it is safe, instead of leaking until someone notices. Cost: one walk
//! over the value and a copy of the kept parts, on the log path only.
use serde_json::{Map, Value};
use tracing::Subscriber;
use tracing_subscriber::filter::{filter_fn, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub fn init() {
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::registry()
        .with(layer(level, std::io::stdout))
        .try_init();
}

/// The log layer every process uses, at `level`, writing to `writer` (tests capture it).
pub fn layer<S, W>(level: tracing::Level, writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let verbose = level >= tracing::Level::DEBUG;
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer)
        .with_filter(LevelFilter::from_level(level))
        // The embedded DynamoDB of the local run logs every refused condition, which is how
        // this service works, not news; it speaks only when asked for debug logs.
        .with_filter(filter_fn(move |meta| {
            verbose || !meta.target().starts_with("dynoxide")
        }))
        // At trace level the AWS SDK and the embedded DynamoDB log whole requests and
        // responses: DynamoDB items, API key hashes among them. Trace is for this service's
        // own code; other crates go no further than debug (operations, retries, timings).
        .with_filter(filter_fn(|meta| {
            *meta.level() < tracing::Level::TRACE || meta.target().starts_with("trials")
        }))
        // Events only: a line never shows span context (above), so a span the SDK opens per
        // request and per attempt would be allocated in the registry and entered on every poll
        // for nothing. Disabled here, its callsite is never interesting and costs nothing
        // (BENCHMARKS.md section 7 measured the registry at ~3% of a warm invocation's CPU).
        .with_filter(filter_fn(|meta| meta.is_event()))
}

/// What a field's value becomes in a log line when its name is not in [`SAFE_FIELDS`].
pub const REDACTED: &str = "<redacted>";

/// Field names whose values may appear in a log line: ids, plans, statuses, times, counts and
/// codes. Never personal or free text: the applicant (`email`, `name`, `company_name`, …),
/// `notes`, `metadata` and an extension's `reason` (an operator's free text) are not here, nor is
/// `name` (it is the applicant's as well as an option's). Sorted, for the binary search.
pub const SAFE_FIELDS: &[&str] = &[
    "activate_by",
    "activated_at",
    "activated_by",
    "active_ranges",
    "actor",
    "allowed_by_operator",
    "amount_paid",
    "amount_total",
    "at",
    "automatic",
    "billing",
    "billing_starts",
    "canceled_at",
    "checkout_expires_at",
    "checkout_session_id",
    "client_reference_id",
    "converted_at",
    "currency",
    "current_period_end",
    "days_limit",
    "days_remaining",
    "details",
    "downgrade_to",
    "downgraded_at",
    "downgraded_from",
    "end",
    "ending",
    "event_id",
    "expires_at",
    "expiry_reason",
    "first_charge_at",
    "first_paid_at",
    "flagged",
    "forced",
    "grace_period_ends_at",
    "hours_remaining",
    "id",
    "internal_name",
    "is_limit",
    "is_trial_skipped",
    "lapse_revoked",
    "lapsed_at",
    "matched_org_id",
    "matched_signals",
    "mode",
    "notes_changed",
    "occurred_at",
    "offset_secs",
    "option",
    "options",
    "org_id",
    "paused_at",
    "plan",
    "previous_expires_at",
    "previous_plan",
    "product",
    "project_id",
    "remaining_duration",
    "remaining_value",
    "requested_by",
    "resumed_at",
    "review",
    "signal_kind",
    "start",
    "started_at",
    "starts",
    "status",
    "stripe_customer_id",
    "stripe_event_id",
    "stripe_event_type",
    "stripe_invoice_id",
    "stripe_subscription_id",
    "subscription",
    "subscription_status",
    "threshold",
    "timeline",
    "trial",
    "trial_id",
    "truncated",
    "type",
    "used_value",
    "value",
];

/// Fields that carry a stable code (`not_our_session`, `signal_reused`) in some places and a
/// person's free text in others (an extension's `reason`): their value shows only when it is a
/// code, lowercase ASCII words joined by `_`, at most 64 characters.
pub const CODE_FIELDS: &[&str] = &["reason"];

/// Whether a field named `name` may show its value in a log line.
pub fn is_safe_field(name: &str) -> bool {
    SAFE_FIELDS.binary_search(&name).is_ok()
}

fn is_code(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// `value` fit for a log line: in every object, at any depth, the fields not in
/// [`SAFE_FIELDS`] have their value replaced by [`REDACTED`] (the name stays, so a reader sees
/// that something was there). Arrays and the values of safe fields are walked the same way.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(name, v)| {
                    let shown = if is_safe_field(name) {
                        redact(v)
                    } else if CODE_FIELDS.contains(&name.as_str()) && is_code(v) {
                        v.clone()
                    } else {
                        Value::String(REDACTED.to_owned())
                    };
                    (name.clone(), shown)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        scalar => scalar.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_code_field_shows_codes_only() {
        let shown = |v: Value| redact(&json!({ "reason": v }))["reason"].clone();
        assert_eq!(shown(json!("not_our_session")), "not_our_session");
        assert_eq!(shown(json!("binding_mismatch2")), "binding_mismatch2");
        for free in [
            json!("Ada asked"),
            json!("Sales"),
            json!(""),
            json!("a".repeat(65)),
            json!(7),
        ] {
            assert_eq!(shown(free), REDACTED);
        }
    }

    #[test]
    fn the_allow_list_is_sorted_and_has_no_personal_field() {
        assert!(
            SAFE_FIELDS.windows(2).all(|w| w[0] < w[1]),
            "sorted, unique"
        );
        for personal in [
            "applicant",
            "email",
            "name",
            "notes",
            "company_name",
            "organization_name",
            "metadata",
            "reason",
            "client_ip",
            "device_id",
        ] {
            assert!(!is_safe_field(personal), "{personal}");
        }
    }

    #[test]
    fn only_safe_fields_keep_their_value_at_any_depth() {
        let detail = json!({
            "event_id": "trial_x.purged",
            "applicant": { "email": "ada@example.com" },
            "notes": "called Ada",
            "trial": {
                "id": "trial_x",
                "applicant": { "email": "ada@example.com", "name": "Ada" },
                "notes": "called Ada",
                "active_ranges": [{ "start": "2026-04-06T10:00:00Z", "email": "ada@example.com" }],
                "options": [{ "internal_name": "api_calls", "name": "API calls", "value": 3 }],
            },
            "reason": "Ada asked",
            "refusal": { "reason": "signal_reused" },
            "unmatched": { "reason": "Not_A code" },
        });
        assert_eq!(
            redact(&detail),
            json!({
                "event_id": "trial_x.purged",
                "applicant": REDACTED,
                "notes": REDACTED,
                "trial": {
                    "id": "trial_x",
                    "applicant": REDACTED,
                    "notes": REDACTED,
                    "active_ranges": [{ "start": "2026-04-06T10:00:00Z", "email": REDACTED }],
                    "options": [{ "internal_name": "api_calls", "name": REDACTED, "value": 3 }],
                },
                "reason": REDACTED,
                "refusal": REDACTED,
                "unmatched": REDACTED,
            })
        );
        // Scalars and arrays of scalars are kept as they are.
        assert_eq!(redact(&json!([1, "a", null])), json!([1, "a", null]));
    }
}
