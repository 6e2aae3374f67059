//! Warm CPU time per invocation: runs `cpu-worker` (bench/cpu-worker) once per round against a
//! fresh dynoxide and Stripe stand-in served from this process, so the store's CPU never counts
//! in the measured process, and collects what it measured.
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use tokio::process::Command;
use trials_local::stream::read_records;
use trials_local::stripe_standin::{StripeStandIn, LOCAL_SECRET_KEY};
use trials_tests::{Call, TestApp};

/// The worker's clock (`T0` in bench/cpu-worker, the test kit's T0).
const WORKER_NOW: i64 = 1_775_469_600;

/// One function's loop in one round.
#[derive(Debug, Clone)]
pub struct CpuSample {
    pub name: String,
    pub invocations: u64,
    pub user_us: f64,
    pub sys_us: f64,
    pub wall_us: f64,
}

/// Stream records as the `publish` function gets them: `trial.started` and `trial.canceled`
/// items, read from a real table's stream (the test kit's embedded dynoxide).
pub async fn stream_records() -> Result<Vec<Value>, String> {
    let t = TestApp::new().await;
    for i in 0..20 {
        let org = format!("org_records_{i}");
        let id = t.start_trial(&org, "growth").await;
        if i % 2 == 0 {
            t.send(Call::cancel(&id, "records-cancel").org(&org)).await;
        }
    }
    let db = t.db.clone();
    let table = t.app.store.table_name().to_owned();
    let records = tokio::task::spawn_blocking(move || read_records(&db, &table, None))
        .await
        .map_err(|e| e.to_string())??;
    let events: Vec<Value> = records
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| {
            r["eventName"] == "INSERT"
                && r["dynamodb"]["Keys"]["pk"]["S"]
                    .as_str()
                    .is_some_and(|pk| pk.starts_with(trials::store::schema::EVENT_PREFIX))
        })
        .collect();
    if events.len() != 30 {
        return Err(format!("expected 30 event records, read {}", events.len()));
    }
    Ok(events)
}

/// `rounds` runs of the worker, each in a fresh process against a fresh store.
pub async fn warm_cpu(
    worker: &Path,
    rounds: usize,
    invocations: usize,
) -> Result<Vec<Vec<CpuSample>>, String> {
    let dir = std::env::temp_dir().join(format!("trials-bench-cpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let records = dir.join("records.json");
    let events = stream_records().await?;
    std::fs::write(&records, Value::Array(events).to_string()).map_err(|e| e.to_string())?;
    let mut all = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut samples = Vec::new();
        // The baseline in a process of its own (no log subscriber), then every function.
        for (name, extra) in [("baseline", Some("--baseline-only")), ("functions", None)] {
            let endpoint = trials_local::embedded::start_dynoxide(None).await?;
            let stripe = StripeStandIn::start().await?;
            // The worker's invocations run at its fixed instant: Stripe's "now" (trial_end's
            // 48 h bound, session expiry) is that instant too.
            stripe.set_clock(|| WORKER_NOW);
            let out = dir.join(format!("round-{round}-{name}.json"));
            let mut cmd = Command::new(worker);
            cmd.env_clear()
                .args(["--endpoint", &endpoint])
                .args(["--stripe-base", stripe.base_url()])
                .args(["--stripe-key", LOCAL_SECRET_KEY])
                .arg("--records")
                .arg(&records)
                .arg("--out")
                .arg(&out)
                .args(["--invocations", &invocations.to_string()])
                .args(extra);
            if extra.is_none() {
                // As in Lambda: CloudWatch EMF metric lines on stdout beside the log lines.
                cmd.env("METRICS", "on");
            }
            run_worker(cmd).await?;
            let text =
                std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            samples.extend(parse(&text)?);
        }
        all.push(samples);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(all)
}

/// For profiling: serves a store and a Stripe stand-in, prints the `cpu-worker` command line
/// that runs against them (e.g. under `perf record --control`), and serves until killed.
pub async fn serve(worker: &Path) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("trials-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let records = dir.join("records.json");
    let events = stream_records().await?;
    std::fs::write(&records, Value::Array(events).to_string()).map_err(|e| e.to_string())?;
    let endpoint = trials_local::embedded::start_dynoxide(None).await?;
    let stripe = StripeStandIn::start().await?;
    // The worker's invocations run at its fixed instant: Stripe's "now" (trial_end's
    // 48 h bound, session expiry) is that instant too.
    stripe.set_clock(|| WORKER_NOW);
    println!(
        "METRICS=on {} --endpoint {endpoint} --stripe-base {} --stripe-key {LOCAL_SECRET_KEY} --records {} --out {}",
        worker.display(),
        stripe.base_url(),
        records.display(),
        dir.join("out.json").display()
    );
    std::future::pending::<()>().await;
    Ok(())
}

/// Runs one worker to its end, its log lines (stdout) drained down a pipe as Lambda's log
/// capture would, and dropped.
async fn run_worker(mut cmd: Command) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cpu-worker: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no worker stdout")?;
    let drain =
        tokio::spawn(async move { tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await });
    let output = child.wait_with_output().await.map_err(|e| e.to_string())?;
    let _ = drain.await;
    if !output.status.success() {
        return Err(format!(
            "cpu-worker failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

fn parse(text: &str) -> Result<Vec<CpuSample>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    v["results"]
        .as_array()
        .ok_or("no results")?
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].as_f64().ok_or(format!("no {k} in {r}"));
            Ok(CpuSample {
                name: r["name"].as_str().ok_or("no name")?.to_owned(),
                invocations: r["invocations"].as_u64().ok_or("no invocations")?,
                user_us: f("user_us")?,
                sys_us: f("sys_us")?,
                wall_us: f("wall_us")?,
            })
        })
        .collect()
}
