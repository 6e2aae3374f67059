//! AWS clients, built once per process on one lean HTTP stack (hyper + rustls on ring).
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_smithy_http_client::tls::{TlsContext, TrustStore};
use aws_smithy_http_client::{tls, Builder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

fn http_client() -> SharedHttpClient {
    Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The roots AWS service endpoints chain to (Amazon Trust Services, and the Starfield root that
/// cross-signs them), compiled in. Loading the system store instead reads and parses every file
/// under /etc/ssl/certs when the client is built: measured here, that was most of a function's
/// init time (`make bench`, BENCHMARKS.md).
const AWS_ROOTS: &[u8] = include_bytes!("../certs/aws-roots.pem");

/// The HTTP client of the deployed functions: AWS endpoints only, trusting AWS's roots.
/// `AWS_TLS_NATIVE_ROOTS=1` trusts the system store instead (e.g. behind a TLS-inspecting proxy).
fn aws_http_client() -> SharedHttpClient {
    if std::env::var("AWS_TLS_NATIVE_ROOTS").is_ok_and(|v| v == "1") {
        return http_client();
    }
    let context = TlsContext::builder()
        .with_trust_store(
            TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(AWS_ROOTS),
        )
        .build();
    match context {
        Ok(context) => Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(context)
            .build_https(),
        Err(_) => http_client(),
    }
}

/// The shared SDK configuration of a deployed function. Lambda puts the region and the
/// execution role's credentials in the environment, so they are read from there directly:
/// walking the SDK's default provider chain (profiles, SSO, IMDS...) costs init time for
/// nothing. Outside Lambda (no key in the environment) the full chain is used.
async fn shared_config() -> aws_config::SdkConfig {
    match lambda_environment() {
        Some(shared) => shared,
        None => {
            aws_config::defaults(BehaviorVersion::latest())
                .http_client(aws_http_client())
                .load()
                .await
        }
    }
}

/// The DynamoDB client of a deployed function (or `trialctl`). `DYNAMODB_ENDPOINT` points it
/// elsewhere (a local dynoxide). A loopback endpoint with no credentials in the environment
/// gets the local client's dummy credentials: the default chain would otherwise end probing
/// the EC2 instance metadata service, which a laptop does not have (a slow failure).
pub async fn from_environment(dynamodb_endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    if let Some(endpoint) = dynamodb_endpoint {
        if is_loopback_endpoint(endpoint) && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            return local_dynamodb(endpoint);
        }
    }
    let mut dynamo = aws_sdk_dynamodb::config::Builder::from(&shared_config().await)
        .retry_config(dynamodb_retry_config());
    if let Some(endpoint) = dynamodb_endpoint {
        dynamo = dynamo.endpoint_url(endpoint);
    }
    aws_sdk_dynamodb::Client::from_conf(dynamo.build())
}

/// The EventBridge client of the `publish` function (and of `trialctl events replay`): the
/// only code that calls EventBridge.
pub async fn eventbridge_from_environment() -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(&shared_config().await)
}

fn lambda_environment() -> Option<aws_config::SdkConfig> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"))?;
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN"),
        None,
        "environment",
    );
    Some(
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                credentials,
            ))
            .http_client(aws_http_client())
            .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep()?)
            .time_source(aws_smithy_async::time::SystemTimeSource::new())
            .build(),
    )
}

/// The DynamoDB client's own retries, of throttles and 5xx (never of conflicts, which
/// [`crate::store::Tx`] retries): 3 attempts with DynamoDB's recommended 25 ms base instead of
/// the SDK's 1 s default, which alone would eat a tenth of an API function's 10 s timeout. See
/// the worst case of both together in `store/tx.rs`.
pub fn dynamodb_retry_config() -> aws_sdk_dynamodb::config::retry::RetryConfig {
    aws_sdk_dynamodb::config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(std::time::Duration::from_millis(25))
        .with_max_backoff(std::time::Duration::from_secs(1))
}

/// Whether `endpoint` (`http://127.0.0.1:8000`, `http://localhost:8000/`, `http://[::1]:8000`)
/// names this machine.
pub fn is_loopback_endpoint(endpoint: &str) -> bool {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A DynamoDB client for a local endpoint (dynoxide): fixed region, dummy credentials, no
/// credential chain to walk.
pub fn local_dynamodb_config(endpoint: &str) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "local",
            "local",
            None,
            None,
            "trials-local",
        ))
        .endpoint_url(endpoint)
        .retry_config(dynamodb_retry_config())
        .http_client(http_client())
}

pub fn local_dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(local_dynamodb_config(endpoint).build())
}

/// An EventBridge client for a local endpoint (the tests' recorder).
pub fn local_eventbridge(endpoint: &str) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "trials-local",
        ))
        .endpoint_url(endpoint)
        .http_client(http_client())
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_retries_three_times_from_a_25_ms_base() {
        let config = local_dynamodb_config("http://127.0.0.1:8000").build();
        let retry = config.retry_config().expect("a retry config");
        assert_eq!(retry.max_attempts(), 3);
        assert_eq!(
            retry.initial_backoff(),
            std::time::Duration::from_millis(25)
        );
        assert_eq!(retry.max_backoff(), std::time::Duration::from_secs(1));
    }

    #[test]
    fn loopback_endpoints_are_told_from_remote_ones() {
        for local in [
            "http://127.0.0.1:8000",
            "http://localhost:8000/",
            "http://LOCALHOST",
            "http://[::1]:8000",
            "127.0.0.2:8000",
        ] {
            assert!(is_loopback_endpoint(local), "{local}");
        }
        for remote in [
            "https://dynamodb.eu-west-1.amazonaws.com",
            "http://10.0.0.5:8000",
            "http://localhost.example.com:8000",
            "http://[2001:db8::1]:8000",
            "",
        ] {
            assert!(!is_loopback_endpoint(remote), "{remote}");
        }
    }
}
