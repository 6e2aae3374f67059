//! Every error a client can see: a status, a stable code and a message, as
//! `{"error": {"code": "...", "message": "..."}}`.
use crate::domain::{Plan, TransitionError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Whether the same request may succeed later (adds `"retryable": true` and `Retry-After`).
    pub retryable: bool,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retryable: false,
        }
    }

    pub fn retryable(mut self) -> ApiError {
        self.retryable = true;
        self
    }

    pub fn body(&self) -> String {
        let mut error = serde_json::json!({ "code": self.code, "message": self.message });
        if self.retryable {
            error["retryable"] = true.into();
        }
        serde_json::json!({ "error": error }).to_string()
    }

    pub fn trial_not_found() -> ApiError {
        ApiError::new(404, "trial_not_found", "Trial does not exist")
    }

    pub fn invalid_plan() -> ApiError {
        ApiError::new(
            400,
            "invalid_plan",
            format!("Plan must be one of: {}", Plan::list()),
        )
    }

    pub fn invalid_json(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            400,
            "invalid_json",
            format!("Request body must be a JSON object: {detail}"),
        )
    }

    pub fn missing_header(name: &str, code: &'static str) -> ApiError {
        ApiError::new(400, code, format!("Missing required header {name}"))
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            503,
            "service_unavailable",
            "The service could not complete the request; retry with the same Idempotency-Key",
        )
        .retryable()
    }

    pub fn route_not_found() -> ApiError {
        ApiError::new(404, "route_not_found", "No such route")
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "method_not_allowed",
            "Method not allowed on this route",
        )
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> ApiError {
        ApiError::new(e.http_status(), e.code(), e.message())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        // The detail goes to the log, not to the client.
        tracing::error!(error = %e, "store failure");
        ApiError::unavailable()
    }
}
