//! `GET /v1/trials/{id}/timeline?limit=&cursor=`: every change of the trial, oldest first, as
//! `{at, type, actor, details}` (see [`crate::store::timeline`]: one entry per event, written
//! in the change's own transaction; `actor` is the API key id, `stripe` or `job`; `details`
//! only allow-listed fields). The same tenancy as `GET /v1/trials/{id}`: another org's trial,
//! or another project's for a key limited to projects, is 404; the org's purged trial is 410
//! (its timeline went with it, carried by `trial.purged`). Admin keys also get the trial's
//! `notes`.
//!
//! At most [`TIMELINE_CAP`] entries: past it, the oldest after the start are dropped and
//! `truncated` counts them. Pages of `limit` entries (1 to the cap, default
//! [`DEFAULT_LIMIT`]); `next_cursor` (opaque; null on the last page) continues. A cursor the
//! timeline did not give is 400 `invalid_cursor`; a bad `limit` or an unknown or repeated
//! parameter 400 `invalid_field`.
//!
//! Cost: one consistent `Query` of the trial's partition (the trial and its entries), after
//! the key check (a warm function's cached verdict, else one `GetItem`).
use serde_json::json;

use super::error::ApiError;
use super::owned::owned;
use super::reply::Reply;
use super::request::{logged_trial_id, unknown_field};
use super::LogFields;
use crate::auth::Tenant;
use crate::crypto::{decode_hex, hex};
use crate::domain::codes::ErrorCode;
use crate::store::timeline::{Entry, Timeline, ENTRY_PREFIX, TIMELINE_CAP};
use crate::store::trials::trial_from_item;
use crate::App;
use lambda_http::Request;

/// Entries per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;

pub async fn handle(
    app: &App,
    req: &Request,
    tenant: &Tenant,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let id = logged_trial_id(req, log)?;
    let query = PageQuery::parse(&super::stats::query_pairs(req))?;
    let (item, entries) = app.store.trial_and_timeline(&id).await?;
    let found = item.as_ref().map(trial_from_item).transpose()?;
    let trial = owned(app, &id, tenant, found).await?;
    let (timeline, _) = Timeline::capped(entries);
    let (shown, next) = timeline.page(query.after.as_deref(), query.limit);
    let mut body = json!({
        "trial_id": id.as_str(),
        "entries": shown.iter().map(Entry::view).collect::<Vec<_>>(),
        "next_cursor": next.map(|sk| hex(sk.as_bytes())),
        "truncated": timeline.truncated,
    });
    if tenant.admin {
        body["notes"] = json!(trial.notes);
    }
    Ok(Reply::json(200, &body))
}

/// A parsed page request: the entries after `after` (a sort key), `limit` of them.
#[derive(Debug, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: usize,
    pub after: Option<String>,
}

impl PageQuery {
    pub fn parse(pairs: &[(String, String)]) -> Result<PageQuery, ApiError> {
        let mut seen: Vec<&str> = Vec::new();
        for (name, _) in pairs {
            if !matches!(name.as_str(), "limit" | "cursor") || seen.contains(&name.as_str()) {
                return Err(unknown_field(name));
            }
            seen.push(name);
        }
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let limit = match get("limit") {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=TIMELINE_CAP).contains(n))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidField,
                        format!("limit: must be a whole number from 1 to {TIMELINE_CAP}"),
                    )
                })?,
        };
        let after = get("cursor").map(|raw| cursor_key(raw)).transpose()?;
        Ok(PageQuery { limit, after })
    }
}

/// The sort key a cursor names: hex of an entry's sort key, as `next_cursor` gives it.
fn cursor_key(raw: &str) -> Result<String, ApiError> {
    decode_hex(raw)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|sk| sk.starts_with(ENTRY_PREFIX))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "cursor: not a cursor this timeline gave (use next_cursor as given)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn code(r: Result<PageQuery, ApiError>) -> &'static str {
        r.unwrap_err().code.as_str()
    }

    #[test]
    fn limit_and_cursor_are_checked() {
        assert_eq!(
            PageQuery::parse(&[]).unwrap(),
            PageQuery {
                limit: DEFAULT_LIMIT,
                after: None
            }
        );
        let cursor = hex(b"TL#00000000001#0#x");
        let q = PageQuery::parse(&pairs(&[("limit", "2"), ("cursor", &cursor)])).unwrap();
        assert_eq!(q.limit, 2);
        assert_eq!(q.after.as_deref(), Some("TL#00000000001#0#x"));
        for bad in ["0", "91", "x", "-1"] {
            assert_eq!(
                code(PageQuery::parse(&pairs(&[("limit", bad)]))),
                "invalid_field"
            );
        }
        for bad in ["zz", "abc", &hex(b"TRIAL"), ""] {
            assert_eq!(
                code(PageQuery::parse(&pairs(&[("cursor", bad)]))),
                "invalid_cursor"
            );
        }
        assert_eq!(
            code(PageQuery::parse(&pairs(&[("after", "1")]))),
            "invalid_field"
        );
        let twice = pairs(&[("limit", "1"), ("limit", "2")]);
        assert_eq!(code(PageQuery::parse(&twice)), "invalid_field");
    }
}
