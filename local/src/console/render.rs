//! The console's HTML, pure: data in, markup out. Every value that came from the store, the API
//! or the request goes through [`escape`] (applicant data and notes are anyone's text); the
//! markup around it is this module's constants. No script, no external asset: the style sheet
//! is inline and the chart is inline SVG.
use std::fmt::Write as _;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;
use trials::domain::time::rfc3339;

use super::data::{JobRun, SessionToExpire, StoredEvent};
use crate::html::escape;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;\
padding:0 1rem;color:#1a1f36}nav a{margin-right:1rem}table{border-collapse:collapse;width:100%}\
td,th{border-bottom:1px solid #e3e8ee;padding:.3rem .5rem;text-align:left;font-size:.875rem;\
vertical-align:top}.muted{color:#697386;font-size:.875rem}.flash{background:#fff8e1;\
border:1px solid #f5d06f;padding:.5rem}.error{background:#fdecea;border:1px solid #f5a39b;\
padding:.5rem}form.inline{display:inline-block;margin-right:1rem}svg .started{fill:#c1c9d2}\
svg .converted{fill:#635bff}svg text{font-size:10px;fill:#1a1f36}code{font-size:.8rem}";

/// A whole console page. `title` is escaped here; `body` is markup built with [`escape`].
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>{title} · Trials console</title><style>{STYLE}</style></head><body>\
<nav><strong>Trials console</strong> <a href=\"/console\">Funnel</a>\
<a href=\"/console/trials\">Trials</a><a href=\"/console/jobs\">Jobs and stuck</a></nav>\
<h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    (status, Html(html)).into_response()
}

/// A notice from the last action (`?msg=` or `?error=` after a redirect), escaped.
pub fn notice(msg: Option<&str>, error: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(msg) = msg {
        let _ = write!(out, r#"<p class="flash" id="flash">{}</p>"#, escape(msg));
    }
    if let Some(error) = error {
        let _ = write!(out, r#"<p class="error" id="error">{}</p>"#, escape(error));
    }
    out
}

const BAR: u32 = 14;
const GAP: u32 = 8;
const CHART_HEIGHT: u32 = 160;
const LABEL: u32 = 30;

/// A JSON number as its own text (what the data attributes carry, so a reader compares them
/// with `/v1/stats` exactly); null and anything else as "".
fn number(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// The funnel of `GET /v1/stats` (its JSON, as is): per day a started bar and a converted bar,
/// the day's conversion rate above them; each day's `<g class="day">` carries the numbers as
/// data attributes. Then the window's totals.
pub fn funnel(stats: &Value) -> String {
    let empty = Vec::new();
    let days = stats["days"].as_array().unwrap_or(&empty);
    let highest = days
        .iter()
        .map(|d| d["started"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0)
        .max(1);
    let width = (days.len() as u32 * (2 * BAR + GAP)).max(2 * BAR + GAP);
    let height = CHART_HEIGHT + LABEL;
    let mut svg = format!(
        r#"<svg id="funnel" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Trials started and converted per day" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    let scale = |n: u64| (n as f64 / highest as f64 * f64::from(CHART_HEIGHT - 20)).round() as u32;
    for (i, day) in days.iter().enumerate() {
        let x = i as u32 * (2 * BAR + GAP);
        let started = day["started"].as_u64().unwrap_or(0);
        let converted = day["converted"].as_u64().unwrap_or(0);
        let (hs, hc) = (scale(started), scale(converted));
        let name = escape(day["day"].as_str().unwrap_or("-"));
        let rate = &day["conversion_rate"];
        let _ = write!(
            svg,
            r#"<g class="day" data-day="{name}" data-started="{started}" data-converted="{converted}" data-rate="{}"><title>{name}: {started} started, {converted} converted{}</title><rect class="started" x="{x}" y="{}" width="{BAR}" height="{hs}"/><rect class="converted" x="{}" y="{}" width="{BAR}" height="{hc}"/>"#,
            number(rate),
            rate.as_f64()
                .map(|r| format!(" ({:.1}%)", r * 100.0))
                .unwrap_or_default(),
            CHART_HEIGHT - hs,
            x + BAR,
            CHART_HEIGHT - hc,
        );
        if let Some(r) = rate.as_f64() {
            let _ = write!(
                svg,
                r#"<text x="{x}" y="{}">{:.0}%</text>"#,
                CHART_HEIGHT - hs.max(hc) - 4,
                r * 100.0
            );
        }
        if i % 7 == 0 || i + 1 == days.len() {
            let _ = write!(
                svg,
                r#"<text x="{x}" y="{}">{}</text>"#,
                CHART_HEIGHT + 14,
                escape(day["day"].as_str().unwrap_or("").get(5..).unwrap_or(""))
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    let total = &stats["total"];
    let _ = write!(
        svg,
        r#"<p id="funnel-total" data-started="{}" data-converted="{}" data-rate="{}">{} to {}: <strong>{}</strong> started, <strong>{}</strong> converted, {} expired, {} canceled, {} purged, {} downgraded; conversion rate <strong>{}</strong>; median hours to convert {}.</p><p class="muted">Grey: started; purple: converted. The counters trail the trials by the stream's delay.</p>"#,
        number(&total["started"]),
        number(&total["converted"]),
        number(&total["conversion_rate"]),
        escape(stats["from"].as_str().unwrap_or("-")),
        escape(stats["to"].as_str().unwrap_or("-")),
        number(&total["started"]),
        number(&total["converted"]),
        number(&total["expired"]),
        number(&total["canceled"]),
        number(&total["purged"]),
        number(&total["downgraded"]),
        total["conversion_rate"]
            .as_f64()
            .map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or_else(|| "-".into()),
        or_dash(number(&total["median_hours_to_conversion"])),
    );
    svg
}

/// A small GET form of text inputs (`name`, its current value).
pub fn filter_form(action: &str, fields: &[(&str, &str)]) -> String {
    let mut form = format!(r#"<form method="get" action="{}">"#, escape(action));
    for (name, value) in fields {
        let _ = write!(
            form,
            r#"<label>{name} <input name="{name}" id="filter-{name}" value="{}" size="12"></label> "#,
            escape(value)
        );
    }
    form.push_str(r#"<button type="submit">Filter</button></form>"#);
    form
}

/// One row of the trials table.
pub struct TrialRow {
    pub id: String,
    pub org: String,
    pub project: String,
    pub product: String,
    pub plan: String,
    pub status: String,
    pub started_at: i64,
    pub expires_at: i64,
}

/// The trials table, each id a link to its page.
pub fn trials_table(rows: &[TrialRow], shown_of: usize) -> String {
    let mut out = format!(
        r#"<p class="muted" id="trial-count">{} of {shown_of} trials.</p><table id="trials"><tr><th>trial</th><th>org</th><th>project</th><th>product</th><th>plan</th><th>state</th><th>started</th><th>ends</th></tr>"#,
        rows.len()
    );
    for r in rows {
        let _ = write!(
            out,
            r#"<tr><td><a class="trial-link" href="/console/trials/{id}">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="state">{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&r.org),
            escape(&r.project),
            escape(&r.product),
            escape(&r.plan),
            escape(&r.status),
            rfc3339(r.started_at),
            rfc3339(r.expires_at),
            id = escape(&r.id),
        );
    }
    out.push_str("</table>");
    out
}

/// The form letting an org refused for a reused abuse signal start once.
pub fn allow_form(token: &str) -> String {
    format!(
        r#"<h2>Allow a refused org</h2><form method="post" action="/console/allow" class="inline"><input type="hidden" name="token" value="{}"><label>org <input name="org" id="allow-org" size="24"></label> <button type="submit" id="allow">Allow one start</button></form><p class="muted">Its next start passes the abuse-signal check once; it does not give an org a second trial.</p>"#,
        escape(token)
    )
}

/// A JSON value as short text: strings bare, the rest as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The trial as `GET /v1/trials/{id}` shows it to an admin key: its scalar fields, then its
/// options with used and remaining.
pub fn trial_view(view: &Value) -> String {
    let mut out = String::from(r#"<table id="trial">"#);
    if let Some(map) = view.as_object() {
        for (name, value) in map {
            if matches!(value, Value::Object(_) | Value::Array(_)) && name != "active_ranges" {
                continue;
            }
            let _ = write!(
                out,
                r#"<tr><th>{}</th><td id="field-{}">{}</td></tr>"#,
                escape(name),
                escape(name),
                escape(&text(value))
            );
        }
    }
    out.push_str("</table><h2>Options</h2>");
    match &view["options"] {
        Value::Array(options) if !options.is_empty() => {
            out.push_str(r#"<table id="options"><tr><th>option</th><th>limit</th><th>used</th><th>remaining</th><th>all fields</th></tr>"#);
            for o in options {
                let name = o["internal_name"]
                    .as_str()
                    .or(o["name"].as_str())
                    .unwrap_or("-");
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    escape(name),
                    escape(&text(&o["limit"])),
                    escape(&text(&o["used"])),
                    escape(&text(&o["remaining"])),
                    escape(&o.to_string())
                );
            }
            out.push_str("</table>");
        }
        other => {
            let _ = write!(out, "<p class=\"muted\">{}</p>", escape(&text(other)));
        }
    }
    out
}

/// One step of a trial's story.
pub struct Step {
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub details: String,
}

/// The trial's steps, oldest first; `source` says where they came from.
pub fn timeline(steps: &[Step], source: &str) -> String {
    let mut out = format!(
        r#"<h2>Timeline</h2><p class="muted">{}</p><table id="timeline"><tr><th>at</th><th>what</th><th>by</th><th>details</th></tr>"#,
        escape(source)
    );
    for s in steps {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(&s.at),
            escape(&s.kind),
            escape(&s.actor),
            escape(&s.details)
        );
    }
    out.push_str("</table>");
    out
}

/// The operator's actions on trial `id`: forms posting to the console, which calls the API.
pub fn actions(id: &str, token: &str) -> String {
    let id = escape(id);
    let token = escape(token);
    format!(
        r#"<h2>Actions</h2><form method="post" action="/console/trials/{id}/extend" class="inline" id="extend-form"><input type="hidden" name="token" value="{token}"><label>days <input name="days" id="extend-days" type="number" min="1" max="365" value="7" size="4"></label> <label>reason <input name="reason" id="extend-reason" size="20"></label> <button type="submit" id="extend">Extend</button></form><form method="post" action="/console/trials/{id}/pause" class="inline"><input type="hidden" name="token" value="{token}"><button type="submit" id="pause">Pause</button></form><form method="post" action="/console/trials/{id}/resume" class="inline"><input type="hidden" name="token" value="{token}"><button type="submit" id="resume">Resume</button></form><p class="muted">Each form calls the API with an admin key of the trial's org; its token is the request's Idempotency-Key, so sending the same form twice acts once.</p>"#
    )
}

/// What the jobs did on their last runs, newest first.
pub fn job_runs(runs: &[JobRun]) -> String {
    let mut out = String::from(
        r#"<h2>Job runs</h2><table id="job-runs"><tr><th>job</th><th>at</th><th>processed</th><th>resumed</th><th>reminded</th><th>skipped</th><th>failed</th><th>complete</th><th>items read</th></tr>"#,
    );
    if runs.is_empty() {
        out.push_str(
            r#"<tr><td colspan="9" class="muted">No run yet since trials-local started.</td></tr>"#,
        );
    }
    for r in runs {
        let p = &r.report;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(r.job),
            rfc3339(r.at),
            p.processed,
            p.resumed,
            p.reminded,
            p.skipped,
            p.failed,
            p.complete,
            p.items_read
        );
    }
    out.push_str("</table>");
    out
}

/// Anything stuck: payments on their way past their age, sessions not yet expired at Stripe,
/// payments no trial matched.
pub fn stuck(
    stale: &[(String, String, i64)],
    sessions: &[SessionToExpire],
    unmatched: &[&StoredEvent],
) -> String {
    let mut out = String::from(
        r#"<h2>Payments on their way past their age</h2><table id="stale-pending"><tr><th>trial</th><th>session</th><th>since</th></tr>"#,
    );
    for (trial, session, since) in stale {
        let _ = write!(
            out,
            r#"<tr><td><a href="/console/trials/{t}">{t}</a></td><td>{}</td><td>{}</td></tr>"#,
            escape(session),
            rfc3339(*since),
            t = escape(trial)
        );
    }
    out.push_str(r#"</table><h2>Checkout Sessions not yet expired</h2><table id="sessions"><tr><th>session</th><th>trial</th><th>session ends</th><th>attempts</th><th>next attempt</th></tr>"#);
    for s in sessions {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td><a href="/console/trials/{t}">{t}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&s.session_id),
            rfc3339(s.session_expires_at),
            s.attempts,
            rfc3339(s.due_at),
            t = escape(&s.trial_id)
        );
    }
    out.push_str(r#"</table><h2>Unmatched payments (last 7 days)</h2><table id="unmatched"><tr><th>at</th><th>details</th></tr>"#);
    for e in unmatched {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            rfc3339(e.created_at),
            escape(&e.detail.to_string())
        );
    }
    out.push_str("</table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EVIL: &str = r#"<script>alert("x")</script>&'"#;

    fn no_markup_from(html: &str) {
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert("), "{html}");
        assert!(html.contains("&amp;&#39;"), "{html}");
    }

    #[test]
    fn the_chart_carries_each_days_numbers_and_scales_to_the_busiest_day() {
        let stats = json!({
            "from": "2026-12-01", "to": "2026-12-02",
            "days": [
                {"day": "2026-12-01", "started": 4, "converted": 1, "conversion_rate": 0.25},
                {"day": "2026-12-02", "started": 0, "converted": 0, "conversion_rate": null},
            ],
            "total": {"started": 4, "converted": 1, "expired": 0, "canceled": 0, "purged": 0,
                      "conversion_rate": 0.25, "median_hours_to_conversion": 3},
        });
        let svg = funnel(&stats);
        assert!(svg.contains(r#"<g class="day" data-day="2026-12-01" data-started="4" data-converted="1" data-rate="0.25">"#), "{svg}");
        assert!(svg.contains(r#"<g class="day" data-day="2026-12-02" data-started="0" data-converted="0" data-rate="">"#), "{svg}");
        // The busiest day's started bar is the full height (less the label room); a quarter
        // of it converted.
        assert!(
            svg.contains(&format!(
                r#"class="started" x="0" y="20" width="{BAR}" height="140""#
            )),
            "{svg}"
        );
        assert!(svg.contains(r#"height="35""#), "{svg}");
        assert!(svg.contains(">25%</text>"));
        assert!(svg
            .contains(r#"id="funnel-total" data-started="4" data-converted="1" data-rate="0.25""#));
        assert!(svg.contains("25.0%"));
    }

    #[test]
    fn an_empty_window_draws_no_bar_and_no_rate() {
        let svg = funnel(&json!({"days": [], "total": {"conversion_rate": null}}));
        assert!(!svg.contains("<rect"));
        assert!(svg.contains(r#"data-rate="""#));
    }

    #[test]
    fn store_and_request_values_are_escaped_everywhere() {
        let row = TrialRow {
            id: EVIL.into(),
            org: EVIL.into(),
            project: EVIL.into(),
            product: EVIL.into(),
            plan: EVIL.into(),
            status: EVIL.into(),
            started_at: 0,
            expires_at: 0,
        };
        no_markup_from(&trials_table(&[row], 1));
        no_markup_from(&trial_view(
            &json!({"notes": EVIL, "options": [{"internal_name": EVIL, "used": 1}]}),
        ));
        no_markup_from(&timeline(
            &[Step {
                at: EVIL.into(),
                kind: EVIL.into(),
                actor: EVIL.into(),
                details: EVIL.into(),
            }],
            EVIL,
        ));
        no_markup_from(&actions(EVIL, EVIL));
        no_markup_from(&allow_form(EVIL));
        no_markup_from(&notice(Some(EVIL), Some(EVIL)));
        no_markup_from(&filter_form("/console/trials", &[("org", EVIL)]));
        no_markup_from(&funnel(
            &json!({"from": EVIL, "days": [{"day": EVIL, "started": 1}]}),
        ));
        no_markup_from(&stuck(
            &[(EVIL.into(), EVIL.into(), 0)],
            &[SessionToExpire {
                session_id: EVIL.into(),
                trial_id: EVIL.into(),
                session_expires_at: 0,
                attempts: 0,
                due_at: 0,
            }],
            &[&StoredEvent {
                created_at: 0,
                detail_type: EVIL.into(),
                detail: json!({"x": EVIL}),
            }],
        ));
    }

    #[test]
    fn the_trial_view_shows_options_with_used_and_remaining() {
        let html = trial_view(&json!({
            "id": "trial_1", "status": "ACTIVE",
            "options": [{"internal_name": "api_calls", "limit": 100, "used": 40, "remaining": 60}],
        }));
        assert!(
            html.contains(r#"<td id="field-status">ACTIVE</td>"#),
            "{html}"
        );
        assert!(
            html.contains("<td>api_calls</td><td>100</td><td>40</td><td>60</td>"),
            "{html}"
        );
    }
}
