//! The org guard: where **one trial per organization, ever** is enforced. The guard is an item
//! `ORG#<org_id>` / `GUARD`, put with `attribute_not_exists(pk)` in the same transaction as the
//! new trial (slot `OrgGuard`), so two starts for one org cannot both commit, whatever races;
//! the loser's rejection names the slot and carries the guard as it was (its trial id, for the
//! answer). The guard survives the purge of its trial (it is only marked `purged`), so an org
//! cannot start again by waiting. Cost: one more item per org, one more write in the start
//! transaction and in the purge's (to mark it).
use aws_sdk_dynamodb::types::{AttributeValue, Put, Update};

use super::codec::{get_bool, get_s, key, n, s, Item, Values};
use super::schema::{org_pk, GUARD_SK};
use super::{Store, StoreError};
use crate::domain::{OrgId, Trial, TrialId};

/// The org guard: the org's one trial, for ever (it survives purge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub trial_id: Option<TrialId>,
    /// The project the trial was started under (guards written before projects were recorded
    /// have none).
    pub project_id: Option<crate::domain::ProjectId>,
    pub purged: bool,
}

impl Guard {
    pub fn from_item(item: &Item) -> Guard {
        Guard {
            trial_id: get_s(item, "trial_id").and_then(TrialId::parse),
            project_id: get_s(item, "project_id").and_then(crate::domain::ProjectId::parse),
            purged: get_bool(item, "purged").unwrap_or(false),
        }
    }
}

impl Store {
    /// The org guard for `trial`'s org: fails its condition if the org ever had a trial.
    pub fn guard_put(&self, trial: &Trial) -> Result<Put, StoreError> {
        let mut guard = key(org_pk(&trial.org_id), GUARD_SK);
        guard.insert("trial_id".into(), s(trial.id.as_str()));
        guard.insert("created_at".into(), n(trial.started_at));
        if let Some(project) = &trial.project_id {
            guard.insert("project_id".into(), s(project.as_str()));
        }
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(guard))
            .condition_expression("attribute_not_exists(pk)")
            .build()?)
    }

    pub async fn get_guard(&self, org: &OrgId) -> Result<Option<Guard>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(org_pk(org), GUARD_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::from_sdk)?;
        Ok(out.item.as_ref().map(Guard::from_item))
    }

    /// Marks the org guard purged: the guard stays, so the org still cannot start again.
    pub fn guard_purged_update(&self, org: &OrgId, now: i64) -> Result<Update, StoreError> {
        let mut values = Values::new().n(":now", now).build().unwrap_or_default();
        values.insert(":true".into(), AttributeValue::Bool(true));
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(org_pk(org), GUARD_SK)))
            .update_expression("SET purged = :true, purged_at = :now")
            .set_expression_attribute_values(Some(values))
            .build()?)
    }
}

/// The org guards this process has read that name a trial: which trial is an org's never
/// changes once its guard is written (the guard is put once, on `attribute_not_exists`, and
/// only ever marked `purged` after), so a warm function can remember it and read the trial
/// directly: `GET /v1/access` is then one round trip. A purged trial is simply not found. At
/// most [`KnownTrials::CAPACITY`] orgs are kept (forgotten all at once past that: the next read
/// of each costs the guard again). Cost: a few dozen bytes per org in memory.
#[derive(Debug, Clone, Default)]
pub struct KnownTrials {
    known: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<OrgId, Known>>>,
}

/// What a guard says, once it names a trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub trial_id: TrialId,
    pub project_id: Option<crate::domain::ProjectId>,
}

impl KnownTrials {
    pub const CAPACITY: usize = 50_000;

    pub fn get(&self, org: &OrgId) -> Option<Known> {
        self.known.lock().ok()?.get(org).cloned()
    }

    pub fn remember(&self, org: &OrgId, known: Known) {
        if let Ok(mut map) = self.known.lock() {
            if map.len() >= Self::CAPACITY {
                map.clear();
            }
            map.insert(org.clone(), known);
        }
    }
}

impl Store {
    /// The trial `org`'s guard names, from `known` when this process has read it before,
    /// else by one consistent read of the guard (remembered when it names a trial).
    pub async fn org_trial(
        &self,
        org: &OrgId,
        known: &KnownTrials,
    ) -> Result<Option<Known>, StoreError> {
        if let Some(found) = known.get(org) {
            return Ok(Some(found));
        }
        let Some(guard) = self.get_guard(org).await? else {
            return Ok(None);
        };
        let Some(trial_id) = guard.trial_id else {
            return Ok(None);
        };
        let found = Known {
            trial_id,
            project_id: guard.project_id,
        };
        known.remember(org, found.clone());
        Ok(Some(found))
    }
}
