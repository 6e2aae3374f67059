//! The checkout page a session's `url` leads to: the plan, the price, and **Pay**, **Pay with
//! a delayed method** and **Cancel** (plus a delayed method whose payment fails).
//!
//! Paying does what Stripe does when a customer pays: the session becomes `complete` with a
//! customer and a subscription, and the webhook deliveries Stripe would send go out
//! (`checkout.session.completed`; for a delayed method `completed` unpaid, then
//! `async_payment_succeeded` or `_failed` after `Options::async_payment_delay`). The first
//! delivery attempt is awaited before the browser is redirected to the session's `success_url`,
//! so the success page shows its effect (Stripe redirects without waiting; the page refreshes
//! while anything is still on its way). Cancel redirects to `cancel_url` and leaves the session
//! open, as Stripe's back link does.
//!
//! A delayed method under a trial is simulated all the same (Stripe would take no payment at
//! checkout then): it is how the pending-payment path is exercised locally.
use std::fmt;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use trials::crypto::random_hex;
use trials::domain::time::rfc3339;

use super::session::{PaymentStatus, Price, Session, Status};
use super::subscription::{Subscription, SubscriptionChange};
use super::{settle_expiry, webhooks, PayMethod, Shared, StripeStandIn};
use crate::html::{escape, page};

pub(crate) fn router<S: Clone + Send + Sync + 'static>(shared: Arc<Shared>) -> Router<S> {
    Router::new()
        .route("/checkout/pay/{id}", get(show))
        .route("/checkout/pay/{id}/pay", post(pay_now))
        .route("/checkout/pay/{id}/pay-delayed", post(pay_delayed))
        .route(
            "/checkout/pay/{id}/pay-delayed-fails",
            post(pay_delayed_fails),
        )
        .route("/checkout/pay/{id}/cancel", post(cancel))
        .route(
            "/checkout/pay/{id}/subscription/{change}",
            post(subscription_change),
        )
        .with_state(shared)
}

/// Why a session cannot be paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayError {
    NoSuchSession,
    /// Already paid, or expired.
    NotOpen(Status),
}

impl fmt::Display for PayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayError::NoSuchSession => f.write_str("no such checkout session"),
            PayError::NotOpen(status) => {
                write!(f, "this checkout session is {}", status.as_str())
            }
        }
    }
}

/// Completes session `id` as a payment by `method` would, and sends what Stripe sends.
pub(crate) async fn pay(
    shared: &Arc<Shared>,
    id: &str,
    method: PayMethod,
) -> Result<Session, PayError> {
    let (result, events) = {
        let mut state = shared.state.lock().unwrap();
        let now = state.now();
        let Some(session) = state.durable.sessions.get_mut(id) else {
            return Err(PayError::NoSuchSession);
        };
        let outcome = match settle_expiry(session, now) {
            Some(expired) => (Err(PayError::NotOpen(Status::Expired)), vec![expired]),
            None if session.status != Status::Open => {
                (Err(PayError::NotOpen(session.status)), Vec::new())
            }
            None => {
                session.status = Status::Complete;
                session.customer = Some(format!("cus_{}", random_hex(7)));
                let subscription = (session.mode == "subscription").then(|| {
                    let id = format!("sub_{}", random_hex(12));
                    session.subscription = Some(id.clone());
                    Subscription::for_session(session, id, now)
                });
                session.payment_status = match method {
                    PayMethod::Card => session.paid_status(),
                    PayMethod::Delayed { .. } => PaymentStatus::Unpaid,
                };
                let completed = webhooks::event("checkout.session.completed", session, now, None);
                let session = session.clone();
                if let Some(sub) = subscription {
                    state.durable.subscriptions.insert(sub.id.clone(), sub);
                }
                if matches!(method, PayMethod::Delayed { .. }) {
                    state.settling.push(session.id.clone());
                }
                (Ok(session), vec![completed])
            }
        };
        shared.persist(&state);
        outcome
    };
    for event in events {
        shared.send(event).await;
    }
    let session = result?;
    if let PayMethod::Delayed { succeeds } = method {
        let shared = shared.clone();
        let id = session.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(shared.options.async_payment_delay).await;
            settle_delayed(&shared, &id, succeeds).await;
        });
    }
    Ok(session)
}

