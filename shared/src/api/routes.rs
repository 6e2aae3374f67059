//! The route table: every HTTP route is one row of the `routes!` list below (method, path, who
//! may call it, the largest body it takes, its handler), in the group of the Lambda function that
//! serves it. The list generates everything that names routes in code: the [`Route`] enum, each
//! function's group ([`START`], [`STATUS`], ...: what `functions/<name>` serves, via
//! [`crate::lambda::serve`]), [`ROUTES`] (every row, for the local server and tests), [`INFO`]
//! (every row without its handler) and [`FUNCTIONS`]. Routing ([`Route::resolve`],
//! [`Route::from_route_key`]), the body limit, authentication and dispatch ([`super::handle_row`])
//! read the rows. `template.yaml` and `openapi.yaml` list the routes for AWS and for clients, and
//! a test (`tests/integration/routes.rs`) holds the three equal.
//!
//! Why groups: a function binary links only the handlers its group names. One table of every
//! handler, filtered at run time, linked every handler into every API function (2.44 MB zipped
//! each, near the 2.5 MB limit; BENCHMARKS.md). So nothing a function reaches from
//! [`crate::lambda::serve`] may read [`ROUTES`] (or [`Route::row`]): routing reads [`INFO`],
//! which holds no handler, and the function's own group supplies the handler.
//!
//! The router is hand-written, not a routing crate: matching twenty short patterns costs
//! nothing, and every crate linked into a function adds to its cold start (BENCHMARKS.md).
//! A path matches a pattern segment by segment (`{id}` matches any one segment); when several
//! patterns match, the one with a literal segment where the others have `{id}` wins, so
//! `/v1/trials/current` is never read as a trial id. A path whose pattern exists but not for
//! the method is 405 `method_not_allowed`; no pattern at all is 404 `route_not_found`. Every
//! function resolves against every route's pattern ([`INFO`]), so these answers do not depend on
//! which function a request reaches.
//!
//! Cost: one boxed future per request (the handlers are fn pointers in a table, so their
//! futures are boxed to one type); each row is spelled in the source once but expanded twice
//! (its group and [`ROUTES`]), and a function binary keeps only its group.
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use lambda_http::Request;

use super::error::ApiError;
use super::reply::Reply;
use super::LogFields;
use super::{
    access, access_feature, activate, cancel, change_plan, convert, current, edge_impulse,
    eligibility, extend, gcore, patch, pause, plans, resume, skip, start, stats, status,
    stripe_webhook, timeline, trial_data, usage,
};
use crate::auth::Tenant;
use crate::App;

/// What a handler returns, boxed so every handler fits one fn-pointer type.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send + 'a>>;
/// A handler called with the tenant its API key acts for.
pub type Keyed = for<'a> fn(&'a App, &'a Request, &'a Tenant, &'a mut LogFields) -> Answer<'a>;
/// A handler that authenticates the request itself (or needs no key).
pub type Open = for<'a> fn(&'a App, &'a Request, &'a mut LogFields) -> Answer<'a>;

/// Who may call a route, checked before its handler runs (after the body limit). Each kind
/// carries the handler whose signature it implies: a keyed handler cannot be listed without a
/// key check.
#[derive(Clone, Copy)]
pub enum Auth {
    /// A live API key for the `X-Org-Id` and `X-Project-Id` named (see [`crate::auth`]).
    ApiKey(Keyed),
    /// As [`Auth::ApiKey`], and the key is an admin key; a standard key is 403 `forbidden`,
    /// "Only an admin API key may {may}".
    AdminKey { may: &'static str, handler: Keyed },
    /// Stripe's `Stripe-Signature`, which the handler verifies against the raw body.
    StripeSignature(Open),
    /// The handler authenticates: status (and access, once it knows the org's trial) reads the
    /// key record and the trial in one round trip on a cold cache; plans needs a live key but no
    /// tenant headers.
    Itself(Open),
    /// An end user's JWT (see [`crate::jwt`]): a standard key's rights on the org its
    /// claim names. Its own routes (`/v1/me/...`), because API Gateway's JWT authorizer guards a
    /// whole route: on the API-key routes it would refuse every API key.
    Jwt(Keyed),
}

/// A route without its handler: what routing, the body limit, logs and the checks against the
/// YAML read. [`INFO`] holds every route's, so a function can route any request without
/// linking any other function's handler.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    pub route: Route,
    pub method: &'static str,
    /// The path pattern, `{id}` for a path parameter, as `template.yaml` and `openapi.yaml`
    /// write it.
    pub path: &'static str,
    /// `METHOD path`: API Gateway's route key, and the route's name in logs and metrics.
    pub name: &'static str,
    /// Checked before anything parses the body (the idempotency fingerprint, the JSON, the
    /// signature).
    pub max_body_bytes: usize,
    /// The Lambda function (`functions/<name>`, `template.yaml`'s `Binary`) that serves it.
    pub function: &'static str,
}

