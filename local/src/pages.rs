//! The pages Checkout sends the customer back to, served by `trials-local` on its own address:
//! `/checkout/success?session_id=cs_...` (the default `CHECKOUT_SUCCESS_URL` of a local run with
//! the Stripe stand-in; Stripe fills in `{CHECKOUT_SESSION_ID}`) and `/checkout/cancel`.
//!
//! The success page shows the trial's status as the store has it now (the webhook, not the
//! redirect, converts a trial), found through the stand-in's session (`metadata.trial_id`, else
//! `client_reference_id`); it refreshes itself while a delivery or a delayed payment about that
//! session is still on its way. With a real Stripe account there is no stand-in to ask, and the
//! page only names the session.
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use trials::domain::applicant::Privilege;
use trials::domain::TrialId;
use trials::App;

use crate::html::{escape, page};
use crate::stripe_standin::{page::describe, DeliveryState, StripeStandIn};

/// How often the success page reloads while something is on its way.
const REFRESH_SECS: u32 = 2;

#[derive(Clone)]
struct Pages {
    app: App,
    standin: Option<StripeStandIn>,
}

pub fn router<S: Clone + Send + Sync + 'static>(
    app: App,
    standin: Option<StripeStandIn>,
) -> Router<S> {
    Router::new()
        .route("/checkout/success", get(success))
        .route("/checkout/cancel", get(canceled))
        .with_state(Pages { app, standin })
}

#[derive(Deserialize)]
struct SuccessQuery {
    session_id: Option<String>,
}

async fn success(State(pages): State<Pages>, Query(q): Query<SuccessQuery>) -> Response {
    let Some(session_id) = q.session_id.filter(|s| !s.is_empty()) else {
        return message(StatusCode::BAD_REQUEST, "No session_id: this page is where Checkout sends the customer back, with ?session_id={CHECKOUT_SESSION_ID}.");
    };
    let Some(standin) = &pages.standin else {
        return page(
            StatusCode::OK,
            "Checkout complete",
            &format!(
                r#"<div class="card"><h1>Thank you</h1><p>Checkout session <code id="session-id">{}</code> is complete. The trial converts when Stripe's webhook arrives: see <code>GET /v1/trials/{{id}}</code>.</p></div>"#,
                escape(&session_id)
            ),
            None,
        );
    };
    let Some(session) = standin.session(&session_id) else {
        return message(
            StatusCode::NOT_FOUND,
            &format!("No checkout session {session_id} in the Stripe stand-in."),
        );
    };
    let trial_id = session
        .metadata
        .get("trial_id")
        .and_then(|t| TrialId::parse(t))
        .or_else(|| {
            session
                .client_reference_id
                .as_deref()
                .and_then(TrialId::parse)
        });
    let trial = match &trial_id {
        Some(id) => match pages.app.store.get_trial(id).await {
            Ok(trial) => trial,
            Err(e) => {
                tracing::warn!(error = %e, "success page: cannot read the trial");
                return message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The store did not answer; reload the page.",
                );
            }
        },
        None => None,
    };
    let in_flight = standin.in_flight(&session_id);
    let mut body = String::from(r#"<div class="card"><h1>Thank you</h1>"#);
    match (&trial_id, &trial) {
        (Some(_), Some(trial)) => {
            let view = trial.view_at(pages.app.now(), trial.policy(), Privilege::Standard);
            let status = view["status"].as_str().unwrap_or("UNKNOWN").to_owned();
            body.push_str(&format!(
                r#"<p>Trial <code id="trial-id">{}</code>, plan <span id="plan">{}</span>: <span class="status" id="trial-status">{}</span></p>"#,
                escape(trial.id.as_str()),
                escape(trial.plan.as_str()),
                escape(&status),
            ));
            body.push_str(&subscription_controls(&session_id, &view["subscription"]));
        }
        (Some(id), None) => body.push_str(&format!(
            r#"<p>Trial <code id="trial-id">{}</code>: <span class="status" id="trial-status">NOT FOUND</span> (purged, or never stored here).</p>"#,
            escape(id.as_str())
        )),
        (None, _) => body.push_str(
            r#"<p><span class="status" id="trial-status">NO TRIAL</span>: the session names no trial (no metadata.trial_id, no client_reference_id).</p>"#,
        ),
    }
    body.push_str(&format!(
        r#"<p>Payment: <span id="payment-status">{}</span>{}</p>"#,
        escape(describe(session.payment_status)),
        if in_flight { " (updating…)" } else { "" },
    ));
    let deliveries: Vec<_> = standin
        .deliveries()
        .into_iter()
        .filter(|d| {
            d.session_id == session_id || session.subscription.as_ref() == Some(&d.session_id)
        })
        .collect();
    if !deliveries.is_empty() {
        body.push_str(
            r#"<p class="muted">Webhook deliveries:</p><ul class="muted" id="deliveries">"#,
        );
        for d in deliveries {
            let how = match d.state {
                DeliveryState::NotSent => "not sent (no endpoint)".to_owned(),
                DeliveryState::Delivered => {
                    format!("delivered, {}", d.outcome.as_deref().unwrap_or("accepted"))
                }
                DeliveryState::Pending | DeliveryState::Failed => format!(
                    "{} after {} attempt(s): {}",
                    if d.state == DeliveryState::Failed {
                        "failed"
                    } else {
                        "retrying"
                    },
                    d.attempts,
                    d.last_error.clone().unwrap_or_else(|| format!(
                        "{} {}",
                        d.last_status.map(|s| s.to_string()).unwrap_or_default(),
                        d.outcome.unwrap_or_default()
                    ))
                ),
            };
            body.push_str(&format!(
                "<li><code>{}</code>: {}</li>",
                escape(&d.event_type),
                escape(&how)
            ));
        }
        body.push_str("</ul>");
    }
    body.push_str(&format!(
        r#"<p class="muted">Checkout session <code id="session-id">{}</code></p></div>"#,
        escape(&session_id)
    ));
    page(
        StatusCode::OK,
        "Checkout complete",
        &body,
        in_flight.then_some(REFRESH_SECS),
    )
}