/// The bank's answer to a delayed payment, days later in real life.
async fn settle_delayed(shared: &Arc<Shared>, id: &str, succeeds: bool) {
    let event = {
        let mut state = shared.state.lock().unwrap();
        let now = state.now();
        let Some(session) = state.durable.sessions.get_mut(id) else {
            return;
        };
        let kind = if succeeds {
            session.payment_status = PaymentStatus::Paid;
            "checkout.session.async_payment_succeeded"
        } else {
            "checkout.session.async_payment_failed"
        };
        let event = webhooks::event(kind, session, now, None);
        shared.persist(&state);
        event
    };
    shared.send(event).await;
    shared.state.lock().unwrap().settling.retain(|s| s != id);
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

async fn show(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    for event in shared.expire_overdue(Some(&id)) {
        shared.send(event).await;
    }
    let session = shared.session(&id);
    match session {
        None => not_found(&id),
        Some(s) => render(&s, shared.options.webhook.as_ref().map(|w| w.url.as_str())),
    }
}

async fn pay_now(state: State<Arc<Shared>>, id: Path<String>) -> Response {
    pay_and_redirect(state, id, PayMethod::Card).await
}

async fn pay_delayed(state: State<Arc<Shared>>, id: Path<String>) -> Response {
    pay_and_redirect(state, id, PayMethod::Delayed { succeeds: true }).await
}

async fn pay_delayed_fails(state: State<Arc<Shared>>, id: Path<String>) -> Response {
    pay_and_redirect(state, id, PayMethod::Delayed { succeeds: false }).await
}

async fn pay_and_redirect(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: PayMethod,
) -> Response {
    match pay(&shared, &id, method).await {
        Ok(session) => see_other(&session.success_redirect()),
        // A second click on Pay (the first already went through): where the first went.
        Err(PayError::NotOpen(Status::Complete)) => {
            let session = shared.session(&id);
            match session {
                Some(s) => see_other(&s.success_redirect()),
                None => not_found(&id),
            }
        }
        Err(PayError::NoSuchSession) => not_found(&id),
        Err(e) => page(
            StatusCode::CONFLICT,
            "Checkout",
            &format!(
                r#"<div class="card"><p id="message">{}</p></div>"#,
                escape(&e.to_string())
            ),
            None,
        ),
    }
}

async fn cancel(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let session = shared.session(&id);
    match session {
        None => not_found(&id),
        Some(Session {
            cancel_url: Some(url),
            ..
        }) => see_other(&url),
        Some(s) => see_other(&s.url),
    }
}

/// The success page's buttons: what happens later in Stripe to the subscription session `id`
/// created (`cancel`: the customer cancels it; `pay-invoice`, `fail-invoice`: its invoice is
/// charged), sent as Stripe sends it; then back to the success page.
async fn subscription_change(
    State(shared): State<Arc<Shared>>,
    Path((id, change)): Path<(String, String)>,
) -> Response {
    let change = match change.as_str() {
        "cancel" => SubscriptionChange::Canceled,
        "pay-invoice" => SubscriptionChange::InvoicePaid,
        "fail-invoice" => SubscriptionChange::InvoicePaymentFailed,
        _ => return not_found(&id),
    };
    let session = shared.session(&id);
    let Some((session, sub)) = session.and_then(|s| s.subscription.clone().map(|sub| (s, sub)))
    else {
        return not_found(&id);
    };
    let standin = StripeStandIn { shared };
    match standin.subscription_event(&sub, change).await {
        Ok(_) => see_other(&session.success_redirect()),
        Err(_) => not_found(&id),
    }
}

fn not_found(id: &str) -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Checkout",
        &format!(
            r#"<div class="card"><p id="message">No checkout session {}: it was never created here, or the stand-in's state was deleted.</p></div>"#,
            escape(id)
        ),
        None,
    )
}

