//! An SDK interceptor on the DynamoDB client: counts requests by operation (round-trip
//! assertions, read bounds), can make every request fail (outage tests), and can run a hook
//! just before a request is sent (races made deterministic: another writer's change lands
//! between a handler's read and its write).
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Clone, Default)]
pub struct DynamoCounter {
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
    failing: Arc<AtomicBool>,
    before: Arc<Mutex<Option<(String, Hook)>>>,
}

impl std::fmt::Debug for DynamoCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoCounter")
            .field("counts", &self.counts)
            .finish()
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

    /// Runs `hook` once, just before the next request of `operation` is sent, on the thread
    /// sending it: the request waits for the hook. The hook must not use this client (see
    /// `writes::meanwhile`, which writes through a client of its own).
    pub fn before_next(&self, operation: &str, hook: impl FnOnce() + Send + 'static) {
        *self.before.lock().unwrap() = Some((operation.to_owned(), Box::new(hook)));
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
        let hook = {
            let mut before = self.before.lock().unwrap();
            match before.as_ref() {
                Some((op, _)) if *op == operation => before.take().map(|(_, hook)| hook),
                _ => None,
            }
        };
        if let Some(hook) = hook {
            hook();
        }
        *self.counts.lock().unwrap().entry(operation).or_default() += 1;
        Ok(())
    }
}
