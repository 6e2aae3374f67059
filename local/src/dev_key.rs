//! The local run's dev API key, so the README's curl session and `events/*.json` work as
//! pasted.
//!
//! It is one fixed, well-known key ([`DEV_KEY`], org `org_local`, all projects), registered in
//! the embedded store by `trials-local` (never in a real DynamoDB: `main` calls this only on
//! the embedded store). Being public, it protects nothing: it exists so that a developer's
//! first request works. It is written with a condition (the key id must be free), so a restart
//! changes nothing, and a dev key revoked with `trialctl keys revoke` stays revoked until the
//! data directory is deleted.
//!
//! The key also goes to `<data>/dev-api-key` for scripts, and to stdout for the developer;
//! never to a log line.
use std::io::Write;
use std::path::{Path, PathBuf};

use trials::crypto::constant_time_eq;
use trials::domain::api_key::{ApiKey, KeyInfo, Projects};
use trials::domain::OrgId;
use trials::store::Store;

/// `trk_<key_id>_<secret>` like any key; the key id is all zeros so that `keys list` shows at
/// a glance which key is the dev key, and the secret reads "local dev" in hex.
pub const DEV_KEY: &str =
    "trk_0000000000000000_10ca1de710ca1de710ca1de710ca1de710ca1de710ca1de710ca1de710ca1de7";
pub const DEV_KEY_ID: &str = "0000000000000000";
pub const DEV_ORG: &str = "org_local";
/// Any project works (the key is for all of them); this is the one the examples use.
pub const DEV_PROJECT: &str = "proj_local";
pub const FILE_NAME: &str = "dev-api-key";

/// What the store holds under the dev key's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevKeyState {
    /// Registered by this call (a new data directory).
    Created,
    /// Already registered and live.
    Present,
    /// Revoked with `trialctl keys revoke`: requests with it get 401.
    Revoked,
    /// The key id holds some other key (not the dev key's hash, or another org): the dev key
    /// does not work, and nothing was overwritten.
    Taken,
}

pub struct DevKey {
    pub key: ApiKey,
    pub state: DevKeyState,
    /// The file holding the key, for scripts.
    pub path: PathBuf,
}

pub fn dev_key() -> ApiKey {
    ApiKey::parse(DEV_KEY).expect("the dev key has the form of a key")
}

fn dev_org() -> OrgId {
    OrgId::parse(DEV_ORG).expect("a valid org id")
}

/// Registers the dev key in `store` unless its id is taken, and says what the store holds.
/// One conditional write: a second process doing the same at the same time is harmless.
pub async fn ensure(store: &Store, data: &Path, now: i64) -> Result<DevKey, String> {
    let key = dev_key();
    let info = KeyInfo {
        key_id: DEV_KEY_ID.to_owned(),
        org: dev_org(),
        projects: Projects::All,
        created_at: now,
        revoked_at: None,
        admin: false,
    };
    let written = store
        .put_api_key(&info, &key.hash())
        .await
        .map_err(|e| format!("cannot register the dev API key: {e}"))?;
    let state = if written.committed() {
        DevKeyState::Created
    } else {
        match store
            .get_api_key(DEV_KEY_ID)
            .await
            .map_err(|e| format!("cannot read the dev API key: {e}"))?
        {
            Some(stored)
                if constant_time_eq(stored.hash.as_bytes(), key.hash().as_bytes())
                    && stored.info.org == info.org =>
            {
                if stored.info.revoked() {
                    DevKeyState::Revoked
                } else {
                    DevKeyState::Present
                }
            }
            // Taken when the write was refused, gone when read: revoking never deletes, so
            // only someone editing the table by hand gets here. Say so rather than retry.
            _ => DevKeyState::Taken,
        }
    };
    let path = data.join(FILE_NAME);
    write(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(DevKey { key, state, path })
}

/// `<data>/dev-api-key`, readable by its owner only, as any file holding a key should be
/// (this one is public, but scripts copy the habit).
fn write(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)?
        .write_all(format!("{DEV_KEY}\n").as_bytes())
}

