//! An SDK interceptor on the DynamoDB client that meters capacity: while on, it asks every
//! data-plane request for `ReturnConsumedCapacity=TOTAL` and sums the `ConsumedCapacity` the
//! store (dynoxide, like DynamoDB) answers, by operation. Off by default, so other tests send
//! exactly what the app sends; `tests/integration/capacity.rs` turns it on around one call.
//! Cost: one JSON parse of each request and response body while on, nothing while off.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

/// The operations that accept `ReturnConsumedCapacity` (control-plane calls do not).
const METERED: &[&str] = &[
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
];

/// Capacity units one operation consumed, summed over its requests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Units {
    pub requests: usize,
    pub read: f64,
    pub write: f64,
}

#[derive(Clone, Debug, Default)]
pub struct CapacityMeter {
    on: Arc<AtomicBool>,
    units: Arc<Mutex<BTreeMap<String, Units>>>,
}

impl CapacityMeter {
    /// Starts metering from zero.
    pub fn start(&self) {
        self.units.lock().unwrap().clear();
        self.on.store(true, Ordering::SeqCst);
    }

    /// Stops metering and returns what was consumed since `start`, by operation.
    pub fn stop(&self) -> BTreeMap<String, Units> {
        self.on.store(false, Ordering::SeqCst);
        self.units.lock().unwrap().clone()
    }
}

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| m.name().to_owned())
        .unwrap_or_default()
}

/// Read and write units of one response's `ConsumedCapacity` (an object, or a list for
/// transactions and batches). A total without a split counts as `fallback_write` says.
fn consumed(body: &Value, fallback_write: bool) -> (f64, f64) {
    let entries = match body.get("ConsumedCapacity") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => vec![],
    };
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    entries.iter().fold((0.0, 0.0), |(r, w), e| {
        match (num(e, "ReadCapacityUnits"), num(e, "WriteCapacityUnits")) {
            (None, None) => {
                let total = num(e, "CapacityUnits").unwrap_or(0.0);
                if fallback_write {
                    (r, w + total)
                } else {
                    (r + total, w)
                }
            }
            (read, write) => (r + read.unwrap_or(0.0), w + write.unwrap_or(0.0)),
        }
    })
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !self.on.load(Ordering::SeqCst) || !METERED.contains(&operation(cfg).as_str()) {
            return Ok(());
        }
        let request = context.request_mut();
        let Some(bytes) = request.body().bytes() else {
            return Ok(());
        };
        let mut body: Value = serde_json::from_slice(bytes)?;
        body["ReturnConsumedCapacity"] = Value::from("TOTAL");
        let bytes = serde_json::to_vec(&body)?;
        request
            .headers_mut()
            .insert("content-length", bytes.len().to_string());
        *request.body_mut() = SdkBody::from(bytes);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        if !self.on.load(Ordering::SeqCst) || !METERED.contains(&op.as_str()) {
            return Ok(());
        }
        let Some(bytes) = context.response().body().bytes() else {
            return Ok(());
        };
        let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let is_write = !matches!(
            op.as_str(),
            "GetItem" | "Query" | "Scan" | "BatchGetItem" | "TransactGetItems"
        );
        let (read, write) = consumed(&body, is_write);
        let mut units = self.units.lock().unwrap();
        let entry = units.entry(op).or_default();
        entry.requests += 1;
        entry.read += read;
        entry.write += write;
        Ok(())
    }
}
