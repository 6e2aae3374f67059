//! Structured JSON logs: one object per line, as CloudWatch Logs Insights expects.
use tracing::Subscriber;
use tracing_subscriber::filter::{filter_fn, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub fn init() {
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::registry()
        .with(layer(level, std::io::stdout))
        .try_init();
}

/// The log layer every process uses, at `level`, writing to `writer` (tests capture it).
pub fn layer<S, W>(level: tracing::Level, writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let verbose = level >= tracing::Level::DEBUG;
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer)
        .with_filter(LevelFilter::from_level(level))
        // The embedded DynamoDB of the local run logs every refused condition, which is how
        // this service works, not news; it speaks only when asked for debug logs.
        .with_filter(filter_fn(move |meta| {
            verbose || !meta.target().starts_with("dynoxide")
        }))
        // At trace level the AWS SDK and the embedded DynamoDB log whole requests and
        // responses: DynamoDB items, API key hashes among them. Trace is for this service's
        // own code; other crates go no further than debug (operations, retries, timings).
        .with_filter(filter_fn(|meta| {
            *meta.level() < tracing::Level::TRACE || meta.target().starts_with("trials")
        }))
        // Events only: a line never shows span context (above), so a span the SDK opens per
        // request and per attempt would be allocated in the registry and entered on every poll
        // for nothing. Disabled here, its callsite is never interesting and costs nothing
        // (BENCHMARKS.md section 7 measured the registry at ~3% of a warm invocation's CPU).
        .with_filter(filter_fn(|meta| meta.is_event()))
}
