//! Business and request metrics as CloudWatch Embedded Metric Format (EMF) log lines.
//!
//! Each emission is one JSON object on one line of stdout. CloudWatch Logs recognises the `_aws`
//! member and publishes the values it names as metrics of namespace [`NAMESPACE`], so a metric
//! costs no request on the hot path, no SDK client and no IAM permission beyond writing logs.
//!
//! **Invariant**: the names below are the ones `template.yaml`'s alarms and dashboard use;
//! `scripts/template-check.py` (part of `make test`) fails on a `Trials` metric or dimension
//! there that [`name`] and [`dimension`] do not define. Dimension values are low-cardinality
//! only (a plan, a route, a job, a webhook outcome), never an org, trial or request id: every
//! distinct combination is a custom metric billed by the month.
//!
//! **Cost**: one line of 300–600 bytes per emission, written with one locked `write_all` to
//! stdout (it cannot interleave with the JSON log lines), plus the CloudWatch Logs ingestion of
//! those bytes. A write error is ignored: a metric is never worth failing a request.
//!
//! | metric | unit | dimension sets | emitted by |
//! |---|---|---|---|
//! | `TrialStarted`, `TrialConverted`, `TrialExpired`, `TrialCanceled`, `TrialPurged` | Count | `[Plan]` and `[]` (all plans) | [`trial_started`] … [`trial_purged`] |
//! | `WebhookOutcome` | Count | `[Outcome]` | [`webhook_outcome`] |
//! | `PaymentUnmatched` | Count | `[]` | [`payment_unmatched`] (alarm: any) |
//! | `JobProcessed`, `JobSkipped`, `JobFailed` | Count | `[Job]` | [`job_run`] |
//! | `JobIncomplete` | Count, 0 or 1 | `[Job]` | [`job_run`]: the run stopped before the end of its queue |
//! | `JobUnhealthy` | Count, 0 or 1 | `[Job]` | [`job_run`]: incomplete or `failed > 0` (alarm: two runs in a row; its sample count is the number of runs) |
//! | `JobOldestDueAge` | Seconds | `[Job]` | [`job_run`]: age of the oldest item still due after the run (0: none) |
//! | `Requests` | Count | `[Route]` | [`request`] |
//! | `Status4xx`, `Status5xx` | Count, 0 or 1 | `[Route]` | [`request`]: Sum is the count, Average the rate |
//! | `Latency` | Milliseconds | `[Route]` | [`request`] (p50 and p99 on the dashboard) |
//!
//! Dimension values: `Plan` is [`Plan::as_str`]; `Route` the route's name
//! (`POST /v1/trials/start`, `crate::api::Route::name`); `Job` the job's name (`expire`, `purge`,
//! `crate::jobs::Job::name`); `Outcome` the webhook outcome (`converted`, `unmatched`, ...). They
//! are taken as strings so that this module depends on nothing above the domain.
//!
//! **Switch**: emission is on inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) and off
//! elsewhere, so tests and `trials-local` are not flooded; `METRICS=on` or `METRICS=off`
//! overrides that, and [`set_enabled`] overrides both.
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use serde_json::{json, Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::domain::Plan;

/// The CloudWatch namespace of every metric here.
pub const NAMESPACE: &str = "Trials";

/// Metric names, as the template's alarms and dashboard use them.
pub mod name {
    pub const TRIAL_STARTED: &str = "TrialStarted";
    pub const TRIAL_CONVERTED: &str = "TrialConverted";
    pub const TRIAL_EXPIRED: &str = "TrialExpired";
    pub const TRIAL_CANCELED: &str = "TrialCanceled";
    pub const TRIAL_PURGED: &str = "TrialPurged";
    pub const WEBHOOK_OUTCOME: &str = "WebhookOutcome";
    pub const PAYMENT_UNMATCHED: &str = "PaymentUnmatched";
    pub const JOB_PROCESSED: &str = "JobProcessed";
    pub const JOB_SKIPPED: &str = "JobSkipped";
    pub const JOB_FAILED: &str = "JobFailed";
    pub const JOB_INCOMPLETE: &str = "JobIncomplete";
    pub const JOB_UNHEALTHY: &str = "JobUnhealthy";
    pub const JOB_OLDEST_DUE_AGE: &str = "JobOldestDueAge";
    pub const REQUESTS: &str = "Requests";
    pub const STATUS_4XX: &str = "Status4xx";
    pub const STATUS_5XX: &str = "Status5xx";
    pub const LATENCY: &str = "Latency";
}

/// Dimension names.
pub mod dimension {
    pub const PLAN: &str = "Plan";
    pub const OUTCOME: &str = "Outcome";
    pub const JOB: &str = "Job";
    pub const ROUTE: &str = "Route";
}

/// A CloudWatch unit (the subset these metrics use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// One value of one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
    pub unit: Unit,
}

