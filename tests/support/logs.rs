//! Log lines written while a test runs: a `MakeWriter` for the log layer every process uses
//! (`trials::telemetry::layer`), whose text the test then searches.
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Everything written to it, shared by its clones (the layer writes through one, the test
/// reads through another).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// The lines written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// While it lives, this thread's default subscriber is the service's own log layer
/// (`trials::telemetry::layer`, at its most verbose) writing to the [`Captured`] that
/// [`capture`] returned with it. Drop it to stop capturing.
pub struct CaptureGuard {
    _default: tracing::subscriber::DefaultGuard,
    // While a single dispatcher is registered, tracing-core asks only the registering thread's
    // default about a new call site: another test's thread meeting a call site first would
    // switch it off for good. A second registered dispatcher makes it ask all.
    _second: tracing::Dispatch,
}

/// Captures every log line of this thread (use a `current_thread` runtime, so that every task
/// of the test runs on it) until the guard is dropped.
pub fn capture() -> (Captured, CaptureGuard) {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = Captured::default();
    let subscriber = tracing_subscriber::registry().with(trials::telemetry::layer(
        tracing::Level::TRACE,
        logs.clone(),
    ));
    let second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let guard = CaptureGuard {
        _default: tracing::subscriber::set_default(subscriber),
        _second: second,
    };
    (logs, guard)
}