fn render(s: &Session, webhook_url: Option<&str>) -> Response {
    let plan = s.metadata.get("plan").cloned();
    let (product, price_line, due_now) = match &s.line_item {
        Some(item) => {
            let price =
                Price::format_amount(item.price.unit_amount * item.quantity, &item.price.currency);
            (
                item.price.product.clone(),
                format!("{price} per {}", item.price.interval),
                Price::format_amount(s.amount_total(), s.currency()),
            )
        }
        None => (
            plan.clone().unwrap_or_else(|| "Checkout".into()),
            String::new(),
            Price::format_amount(0, "usd"),
        ),
    };
    let title = format!("{product}: checkout");
    let mut body = format!(
        r#"<div class="card">
<h1 id="product">{}</h1>"#,
        escape(&product)
    );
    if let Some(plan) = &plan {
        body.push_str(&format!(
            r#"<p class="muted">Plan <span id="plan">{}</span></p>"#,
            escape(plan)
        ));
    }
    body.push_str(&format!(
        r#"<p class="price" id="price">{}</p>"#,
        escape(&price_line)
    ));
    if let Some(trial_end) = s.trial_end {
        body.push_str(&format!(
            r#"<p id="trial-end">Free until {}, then {}.</p>"#,
            escape(&rfc3339(trial_end)),
            escape(&price_line)
        ));
    }
    body.push_str(&format!(
        r#"<p>Due today: <strong id="due-now">{}</strong></p>"#,
        escape(&due_now)
    ));
    let action = |path: &str| format!("/checkout/pay/{}/{path}", escape(&s.id));
    match s.status {
        Status::Open => {
            body.push_str(&format!(
                r#"<form method="post" action="{}"><button id="pay" class="primary" type="submit">Pay</button></form>
<form method="post" action="{}"><button id="pay-delayed" class="secondary" type="submit">Pay with a delayed method</button></form>
<form method="post" action="{}"><button id="pay-delayed-fails" class="secondary" type="submit">Pay with a delayed method that fails</button></form>"#,
                action("pay"),
                action("pay-delayed"),
                action("pay-delayed-fails"),
            ));
            if s.cancel_url.is_some() {
                body.push_str(&format!(
                    r#"<form method="post" action="{}"><button id="cancel" class="secondary" type="submit">Cancel</button></form>"#,
                    action("cancel")
                ));
            }
        }
        Status::Complete => body.push_str(&format!(
            r#"<p id="message">This checkout session is complete (payment {}). <a href="{}">Continue</a></p>"#,
            escape(s.payment_status.as_str()),
            escape(&s.success_redirect())
        )),
        Status::Expired => body.push_str(
            r#"<p id="message">This checkout session has expired: ask for a new one (convert the trial again).</p>"#,
        ),
    }
    let sent_to = webhook_url.map_or_else(
        || "nowhere (no webhook endpoint configured)".to_owned(),
        |u| format!("<code>{}</code>", escape(u)),
    );
    body.push_str(&format!(
        r#"<p class="muted">Session <code id="session-id">{}</code>, expires {}. Paying sends Stripe's webhook deliveries to {sent_to}.</p>
</div>"#,
        escape(&s.id),
        escape(&rfc3339(s.expires_at)),
    ));
    page(StatusCode::OK, &title, &body, None)
}

/// The page's view of a payment status, for other pages.
pub fn describe(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Paid => "paid",
        PaymentStatus::Unpaid => "not paid yet",
        PaymentStatus::NoPaymentRequired => "nothing due until the trial ends",
    }
}
