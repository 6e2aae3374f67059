//! The operator console at `/console` on `trials-local`: the funnel as an SVG chart, the trials
//! with filters, one trial's page with its timeline and the operator's actions, and what the
//! jobs did and what is stuck. Server-rendered HTML ([`render`]), no script, nothing fetched
//! from elsewhere.
//!
//! **Who may use it.** No sign-in: it refuses every client that is not on loopback (403), and
//! every request whose `Host` is not a loopback name (a DNS-rebinding page reaching
//! 127.0.0.1 carries its own host name). A form's POST must also come from the console's own
//! origin: its `Origin` (which browsers send with every form POST), else its `Referer`, must
//! be `http://<Host>`; neither, or another, is 403. That is the CSRF defence: a page of another
//! origin open in the operator's browser cannot post to the console, and nothing else on the
//! network can reach it.
//!
//! **The same API.** Reads and actions go through the API's entry point in-process
//! ([`api::Api`], with an admin key of the trial's org): the funnel is `GET /v1/stats`, a
//! trial is `GET /v1/trials/{id}`, extend/pause/resume are their `POST` routes, each form's
//! token its Idempotency-Key; an action answers with a redirect to the trial's page
//! (POST-redirect-GET). What the API has no route for is read from the table as `trialctl`
//! would ([`data`]: a scan for the trials table, a trial's events, stuck items) or written as
//! `trialctl trials allow` writes it (an org's one-off allowance).
pub mod api;
pub mod data;
pub mod render;

use std::net::{IpAddr, SocketAddr};

use axum::body::to_bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{json, Value};
use trials::domain::time::rfc3339;
use trials::domain::{OrgId, Trial, TrialId};

use crate::dev_key::{DEV_ORG, DEV_PROJECT};
use api::{Answer, Api, Call};
use data::{JobLog, Snapshot};
use render::{page, Step, TrialRow};

/// The most rows the trials table shows.
pub const MAX_ROWS: usize = 500;
/// A form's body is a few fields.
const MAX_FORM: usize = 16 * 1024;

#[derive(Clone)]
struct Console {
    api: Api,
    jobs: JobLog,
}

/// The console's routes, `/console` and below.
pub fn router<S: Clone + Send + Sync + 'static>(app: trials::App, jobs: JobLog) -> Router<S> {
    Router::new()
        .route("/console", any(entry))
        .route("/console/{*rest}", any(entry))
        .with_state(Console {
            api: Api::new(app),
            jobs,
        })
}

type Query = Vec<(String, String)>;

fn pairs(raw: &str) -> Query {
    form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

fn get<'a>(q: &'a Query, name: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.trim().is_empty())
}

async fn entry(State(c): State<Console>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    if let Err(why) = admit(peer, req.method(), req.headers()) {
        return page(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &render::notice(None, Some(why)),
        );
    }
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().map(pairs).unwrap_or_default();
    let path = parts.uri.path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(2).collect();
    let form = match parts.method {
        Method::POST => to_bytes(body, MAX_FORM)
            .await
            .map(|b| pairs(&String::from_utf8_lossy(&b)))
            .unwrap_or_default(),
        _ => Query::new(),
    };
    match (parts.method.as_str(), segments.as_slice()) {
        ("GET", []) => funnel(&c, &query).await,
        ("GET", ["trials"]) => trials(&c, &query).await,
        ("GET", ["trials", id]) => trial(&c, id, &query).await,
        ("GET", ["jobs"]) => jobs(&c).await,
        ("POST", ["trials", id, action @ ("extend" | "pause" | "resume")]) => {
            act(&c, id, action, &form).await
        }
        ("POST", ["allow"]) => allow(&c, &form).await,
        _ => page(
            StatusCode::NOT_FOUND,
            "Not found",
            &render::notice(None, Some("No such console page.")),
        ),
    }
}

