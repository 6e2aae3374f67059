//! An SDK interceptor on the DynamoDB client: counts requests by operation (round-trip
//! assertions, read bounds) and can make every request fail (outage tests).
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Clone, Debug, Default)]
pub struct DynamoCounter {
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
    failing: Arc<AtomicBool>,
    hold: Arc<Mutex<Option<HoldSpec>>>,
}

/// A request to stop, once, just before it is sent: an explicit interleaving at the store
/// boundary (the caller has read and decided; its write has not reached DynamoDB yet).
#[derive(Debug)]
struct HoldSpec {
    operation: String,
    reached: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
}

/// The far end of [`DynamoCounter::hold_next`].
pub struct Held {
    reached: Arc<Mutex<std::sync::mpsc::Receiver<()>>>,
    go: std::sync::mpsc::Sender<()>,
}

impl Held {
    /// Waits until the held request is about to be sent (the sender's thread is blocked).
    /// A request that never comes fails the test (after a generous minute) instead of hanging.
    pub async fn reached(&self) {
        let reached = self.reached.clone();
        tokio::task::spawn_blocking(move || {
            reached
                .lock()
                .unwrap()
                .recv_timeout(std::time::Duration::from_secs(60))
        })
        .await
        .expect("wait task")
        .expect("the held request was never sent");
    }

    /// Lets the held request go.
    pub fn release(self) {
        self.go.send(()).expect("held request gone");
    }
}

impl DynamoCounter {
    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
    }

    /// Requests sent since the last reset, all operations.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap().values().sum()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.counts
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    pub fn by_operation(&self) -> BTreeMap<String, usize> {
        self.counts.lock().unwrap().clone()
    }

    /// Holds the next request of `operation` just before it is sent, until released. The holder
    /// blocks its thread: use a multi-threaded runtime, and run the held work in its own task.
    pub fn hold_next(&self, operation: &str) -> Held {
        let (reached_tx, reached_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel();
        *self.hold.lock().unwrap() = Some(HoldSpec {
            operation: operation.to_owned(),
            reached: reached_tx,
            go: go_rx,
        });
        Held {
            reached: Arc::new(Mutex::new(reached_rx)),
            go: go_tx,
        }
    }

    /// While set, every DynamoDB request fails before it is sent.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl Intercept for DynamoCounter {
    fn name(&self) -> &'static str {
        "DynamoCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_else(|| "unknown".into());
        if self.failing.load(Ordering::SeqCst) {
            return Err(format!("injected DynamoDB outage ({operation})").into());
        }
        *self
            .counts
            .lock()
            .unwrap()
            .entry(operation.clone())
            .or_default() += 1;
        let held = {
            let mut hold = self.hold.lock().unwrap();
            match hold.as_ref() {
                Some(spec) if spec.operation == operation => hold.take(),
                _ => None,
            }
        };
        if let Some(spec) = held {
            let _ = spec.reached.send(());
            wait_off_the_runtime(|| {
                let _ = spec.go.recv();
            });
        }
        Ok(())
    }
}

/// Blocks this thread until `wait` returns, without stranding the runtime's work: on a
/// multi-thread runtime the worker first hands its queued tasks to another thread
/// (`block_in_place`). Blocking the worker outright stalls whatever sits in its local run
/// queue (its LIFO slot cannot be stolen): a racer's connection or the embedded DynamoDB's
/// handling of it would then wait for the release that waits for it (seen as a hung test on
/// a loaded machine).
fn wait_off_the_runtime(wait: impl FnOnce()) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}
