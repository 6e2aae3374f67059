//! Cold start: exec → first poll of the Runtime API (init), and exec → first response for one
//! real request, per function, beside the bare `lambda_http` hello world.
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::runtime_api::RuntimeApi;

/// The environment a function sees in Lambda, pointed at the stand-ins.
pub fn lambda_command(binary: &Path, runtime_api: &str, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("LOG_LEVEL", "error")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Milliseconds from exec to the first `GET /runtime/invocation/next`, `runs` times.
pub async fn time_to_first_poll(
    api: &RuntimeApi,
    runtime_addr: &str,
    binary: &Path,
    env: &[(String, String)],
    runs: usize,
) -> Result<Vec<f64>, String> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        api.reset();
        let started = Instant::now();
        let mut child = lambda_command(binary, runtime_addr, env)
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let polled = api
            .wait_until(Duration::from_secs(10), |a| a.first_poll().is_some())
            .await;
        let first = api.first_poll();
        stop(&mut child).await;
        match (polled, first) {
            (true, Some(at)) => samples.push((at - started).as_secs_f64() * 1000.0),
            _ => {
                return Err(format!(
                    "{} never polled: {:?}",
                    binary.display(),
                    api.errors()
                ))
            }
        }
    }
    Ok(samples)
}

/// Milliseconds from exec to the response of `event`, `runs` times (a fresh process each).
pub async fn time_to_first_response(
    api: &RuntimeApi,
    runtime_addr: &str,
    binary: &Path,
    env: &[(String, String)],
    mut event: impl FnMut(usize) -> String,
    runs: usize,
) -> Result<(Vec<f64>, String), String> {
    let mut samples = Vec::with_capacity(runs);
    let mut last = String::new();
    for run in 0..runs {
        api.reset();
        api.push(event(run));
        let started = Instant::now();
        let mut child = lambda_command(binary, runtime_addr, env)
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let answered = api
            .wait_until(Duration::from_secs(15), |a| {
                !a.responses().is_empty() || !a.errors().is_empty()
            })
            .await;
        stop(&mut child).await;
        let responses = api.responses();
        match (answered, responses.first()) {
            (true, Some((at, body))) => {
                samples.push((*at - started).as_secs_f64() * 1000.0);
                last = body.clone();
            }
            _ => {
                return Err(format!(
                    "{} did not answer: {:?}",
                    binary.display(),
                    api.errors()
                ))
            }
        }
    }
    Ok((samples, last))
}

/// Peak resident set (VmHWM, KiB) of a function after serving `events` one after another.
pub async fn peak_rss_kib(
    api: &RuntimeApi,
    runtime_addr: &str,
    binary: &Path,
    env: &[(String, String)],
    events: Vec<String>,
) -> Result<u64, String> {
    api.reset();
    let count = events.len();
    let mut child = lambda_command(binary, runtime_addr, env)
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    for e in events {
        api.push(e);
    }
    let done = api
        .wait_until(Duration::from_secs(600), |a| {
            a.responses().len() + a.errors().len() >= count
        })
        .await;
    let pid = child.id().ok_or("function exited early")?;
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    stop(&mut child).await;
    if !done {
        return Err(format!(
            "{} served only {} of {count}",
            binary.display(),
            api.responses().len()
        ));
    }
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc status".into())
}

async fn stop(child: &mut Child) {
    let _ = child.kill().await;
    let _ = child.wait().await;
}
