//! `trials-local`'s command line, as a newcomer meets it: help, errors that name the argument
//! (exit status 2) before anything starts, a busy DynamoDB port, and an external DynamoDB
//! endpoint on a machine without AWS credentials.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

fn trials_local(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_trials-local"))
        .args(args)
        .output()
        .expect("run trials-local")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_describes_every_option() {
    for flag in ["--help", "-h"] {
        let out = trials_local(&[flag]);
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(help.contains("Usage: trials-local"), "{help}");
        for option in ["--addr", "--data", "--dynamodb-addr", "JOBS_INTERVAL"] {
            assert!(help.contains(option), "{option}: {help}");
        }
    }
    let version = trials_local(&["--version"]);
    assert!(version.status.success());
    assert!(text(&version.stdout).starts_with("trials-local "));
}

#[test]
fn a_wrong_command_line_names_the_argument_and_starts_nothing() {
    for (args, says) in [
        (
            &["--addr", "nowhere"][..],
            "invalid value 'nowhere' for '--addr <HOST:PORT>'",
        ),
        (
            &["--dynamodb-addr", "127.0.0.1:99999"],
            "for '--dynamodb-addr <HOST:PORT>'",
        ),
        (&["--addr"], "a value is required for '--addr <HOST:PORT>'"),
        (&["--bogus"], "unexpected argument '--bogus' found"),
        (&["serve"], "unexpected argument 'serve' found"),
    ] {
        let out = trials_local(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            err.contains("Usage: trials-local") || err.contains("try '--help'"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_busy_dynamodb_port_names_the_option_that_moves_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().unwrap().to_string();
    let data = common::temp_dir("busy-port");
    let out = Command::new(env!("CARGO_BIN_EXE_trials-local"))
        .args(["--addr", "127.0.0.1:0", "--dynamodb-addr", &addr])
        .arg("--data")
        .arg(&data)
        .output()
        .expect("run trials-local");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("cannot bind dynoxide on {addr}")),
        "{err}"
    );
    assert!(err.contains("--dynamodb-addr"), "{err}");
    assert!(err.contains("DYNAMODB_ADDR"), "{err}");
}

/// `DYNAMODB_ENDPOINT` on this machine and no AWS credentials anywhere: the local endpoint gets
/// dummy credentials (the default chain would end probing the instance metadata service).
#[tokio::test(flavor = "multi_thread")]
async fn an_external_local_dynamodb_needs_no_aws_credentials() {
    let embedded = trials_local::embedded::start_embedded(None, "127.0.0.1:0")
        .await
        .expect("dynoxide");
    let data = common::temp_dir("external-dynamodb");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trials-local"))
        .args(["--addr", "127.0.0.1:0"])
        .arg("--data")
        .arg(&data)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &data)
        .env("DYNAMODB_ENDPOINT", &embedded.endpoint)
        .env("JOBS_INTERVAL", "1h")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start trials-local");
    let stdout = child.stdout.take().unwrap();
    // The JSON log lines share stdout; the banner line names the address. The reader keeps
    // reading to the end: a closed pipe would fail the server's next log line.
    let (banner_tx, banner_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("Trials API on ") {
                let _ = banner_tx.send(line);
            }
        }
    });
    let first = tokio::task::spawn_blocking(move || {
        banner_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_default()
    })
    .await
    .unwrap();
    let base = first
        .trim()
        .strip_prefix("Trials API on ")
        .map(str::to_owned);
    let answer = match &base {
        Some(base) => Some(common::get(&format!("{base}/v1/plans")).await),
        None => None,
    };
    let _ = child.kill();
    let _ = child.wait();
    // Started: it has created (or found) its table on that DynamoDB, which needs signed
    // requests. A request without a key is answered, as anywhere, 401.
    assert!(base.is_some(), "trials-local did not start: {first:?}");
    assert_eq!(answer.map(|a| a.status), Some(401));
}