/// Whether the console serves this request; `Err` says why not (403). See the module doc.
pub fn admit(
    peer: Option<SocketAddr>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), &'static str> {
    let loopback = |ip: IpAddr| ip.to_canonical().is_loopback();
    if !peer.is_some_and(|p| loopback(p.ip())) {
        return Err("The console answers loopback clients only.");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !is_loopback_host(host) {
        return Err("The console answers only requests addressed to a loopback host.");
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let origin = format!("http://{host}");
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let same_origin = match (header(header::ORIGIN), header(header::REFERER)) {
        (Some(o), _) => o == origin,
        (None, Some(r)) => r
            .strip_prefix(&origin)
            .is_some_and(|rest| rest.starts_with('/')),
        (None, None) => false,
    };
    if same_origin {
        Ok(())
    } else {
        Err("A console form must be sent from the console's own page (Origin or Referer).")
    }
}

/// `localhost`, or a loopback address, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

fn dev_org() -> OrgId {
    OrgId::parse(DEV_ORG).expect("a valid org id")
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        &render::notice(None, Some(&format!("{what}: {e}"))),
    )
}

/// A redirect after a POST, to `to` with a notice.
fn see_other(to: &str, outcome: Result<String, String>) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    match outcome {
        Ok(msg) => query.append_pair("msg", &msg),
        Err(error) => query.append_pair("error", &error),
    };
    let location = format!("{to}?{}", query.finish());
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

const STATS_FILTERS: [&str; 4] = ["from", "to", "product", "plan"];

async fn funnel(c: &Console, q: &Query) -> Response {
    // The serializer is not Send: finished before any await.
    let path = {
        let mut stats_query = form_urlencoded::Serializer::new(String::new());
        for name in STATS_FILTERS {
            if let Some(v) = get(q, name) {
                stats_query.append_pair(name, v);
            }
        }
        format!("/v1/stats?{}", stats_query.finish())
    };
    let org = dev_org();
    let answer = c
        .api
        .send(Call {
            method: "GET",
            path: &path,
            org: &org,
            project: DEV_PROJECT,
            body: None,
            idempotency_key: None,
        })
        .await;
    let fields: Vec<(&str, &str)> = STATS_FILTERS
        .iter()
        .map(|n| (*n, get(q, n).unwrap_or("")))
        .collect();
    let mut body = render::filter_form("/console", &fields);
    match answer {
        Ok(a) if a.ok() => body.push_str(&render::funnel(&a.body)),
        Ok(a) => body.push_str(&render::notice(None, Some(&a.error_line()))),
        Err(e) => return unavailable("GET /v1/stats", e),
    }
    page(StatusCode::OK, "Funnel", &body)
}

fn status_now(t: &Trial, now: i64) -> &'static str {
    t.lifecycle(t.policy()).status_at(now).as_str()
}

async fn trials(c: &Console, q: &Query) -> Response {
    let app = c.api.app();
    let snapshot = match Snapshot::read(&app.store).await {
        Ok(s) => s,
        Err(e) => return unavailable("reading the table", e),
    };
    let now = app.now();
    let (state, product, plan, org) = (
        get(q, "state"),
        get(q, "product"),
        get(q, "plan"),
        get(q, "org"),
    );
    let rows: Vec<TrialRow> = snapshot
        .trials
        .iter()
        .filter(|t| state.is_none_or(|s| status_now(t, now).eq_ignore_ascii_case(s)))
        .filter(|t| product.is_none_or(|p| t.terms.product.id == p))
        .filter(|t| plan.is_none_or(|p| t.plan.as_str() == p))
        .filter(|t| org.is_none_or(|o| t.org_id.as_str().contains(o)))
        .take(MAX_ROWS)
        .map(|t| TrialRow {
            id: t.id.to_string(),
            org: t.org_id.to_string(),
            project: t
                .project_id
                .as_ref()
                .map_or("-".into(), ToString::to_string),
            product: t.terms.product.id.clone(),
            plan: t.plan.as_str().to_owned(),
            status: status_now(t, now).to_owned(),
            started_at: t.started_at,
            expires_at: t.expires_at,
        })
        .collect();
    let mut body = render::notice(get(q, "msg"), get(q, "error"));
    body.push_str(&render::filter_form(
        "/console/trials",
        &[
            ("state", state.unwrap_or("")),
            ("product", product.unwrap_or("")),
            ("plan", plan.unwrap_or("")),
            ("org", org.unwrap_or("")),
        ],
    ));
    body.push_str(&render::trials_table(&rows, snapshot.trials.len()));
    if snapshot.truncated {
        body.push_str(&render::notice(
            None,
            Some("The table is larger than the console reads: some trials are not listed."),
        ));
    }
    body.push_str(&render::allow_form(&trials::crypto::random_hex(16)));
    page(StatusCode::OK, "Trials", &body)
}

