//! `GET /v1/plans`: the catalog's trialable plans with their terms, for a pricing page's
//! "Start free trial" buttons. A valid API key is enough: plans are the same for every org, so
//! no tenant headers are asked for. No table read once the key's verdict is cached (the catalog
//! is in memory); one `GetItem` of the key record otherwise.
use lambda_http::Request;

use super::error::ApiError;
use super::reply::Reply;
use super::LogFields;
use crate::auth::{AuthError, KeyCheck};
use crate::domain::catalog::plans_view;
use crate::App;

pub const PATH: &str = "/v1/plans";

pub async fn handle(app: &App, req: &Request, log: &mut LogFields) -> Result<Reply, ApiError> {
    let keys = app.auth();
    let info = match keys.check(req)? {
        KeyCheck::Known(info) => Some(info),
        KeyCheck::NeedsRecord(key) => {
            let record = app.store.get_api_key(key.key_id()).await?;
            keys.decide(&key, record)
        }
    };
    let info = info.ok_or(AuthError::Unauthorized)?;
    log.org_id = Some(info.org.to_string());
    Ok(Reply::json(200, &plans_view(&app.config.catalog)))
}