impl DevKey {
    /// What `trials-local` prints at start (to stdout, for the developer), for the API at
    /// `base_url`.
    pub fn banner(&self, base_url: &str) -> String {
        let key = self.key.expose();
        let data = self
            .path
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "the data directory".into());
        match self.state {
            DevKeyState::Created | DevKeyState::Present => format!(
                "Dev API key (local only): {key} org {DEV_ORG}, all projects
Try:
  curl -s -X POST {base_url}/v1/trials/start \\
    -H 'Authorization: Bearer {key}' \\
    -H 'X-Org-Id: {DEV_ORG}' -H 'X-Project-Id: {DEV_PROJECT}' \\
    -H 'Idempotency-Key: demo-1' -H 'Content-Type: application/json' \\
    -d '{{\"plan\": \"growth\"}}'"
            ),
            DevKeyState::Revoked => format!(
                "Dev API key (local only): {key} org {DEV_ORG} was REVOKED (trialctl keys \
                 revoke) and gets 401.\nDelete {data} to start over, or make another key: \
                 trialctl --data {data} keys create --org {DEV_ORG}"
            ),
            DevKeyState::Taken => format!(
                "Dev API key: not registered, the key id {DEV_KEY_ID} holds another key in \
                 this table. Make a key with: trialctl --data {data} keys create --org \
                 {DEV_ORG}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trials::crypto::sha256_hex;

    async fn new_store() -> Store {
        let endpoint = crate::embedded::start_dynoxide(None).await.unwrap();
        let store = Store::new(trials::aws::local_dynamodb(&endpoint), "trials-local", 4);
        store.ensure_table().await.unwrap();
        store
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dev-key-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_dev_key_is_a_key_with_the_documented_id() {
        let key = dev_key();
        assert_eq!(key.expose(), DEV_KEY);
        assert_eq!(key.key_id(), DEV_KEY_ID);
        assert_eq!(DEV_KEY.len(), trials::domain::api_key::KEY_LEN);
    }

    #[tokio::test]
    async fn registered_once_then_found_and_a_revocation_sticks() {
        let dir = temp_dir("cycle");
        let store = new_store().await;
        let first = ensure(&store, &dir, 100).await.unwrap();
        assert_eq!(first.state, DevKeyState::Created);
        let stored = store.get_api_key(DEV_KEY_ID).await.unwrap().unwrap();
        // Only the hash is stored.
        assert_eq!(stored.hash, sha256_hex(DEV_KEY.as_bytes()));
        assert_eq!(stored.info.org.as_str(), DEV_ORG);
        assert_eq!(stored.info.projects, Projects::All);
        assert_eq!(stored.info.created_at, 100);
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE_NAME)).unwrap().trim(),
            DEV_KEY
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(dir.join(FILE_NAME)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        let listed = store.list_api_keys(&dev_org()).await.unwrap();
        assert_eq!(listed.len(), 1);

        // A restart: nothing written, the first record kept.
        let again = ensure(&store, &dir, 200).await.unwrap();
        assert_eq!(again.state, DevKeyState::Present);
        let stored = store.get_api_key(DEV_KEY_ID).await.unwrap().unwrap();
        assert_eq!(stored.info.created_at, 100);
        assert_eq!(store.list_api_keys(&dev_org()).await.unwrap().len(), 1);

        // Revoked by the developer: it stays revoked, and the banner says so.
        store.revoke_api_key(DEV_KEY_ID, 300).await.unwrap();
        let revoked = ensure(&store, &dir, 400).await.unwrap();
        assert_eq!(revoked.state, DevKeyState::Revoked);
        assert!(store
            .get_api_key(DEV_KEY_ID)
            .await
            .unwrap()
            .unwrap()
            .info
            .revoked());
        assert!(revoked.banner("http://x").contains("REVOKED"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn another_key_under_the_dev_key_id_is_never_overwritten() {
        let dir = temp_dir("taken");
        let store = new_store().await;
        let other = KeyInfo {
            key_id: DEV_KEY_ID.to_owned(),
            org: OrgId::parse("org_someone").unwrap(),
            projects: Projects::All,
            created_at: 1,
            revoked_at: None,
            admin: false,
        };
        let hash = sha256_hex(b"another key");
        assert!(store.put_api_key(&other, &hash).await.unwrap().committed());
        let dev = ensure(&store, &dir, 2).await.unwrap();
        assert_eq!(dev.state, DevKeyState::Taken);
        let stored = store.get_api_key(DEV_KEY_ID).await.unwrap().unwrap();
        assert_eq!((stored.hash, stored.info), (hash, other));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_banner_shows_a_curl_session_that_works_as_pasted() {
        let dev = DevKey {
            key: dev_key(),
            state: DevKeyState::Present,
            path: PathBuf::from(".trials/dev-api-key"),
        };
        let banner = dev.banner("http://127.0.0.1:3000");
        assert!(
            banner.starts_with(&format!(
                "Dev API key (local only): {DEV_KEY} org {DEV_ORG}"
            )),
            "{banner}"
        );
        for header in [
            format!("Authorization: Bearer {DEV_KEY}"),
            format!("X-Org-Id: {DEV_ORG}"),
            format!("X-Project-Id: {DEV_PROJECT}"),
            "Idempotency-Key: demo-1".into(),
        ] {
            assert!(banner.contains(&header), "{header}: {banner}");
        }
        assert!(banner.contains("http://127.0.0.1:3000/v1/trials/start"));
    }

    /// `cargo lambda invoke` sends these events to functions that use the local store: they
    /// must carry the dev key and its org.
    #[test]
    fn the_sample_events_carry_the_dev_key() {
        let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        for name in ["start", "status", "convert", "cancel"] {
            let path = events.join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path).unwrap();
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            let headers = &event["headers"];
            assert_eq!(
                headers["authorization"],
                format!("Bearer {DEV_KEY}"),
                "{name}"
            );
            assert_eq!(headers["x-org-id"], DEV_ORG, "{name}");
            assert_eq!(headers["x-project-id"], DEV_PROJECT, "{name}");
        }
    }
}