/// The project header for a call about `trial` (the console's keys are for all projects).
fn project_of(trial: &Trial) -> String {
    trial
        .project_id
        .as_ref()
        .map_or(DEV_PROJECT.to_owned(), ToString::to_string)
}

async fn load(c: &Console, id: &str) -> Result<Trial, Response> {
    let found = match TrialId::parse(id) {
        Some(tid) => c.api.app().store.get_trial(&tid).await,
        None => Ok(None),
    };
    match found {
        Ok(Some(trial)) => Ok(trial),
        Ok(None) => Err(page(
            StatusCode::NOT_FOUND,
            "No such trial",
            &render::notice(
                None,
                Some(&format!("No trial {id} (purged, or never stored).")),
            ),
        )),
        Err(e) => Err(unavailable("reading the trial", e)),
    }
}

async fn trial(c: &Console, id: &str, q: &Query) -> Response {
    let trial = match load(c, id).await {
        Ok(t) => t,
        Err(page) => return page,
    };
    let project = project_of(&trial);
    let read = |path: String| {
        let (org, project) = (trial.org_id.clone(), project.clone());
        async move {
            c.api
                .send(Call {
                    method: "GET",
                    path: &path,
                    org: &org,
                    project: &project,
                    body: None,
                    idempotency_key: None,
                })
                .await
        }
    };
    let view = match read(format!("/v1/trials/{id}")).await {
        Ok(a) if a.ok() => a.body,
        Ok(a) => json!({ "error": a.error_line() }),
        Err(e) => return unavailable("GET /v1/trials/{id}", e),
    };
    let mut body = render::notice(get(q, "msg"), get(q, "error"));
    body.push_str(&render::trial_view(&view));
    body.push_str(&render::actions(id, &trials::crypto::random_hex(16)));
    body.push_str(&timeline(c, id, read(format!("/v1/trials/{id}/timeline")).await).await);
    page(StatusCode::OK, &format!("Trial {id}"), &body)
}

