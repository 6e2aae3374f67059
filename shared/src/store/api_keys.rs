//! API key items: the key record (`APIKEY#<key_id>`, with the hash; what a request reads) and
//! its listing entry under the org (`ORG#<org>` / `KEY#<key_id>`, without the hash; what
//! `trialctl keys list` queries), written together.
use std::fmt;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, ReturnValue};

use super::codec::{get_bool, get_n, get_s, get_ss, key, n, next_page, s, Item, Values};
use super::schema::{
    api_key_listing_sk, api_key_pk, org_pk, trial_pk, API_KEY_LISTING_PREFIX, API_KEY_SK, PK,
    TRIAL_SK,
};
use super::trials::trial_from_item;
use super::tx::{Outcome, Slot};
use super::{Store, StoreError};
use crate::domain::api_key::{KeyInfo, Projects};
use crate::domain::{OrgId, ProjectId, Trial, TrialId};

const HASH: &str = "key_hash";

/// A key record as stored: what is known about the key, and the SHA-256 of the key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub info: KeyInfo,
    pub hash: String,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("info", &self.info)
            .field("hash", &"***")
            .finish()
    }
}

fn stored_key(item: &Item) -> Result<StoredKey, StoreError> {
    let hash = get_s(item, HASH)
        .ok_or_else(|| StoreError::corrupt("api key without key_hash"))?
        .to_owned();
    Ok(StoredKey {
        info: read_info(item)?,
        hash,
    })
}

impl Store {
    /// Writes the key record and its listing entry in one transaction; neither may exist
    /// (a rejection means the key id is taken: a 1 in 2^64 draw, or the same key written twice).
    pub async fn put_api_key(&self, info: &KeyInfo, hash: &str) -> Result<Outcome, StoreError> {
        let mut record = key(api_key_pk(&info.key_id), API_KEY_SK);
        write_info(&mut record, info);
        record.insert(HASH.into(), s(hash));
        let mut listing = key(org_pk(&info.org), api_key_listing_sk(&info.key_id));
        write_info(&mut listing, info);
        let put = |item: Item| -> Result<Put, StoreError> {
            Ok(Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()?)
        };
        self.tx()
            .put(Slot::ApiKey, put(record)?)
            .put(Slot::ApiKeyListing, put(listing)?)
            .commit()
            .await
    }

    /// The key record and the trial in one consistent `BatchGetItem` (a status request on a
    /// cold key cache: one round trip instead of two). Keys DynamoDB leaves unprocessed are
    /// asked for again.
    pub async fn get_api_key_and_trial(
        &self,
        key_id: &str,
        trial: &TrialId,
    ) -> Result<(Option<StoredKey>, Option<Trial>), StoreError> {
        let key_item = key(api_key_pk(key_id), API_KEY_SK);
        let trial_item = key(trial_pk(trial), TRIAL_SK);
        let request = KeysAndAttributes::builder()
            .keys(key_item)
            .keys(trial_item)
            .consistent_read(true)
            .build()?;
        let (mut stored, mut found) = (None, None);
        for item in self.batch_get(request).await? {
            match get_s(&item, PK) {
                Some(pk) if pk.starts_with("APIKEY#") => stored = Some(stored_key(&item)?),
                _ => found = Some(trial_from_item(&item)?),
            }
        }
        Ok((stored, found))
    }

    /// The key record, with its hash: one consistent `GetItem`.
    pub async fn get_api_key(&self, key_id: &str) -> Result<Option<StoredKey>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(api_key_pk(key_id), API_KEY_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        out.item.as_ref().map(stored_key).transpose()
    }

    /// The org's keys, oldest first: a `Query` on the org's partition, never a scan.
    pub async fn list_api_keys(&self, org: &OrgId) -> Result<Vec<KeyInfo>, StoreError> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .query()
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .set_expression_attribute_values(
                    Values::new()
                        .s(":pk", org_pk(org))
                        .s(":prefix", API_KEY_LISTING_PREFIX)
                        .build(),
                )
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::from_sdk)?;
            for item in out.items() {
                keys.push(read_info(item)?);
            }
            match next_page(out.last_evaluated_key) {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        keys.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
        Ok(keys)
    }

    /// Revokes the key for good (revoking twice keeps the first time). `None`: no such key.
    ///
    /// The key record is what requests read, so it is updated first and alone decides; the
    /// listing entry follows (running revoke again repairs it if that second write failed).
    pub async fn revoke_api_key(
        &self,
        key_id: &str,
        now: i64,
    ) -> Result<Option<KeyInfo>, StoreError> {
        let revoke = |pk: String, sk: String, at: i64| {
            let mut values = Values::new().n(":at", at).build().unwrap_or_default();
            values.insert(":true".into(), AttributeValue::Bool(true));
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .update_expression(
                    "SET revoked = :true, revoked_at = if_not_exists(revoked_at, :at)",
                )
                .condition_expression("attribute_exists(pk)")
                .set_expression_attribute_values(Some(values))
                .return_values(ReturnValue::AllNew)
                .send()
        };
        let info = match revoke(api_key_pk(key_id), API_KEY_SK.to_owned(), now).await {
            Ok(out) => read_info(&out.attributes.unwrap_or_default())?,
            Err(e) if is_condition_failure(&e) => return Ok(None),
            Err(e) => return Err(StoreError::from_sdk(e)),
        };
        let at = info.revoked_at.unwrap_or(now);
        let listed = revoke(org_pk(&info.org), api_key_listing_sk(key_id), at).await;
        match listed {
            Ok(_) => {}
            Err(e) if is_condition_failure(&e) => {
                tracing::warn!(key_id, "revoked an API key that had no listing entry");
            }
            Err(e) => return Err(StoreError::from_sdk(e)),
        }
        Ok(Some(info))
    }
}

