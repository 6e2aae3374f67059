//! `POST /v1/webhooks/stripe`: not built yet (issue 5).
use lambda_http::Request;

use super::error::ApiError;
use super::reply::Reply;
use super::LogFields;
use crate::App;

pub async fn handle(_app: &App, _req: &Request, _log: &mut LogFields) -> Result<Reply, ApiError> {
    Err(ApiError::new(501, "not_implemented", "Not implemented yet"))
}
