//! Idempotency records: one item per (org, key). A record is either COMPLETED (the stored
//! response) or IN_FLIGHT (a lease with an end). Every state change is a conditional write.
use aws_sdk_dynamodb::types::{Delete, Put};

use super::codec::{get_n, get_s, key, n, s, Item, Values};
use super::schema::{idempotency_pk, IDEMPOTENCY_SK, TTL};
use super::tx::{Outcome, Slot, Tx};
use super::{Store, StoreError};
use crate::domain::OrgId;

/// A response as it went out, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemState {
    Completed(StoredResponse),
    InFlight { lease_until_ms: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemRecord {
    pub fingerprint: String,
    pub state: IdemState,
    pub expires_at: i64,
}

/// Which record: keys are scoped per organization.
#[derive(Debug, Clone)]
pub struct IdemScope {
    pub org: OrgId,
    pub key: String,
}

impl IdemScope {
    fn pk(&self) -> String {
        idempotency_pk(&self.org, &self.key)
    }
}

const COMPLETED: &str = "COMPLETED";
const IN_FLIGHT: &str = "IN_FLIGHT";

/// The key is free when its record does not exist, has expired (DynamoDB's TTL deletes lazily,
/// so expiry is part of the condition rather than trusted to the sweeper), or is a lease whose
/// end has passed, taken over by the same request (its holder crashed or timed out).
const FREE: &str = "attribute_not_exists(pk) OR #ttl <= :now \
    OR (#state = :in_flight AND lease_until_ms < :now_ms AND fingerprint = :fp)";

fn free_values(now_ms: i64, fingerprint: &str) -> Option<Item> {
    Values::new()
        .n(":now", now_ms.div_euclid(1000))
        .n(":now_ms", now_ms)
        .s(":in_flight", IN_FLIGHT)
        .s(":fp", fingerprint)
        .build()
}

impl IdemRecord {
    pub fn from_item(item: &Item) -> Result<IdemRecord, StoreError> {
        let fingerprint = get_s(item, "fingerprint")
            .ok_or_else(|| StoreError::corrupt("idempotency record without fingerprint"))?
            .to_owned();
        let expires_at = get_n(item, TTL).unwrap_or(i64::MAX);
        let state = match get_s(item, "state") {
            Some(COMPLETED) => IdemState::Completed(StoredResponse {
                status: get_n(item, "status_code")
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or_else(|| StoreError::corrupt("idempotency record without status"))?,
                content_type: get_s(item, "content_type")
                    .unwrap_or("application/json")
                    .to_owned(),
                body: get_s(item, "body").unwrap_or_default().to_owned(),
            }),
            Some(IN_FLIGHT) => IdemState::InFlight {
                lease_until_ms: get_n(item, "lease_until_ms").unwrap_or(0),
            },
            other => {
                return Err(StoreError::corrupt(format!(
                    "idempotency record in state {other:?}"
                )))
            }
        };
        Ok(IdemRecord {
            fingerprint,
            state,
            expires_at,
        })
    }
}

impl<'a> Tx<'a> {
    /// The idempotency record of this request's answer, COMPLETED, for a key nobody holds:
    /// committed with the effect it answers for (no in-flight state needed when the response
    /// is known up front). The `Idempotency` slot; it fails if the key was claimed meanwhile.
    pub fn answer(
        self,
        scope: &IdemScope,
        fingerprint: &str,
        response: &StoredResponse,
        now_ms: i64,
        ttl_secs: i64,
    ) -> Result<Tx<'a>, StoreError> {
        let expires_at = now_ms.div_euclid(1000) + ttl_secs;
        let put = Put::builder()
            .table_name(self.store().table_name())
            .set_item(Some(completed_item(
                scope,
                fingerprint,
                response,
                expires_at,
            )))
            .condition_expression(FREE)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(free_values(now_ms, fingerprint))
            .build()?;
        Ok(self.put(Slot::Idempotency, put))
    }
}

fn completed_item(
    scope: &IdemScope,
    fingerprint: &str,
    response: &StoredResponse,
    expires_at: i64,
) -> Item {
    let mut item = key(scope.pk(), IDEMPOTENCY_SK);
    item.insert("fingerprint".into(), s(fingerprint));
    item.insert("state".into(), s(COMPLETED));
    item.insert("status_code".into(), n(response.status as i64));
    item.insert("content_type".into(), s(&response.content_type));
    item.insert("body".into(), s(&response.body));
    item.insert(TTL.into(), n(expires_at));
    item
}

