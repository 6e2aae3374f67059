//! What can go wrong in the store, other than a condition: a failed condition is a domain
//! answer ([`super::tx::Outcome::Rejected`]); everything here is a failure of the store itself,
//! never the caller's fault, never stored as an idempotent answer.
use std::fmt;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug)]
pub enum StoreError {
    /// The request did not complete: network, timeout, throttling, a 5xx, transaction conflicts
    /// that persisted. The same request may succeed later.
    Unavailable(String),
    /// DynamoDB refused the request itself (`ValidationException`, an item over 400 KB, an item
    /// collection over its limit): retrying the same request will not help.
    Refused(String),
    /// An item that does not decode as what its key says it is.
    Corrupt(String),
}

impl StoreError {
    /// Whether the same request may succeed if sent again.
    pub fn retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Classifies an SDK failure by DynamoDB's error code: throttling and server errors are
    /// transient, a refused request is not; anything that never got an answer is transient.
    pub fn from_sdk<E, R>(err: SdkError<E, R>) -> StoreError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: fmt::Debug,
    {
        let detail = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
        match &err {
            SdkError::ServiceError(se) => StoreError::from_code(se.err().code(), detail),
            _ => StoreError::Unavailable(detail),
        }
    }

    /// A DynamoDB error code (a request's, or a transaction cancellation reason's).
    pub fn from_code(code: Option<&str>, detail: String) -> StoreError {
        match code {
            Some(
                "ValidationException"
                | "ValidationError"
                | "ItemCollectionSizeLimitExceededException"
                | "ItemCollectionSizeLimitExceeded"
                | "ResourceNotFoundException"
                | "SerializationException"
                | "AccessDeniedException",
            ) => StoreError::Refused(detail),
            _ => StoreError::Unavailable(detail),
        }
    }

    pub fn corrupt(what: impl fmt::Display) -> StoreError {
        StoreError::Corrupt(format!("malformed item: {what}"))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(d) => write!(f, "store unavailable: {d}"),
            StoreError::Refused(d) => write!(f, "store refused the request: {d}"),
            StoreError::Corrupt(d) => write!(f, "store: {d}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<aws_sdk_dynamodb::error::BuildError> for StoreError {
    fn from(e: aws_sdk_dynamodb::error::BuildError) -> Self {
        StoreError::Refused(format!("request build: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        let code = |c: &str| StoreError::from_code(Some(c), String::new());
        assert!(code("ProvisionedThroughputExceededException").retryable());
        assert!(code("ThrottlingError").retryable());
        assert!(code("InternalServerError").retryable());
        assert!(code("TransactionConflict").retryable());
        assert!(StoreError::from_code(None, String::new()).retryable());
        assert!(!code("ValidationError").retryable());
        assert!(!code("ItemCollectionSizeLimitExceeded").retryable());
        assert!(!StoreError::corrupt("x").retryable());
    }

    fn service_error(code: &str, message: &str) -> StoreError {
        use aws_sdk_dynamodb::error::ErrorMetadata;
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        StoreError::from_sdk(SdkError::service_error(PutItemError::generic(meta), ()))
    }

    #[test]
    fn dynamodb_answers_are_classified_by_their_code_and_the_rest_is_an_outage() {
        let too_big = service_error("ValidationException", "Item size has exceeded the limit");
        assert!(matches!(too_big, StoreError::Refused(_)), "{too_big:?}");
        assert!(!too_big.retryable());
        let throttled = service_error("ProvisionedThroughputExceededException", "slow down");
        assert!(throttled.retryable(), "{throttled:?}");
        // No answer at all (a timeout, a connection that failed) may succeed when sent again.
        let timeout: SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError, ()> =
            SdkError::timeout_error("no answer in time");
        assert!(StoreError::from_sdk(timeout).retryable());
    }

    #[test]
    fn the_log_says_which_failure_and_why() {
        let too_big = service_error("ValidationException", "Item size has exceeded the limit");
        let shown = too_big.to_string();
        assert!(shown.starts_with("store refused the request: "), "{shown}");
        assert!(
            shown.contains("Item size has exceeded the limit"),
            "{shown}"
        );
        assert_eq!(
            StoreError::Unavailable("timeout".into()).to_string(),
            "store unavailable: timeout"
        );
        assert_eq!(
            StoreError::corrupt("trial without status").to_string(),
            "store: malformed item: trial without status"
        );
    }
}
