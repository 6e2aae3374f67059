//! Every error a client can see: a code from the catalogue ([`ErrorCode`], which fixes the
//! status) and a message, as `{"error": {"code": "...", "message": "..."}}`. Errors of the
//! layers below (auth, headers, transitions, the store) map here, in one place.
use crate::auth::AuthError;
use crate::domain::{ErrorCode, TransitionError};
use crate::headers::HeaderError;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Whether the same request may succeed later (adds `"retryable": true` and `Retry-After`).
    pub retryable: bool,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retryable: false,
        }
    }

    pub fn retryable(mut self) -> ApiError {
        self.retryable = true;
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn body(&self) -> String {
        let mut error = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if self.retryable {
            error["retryable"] = true.into();
        }
        serde_json::json!({ "error": error }).to_string()
    }

    pub fn trial_not_found() -> ApiError {
        ApiError::new(ErrorCode::TrialNotFound, "Trial does not exist")
    }

    /// Names the catalog's trialable plans, so the message never drifts from the catalog.
    pub fn invalid_plan(catalog: &crate::domain::catalog::Catalog) -> ApiError {
        ApiError::new(
            ErrorCode::InvalidPlan,
            format!("Plan must be one of: {}", catalog.list()),
        )
    }

    /// A `product` the catalog does not have: the message lists the catalog's products.
    pub fn invalid_product(catalog: &crate::domain::catalog::Catalog) -> ApiError {
        let mut ids: Vec<&str> = catalog
            .plans()
            .iter()
            .map(|p| p.product.id.as_str())
            .collect();
        ids.dedup();
        ApiError::new(
            ErrorCode::InvalidProduct,
            format!("Product must be one of: {}", ids.join(", ")),
        )
    }

    /// A plan the catalog offers for trial but has no Stripe price for.
    pub fn not_purchasable(plan: &str) -> ApiError {
        ApiError::new(
            ErrorCode::PlanNotPurchasable,
            format!("Plan {plan} has no price: it cannot be bought"),
        )
    }

    pub fn invalid_json(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("Request body must be a JSON object: {detail}"),
        )
    }

    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("Request body exceeds {limit} bytes"),
        )
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            "The service could not complete the request; retry with the same Idempotency-Key",
        )
        .retryable()
    }

    pub fn route_not_found() -> ApiError {
        ApiError::new(ErrorCode::RouteNotFound, "No such route")
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            "Method not allowed on this route",
        )
    }
}

impl From<crate::domain::applicant::FieldError> for ApiError {
    /// The message names the field and the rule, never the value (it may be personal data).
    fn from(e: crate::domain::applicant::FieldError) -> ApiError {
        ApiError::new(ErrorCode::InvalidField, e.to_string())
    }
}

impl From<crate::domain::redirect::RedirectError> for ApiError {
    fn from(e: crate::domain::redirect::RedirectError) -> ApiError {
        ApiError::new(ErrorCode::InvalidRedirectOrigin, e.message())
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> ApiError {
        ApiError::new(e.code(), e.message())
    }
}

impl From<HeaderError> for ApiError {
    fn from(e: HeaderError) -> ApiError {
        ApiError::new(e.code(), e.message())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Unauthorized => ApiError::new(
                ErrorCode::Unauthorized,
                "A valid API key is required: Authorization: Bearer <key>",
            ),
            AuthError::Forbidden(what) => ApiError::new(
                ErrorCode::Forbidden,
                format!("The API key does not grant access to this {what}"),
            ),
            AuthError::Header(h) => h.into(),
            AuthError::Store(s) => s.into(),
            AuthError::Jwt(e) => ApiError::new(e.code(), e.message()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        // The detail goes to the log, not to the client; every store failure is retryable from
        // the client's side (nothing was stored under its key).
        tracing::error!(error = %e, retryable = e.retryable(), "store failure");
        ApiError::unavailable()
    }
}

impl From<crate::services::checkout_sessions::CheckoutError> for ApiError {
    fn from(e: crate::services::checkout_sessions::CheckoutError) -> ApiError {
        use crate::services::checkout_sessions::CheckoutError;
        match e {
            CheckoutError::NotPurchasable(plan) => ApiError::not_purchasable(&plan),
            CheckoutError::Provider => ApiError::new(
                ErrorCode::PaymentProviderError,
                "The payment provider could not create a checkout session; retry with the same Idempotency-Key",
            )
            .retryable(),
        }
    }
}