/// One route: its [`RouteInfo`] (read through `Deref`: `row.name`, `row.path`, ...) and who may
/// call it, with the handler.
#[derive(Clone, Copy)]
pub struct Row {
    pub info: RouteInfo,
    pub auth: Auth,
}

impl Deref for Row {
    type Target = RouteInfo;
    fn deref(&self) -> &RouteInfo {
        &self.info
    }
}

/// A Lambda function's group: the rows `functions/<name>/src/main.rs` serves, by passing the
/// static named `group` to [`crate::lambda::serve`] (a test reads the file for it).
#[derive(Clone, Copy)]
pub struct Function {
    pub name: &'static str,
    pub group: &'static str,
    pub rows: &'static [Row],
}

/// The largest body a route accepts, checked before anything parses it: a mutation's JSON is
/// a few hundred bytes (applicant metadata included, well under this).
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// Stripe's events are well under this.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 512 * 1024;

/// One route's info; `name` is `method path`, spelled once.
macro_rules! info {
    ($route:ident, $method:literal, $path:literal, $limit:expr, $function:literal) => {
        RouteInfo {
            route: Route::$route,
            method: $method,
            path: $path,
            name: concat!($method, " ", $path),
            max_body_bytes: $limit,
            function: $function,
        }
    };
}

/// The list of routes, grouped by function, and all that is generated from it: the [`Route`]
/// enum (in the list's order, so a route's discriminant is its index in [`ROUTES`] and
/// [`INFO`]), one static per group, [`ROUTES`], [`INFO`] and [`FUNCTIONS`].
macro_rules! routes {
    ($(
        $(#[$group_doc:meta])*
        $group:ident = $function:literal [
            $( $(#[$doc:meta])* $route:ident, $method:literal, $path:literal, $auth:expr, $limit:expr; )*
        ]
    )*) => {
        /// A route, by name: what the rows, the functions and the tests refer to. Its
        /// discriminant is its row's index in [`ROUTES`] and [`INFO`] (the list generates all
        /// three in one order).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Route {
            $( $( $(#[$doc])* $route, )* )*
        }

        $(
            $(#[$group_doc])*
            pub static $group: &[Row] = &[
                $( Row { info: info!($route, $method, $path, $limit, $function), auth: $auth }, )*
            ];
        )*

        /// Every route, group after group, in [`Route`]'s order: the local server's and the
        /// tests' table. A function binary never reads it (it would link every handler).
        pub static ROUTES: &[Row] = &[
            $( $( Row { info: info!($route, $method, $path, $limit, $function), auth: $auth }, )* )*
        ];

        /// Every route without its handler, in [`Route`]'s order: what routing reads.
        pub static INFO: &[RouteInfo] = &[
            $( $( info!($route, $method, $path, $limit, $function), )* )*
        ];

        /// Every HTTP function and its group.
        pub static FUNCTIONS: &[Function] = &[
            $( Function { name: $function, group: stringify!($group), rows: $group }, )*
        ];
    };
}

/// A keyed handler module's `handle` as a table entry.
macro_rules! keyed {
    ($module:ident) => {
        |app, req, tenant, log| Box::pin($module::handle(app, req, tenant, log))
    };
    ($module:ident :: $function:ident) => {
        |app, req, tenant, log| Box::pin($module::$function(app, req, tenant, log))
    };
}

/// An open handler module's `handle` as a table entry.
macro_rules! open {
    ($module:ident) => {
        |app, req, log| Box::pin($module::handle(app, req, log))
    };
}

/// An admin-key route's entry: what a standard key may not do, and the keyed handler.
macro_rules! admin {
    ($may:literal, $module:ident) => {
        AdminKey {
            may: $may,
            handler: keyed!($module),
        }
    };
}

use Auth::{AdminKey, ApiKey, Itself, Jwt, StripeSignature};
const BODY: usize = MAX_BODY_BYTES;
const WEBHOOK_BODY: usize = MAX_WEBHOOK_BODY_BYTES;

// Every route, in its function's group. The functions group routes by least privilege and
// traffic: the reads share `status`; extend, pause, resume and change-plan share `manage`;
// cancel and `PATCH` share `cancel`; convert and skip (the routes that call Stripe) share
// `convert`; usage (metering traffic) has its own. A new route: a row in its function's group
// (a new function: a new group, and its `functions/<name>` binary serving it).
routes! {
    /// `functions/start`: opening a trial.
    START = "start" [
        //   route          method   path                           who may call                            body limit
        Start,              "POST",  "/v1/trials/start",            ApiKey(keyed!(start)),                  BODY;
        /// `POST /api/user/trial`: Edge Impulse's start, as its clients send it (`x-api-key`).
        EdgeImpulse,        "POST",  "/api/user/trial",             Itself(open!(edge_impulse)),            BODY;
        /// `POST /v1/me/trials/start`: start, for an end user's JWT.
        MeStart,            "POST",  "/v1/me/trials/start",         Jwt(keyed!(start)),                     BODY;
    ]
    /// `functions/status`: the reads.
    STATUS = "status" [
        Status,             "GET",   "/v1/trials/{id}",             Itself(open!(status)),                  BODY;
        Plans,              "GET",   "/v1/plans",                   Itself(open!(plans)),                   BODY;
        TrialData,          "GET",   "/v1/trials/{id}/data",        ApiKey(keyed!(trial_data)),             BODY;
        /// `GET /v1/trials/current`: the org's trial.
        Current,            "GET",   "/v1/trials/current",          ApiKey(keyed!(current)),                BODY;
        /// `GET /v1/trials/eligibility?plan=`: may the org start a trial.
        Eligibility,        "GET",   "/v1/trials/eligibility",      ApiKey(keyed!(eligibility)),            BODY;
        /// `GET /v1/stats`: the funnel, admin keys only.
        Stats,              "GET",   "/v1/stats",                   admin!("read the funnel", stats),       BODY;
        /// `GET /v1/trials/{id}/timeline`: every change of the trial, oldest first.
        Timeline,           "GET",   "/v1/trials/{id}/timeline",    ApiKey(keyed!(timeline)),               BODY;
        /// `GET /v1/access?product=`: what the org may use now.
        Access,             "GET",   "/v1/access",                  Itself(open!(access)),                  BODY;
        /// `GET /v1/access/{feature}`: may the org use one feature now.
        AccessFeature,      "GET",   "/v1/access/{feature}",        Itself(open!(access_feature)),          BODY;
        /// `GET /billing/org/v1/trials/start-trial-data`: Gcore's trial data, as Gcore's
        /// clients send it (the key in `Authorization: apikey`, the org in `client_id`).
        Gcore,              "GET",   "/billing/org/v1/trials/start-trial-data", Itself(open!(gcore)),   BODY;
        /// `GET /v1/me/trials/{id}`: status, for an end user's JWT.
        MeStatus,           "GET",   "/v1/me/trials/{id}",          Jwt(keyed!(status::for_tenant)),        BODY;
        /// `GET /v1/me/trials/current`: the org's trial, for an end user's JWT.
        MeCurrent,          "GET",   "/v1/me/trials/current",       Jwt(keyed!(current)),                   BODY;
    ]
    /// `functions/convert`: the routes that call Stripe.
    CONVERT = "convert" [
        Convert,            "POST",  "/v1/trials/{id}/convert",     ApiKey(keyed!(convert)),                BODY;
        /// `POST /v1/trials/skip`: no free trial, a paid checkout now.
        Skip,               "POST",  "/v1/trials/skip",             ApiKey(keyed!(skip)),                   BODY;
    ]
    /// `functions/cancel`: ending a trial early, and the admin's change.
    CANCEL = "cancel" [
        Cancel,             "POST",  "/v1/trials/{id}/cancel",      ApiKey(keyed!(cancel)),                 BODY;
        /// `PATCH /v1/trials/{id}`: admin keys only.
        Patch,              "PATCH", "/v1/trials/{id}",             admin!("change a trial", patch),        BODY;
    ]
    /// `functions/stripe-webhook`: Stripe's signed events.
    STRIPE_WEBHOOK = "stripe-webhook" [
        StripeWebhook,      "POST",  "/v1/webhooks/stripe",         StripeSignature(open!(stripe_webhook)), WEBHOOK_BODY;
    ]
    /// `functions/usage`: metering traffic.
    USAGE = "usage" [
        Usage,              "POST",  "/v1/trials/{id}/usage",       ApiKey(keyed!(usage)),                  BODY;
    ]
    /// `functions/manage`: the operator's and the customer's changes to a running trial.
    MANAGE = "manage" [
        Extend,             "POST",  "/v1/trials/{id}/extend",      admin!("extend a trial", extend),       BODY;
        Pause,              "POST",  "/v1/trials/{id}/pause",       ApiKey(keyed!(pause)),                  BODY;
        Resume,             "POST",  "/v1/trials/{id}/resume",      ApiKey(keyed!(resume)),                 BODY;
        /// `POST /v1/trials/{id}/change-plan`: another plan of the product, during the trial.
        ChangePlan,         "POST",  "/v1/trials/{id}/change-plan", ApiKey(keyed!(change_plan)),            BODY;
        /// `POST /v1/trials/{id}/activate`: a PENDING trial's clock starts.
        Activate,           "POST",  "/v1/trials/{id}/activate",    ApiKey(keyed!(activate)),               BODY;
    ]
}

impl Route {
    /// This route's row, handler included. Only for the local server and tests: reading it
    /// links [`ROUTES`], every handler (a function reads its own group).
    pub fn row(self) -> &'static Row {
        &ROUTES[self as usize]
    }

    /// This route's [`RouteInfo`] (no handler).
    pub fn info(self) -> &'static RouteInfo {
        &INFO[self as usize]
    }

    /// `METHOD path`, API Gateway's route key (`GET /v1/trials/{id}`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn max_body_bytes(self) -> usize {
        self.info().max_body_bytes
    }

    /// Every route, in the list's order.
    pub fn all() -> impl Iterator<Item = Route> {
        INFO.iter().map(|info| info.route)
    }

    /// The routes the Lambda function `function` serves (`functions/<function>`).
    pub fn served_by(function: &str) -> impl Iterator<Item = Route> + '_ {
        INFO.iter()
            .filter(move |info| info.function == function)
            .map(|info| info.route)
    }

    /// The route whose [`Route::name`] is API Gateway's `routeKey` (`GET /v1/trials/{id}`).
    pub fn from_route_key(key: &str) -> Option<Route> {
        INFO.iter()
            .find(|info| info.name == key)
            .map(|info| info.route)
    }

    /// Which route serves `method path` (a trailing `/` is ignored); for the local server and
    /// a request without a usable route key, where no API Gateway routes.
    pub fn resolve(method: &str, path: &str) -> Result<Route, ApiError> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let matching = || INFO.iter().filter(|info| matches(info.path, &segments));
        // The most literal of the matching patterns; its rows answer for the path.
        let best = matching()
            .map(|info| literal_segments(info.path))
            .max()
            .ok_or_else(ApiError::route_not_found)?;
        matching()
            .filter(|info| literal_segments(info.path) == best)
            .find(|info| info.method == method)
            .map(|info| info.route)
            .ok_or_else(ApiError::method_not_allowed)
    }
}

/// Whether `segments` (a path split on `/`, without the leading empty one) fit `pattern`.
fn matches(pattern: &str, segments: &[&str]) -> bool {
    let mut parts = pattern.split('/').skip(1);
    let fits = segments.iter().all(|segment| match parts.next() {
        Some(part) => is_parameter(part) || part == *segment,
        None => false,
    });
    fits && parts.next().is_none()
}

/// Which of `pattern`'s segments are literal: ordered so that a literal segment outranks `{id}`
/// at the first place two patterns differ.
fn literal_segments(pattern: &str) -> Vec<bool> {
    pattern.split('/').map(|part| !is_parameter(part)).collect()
}

fn is_parameter(part: &str) -> bool {
    part.starts_with('{') && part.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_sits_at_its_routes_index_and_names_are_unique() {
        assert_eq!(INFO.len(), ROUTES.len());
        for (index, row) in ROUTES.iter().enumerate() {
            assert_eq!(row.route as usize, index, "{} is out of order", row.name);
            assert_eq!(row.route.row().name, row.name);
            let info = row.route.info();
            assert_eq!(
                (info.route, info.method, info.path, info.name),
                (row.route, row.method, row.path, row.name)
            );
            assert_eq!(
                (info.max_body_bytes, info.function),
                (row.max_body_bytes, row.function)
            );
            assert_eq!(Route::from_route_key(row.name), Some(row.route));
            assert_eq!(
                ROUTES.iter().filter(|other| other.name == row.name).count(),
                1,
                "{} is listed twice",
                row.name
            );
        }
    }

    #[test]
    fn the_groups_are_the_table_each_row_in_its_functions_group() {
        let mut grouped = Vec::new();
        for function in FUNCTIONS {
            assert!(!function.rows.is_empty(), "{} has no route", function.name);
            assert_eq!(
                function.group,
                function.name.to_uppercase().replace('-', "_"),
                "a group is named for its function"
            );
            for row in function.rows {
                assert_eq!(row.function, function.name, "{}", row.name);
                grouped.push(row.route);
            }
        }
        assert_eq!(grouped, Route::all().collect::<Vec<_>>());
        let names: std::collections::BTreeSet<_> = FUNCTIONS.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), FUNCTIONS.len(), "a function listed twice");
        assert_eq!(STATUS.len(), Route::served_by("status").count());
    }

    #[test]
    fn every_row_resolves_to_itself() {
        for row in ROUTES {
            let path = row.path.replace("{id}", "trial_x");
            assert_eq!(
                Route::resolve(row.method, &path),
                Ok(row.route),
                "{}",
                row.name
            );
            let slashed = format!("{path}/");
            assert_eq!(Route::resolve(row.method, &slashed), Ok(row.route));
        }
    }

    #[test]
    fn admin_routes_say_what_a_standard_key_may_not_do() {
        let admin: Vec<(Route, &str)> = ROUTES
            .iter()
            .filter_map(|row| match row.auth {
                Auth::AdminKey { may, .. } => Some((row.route, may)),
                _ => None,
            })
            .collect();
        assert_eq!(
            admin,
            [
                (Route::Stats, "read the funnel"),
                (Route::Patch, "change a trial"),
                (Route::Extend, "extend a trial")
            ]
        );
    }

    #[test]
    fn the_webhook_alone_takes_large_bodies() {
        for row in ROUTES {
            let expected = match row.route {
                Route::StripeWebhook => MAX_WEBHOOK_BODY_BYTES,
                _ => MAX_BODY_BYTES,
            };
            assert_eq!(row.route.max_body_bytes(), expected, "{}", row.name);
        }
    }

    #[test]
    fn functions_serve_the_routes_they_are_named_for() {
        let served = |function| Route::served_by(function).collect::<Vec<_>>();
        assert_eq!(
            served("start"),
            [Route::Start, Route::EdgeImpulse, Route::MeStart]
        );
        assert_eq!(
            served("status"),
            [
                Route::Status,
                Route::Plans,
                Route::TrialData,
                Route::Current,
                Route::Eligibility,
                Route::Stats,
                Route::Timeline,
                Route::Access,
                Route::AccessFeature,
                Route::Gcore,
                Route::MeStatus,
                Route::MeCurrent,
            ]
        );
        assert_eq!(served("cancel"), [Route::Cancel, Route::Patch]);
        assert_eq!(served("convert"), [Route::Convert, Route::Skip]);
        assert_eq!(
            served("manage"),
            [
                Route::Extend,
                Route::Pause,
                Route::Resume,
                Route::ChangePlan,
                Route::Activate
            ]
        );
        assert_eq!(served("expire"), []);
        assert_eq!(Route::all().count(), ROUTES.len());
    }

    #[test]
    fn literal_segments_win_over_the_id() {
        for word in ["start", "current", "eligibility", "skip"] {
            let route = Route::resolve(
                if matches!(word, "current" | "eligibility") {
                    "GET"
                } else {
                    "POST"
                },
                &format!("/v1/trials/{word}"),
            );
            assert_ne!(route, Ok(Route::Status), "{word}");
            assert!(route.is_ok(), "{word}");
        }
        // The word's own pattern answers for the path: GET start is no trial read.
        assert_eq!(
            Route::resolve("GET", "/v1/trials/start")
                .unwrap_err()
                .code
                .as_str(),
            "method_not_allowed"
        );
        assert_eq!(
            Route::resolve("PATCH", "/v1/trials/current")
                .unwrap_err()
                .status(),
            405
        );
    }

    #[test]
    fn unknown_paths_and_methods() {
        for (method, path, code) in [
            ("DELETE", "/v1/trials/trial_x", "method_not_allowed"),
            ("GET", "/v1/trials/trial_x/cancel", "method_not_allowed"),
            ("GET", "/nope", "route_not_found"),
            ("GET", "/", "route_not_found"),
            ("GET", "", "route_not_found"),
            ("GET", "/v1/trials", "route_not_found"),
            ("GET", "/v1/trials/trial_x/data/more", "route_not_found"),
            ("POST", "/v2/trials/start", "route_not_found"),
            ("POST", "/v1/trials/trial_x/nope", "route_not_found"),
        ] {
            let err = Route::resolve(method, path).unwrap_err();
            assert_eq!(err.code.as_str(), code, "{method} {path}");
        }
        assert_eq!(Route::from_route_key("$default"), None);
        assert_eq!(Route::from_route_key("GET /v1/trials/{id}/nope"), None);
    }
}