/// The trial's timeline: `GET /v1/trials/{id}/timeline` where the route exists (its JSON
/// entries `{at, type, actor, details}`), else the trial's event items (a week's worth).
async fn timeline(c: &Console, id: &str, api: Result<Answer, String>) -> String {
    let routed = trials::api::Route::resolve("GET", &format!("/v1/trials/{id}/timeline")).is_ok();
    if let (true, Ok(answer)) = (routed, &api) {
        let entries = match &answer.body {
            Value::Array(a) => a.clone(),
            Value::Object(m) => m
                .values()
                .find_map(|v| v.as_array().cloned())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let steps: Vec<Step> = entries
            .iter()
            .map(|e| Step {
                at: e["at"].as_str().unwrap_or("-").to_owned(),
                kind: e["type"].as_str().unwrap_or("-").to_owned(),
                actor: e["actor"].as_str().unwrap_or("-").to_owned(),
                details: e["details"].to_string(),
            })
            .collect();
        return render::timeline(&steps, "GET /v1/trials/{id}/timeline");
    }
    let snapshot = match Snapshot::read(&c.api.app().store).await {
        Ok(s) => s,
        Err(e) => return render::notice(None, Some(&format!("reading the events: {e}"))),
    };
    let steps: Vec<Step> = snapshot
        .events_of(id)
        .into_iter()
        .map(|e| Step {
            at: rfc3339(e.created_at),
            kind: e.detail_type.clone(),
            actor: e.detail["requested_by"].as_str().unwrap_or("-").to_owned(),
            details: e.detail.to_string(),
        })
        .collect();
    render::timeline(
        &steps,
        "The trial's event items (kept a week; the timeline route is not in this build).",
    )
}

/// Extend, pause or resume trial `id` through its API route.
async fn act(c: &Console, id: &str, action: &str, form: &Query) -> Response {
    let trial = match load(c, id).await {
        Ok(t) => t,
        Err(page) => return page,
    };
    let token = get(form, "token")
        .filter(|t| t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map_or_else(|| trials::crypto::random_hex(16), str::to_owned);
    let body = (action == "extend").then(|| {
        let days = get(form, "days").unwrap_or("");
        let mut body = json!({
            "days": days.trim().parse::<i64>().map_or_else(|_| json!(days), |n| json!(n))
        });
        if let Some(reason) = get(form, "reason") {
            body["reason"] = json!(reason);
        }
        body
    });
    let path = format!("/v1/trials/{id}/{action}");
    let idem = format!("console-{action}-{token}");
    let answer = c
        .api
        .send(Call {
            method: "POST",
            path: &path,
            org: &trial.org_id,
            project: &project_of(&trial),
            body,
            idempotency_key: Some(&idem),
        })
        .await;
    let outcome = match answer {
        Ok(a) if a.ok() => Ok(format!(
            "{action}: {}, ends {}",
            a.body["status"].as_str().unwrap_or("-"),
            a.body["expires_at"].as_str().unwrap_or("-")
        )),
        Ok(a) => Err(format!("{action}: {}", a.error_line())),
        Err(e) => Err(format!("{action}: {e}")),
    };
    see_other(&format!("/console/trials/{id}"), outcome)
}

/// An org's one-off allowance, written as `trialctl trials allow` writes it (no API route).
async fn allow(c: &Console, form: &Query) -> Response {
    let Some(org) = get(form, "org").and_then(OrgId::parse) else {
        return see_other(
            "/console/trials",
            Err("allow: not an org id (1-128 letters, digits, '_', '-', '.', ':')".into()),
        );
    };
    let app = c.api.app();
    let outcome = match app.store.put_allowance(&org, app.now()).await {
        Ok(()) => Ok(format!(
            "org {org} may start one trial whatever its abuse signals"
        )),
        Err(e) => Err(format!("allow: {e}")),
    };
    see_other("/console/trials", outcome)
}

async fn jobs(c: &Console) -> Response {
    let app = c.api.app();
    let snapshot = match Snapshot::read(&app.store).await {
        Ok(s) => s,
        Err(e) => return unavailable("reading the table", e),
    };
    let stale: Vec<(String, String, i64)> = snapshot
        .stale_pending(app.now(), app.config.pending_payment_max_age_secs)
        .into_iter()
        .filter_map(|t| {
            let p = t.pending.as_ref()?;
            Some((t.id.to_string(), p.session_id.clone(), p.since))
        })
        .collect();
    let mut body = render::job_runs(&c.jobs.runs());
    body.push_str(&render::stuck(
        &stale,
        &snapshot.sessions,
        &snapshot.unmatched_payments(),
    ));
    page(StatusCode::OK, "Jobs and anything stuck", &body)
}

#[cfg(test)]
fn _entry_is_send(c: Console, req: Request) {
    fn send<T: Send>(_: T) {}
    send(entry(State(c), req));
}

#[cfg(test)]
mod tests;