impl Store {
    /// A COMPLETED record that replaces the lease `token` holds.
    pub fn idempotency_put_owned(
        &self,
        scope: &IdemScope,
        token: &str,
        fingerprint: &str,
        response: &StoredResponse,
        now_ms: i64,
        ttl_secs: i64,
    ) -> Result<Put, StoreError> {
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(completed_item(
                scope,
                fingerprint,
                response,
                now_ms.div_euclid(1000) + ttl_secs,
            )))
            .condition_expression("lease_token = :token")
            .set_expression_attribute_values(Values::new().s(":token", token).build())
            .build()?)
    }

    /// Stores a COMPLETED record on its own. `Err(existing)`-like answer as a named outcome:
    /// [`Claim::Taken`] when another request got there first.
    pub async fn idempotency_record(
        &self,
        scope: &IdemScope,
        fingerprint: &str,
        response: &StoredResponse,
        now_ms: i64,
        ttl_secs: i64,
    ) -> Result<Claim, StoreError> {
        let tx = self
            .tx()
            .answer(scope, fingerprint, response, now_ms, ttl_secs)?;
        claim(tx.commit().await?)
    }

    /// Takes the key for one execution until `lease_until_ms`. A lease whose time has passed
    /// (its holder crashed or timed out) may be taken over by a request with the same fingerprint.
    pub async fn idempotency_acquire(
        &self,
        scope: &IdemScope,
        fingerprint: &str,
        token: &str,
        lease_until_ms: i64,
        now_ms: i64,
        ttl_secs: i64,
    ) -> Result<Claim, StoreError> {
        let now = now_ms.div_euclid(1000);
        let mut item = key(scope.pk(), IDEMPOTENCY_SK);
        item.insert("fingerprint".into(), s(fingerprint));
        item.insert("state".into(), s(IN_FLIGHT));
        item.insert("lease_token".into(), s(token));
        item.insert("lease_until_ms".into(), n(lease_until_ms));
        item.insert(TTL.into(), n(now + ttl_secs));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(FREE)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(free_values(now_ms, fingerprint))
            .build()?;
        claim(self.tx().put(Slot::Idempotency, put).commit().await?)
    }

    /// Ends a lease without a stored outcome, so the client's retry runs again (5xx, transient).
    /// A lease already taken over by someone else is left alone.
    pub async fn idempotency_release(
        &self,
        scope: &IdemScope,
        token: &str,
    ) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(scope.pk(), IDEMPOTENCY_SK)))
            .condition_expression("lease_token = :token")
            .set_expression_attribute_values(Values::new().s(":token", token).build())
            .build()?;
        // Committed or rejected (someone else holds the key now): either way, nothing to do.
        self.tx().delete(Slot::Idempotency, delete).commit().await?;
        Ok(())
    }

    /// Stores the outcome for the lease `token` holds (no effect in the table to commit with
    /// it). `false`: the lease was lost meanwhile (it ran out and a retry took the key over).
    pub async fn idempotency_complete(&self, put: Put) -> Result<bool, StoreError> {
        Ok(self
            .tx()
            .put(Slot::Idempotency, put)
            .commit()
            .await?
            .committed())
    }

    /// Reads a record (for a transaction whose idempotency condition failed without the old item).
    pub async fn idempotency_get(
        &self,
        scope: &IdemScope,
    ) -> Result<Option<IdemRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(scope.pk(), IDEMPOTENCY_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        out.item.as_ref().map(IdemRecord::from_item).transpose()
    }
}

/// Whether a conditional write of the record took the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours (a new record, or a lease we hold).
    Taken,
    /// Someone holds the key: the record as it is.
    Held(IdemRecord),
}

fn claim(outcome: Outcome) -> Result<Claim, StoreError> {
    match outcome {
        Outcome::Committed => Ok(Claim::Taken),
        Outcome::Rejected(r) => {
            let old = r.old(Slot::Idempotency).ok_or_else(|| {
                StoreError::corrupt("idempotency condition failed without the old item")
            })?;
            Ok(Claim::Held(IdemRecord::from_item(old)?))
        }
    }
}