impl Metric {
    pub fn count(name: &'static str, value: f64) -> Metric {
        Metric {
            name,
            value,
            unit: Unit::Count,
        }
    }

    /// 1 when `yes`, else 0: Sum counts the cases, Average is their rate.
    pub fn flag(name: &'static str, yes: bool) -> Metric {
        Metric::count(name, if yes { 1.0 } else { 0.0 })
    }
}

/// Which dimension sets a line publishes its metrics under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rollup {
    /// One set: all the line's dimensions.
    Exact,
    /// Also the empty set, so the total over every dimension value exists as its own metric
    /// (metric math cannot sum dimension values it does not list).
    WithTotal,
}

/// Emits `metrics` with `dimensions` (name, value) as one EMF line on stdout, when enabled.
pub fn emit(metrics: &[Metric], dimensions: &[(&'static str, &str)]) {
    send(metrics, dimensions, Rollup::Exact);
}

pub fn trial_started(plan: &Plan) {
    trial(name::TRIAL_STARTED, plan);
}

pub fn trial_converted(plan: &Plan) {
    trial(name::TRIAL_CONVERTED, plan);
}

pub fn trial_expired(plan: &Plan) {
    trial(name::TRIAL_EXPIRED, plan);
}

pub fn trial_canceled(plan: &Plan) {
    trial(name::TRIAL_CANCELED, plan);
}

pub fn trial_purged(plan: &Plan) {
    trial(name::TRIAL_PURGED, plan);
}

fn trial(metric: &'static str, plan: &Plan) {
    send(
        &[Metric::count(metric, 1.0)],
        &[(dimension::PLAN, plan.as_str())],
        Rollup::WithTotal,
    );
}

/// What one Stripe webhook delivery did (`converted`, `unmatched`, `duplicate`, ...).
pub fn webhook_outcome(outcome: &str) {
    emit(
        &[Metric::count(name::WEBHOOK_OUTCOME, 1.0)],
        &[(dimension::OUTCOME, outcome)],
    );
}

/// Money received for no trial of ours (`trial.payment_unmatched`): the alarm fires on any.
pub fn payment_unmatched() {
    emit(&[Metric::count(name::PAYMENT_UNMATCHED, 1.0)], &[]);
}

/// One run of a scheduled job. `oldest_due_age_secs`: how long the oldest item still due after
/// the run has been due (`None` when nothing is due; published as 0).
pub fn job_run(
    job: &str,
    processed: u64,
    skipped: u64,
    failed: u64,
    complete: bool,
    oldest_due_age_secs: Option<u64>,
) {
    emit(
        &job_metrics(processed, skipped, failed, complete, oldest_due_age_secs),
        &[(dimension::JOB, job)],
    );
}

fn job_metrics(
    processed: u64,
    skipped: u64,
    failed: u64,
    complete: bool,
    oldest_due_age_secs: Option<u64>,
) -> [Metric; 6] {
    [
        Metric::count(name::JOB_PROCESSED, processed as f64),
        Metric::count(name::JOB_SKIPPED, skipped as f64),
        Metric::count(name::JOB_FAILED, failed as f64),
        Metric::flag(name::JOB_INCOMPLETE, !complete),
        Metric::flag(name::JOB_UNHEALTHY, !complete || failed > 0),
        Metric {
            name: name::JOB_OLDEST_DUE_AGE,
            value: oldest_due_age_secs.unwrap_or(0) as f64,
            unit: Unit::Seconds,
        },
    ]
}

/// One answered request: `route` is the route's name, `ms` the handler's duration.
pub fn request(route: &str, status: u16, ms: f64) {
    emit(&request_metrics(status, ms), &[(dimension::ROUTE, route)]);
}

fn request_metrics(status: u16, ms: f64) -> [Metric; 4] {
    [
        Metric::count(name::REQUESTS, 1.0),
        Metric::flag(name::STATUS_4XX, (400..500).contains(&status)),
        Metric::flag(name::STATUS_5XX, status >= 500),
        Metric {
            name: name::LATENCY,
            value: ms,
            unit: Unit::Milliseconds,
        },
    ]
}

// ----------------------------------------------------------------------------- the switch

const UNDECIDED: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// Turns emission on or off for the whole process, whatever the environment says.
pub fn set_enabled(on: bool) {
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// Whether emissions are written; decided from the environment on first use.
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let on = decide(
                std::env::var("METRICS").ok().as_deref(),
                std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
            );
            // A concurrent set_enabled wins over this default.
            let _ = STATE.compare_exchange(
                UNDECIDED,
                if on { ON } else { OFF },
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            STATE.load(Ordering::Relaxed) == ON
        }
    }
}

/// `METRICS` (on/off, 1/0, true/false) if it says something, else on exactly inside Lambda.
fn decide(metrics_env: Option<&str>, in_lambda: bool) -> bool {
    match metrics_env
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("on" | "1" | "true") => true,
        Some("off" | "0" | "false") => false,
        _ => in_lambda,
    }
}

