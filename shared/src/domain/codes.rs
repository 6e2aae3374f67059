//! The catalogue of every error code a client can see, with its HTTP status: auth, headers,
//! idempotency, the body, transitions, the webhook, the payment provider and the service
//! itself. `openapi.yaml`'s `ErrorCode` lists the same codes (a test keeps the two equal).
//! Codes are stable: clients branch on them; messages are for humans and may change.
use std::fmt;

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal), )*) => {
        /// A stable error code and its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order `openapi.yaml` lists them.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }
        }
    };
}

catalogue! {
    MissingOrgId = ("missing_org_id", 400),
    InvalidOrgId = ("invalid_org_id", 400),
    MissingProjectId = ("missing_project_id", 400),
    InvalidProjectId = ("invalid_project_id", 400),
    MissingIdempotencyKey = ("missing_idempotency_key", 400),
    InvalidIdempotencyKey = ("invalid_idempotency_key", 400),
    InvalidJson = ("invalid_json", 400),
    InvalidPlan = ("invalid_plan", 400),
    /// Convert: `billing_starts` is neither `trial_end` nor `now`.
    InvalidBillingStarts = ("invalid_billing_starts", 400),
    /// Usage: the option is not a limit of the trial's plan.
    InvalidOption = ("invalid_option", 400),
    /// Usage: the quantity is not an integer from 1 to the documented maximum.
    InvalidQuantity = ("invalid_quantity", 400),
    /// An applicant field of a start is malformed; the message names the field.
    InvalidField = ("invalid_field", 400),
    /// Stats: `from`/`to` malformed, reversed, or more than 366 days apart.
    InvalidRange = ("invalid_range", 400),
    /// Timeline: `cursor` is not one the timeline gave.
    InvalidCursor = ("invalid_cursor", 400),
    /// `redirect_url_origin` is not a plain https origin on the allow-list.
    InvalidRedirectOrigin = ("invalid_redirect_origin", 400),
    /// Webhook: the `Stripe-Signature` header is missing or does not verify.
    InvalidSignature = ("invalid_signature", 400),
    /// Webhook: a signed body that is not a Stripe event.
    InvalidPayload = ("invalid_payload", 400),
    /// A `product` (query or body) the catalog does not have.
    InvalidProduct = ("invalid_product", 400),
    Unauthorized = ("unauthorized", 401),
    /// An end user's JWT (`/v1/me/...`) that is missing, malformed or not signed by a known key.
    InvalidToken = ("invalid_token", 401),
    /// An end user's JWT past its `exp` (or before its `nbf`).
    TokenExpired = ("token_expired", 401),
    /// An end user's JWT from another issuer than `JWT_ISSUER`.
    InvalidTokenIssuer = ("invalid_token_issuer", 401),
    /// An end user's JWT for another audience than `JWT_AUDIENCE`.
    InvalidTokenAudience = ("invalid_token_audience", 401),
    /// An end user's JWT without a usable org claim (`JWT_ORG_CLAIM`).
    TokenMissingOrg = ("token_missing_org", 401),
    Forbidden = ("forbidden", 403),
    /// The org may not start a trial (its applicant's signal was used by another org, or an
    /// operator blocked it).
    TrialNotEligible = ("trial_not_eligible", 403),
    TrialNotFound = ("trial_not_found", 404),
    RouteNotFound = ("route_not_found", 404),
    MethodNotAllowed = ("method_not_allowed", 405),
    TrialAlreadyExists = ("trial_already_exists", 409),
    TrialAlreadyConverted = ("trial_already_converted", 409),
    TrialCanceled = ("trial_canceled", 409),
    TrialAlreadyExpired = ("trial_already_expired", 409),
    /// Pause or extend of a trial that is not ACTIVE (e.g. PAUSED).
    TrialNotActive = ("trial_not_active", 409),
    /// Resume of a trial that is not PAUSED.
    TrialNotPaused = ("trial_not_paused", 409),
    /// Convert: the catalog has no Stripe price for the trial's plan.
    PlanNotPurchasable = ("plan_not_purchasable", 409),
    /// Cancel: a payment for the trial is on its way (a checkout completed with a delayed
    /// method); the message names its checkout session.
    PaymentPending = ("payment_pending", 409),
    /// Change-plan (or convert with another plan): a Checkout Session for the current plan is
    /// still payable or being paid.
    CheckoutOpen = ("checkout_open", 409),
    /// Change-plan (or convert with another plan): use so far is above a limit of the new
    /// plan, and the change is not forced.
    UsageExceedsNewPlan = ("usage_exceeds_new_plan", 409),
    /// Retryable: another request with the key is in flight.
    IdempotencyKeyInUse = ("idempotency_key_in_use", 409),
    TrialExpired = ("trial_expired", 410),
    PayloadTooLarge = ("payload_too_large", 413),
    IdempotencyKeyReused = ("idempotency_key_reused", 422),
    /// Extend: the new end is not later than the current one, or beyond the plan's maximum.
    InvalidExtension = ("invalid_extension", 422),
    /// An admin's `expires_at` is not later than now or beyond the plan's maximum length.
    InvalidExpiration = ("invalid_expiration", 422),
    /// Change-plan: the trial is already on the plan, or the plan is another product's.
    InvalidPlanChange = ("invalid_plan_change", 422),
    /// Usage: the quantity would take the option past its limit; nothing was recorded.
    TrialLimitExceeded = ("trial_limit_exceeded", 429),
    /// Retryable: Stripe failed or timed out.
    PaymentProviderError = ("payment_provider_error", 502),
    /// Retryable: the store failed; nothing was stored under the idempotency key.
    ServiceUnavailable = ("service_unavailable", 503),
    /// Activate: the trial is not PENDING (its clock already runs: ACTIVE or PAUSED).
    TrialNotPending = ("trial_not_pending", 409),
    /// Pause, resume, extend, `PATCH` or change-plan of a PENDING trial (activate it first).
    TrialPending = ("trial_pending", 409),
    /// Cancel, pause, resume, extend, an admin's change or change-plan of a reverse trial that
    /// ended on its free plan (DOWNGRADED): only convert and usage remain.
    TrialDowngraded = ("trial_downgraded", 409),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue and `openapi.yaml`'s `ErrorCode` enum list the same codes with the same
    /// statuses (the spec notes each status in a comment).
    #[test]
    fn the_catalogue_is_the_openapi_error_code_list() {
        let spec = include_str!("../../../openapi.yaml");
        let start = spec
            .find("    ErrorCode:\n")
            .expect("openapi.yaml defines ErrorCode");
        let block = &spec[start..];
        let enum_at = block.find("enum:\n").expect("ErrorCode has an enum");
        let listed: Vec<(String, u16)> = block[enum_at + 6..]
            .lines()
            .take_while(|l| l.trim_start().starts_with("- "))
            .map(|l| {
                let item = l.trim_start().trim_start_matches("- ");
                let (code, comment) = item.split_once('#').expect("each code notes its status");
                let status = comment.trim()[..3].parse().expect("status");
                (code.trim().to_owned(), status)
            })
            .collect();
        let ours: Vec<(String, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), c.status()))
            .collect();
        assert_eq!(ours, listed);
    }
}
