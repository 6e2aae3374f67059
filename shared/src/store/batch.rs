//! `BatchGetItem` to the end: every read of several items at once (a key with its trial, an
//! org's standing, the dashboard's counters) goes through [`Store::batch_get`], which asks
//! again, with a backoff, for the keys DynamoDB left unprocessed (throttling). Dropping them
//! would read an item that exists as absent: an API key as unknown (a 401), a guard as missing.
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::codec::Item;
use super::{Store, StoreError};

/// Attempts at a `BatchGetItem` whose keys DynamoDB leaves unprocessed.
const BATCH_ATTEMPTS: u32 = 4;

impl Store {
    /// Every item of `request` (at most 100 keys, DynamoDB's limit) that exists, in no
    /// particular order. Keys still unprocessed after [`BATCH_ATTEMPTS`] are a retryable
    /// [`StoreError::Unavailable`].
    pub async fn batch_get(&self, request: KeysAndAttributes) -> Result<Vec<Item>, StoreError> {
        let mut request = request;
        let mut found = Vec::new();
        for attempt in 0..BATCH_ATTEMPTS {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request.clone())
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            found.extend(
                out.responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default(),
            );
            match still_unprocessed(out.unprocessed_keys, &self.table) {
                None => return Ok(found),
                Some(rest) => request = rest,
            }
            if attempt + 1 < BATCH_ATTEMPTS {
                tokio::time::sleep(batch_backoff(attempt)).await;
            }
        }
        Err(StoreError::Unavailable(
            "BatchGetItem left keys unprocessed after retries".into(),
        ))
    }
}

/// The keys of `table` a `BatchGetItem` answer left unprocessed, if any: what the next attempt
/// asks for.
fn still_unprocessed(
    unprocessed: Option<HashMap<String, KeysAndAttributes>>,
    table: &str,
) -> Option<KeysAndAttributes> {
    unprocessed
        .and_then(|mut u| u.remove(table))
        .filter(|k| !k.keys.is_empty())
}

/// The pause before attempt `attempt + 1`: 10, 20, 40 ms, doubling as AWS advises for
/// unprocessed keys (retrying at once would meet the same throttling).
fn batch_backoff(attempt: u32) -> Duration {
    Duration::from_millis(10 << attempt)
}

#[cfg(test)]
mod tests {
    use super::super::codec::key;
    use super::*;

    fn keys(n: usize) -> KeysAndAttributes {
        let keys = (0..n).map(|i| key(format!("APIKEY#k{i}"), "KEY")).collect();
        KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .build()
            .unwrap()
    }

    #[test]
    fn unprocessed_keys_of_the_table_are_asked_for_again() {
        let left = HashMap::from([("trials".to_owned(), keys(1))]);
        assert_eq!(still_unprocessed(Some(left), "trials"), Some(keys(1)));
        // Nothing left, an empty entry, or another table's keys: the answer is complete.
        assert_eq!(still_unprocessed(None, "trials"), None);
        let empty = HashMap::from([("trials".to_owned(), keys(0))]);
        assert_eq!(still_unprocessed(Some(empty), "trials"), None);
        let other = HashMap::from([("other".to_owned(), keys(2))]);
        assert_eq!(still_unprocessed(Some(other), "trials"), None);
    }

    #[test]
    fn retries_of_unprocessed_keys_back_off() {
        let pauses: Vec<u128> = (0..BATCH_ATTEMPTS - 1)
            .map(|a| batch_backoff(a).as_millis())
            .collect();
        assert_eq!(pauses, [10, 20, 40]);
    }
}
