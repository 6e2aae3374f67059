//! Everything a handler needs, built once per process (Lambda init, the local server, a test).
//! No EventBridge client: handlers write events to the table and the stream publishes them.
use std::sync::Arc;

use crate::auth::{Authenticator, KeyCache};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::org_guard::KnownTrials;
use crate::store::Store;
use crate::stripe::StripeClient;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub stripe: StripeClient,
    pub keys: KeyCache,
    /// Which trial each org's guard names, as this process has read it (never changes).
    pub known_trials: KnownTrials,
}

impl App {
    pub fn new(config: Config, store: Store, clock: Arc<dyn Clock>) -> App {
        let stripe = StripeClient::new(&config.stripe);
        let keys = KeyCache::new(config.api_key_cache_secs);
        let store = store.with_pending_max_age(config.pending_payment_max_age_secs);
        App {
            config: Arc::new(config),
            store,
            clock,
            stripe,
            keys,
            known_trials: KnownTrials::default(),
        }
    }

    /// The deployed wiring: configuration from the environment, the DynamoDB client from the
    /// Lambda environment, the system clock.
    pub async fn from_env() -> Result<App, String> {
        let config = Config::from_env()?;
        let dynamo = crate::aws::from_environment(config.dynamodb_endpoint.as_deref()).await;
        let store = Store::new(dynamo, config.table_name.clone(), config.due_shards);
        Ok(App::new(config, store, Arc::new(SystemClock)))
    }

    /// What authentication reads, borrowed from this app.
    pub fn auth(&self) -> Authenticator<'_> {
        Authenticator {
            cache: &self.keys,
            store: &self.store,
            clock: &*self.clock,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}