fn is_condition_failure<R>(e: &aws_sdk_dynamodb::error::SdkError<UpdateItemError, R>) -> bool {
    e.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}

fn write_info(item: &mut Item, info: &KeyInfo) {
    item.insert("key_id".into(), s(&info.key_id));
    item.insert("org_id".into(), s(info.org.as_str()));
    item.insert("created_at".into(), n(info.created_at));
    match &info.projects {
        Projects::All => {
            item.insert("all_projects".into(), AttributeValue::Bool(true));
        }
        Projects::Only(list) => {
            item.insert("all_projects".into(), AttributeValue::Bool(false));
            item.insert(
                "projects".into(),
                AttributeValue::L(list.iter().map(|p| s(p.as_str())).collect()),
            );
        }
    }
    item.insert("revoked".into(), AttributeValue::Bool(info.revoked()));
    if let Some(at) = info.revoked_at {
        item.insert("revoked_at".into(), n(at));
    }
    item.insert("admin".into(), AttributeValue::Bool(info.admin));
}

fn read_info(item: &Item) -> Result<KeyInfo, StoreError> {
    let key_id =
        get_s(item, "key_id").ok_or_else(|| StoreError::corrupt("api key without key_id"))?;
    let org = get_s(item, "org_id")
        .and_then(OrgId::parse)
        .ok_or_else(|| StoreError::corrupt("api key org_id"))?;
    let projects = if get_bool(item, "all_projects") == Some(true) {
        Projects::All
    } else {
        let list = get_ss(item, "projects")
            .iter()
            .map(|p| ProjectId::parse(p))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| StoreError::corrupt("api key projects"))?;
        if list.is_empty() {
            // Never written: a key limited to no project would be useless, and reading it as
            // "all" would widen it. Refuse the item instead.
            return Err(StoreError::corrupt("api key with an empty project list"));
        }
        Projects::Only(list)
    };
    let revoked_at = match (get_bool(item, "revoked"), get_n(item, "revoked_at")) {
        (_, Some(at)) => Some(at),
        // A flag without a time still revokes.
        (Some(true), None) => Some(0),
        _ => None,
    };
    Ok(KeyInfo {
        key_id: key_id.to_owned(),
        org,
        projects,
        created_at: get_n(item, "created_at").unwrap_or(0),
        revoked_at,
        // Absent on records written before scopes: not admin.
        admin: get_bool(item, "admin") == Some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_flag_without_a_time_still_revokes() {
        let info = KeyInfo {
            key_id: "0123456789abcdef".into(),
            org: OrgId::parse("org_a").unwrap(),
            projects: Projects::All,
            created_at: 5,
            revoked_at: None,
            admin: false,
        };
        let mut item = key(api_key_pk(&info.key_id), API_KEY_SK);
        write_info(&mut item, &info);
        assert_eq!(read_info(&item).unwrap(), info);
        // A record edited by hand (or by an older writer) with the flag and no time.
        item.insert("revoked".into(), AttributeValue::Bool(true));
        let read = read_info(&item).unwrap();
        assert!(read.revoked(), "{read:?}");
        assert_eq!(read.revoked_at, Some(0));
    }

    #[test]
    fn a_stored_key_debugs_without_its_hash() {
        let stored = StoredKey {
            info: KeyInfo {
                key_id: "0123456789abcdef".into(),
                org: OrgId::parse("org_a").unwrap(),
                projects: Projects::All,
                created_at: 0,
                revoked_at: None,
                admin: false,
            },
            hash: "9f86d081884c7d659a2feaa0c55ad015".into(),
        };
        let shown = format!("{stored:?}");
        assert!(shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
        assert!(!shown.contains("9f86d081"), "{shown}");
    }
}
