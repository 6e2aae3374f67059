//! Structured JSON logs: one object per line, as CloudWatch Logs Insights expects.
use tracing_subscriber::filter::{filter_fn, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub fn init() {
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let verbose = level >= tracing::Level::DEBUG;
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_filter(LevelFilter::from_level(level))
        // The embedded DynamoDB of the local run logs every refused condition, which is how
        // this service works, not news; it speaks only when asked for debug logs.
        .with_filter(filter_fn(move |meta| {
            verbose || !meta.target().starts_with("dynoxide")
        }));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
