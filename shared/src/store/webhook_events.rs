//! Stripe event ids already processed, kept while Stripe may still redeliver them.
use aws_sdk_dynamodb::types::Put;

use super::codec::{key, n, s};
use super::schema::{stripe_event_pk, STRIPE_EVENT_SK, TTL};
use super::{Store, StoreError};

/// Stripe retries a delivery for up to three days.
pub const STRIPE_EVENT_RETENTION_SECS: i64 = 3 * 86_400 + 3_600;

impl Store {
    /// Records `event_id` as processed; fails its condition if it already was (and has not
    /// expired: TTL deletion is lazy).
    pub fn stripe_event_put(
        &self,
        event_id: &str,
        event_type: &str,
        now: i64,
    ) -> Result<Put, StoreError> {
        let mut item = key(stripe_event_pk(event_id), STRIPE_EVENT_SK);
        item.insert("event_type".into(), s(event_type));
        item.insert("processed_at".into(), n(now));
        item.insert(TTL.into(), n(now + STRIPE_EVENT_RETENTION_SECS));
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", TTL)
            .set_expression_attribute_values(super::codec::Values::new().n(":now", now).build())
            .build()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::get_n;
    use super::*;

    #[test]
    fn a_processed_event_is_remembered_while_stripe_may_still_redeliver_it() {
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        );
        let store = Store::new(client, "trials", 1);
        let put = store
            .stripe_event_put("evt_1", "checkout.session.completed", 1_000)
            .unwrap();
        // Stripe retries a delivery for up to three days (its webhook docs), plus an hour of
        // margin.
        assert_eq!(get_n(put.item(), TTL), Some(1_000 + 3 * 86_400 + 3_600));
        assert_eq!(get_n(put.item(), "processed_at"), Some(1_000));
    }
}
