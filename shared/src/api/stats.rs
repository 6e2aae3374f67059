//! `GET /v1/stats?from=&to=&product=&plan=`: the trial funnel as JSON, for admin keys. Per UTC
//! day from `from` to `to` (inclusive): started, converted, expired, canceled, purged, the
//! conversion rate and the median hours to convert; the window's totals, per plan and overall;
//! and the time-to-convert distribution (`h<hours>` buckets). Shaped by
//! [`crate::services::stats::funnel`], as `trialctl stats --json` is.
//!
//! The counters are the whole deployment's, not one org's (they are counted from the stream,
//! per plan and day): any org's admin key reads them all. They trail the trials by the stream's
//! delay.
//!
//! Query: `from`/`to` are `YYYY-MM-DD` (UTC); the default window is the 30 days ending today
//! (`to` alone: the 30 days ending `to`; `from` alone: up to today). A malformed date, `from`
//! after `to`, or more than [`MAX_DAYS`] days is 400 `invalid_range`. `plan` keeps one plan of
//! the catalog, `product` the catalog's plans of one product (both: the plan, if it is the
//! product's); a plan the catalog does not have is 400 `invalid_plan`, a product it does not
//! have 400 `invalid_product`. Counters of plans no longer in the catalog are not listed (`trialctl stats`
//! finds them). An unknown or repeated query parameter is 400 `invalid_field`, as an unknown
//! body field is elsewhere: a misspelt filter must not quietly answer the unfiltered funnel.
//!
//! Cost: one `BatchGetItem` per 100 of the days × 8 shards × plans counter keys (30 days of 3
//! plans: 8), after authentication; nothing for a refused query.
use chrono::{DateTime, Days, NaiveDate, Utc};
use lambda_http::{Request, RequestExt};

use super::error::ApiError;
use super::reply::Reply;
use super::request::unknown_field;
use super::LogFields;
use crate::auth::Tenant;
use crate::domain::catalog::Catalog;
use crate::domain::codes::ErrorCode;
use crate::App;

/// The longest window, in days.
pub const MAX_DAYS: u64 = 366;
/// The default window, in days.
pub const DEFAULT_DAYS: u64 = 30;

pub async fn handle(
    app: &App,
    req: &Request,
    _tenant: &Tenant,
    _log: &mut LogFields,
) -> Result<Reply, ApiError> {
    let today = DateTime::<Utc>::from_timestamp(app.clock.now(), 0)
        .unwrap_or_default()
        .date_naive();
    let query = StatsQuery::parse(&query_pairs(req), today, &app.config.catalog)?;
    let body =
        crate::services::stats::funnel(&app.store, &query.plans, query.from, query.to).await?;
    Ok(Reply::json(200, &body))
}

/// A parsed, checked query.
#[derive(Debug, PartialEq, Eq)]
pub struct StatsQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub plans: Vec<String>,
}

impl StatsQuery {
    pub fn parse(
        pairs: &[(String, String)],
        today: NaiveDate,
        catalog: &Catalog,
    ) -> Result<StatsQuery, ApiError> {
        let mut seen: Vec<&str> = Vec::new();
        for (name, _) in pairs {
            if !matches!(name.as_str(), "from" | "to" | "plan" | "product")
                || seen.contains(&name.as_str())
            {
                return Err(unknown_field(name));
            }
            seen.push(name);
        }
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let date = |name: &str| -> Result<Option<NaiveDate>, ApiError> {
            get(name)
                .map(|raw| {
                    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
                        invalid_range(format!("`{name}` must be a date, YYYY-MM-DD (UTC)"))
                    })
                })
                .transpose()
        };
        let back = |day: NaiveDate| {
            day.checked_sub_days(Days::new(DEFAULT_DAYS - 1))
                .unwrap_or(day)
        };
        let (from, to) = match (date("from")?, date("to")?) {
            (Some(from), Some(to)) => (from, to),
            (Some(from), None) => (from, today),
            (None, Some(to)) => (back(to), to),
            (None, None) => (back(today), today),
        };
        let days = (to - from).num_days() + 1;
        if days < 1 || days as u64 > MAX_DAYS {
            return Err(invalid_range(format!(
                "`from` must not be after `to`, and the window at most {MAX_DAYS} days"
            )));
        }
        let plans = plans(get("plan"), get("product"), catalog)?;
        Ok(StatsQuery { from, to, plans })
    }
}

/// The catalog's plans the filters keep.
fn plans(
    plan: Option<&String>,
    product: Option<&String>,
    catalog: &Catalog,
) -> Result<Vec<String>, ApiError> {
    if let Some(plan) = plan {
        if catalog.get(plan).is_none() {
            return Err(ApiError::invalid_plan(catalog));
        }
    }
    // A misspelt product must not answer zeros as if nothing happened.
    if let Some(product) = product {
        if !catalog.plans().iter().any(|p| p.product.id == *product) {
            return Err(ApiError::invalid_product(catalog));
        }
    }
    Ok(catalog
        .plans()
        .iter()
        .filter(|p| plan.is_none_or(|plan| p.id.as_str() == plan))
        .filter(|p| product.is_none_or(|product| p.product.id == *product))
        .map(|p| p.id.as_str().to_owned())
        .collect())
}

fn invalid_range(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidRange, message)
}

/// The query string's pairs: the event's parameters (API Gateway), else the URI's (the local
/// server and tests).
pub(super) fn query_pairs(req: &Request) -> Vec<(String, String)> {
    let from_event = req.query_string_parameters();
    if !from_event.is_empty() {
        return from_event
            .iter()
            .flat_map(|(k, _)| {
                from_event
                    .all(k)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |v| (k.to_owned(), v.to_owned()))
            })
            .collect();
    }
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}
