//! Issuing API keys (`trialctl keys create`, the local dev key): the key is drawn here and
//! shown once; the table keeps only its hash.
use crate::domain::api_key::{ApiKey, KeyInfo, Projects};
use crate::domain::OrgId;
use crate::store::{Store, StoreError};

/// Creates a key for `org`: writes its record and listing entry, returns the key (to show
/// once) and what was stored.
pub async fn create(
    store: &Store,
    org: OrgId,
    projects: Projects,
    now: i64,
) -> Result<(ApiKey, KeyInfo), StoreError> {
    create_with_scope(store, org, projects, false, now).await
}

/// [`create`], for an admin key when `admin` (see [`KeyInfo::admin`]).
pub async fn create_with_scope(
    store: &Store,
    org: OrgId,
    projects: Projects,
    admin: bool,
    now: i64,
) -> Result<(ApiKey, KeyInfo), StoreError> {
    // A 64-bit key id collides with an existing one about never; the write's condition makes
    // sure it cannot overwrite one, and a collision just draws again.
    for _ in 0..3 {
        let key = ApiKey::generate();
        let info = KeyInfo {
            key_id: key.key_id().to_owned(),
            org: org.clone(),
            projects: projects.clone(),
            created_at: now,
            revoked_at: None,
            admin,
        };
        if store.put_api_key(&info, &key.hash()).await?.committed() {
            return Ok((key, info));
        }
    }
    Err(StoreError::Unavailable(
        "could not draw an unused API key id".into(),
    ))
}
