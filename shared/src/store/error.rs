use std::fmt;

/// A failure of the store itself (network, throttling, a malformed item): never the caller's
/// fault, always retryable from the caller's side.
#[derive(Debug)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    pub fn from_sdk<E, R>(err: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
    where
        E: std::error::Error + 'static,
        R: fmt::Debug,
    {
        StoreError(format!(
            "{}",
            aws_sdk_dynamodb::error::DisplayErrorContext(err)
        ))
    }

    pub fn corrupt(what: impl fmt::Display) -> StoreError {
        StoreError(format!("malformed item: {what}"))
    }
}

impl From<aws_sdk_dynamodb::error::BuildError> for StoreError {
    fn from(e: aws_sdk_dynamodb::error::BuildError) -> Self {
        StoreError(format!("request build: {e}"))
    }
}