// ----------------------------------------------------------------------------- the format

fn send(metrics: &[Metric], dimensions: &[(&'static str, &str)], rollup: Rollup) {
    if !enabled() {
        return;
    }
    if let Some(doc) = document(SystemClock.now_millis(), metrics, dimensions, rollup) {
        let mut line = doc.to_string();
        line.push('\n');
        // One write_all on the locked handle: the line cannot interleave with a log line.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// The EMF document: `_aws` {Timestamp, CloudWatchMetrics: [{Namespace, Dimensions, Metrics}]}
/// plus one root member per dimension (a string) and per metric (its number). `None` when no
/// metric has a finite value (JSON has no NaN or infinity).
fn document(
    timestamp_ms: i64,
    metrics: &[Metric],
    dimensions: &[(&'static str, &str)],
    rollup: Rollup,
) -> Option<Value> {
    let metrics: Vec<&Metric> = metrics.iter().filter(|m| m.value.is_finite()).collect();
    if metrics.is_empty() {
        return None;
    }
    let keys: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    let mut sets = vec![keys.clone()];
    if rollup == Rollup::WithTotal && !keys.is_empty() {
        sets.push(Vec::new());
    }
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|m| json!({ "Name": m.name, "Unit": m.unit.as_str() }))
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": definitions,
            }],
        }),
    );
    for (key, value) in dimensions {
        root.insert((*key).into(), Value::from(*value));
    }
    for m in metrics {
        root.insert(m.name.into(), Value::from(m.value));
    }
    Some(Value::Object(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_764_000_000_123;

    fn directive(doc: &Value) -> &Value {
        &doc["_aws"]["CloudWatchMetrics"][0]
    }

    /// What the spec requires of any document: the metadata, and every name a directive refers
    /// to present on the root (dimensions as strings, metrics as numbers).
    fn assert_valid_emf(doc: &Value) {
        assert_eq!(doc["_aws"]["Timestamp"], json!(T));
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        let d = &directives[0];
        assert_eq!(d["Namespace"], json!("Trials"));
        let sets = d["Dimensions"].as_array().unwrap();
        assert!(!sets.is_empty());
        for set in sets {
            for key in set.as_array().unwrap() {
                let key = key.as_str().unwrap();
                assert!(doc[key].is_string(), "dimension {key} missing on the root");
            }
        }
        for m in d["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "metric {name} missing on the root");
            assert!(["Count", "Milliseconds", "Seconds"].contains(&m["Unit"].as_str().unwrap()));
        }
    }

    #[test]
    fn emit_writes_the_spec_shape_with_one_dimension_set() {
        let doc = document(
            T,
            &[Metric::count("Things", 3.0)],
            &[("Plan", "pro")],
            Rollup::Exact,
        )
        .unwrap();
        assert_valid_emf(&doc);
        assert_eq!(
            doc,
            json!({
                "_aws": {
                    "Timestamp": T,
                    "CloudWatchMetrics": [{
                        "Namespace": "Trials",
                        "Dimensions": [["Plan"]],
                        "Metrics": [{"Name": "Things", "Unit": "Count"}],
                    }],
                },
                "Plan": "pro",
                "Things": 3.0,
            })
        );
    }

    #[test]
    fn trial_metrics_are_by_plan_and_in_total() {
        let doc = document(
            T,
            &[Metric::count(name::TRIAL_CONVERTED, 1.0)],
            &[(dimension::PLAN, "growth")],
            Rollup::WithTotal,
        )
        .unwrap();
        assert_valid_emf(&doc);
        assert_eq!(directive(&doc)["Dimensions"], json!([["Plan"], []]));
        assert_eq!(doc["Plan"], json!("growth"));
        assert_eq!(doc["TrialConverted"], json!(1.0));
    }

    #[test]
    fn an_unmatched_payment_has_no_dimension() {
        let doc = document(
            T,
            &[Metric::count(name::PAYMENT_UNMATCHED, 1.0)],
            &[],
            Rollup::Exact,
        )
        .unwrap();
        assert_valid_emf(&doc);
        assert_eq!(directive(&doc)["Dimensions"], json!([[]]));
        assert_eq!(
            doc.as_object().unwrap().len(),
            2,
            "only _aws and the metric"
        );
    }

    #[test]
    fn a_job_run_is_unhealthy_when_incomplete_or_failing() {
        let healthy = job_metrics(5, 1, 0, true, None);
        let failing = job_metrics(5, 1, 2, true, Some(40));
        let incomplete = job_metrics(5, 0, 0, false, Some(900));
        let value = |ms: &[Metric], n: &str| ms.iter().find(|m| m.name == n).unwrap().value;
        assert_eq!(value(&healthy, name::JOB_UNHEALTHY), 0.0);
        assert_eq!(value(&healthy, name::JOB_INCOMPLETE), 0.0);
        assert_eq!(value(&healthy, name::JOB_OLDEST_DUE_AGE), 0.0);
        assert_eq!(value(&failing, name::JOB_UNHEALTHY), 1.0);
        assert_eq!(value(&failing, name::JOB_INCOMPLETE), 0.0);
        assert_eq!(value(&failing, name::JOB_FAILED), 2.0);
        assert_eq!(value(&incomplete, name::JOB_UNHEALTHY), 1.0);
        assert_eq!(value(&incomplete, name::JOB_INCOMPLETE), 1.0);
        assert_eq!(value(&incomplete, name::JOB_OLDEST_DUE_AGE), 900.0);

        let doc = document(T, &failing, &[(dimension::JOB, "expire")], Rollup::Exact).unwrap();
        assert_valid_emf(&doc);
        assert_eq!(directive(&doc)["Dimensions"], json!([["Job"]]));
        let units: Vec<(&str, &str)> = directive(&doc)["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
            .collect();
        assert_eq!(
            units,
            [
                ("JobProcessed", "Count"),
                ("JobSkipped", "Count"),
                ("JobFailed", "Count"),
                ("JobIncomplete", "Count"),
                ("JobUnhealthy", "Count"),
                ("JobOldestDueAge", "Seconds"),
            ]
        );
        assert_eq!(doc["JobProcessed"], json!(5.0));
        assert_eq!(doc["JobOldestDueAge"], json!(40.0));
    }

    #[test]
    fn a_request_counts_its_status_class_and_latency_by_route() {
        let route = "POST /v1/trials/start";
        for (status, c4, c5) in [(201, 0.0, 0.0), (409, 1.0, 0.0), (503, 0.0, 1.0)] {
            let doc = document(
                T,
                &request_metrics(status, 12.5),
                &[(dimension::ROUTE, route)],
                Rollup::Exact,
            )
            .unwrap();
            assert_valid_emf(&doc);
            assert_eq!(doc["Route"], json!(route));
            assert_eq!(doc["Requests"], json!(1.0));
            assert_eq!(doc["Status4xx"], json!(c4), "status {status}");
            assert_eq!(doc["Status5xx"], json!(c5), "status {status}");
            assert_eq!(doc["Latency"], json!(12.5));
            assert_eq!(
                directive(&doc)["Metrics"][3],
                json!({"Name": "Latency", "Unit": "Milliseconds"})
            );
        }
    }

    #[test]
    fn values_json_cannot_carry_are_dropped() {
        let doc = document(
            T,
            &[
                Metric::count("Good", 1.0),
                Metric::count("Bad", f64::NAN),
                Metric::count("Worse", f64::INFINITY),
            ],
            &[],
            Rollup::Exact,
        )
        .unwrap();
        assert_valid_emf(&doc);
        assert_eq!(
            directive(&doc)["Metrics"],
            json!([{"Name": "Good", "Unit": "Count"}])
        );
        assert!(doc.get("Bad").is_none() && doc.get("Worse").is_none());
        assert!(document(T, &[Metric::count("Bad", f64::NAN)], &[], Rollup::Exact).is_none());
    }

    #[test]
    fn a_document_is_one_line() {
        let doc = document(
            T,
            &request_metrics(200, 1.0),
            &[(dimension::ROUTE, "GET /v1/trials/{id}")],
            Rollup::Exact,
        )
        .unwrap();
        assert!(!doc.to_string().contains('\n'));
    }

    #[test]
    fn on_in_lambda_off_elsewhere_unless_metrics_says() {
        assert!(decide(None, true));
        assert!(!decide(None, false));
        assert!(!decide(Some("off"), true));
        assert!(!decide(Some("0"), true));
        assert!(decide(Some("on"), false));
        assert!(decide(Some(" TRUE "), false));
        assert!(
            decide(Some("maybe"), true),
            "an unknown value keeps the default"
        );
        assert!(!decide(Some(""), false));
    }

    #[test]
    fn set_enabled_off_wins() {
        // Only ever switched off here: switching on would let concurrent tests write to stdout.
        set_enabled(false);
        assert!(!enabled());
    }
}
