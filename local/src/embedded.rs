//! dynoxide inside this process: a real DynamoDB wire protocol on loopback, persisted to disk.
use std::path::Path;

/// The database file in a data directory.
pub const DB_FILE: &str = "trials.db";

/// Serves a dynoxide database on `127.0.0.1:0`; `data_dir` persists it (`None`: in memory).
/// Returns the endpoint URL.
pub async fn start_dynoxide(data_dir: Option<&Path>) -> Result<String, String> {
    start_dynoxide_on(data_dir, "127.0.0.1:0").await
}

/// As [`start_dynoxide`], on `addr`: a fixed port lets functions run by `cargo lambda watch`
/// share the local API's database (`DYNAMODB_ENDPOINT`).
pub async fn start_dynoxide_on(data_dir: Option<&Path>, addr: &str) -> Result<String, String> {
    Ok(start_embedded(data_dir, addr).await?.endpoint)
}

/// A served embedded store: its endpoint, and the database itself for what only runs
/// in-process (the stream reader, the TTL sweep).
#[derive(Clone)]
pub struct Embedded {
    pub endpoint: String,
    pub db: dynoxide::Database,
}

pub async fn start_embedded(data_dir: Option<&Path>, addr: &str) -> Result<Embedded, String> {
    let db = match data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let file = dir.join(DB_FILE);
            let file = file.to_str().ok_or("data directory path is not UTF-8")?;
            dynoxide::Database::new(file).map_err(|e| format!("cannot open {file}: {e}"))?
        }
        None => dynoxide::Database::memory().map_err(|e| format!("in-memory dynoxide: {e}"))?,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot bind dynoxide on {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(dynoxide::server::serve_on(listener, db.clone()));
    Ok(Embedded {
        endpoint: format!("http://{addr}"),
        db,
    })
}
