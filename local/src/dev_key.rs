//! The local run's dev API key, so the README's curl session works as pasted.
//!
//! On the embedded store only: the first run creates a key for org `org_local` (all projects)
//! and saves it in `<data>/dev-api-key` (mode 0600); every run prints it again. If the file's
//! key is missing from the database (the database was deleted), it is registered again; if it
//! was revoked (`trialctl keys revoke`), a new one replaces it. The key goes to stdout for the
//! developer, never to a log line.
use std::io::Write;
use std::path::{Path, PathBuf};

use trials::auth::keys::{self, ApiKey, KeyInfo, Projects};
use trials::crypto::constant_time_eq;
use trials::domain::OrgId;
use trials::store::Store;

pub const DEV_ORG: &str = "org_local";
pub const DEV_PROJECT: &str = "proj_local";
pub const FILE_NAME: &str = "dev-api-key";

pub struct DevKey {
    pub key: ApiKey,
    /// The file it is saved in.
    pub path: PathBuf,
    /// Written to the table by this call (first run, or the database was reset).
    pub created: bool,
}

fn dev_org() -> OrgId {
    OrgId::parse(DEV_ORG).expect("a valid org id")
}

/// The dev key of the store under `data`, created or repaired as needed.
pub async fn ensure(store: &Store, data: &Path, now: i64) -> Result<DevKey, String> {
    let path = data.join(FILE_NAME);
    if let Some(key) = read(&path)? {
        let stored = store
            .get_api_key(key.key_id())
            .await
            .map_err(|e| e.to_string())?;
        match stored {
            Some(stored)
                if constant_time_eq(stored.hash.as_bytes(), key.hash().as_bytes())
                    && stored.info.org == dev_org()
                    && !stored.info.revoked() =>
            {
                return Ok(DevKey {
                    key,
                    path,
                    created: false,
                });
            }
            None => {
                let info = KeyInfo {
                    key_id: key.key_id().to_owned(),
                    org: dev_org(),
                    projects: Projects::All,
                    created_at: now,
                    revoked_at: None,
                };
                let put = store
                    .put_api_key(&info, &key.hash())
                    .await
                    .map_err(|e| e.to_string())?;
                if put.is_ok() {
                    return Ok(DevKey {
                        key,
                        path,
                        created: true,
                    });
                }
            }
            // Revoked, or not the dev key: make a new one.
            Some(_) => {}
        }
    }
    let (key, _) = keys::create(store, dev_org(), Projects::All, now)
        .await
        .map_err(|e| e.to_string())?;
    write(&path, &key)?;
    Ok(DevKey {
        key,
        path,
        created: true,
    })
}

fn read(path: &Path) -> Result<Option<ApiKey>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(ApiKey::parse(text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write(path: &Path, key: &ApiKey) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(file, "{}", key.expose()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl DevKey {
    /// What `trials-local` prints at start, for the API at `base_url`.
    pub fn banner(&self, base_url: &str) -> String {
        let key = self.key.expose();
        let path = self.path.display();
        format!(
            "Dev API key for org {DEV_ORG}, all projects ({}; saved in {path}):
  {key}
Try:
  curl -s -X POST {base_url}/v1/trials/start \\
    -H \"Authorization: Bearer $(cat {path})\" -H \"X-Org-Id: {DEV_ORG}\" -H \"X-Project-Id: {DEV_PROJECT}\" \\
    -H \"Idempotency-Key: demo-1\" -H \"Content-Type: application/json\" -d '{{\"plan\": \"growth\"}}'",
            if self.created { "new" } else { "as before" },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn created_once_kept_repaired_and_replaced_when_revoked() {
        let dir = temp_dir("cycle");
        let store = new_store().await;
        let first = ensure(&store, &dir, 100).await.unwrap();
        assert!(first.created);
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE_NAME)).unwrap().trim(),
            first.key.expose()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let stored = store
            .get_api_key(first.key.key_id())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.info.org.as_str(), DEV_ORG);
        assert_eq!(stored.info.projects, Projects::All);

        // A later run: the same key, nothing written.
        let again = ensure(&store, &dir, 200).await.unwrap();
        assert_eq!(
            (again.key.expose(), again.created),
            (first.key.expose(), false)
        );

        // The database was reset: the saved key is registered again.
        let fresh = new_store().await;
        let repaired = ensure(&fresh, &dir, 300).await.unwrap();
        assert_eq!(
            (repaired.key.expose(), repaired.created),
            (first.key.expose(), true)
        );
        assert!(fresh
            .get_api_key(first.key.key_id())
            .await
            .unwrap()
            .is_some());

        // Revoked: replaced by a new key, saved in its place.
        fresh.revoke_api_key(first.key.key_id(), 400).await.unwrap();
        let replaced = ensure(&fresh, &dir, 500).await.unwrap();
        assert!(replaced.created);
        assert_ne!(replaced.key, first.key);
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE_NAME)).unwrap().trim(),
            replaced.key.expose()
        );
        let banner = replaced.banner("http://127.0.0.1:3000");
        assert!(banner.contains(replaced.key.expose()), "{banner}");
        assert!(banner.contains("X-Org-Id: org_local"), "{banner}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
