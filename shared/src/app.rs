//! Everything a handler needs, built once per process (Lambda init, the local server, a test).
use std::sync::Arc;

use crate::auth::KeyCache;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::events::DomainEvent;
use crate::events::Publisher;
use crate::store::Store;
use crate::stripe::StripeClient;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub publisher: Publisher,
    pub stripe: StripeClient,
    pub keys: KeyCache,
}

impl App {
    pub fn new(config: Config, store: Store, publisher: Publisher, clock: Arc<dyn Clock>) -> App {
        let stripe = StripeClient::new(&config.stripe);
        let keys = KeyCache::new(config.api_key_cache_secs);
        App {
            config: Arc::new(config),
            store,
            clock,
            publisher,
            stripe,
            keys,
        }
    }

    /// The deployed wiring: configuration from the environment, AWS clients from the Lambda
    /// environment, the system clock.
    pub async fn from_env() -> Result<App, String> {
        let config = Config::from_env()?;
        let (dynamo, eventbridge) =
            crate::aws::from_environment(config.dynamodb_endpoint.as_deref()).await;
        let store = Store::new(dynamo, config.table_name.clone(), config.due_shards);
        let publisher = match &config.event_bus {
            Some(bus) => Publisher::EventBridge {
                client: eventbridge,
                bus: bus.clone(),
            },
            None => Publisher::Log,
        };
        Ok(App::new(config, store, publisher, Arc::new(SystemClock)))
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// After a change has committed (its events are in the outbox): publish them now and drop
    /// them from the outbox. A failure is logged and left to the scheduled job; it never fails
    /// the request, whose change is already durable.
    /// Returns how many were published.
    pub async fn publish_committed(&self, events: &[DomainEvent]) -> usize {
        let published = self.publisher.publish(events).await;
        if published.len() < events.len() {
            tracing::warn!(
                pending = events.len() - published.len(),
                "events left in the outbox for the next scheduled run"
            );
        }
        let ids: Vec<&str> = published.iter().map(String::as_str).collect();
        if let Err(e) = self.store.outbox_ack(&ids).await {
            tracing::warn!(error = %e, "outbox acknowledgement failed; the events may be published again");
        }
        published.len()
    }
}
