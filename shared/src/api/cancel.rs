//! `POST /v1/trials/{id}/cancel`: not built yet (issue 4).
use lambda_http::Request;

use super::error::ApiError;
use super::reply::Reply;
use super::LogFields;
use crate::auth::Tenant;
use crate::App;

pub async fn handle(
    _app: &App,
    _req: &Request,
    _tenant: &Tenant,
    _log: &mut LogFields,
) -> Result<Reply, ApiError> {
    Err(ApiError::new(501, "not_implemented", "Not implemented yet"))
}
