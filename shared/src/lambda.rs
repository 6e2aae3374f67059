//! The Lambda entry points the function binaries call: init once, then serve.
use std::convert::Infallible;

use lambda_http::{service_fn, Request};

use crate::api::Row;
use crate::jobs::Job;
use crate::App;

/// An HTTP function (`functions/<name>`): the routes of its group in
/// [`crate::api::routes`] (`trials::lambda::serve(trials::api::routes::STATUS)`). The group is
/// all the binary links of the route table: the other functions' handlers stay out of it. One
/// route is served as is (API Gateway sends it nothing else); several are told apart by
/// [`crate::api::handle_among`]. An empty group is an error at init, not a function that answers
/// 404 to everything.
pub async fn serve(rows: &'static [Row]) -> Result<(), crate::BoxError> {
    if rows.is_empty() {
        return Err("an HTTP function needs at least one route in its group".into());
    }
    crate::telemetry::init();
    let app = App::from_env().await?;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(match rows {
            [row] => crate::api::handle_row(app, row, req).await,
            _ => crate::api::handle_among(app, rows, req).await,
        })
    }))
    .await
}

pub async fn serve_job(job: Job) -> Result<(), crate::BoxError> {
    crate::telemetry::init();
    let app = App::from_env().await?;
    let app = &app;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let deadline_ms = crate::clock::plausible_deadline(
                event.context.deadline as i64,
                app.clock.now_millis(),
            );
            // One report: the sum of the function's jobs, and each job's under `jobs` when it
            // runs several.
            let jobs = job.function_jobs();
            let mut total = crate::jobs::RunReport::nothing_yet();
            let mut each = serde_json::Map::new();
            for job in jobs {
                let report = crate::jobs::run(app, *job, deadline_ms).await;
                total.add(&report);
                each.insert(
                    job.name().to_owned(),
                    serde_json::to_value(report).unwrap_or_default(),
                );
            }
            let mut out = serde_json::to_value(total).unwrap_or_default();
            if jobs.len() > 1 {
                out["jobs"] = serde_json::Value::Object(each);
            }
            Ok::<_, Infallible>(out)
        },
    ))
    .await
}

/// The `publish` function: DynamoDB stream batches in, funnel counts (the table) and
/// `PutEvents` out, failed records back as batch item failures. Needs `EVENT_BUS_NAME` (no bus:
/// events go to the log) and the table (`TABLE_NAME`, as every function).
pub async fn serve_publisher() -> Result<(), crate::BoxError> {
    crate::telemetry::init();
    let config = crate::config::Config::from_env()?;
    let dynamo = crate::aws::from_environment(config.dynamodb_endpoint.as_deref()).await;
    let store = crate::store::Store::new(dynamo, config.table_name.clone(), config.due_shards);
    let store = &store;
    let publisher = match std::env::var("EVENT_BUS_NAME")
        .ok()
        .filter(|b| !b.is_empty())
    {
        Some(bus) => crate::publish::Publisher::EventBridge {
            client: crate::aws::eventbridge_from_environment().await,
            bus,
        },
        None => crate::publish::Publisher::Log,
    };
    let publisher = &publisher;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let result = crate::publish::stream::handle(publisher, store, &event.payload).await;
            Ok::<_, Infallible>(result.response())
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Route;

    #[tokio::test]
    async fn a_function_with_no_route_does_not_start() {
        let err = serve(&[]).await.unwrap_err();
        assert!(err.to_string().contains("at least one route"), "{err}");
    }

    fn route_of(req: &Request) -> Option<Route> {
        crate::api::route_of(req).ok()
    }

    fn event(route_key: &str, raw_path: &str) -> Request {
        let mut json: serde_json::Value =
            serde_json::from_str(include_str!("../../events/status.json")).unwrap();
        json["routeKey"] = route_key.into();
        json["requestContext"]["routeKey"] = route_key.into();
        json["rawPath"] = raw_path.into();
        json["requestContext"]["http"]["path"] = raw_path.into();
        lambda_http::request::from_str(&json.to_string()).unwrap()
    }

    #[test]
    fn the_route_is_api_gateways_route_key() {
        let id = "/v1/trials/trial_0123456789abcdef01234567";
        assert_eq!(
            route_of(&event("GET /v1/trials/{id}", id)),
            Some(Route::Status)
        );
        assert_eq!(
            route_of(&event("GET /v1/trials/{id}/data", &format!("{id}/data"))),
            Some(Route::TrialData)
        );
        // No usable route key (a `$default` route): the method and path decide.
        assert_eq!(
            route_of(&event("$default", "/v1/plans")),
            Some(Route::Plans)
        );
        assert_eq!(route_of(&event("$default", "/v1/nope")), None);
    }
}