/// A converted trial's subscription as the trial follows it, and what can happen to it in
/// Stripe later, as buttons (the stand-in sends the events Stripe would send).
fn subscription_controls(session_id: &str, subscription: &serde_json::Value) -> String {
    if subscription.is_null() {
        return String::new();
    }
    let text = |name: &str| subscription[name].as_str().unwrap_or("-").to_owned();
    let action =
        |change: &str| format!("/checkout/pay/{}/subscription/{change}", escape(session_id));
    format!(
        r#"<p>Subscription <code id="subscription-id">{}</code>: <span id="subscription-status">{}</span>, billing <span class="status" id="billing">{}</span></p>
<p class="muted">Later, in Stripe:</p>
<form method="post" action="{}"><button id="pay-invoice" class="secondary" type="submit">Charge the first invoice</button></form>
<form method="post" action="{}"><button id="fail-invoice" class="secondary" type="submit">Fail the invoice's charge</button></form>
<form method="post" action="{}"><button id="cancel-subscription" class="secondary" type="submit">Cancel the subscription</button></form>"#,
        escape(&text("id")),
        escape(&text("status")),
        escape(&text("billing")),
        action("pay-invoice"),
        action("fail-invoice"),
        action("cancel"),
    )
}

async fn canceled() -> Response {
    page(
        StatusCode::OK,
        "Checkout canceled",
        r#"<div class="card"><h1 id="canceled">Checkout canceled</h1><p>Nothing was charged. The trial goes on; convert it again to pay (the same session is offered while it is open).</p></div>"#,
        None,
    )
}

fn message(status: StatusCode, text: &str) -> Response {
    page(
        status,
        "Checkout",
        &format!(
            r#"<div class="card"><p id="message">{}</p></div>"#,
            escape(text)
        ),
        None,
    )
}
