//! `trialctl` as an operator runs it: the built binary against a local data directory that
//! this test process holds open at the same time, as a running `trials-local` would.
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use lambda_http::Request;
use trials::clock::SystemClock;
use trials::config::Config;
use trials::domain::api_key::ApiKey;
use trials::store::Store;
use trials::App;

fn trialctl(args: &[&str]) -> Output {
    trialctl_with(args, &[])
}

/// `trialctl` with `env` set (and none of the variables it reads inherited from the shell
/// running the tests).
fn trialctl_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trialctl"));
    command.args(args);
    for name in [
        "TABLE_NAME",
        "DYNAMODB_ENDPOINT",
        "DUE_SHARDS",
        "PLANS_FILE",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("run trialctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory of this test process (several test runs may share the machine).
fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trialctl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The API on the data directory, as `trials-local --data DIR` serves it.
async fn app_on(dir: &Path) -> App {
    app_on_with(dir, &[]).await
}

/// [`app_on`] with the functions' environment `env` (e.g. `DUE_SHARDS`, `PLANS_FILE`).
async fn app_on_with(dir: &Path, env: &[(&str, &str)]) -> App {
    let endpoint = trials_local::embedded::start_dynoxide(Some(dir))
        .await
        .unwrap();
    let config = Config::from_lookup(|k| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let store = Store::new(
        trials::aws::local_dynamodb(&endpoint),
        config.table_name.clone(),
        config.due_shards,
    );
    store.ensure_table().await.unwrap();
    App::new(config, store, Arc::new(SystemClock))
}

/// What the `publish` function does in AWS (and `trials-local` in the background): reads the
/// data directory's stream since its checkpoint and counts the funnel events. `trialctl stats`
/// reads the counters, so a test pumps the stream before it.
async fn pump_stream(app: &App, dir: &Path) {
    let file = dir.join(trials_local::embedded::DB_FILE);
    let db = dynoxide::Database::new(file.to_str().unwrap()).unwrap();
    let checkpoint = dir.join(trials_local::stream::CHECKPOINT_FILE);
    let mut reader =
        trials_local::stream::StreamReader::new(db, app.store.table_name(), Some(checkpoint));
    let pumped = reader
        .pump(&trials::publish::Publisher::Log, &app.store)
        .await
        .unwrap();
    assert_eq!(pumped.failed, 0, "{pumped:?}");
}

/// A trial of `plan` started through the API by `org`, with a key `trialctl` created.
async fn start_for(app: &App, data: &str, org: &str, plan: &str) -> String {
    let created = trialctl(&["--data", data, "keys", "create", "--org", org]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    let mut req = request("POST", "/v1/trials/start", &key, org, "proj_1");
    *req.body_mut() = lambda_http::Body::Text(format!(r#"{{"plan":"{plan}"}}"#));
    let (status, body) = send(app, req).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn request(method: &str, path: &str, key: &str, org: &str, project: &str) -> Request {
    lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .header("authorization", format!("Bearer {key}"))
        .header("x-org-id", org)
        .header("x-project-id", project)
        .header("idempotency-key", "k1")
        .header("content-type", "application/json")
        .body(lambda_http::Body::Text(r#"{"plan":"growth"}"#.into()))
        .unwrap()
}

async fn send(app: &App, req: Request) -> (u16, serde_json::Value) {
    let res = trials::api::handle_any(app, req).await;
    let status = res.status().as_u16();
    let body = match res.into_body() {
        lambda_http::Body::Text(t) => t,
        lambda_http::Body::Binary(b) => String::from_utf8(b).unwrap(),
        _ => String::new(),
    };
    (status, serde_json::from_str(&body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_created_listed_revoked_and_trials_shown() {
    let dir = data_dir("cycle");
    let app = app_on(&dir).await;
    let data = dir.to_str().unwrap();

    let created = trialctl(&[
        "--data",
        data,
        "keys",
        "create",
        "--org",
        "org_a",
        "--project",
        "proj_1",
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let stdout = text(&created.stdout);
    let key = ApiKey::parse(stdout.trim()).unwrap_or_else(|| panic!("not a key: {stdout:?}"));
    assert!(text(&created.stderr).contains(key.key_id()));
    assert!(
        !text(&created.stderr).contains(key.expose()),
        "the key is printed once"
    );

    // It authenticates, for its org and project only.
    let (status, body) = send(
        &app,
        request("POST", "/v1/trials/start", key.expose(), "org_a", "proj_1"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let trial_id = body["id"].as_str().unwrap().to_owned();
    let (status, _) = send(
        &app,
        request(
            "GET",
            &format!("/v1/trials/{trial_id}"),
            key.expose(),
            "org_a",
            "proj_2",
        ),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        &app,
        request(
            "GET",
            &format!("/v1/trials/{trial_id}"),
            key.expose(),
            "org_b",
            "proj_1",
        ),
    )
    .await;
    assert_eq!(status, 403);

    // Listed without its secret or hash; another org's keys are not listed.
    let other = trialctl(&["--data", data, "keys", "create", "--org", "org_b"]);
    assert!(other.status.success());
    let listed = trialctl(&["keys", "list", "--org", "org_a", "--data", data]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let list = text(&listed.stdout);
    assert!(list.contains(key.key_id()), "{list}");
    assert!(list.contains("active") && list.contains("proj_1"), "{list}");
    assert_eq!(list.lines().count(), 2, "{list}");
    let all_output = format!("{list}{}", text(&listed.stderr));
    assert!(!all_output.contains(&key.expose()[21..]), "{all_output}");
    assert!(!all_output.contains(&key.hash()), "{all_output}");

    // Trials show.
    let shown = trialctl(&["--data", data, "trials", "show", &trial_id]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let trial: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        (trial["id"].as_str(), trial["org_id"].as_str()),
        (Some(trial_id.as_str()), Some("org_a"))
    );
    assert_eq!(trial["status"], "ACTIVE");
    // The plan's options with used/remaining (the built-in growth plan has none) and terms.
    assert_eq!(trial["options"], serde_json::json!([]));
    assert_eq!(trial["days_limit"], 7);

    // Trials extend: the new end, its range, and its event; refusals say why.
    let extended = trialctl(&[
        "--data",
        data,
        "trials",
        "extend",
        &trial_id,
        "--days",
        "3",
        "--reason",
        "sales call",
    ]);
    assert!(extended.status.success(), "{}", text(&extended.stderr));
    let after: serde_json::Value = serde_json::from_slice(&extended.stdout).unwrap();
    let end = |v: &serde_json::Value| {
        trials::domain::time::parse_rfc3339(v["expires_at"].as_str().unwrap()).unwrap()
    };
    assert_eq!(end(&after) - end(&trial), 3 * 86_400);
    assert_eq!(after["active_ranges"].as_array().map(Vec::len), Some(1));
    let too_far = trialctl(&[
        "--data", data, "trials", "extend", &trial_id, "--days", "400",
    ]);
    assert_eq!(too_far.status.code(), Some(1));
    assert!(
        text(&too_far.stderr).contains("days must be"),
        "{}",
        text(&too_far.stderr)
    );
    let beyond = trialctl(&[
        "--data", data, "trials", "extend", &trial_id, "--days", "85",
    ]);
    assert_eq!(beyond.status.code(), Some(1));
    assert!(
        text(&beyond.stderr).contains("invalid_extension"),
        "{}",
        text(&beyond.stderr)
    );
    for missing in ["trial_0123456789abcdef01234567", "nope"] {
        let res = trialctl(&["--data", data, "trials", "show", missing]);
        assert_eq!(res.status.code(), Some(1));
        assert!(
            text(&res.stderr).contains("no trial"),
            "{}",
            text(&res.stderr)
        );
    }

    // Revoke: listed as revoked; a function that has not cached it refuses it at once.
    let revoked = trialctl(&["--data", data, "keys", "revoke", key.key_id()]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert!(
        text(&revoked.stdout).contains("60s"),
        "{}",
        text(&revoked.stdout)
    );
    let list = text(&trialctl(&["--data", data, "keys", "list", "--org", "org_a"]).stdout);
    assert!(list.contains("revoked"), "{list}");
    let mut cold = app.clone();
    cold.keys = trials::auth::KeyCache::new(60);
    let (status, body) = send(
        &cold,
        request(
            "GET",
            &format!("/v1/trials/{trial_id}"),
            key.expose(),
            "org_a",
            "proj_1",
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    // Revoking again is harmless; an unknown key is an error.
    assert!(trialctl(&["--data", data, "keys", "revoke", key.key_id()])
        .status
        .success());
    let unknown = trialctl(&["--data", data, "keys", "revoke", "0123456789abcdef"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("no API key"),
        "{}",
        text(&unknown.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["keys", "--help"],
        &["keys", "create", "--help"],
        &["keys", "list", "--help"],
        &["keys", "revoke", "--help"],
        &["trials", "--help"],
        &["trials", "show", "-h"],
        &["plans", "check", "--help"],
        &["trials", "extend", "--help"],
        &["completions", "--help"],
        &["help", "keys", "create"],
    ] {
        let out = trialctl(args);
        assert!(out.status.success(), "{args:?}");
        let help = text(&out.stdout);
        assert!(help.contains("Usage: trialctl"), "{args:?}: {help}");
    }
    let create = text(&trialctl(&["keys", "create", "--help"]).stdout);
    assert!(create.contains("--project"), "{create}");
    assert!(create.contains("printed once"), "{create}");
    let top = text(&trialctl(&["--help"]).stdout);
    for command in [
        "keys",
        "trials",
        "completions",
        "--data",
        "--endpoint",
        "--table",
    ] {
        assert!(top.contains(command), "{command}: {top}");
    }
}

#[test]
fn a_wrong_command_line_fails_with_the_usage_naming_the_argument() {
    for (args, says) in [
        (&[][..], "Commands:"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (&["keys", "rotate"], "unrecognized subcommand 'rotate'"),
        (
            &["keys", "create"],
            "the following required arguments were not provided:\n  --org <ORG>",
        ),
        (
            &["keys", "create", "--org", "bad org"],
            "invalid value 'bad org' for '--org <ORG>': not an org id",
        ),
        (
            &["keys", "create", "--org", "a", "--project", "no/slash"],
            "invalid value 'no/slash' for '--project <P>'",
        ),
        (
            &["keys", "create", "--org"],
            "a value is required for '--org <ORG>' but none was supplied",
        ),
        (
            &["keys", "list", "--org", "a", "--project", "p"],
            "unexpected argument '--project' found",
        ),
        (
            &["keys", "revoke"],
            "the following required arguments were not provided:\n  <KEY_ID>",
        ),
        (
            &["keys", "revoke", "xyz"],
            "invalid value 'xyz' for '<KEY_ID>': not a key id",
        ),
        (
            &["trials", "show"],
            "the following required arguments were not provided:\n  <TRIAL_ID>",
        ),
        (
            &["--bogus", "keys", "list"],
            "unexpected argument '--bogus' found",
        ),
        (
            &[
                "--data",
                "d",
                "--endpoint",
                "http://x",
                "keys",
                "list",
                "--org",
                "a",
            ],
            "the argument '--data <DIR>' cannot be used with '--endpoint <URL>'",
        ),
        (
            &[
                "keys",
                "list",
                "--org",
                "a",
                "--endpoint",
                "http://x",
                "--data",
                "d",
            ],
            "cannot be used with",
        ),
        (
            &["completions", "nosh"],
            "invalid value 'nosh' for '<SHELL>'",
        ),
    ] {
        let out = trialctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        // The usage, or (a value refused) where to find it.
        assert!(
            err.contains("Usage: trialctl") || err.contains("try '--help'"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn completions_cover_every_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = trialctl(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["trialctl", "keys", "revoke", "show", "--endpoint"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    // No table is needed, nor opened, to print them.
    let out = trialctl(&["--data", "/nonexistent/trials", "completions", "bash"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn without_a_table_the_aws_mode_says_what_is_missing() {
    let out = trialctl(&["keys", "list", "--org", "org_a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("TABLE_NAME"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unreachable_dynamodb_fails_every_command() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let endpoint = "http://127.0.0.1:1";
    for args in [
        &["keys", "create", "--org", "org_a"][..],
        &["keys", "list", "--org", "org_a"],
        &["keys", "revoke", "0123456789abcdef"],
        &["trials", "show", "trial_0123456789abcdef01234567"],
    ] {
        let out = trialctl(&[&["--endpoint", endpoint][..], args].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("DynamoDB"), "{args:?}: {err}");
        assert!(err.contains(endpoint), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_data_directory_without_a_store_is_an_error_except_to_create_a_key() {
    let dir = data_dir("empty");
    let data = dir.to_str().unwrap();
    for args in [
        &["keys", "list", "--org", "org_a"][..],
        &["keys", "revoke", "0123456789abcdef"],
        &["trials", "show", "trial_0123456789abcdef01234567"],
    ] {
        let out = trialctl(&[&["--data", data][..], args].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("no Trials data"),
            "{args:?}: {}",
            text(&out.stderr)
        );
        // A mistyped path is not turned into a new, empty store.
        assert!(!dir.exists(), "{args:?}");
    }
    // The first key of a new local store (before trials-local ever ran) creates it.
    let out = trialctl(&["--data", data, "keys", "create", "--org", "org_a"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = ApiKey::parse(text(&out.stdout).trim()).expect("a key");
    let list = trialctl(&["--data", data, "keys", "list", "--org", "org_a"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(text(&list.stdout).contains(key.key_id()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_replay_lists_and_republishes_what_was_written_since() {
    let dir = data_dir("replay");
    let app = app_on(&dir).await;
    let data = dir.to_str().unwrap();
    let created = trialctl(&["--data", data, "keys", "create", "--org", "org_r"]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    let (status, body) = send(
        &app,
        request("POST", "/v1/trials/start", &key, "org_r", "proj_1"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let started = format!("{}.started", body["id"].as_str().unwrap());

    // The last day: the event is there (no bus configured: printed as JSON details).
    let listed = trialctl(&[
        "--data",
        data,
        "events",
        "replay",
        "--since",
        "1d",
        "--dry-run",
    ]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout).contains(&started),
        "{}",
        text(&listed.stdout)
    );
    let replayed = std::process::Command::new(env!("CARGO_BIN_EXE_trialctl"))
        .args([
            "--data",
            data,
            "events",
            "replay",
            "--since",
            "2020-01-01T00:00:00Z",
        ])
        .env_remove("EVENT_BUS_NAME")
        .output()
        .unwrap();
    assert!(replayed.status.success(), "{}", text(&replayed.stderr));
    let detail: serde_json::Value =
        serde_json::from_str(text(&replayed.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(detail["event_id"], started.as_str());
    assert_eq!(detail["type"], "trial.started");

    // Since a time after it: nothing.
    let later = trialctl(&[
        "--data",
        data,
        "events",
        "replay",
        "--since",
        "2099-01-01T00:00:00Z",
    ]);
    assert!(later.status.success());
    assert!(
        text(&later.stdout).trim().is_empty(),
        "{}",
        text(&later.stdout)
    );
    assert!(
        text(&later.stderr).starts_with("0 events"),
        "{}",
        text(&later.stderr)
    );

    // A time that is neither: a usage error naming the argument.
    let bad = trialctl(&["--data", data, "events", "replay", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("--since"),
        "{}",
        text(&bad.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_print_the_funnel_from_the_counters() {
    let dir = data_dir("stats");
    let app = app_on(&dir).await;
    let data = dir.to_str().unwrap();
    let created = trialctl(&["--data", data, "keys", "create", "--org", "org_s"]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    let (status, body) = send(
        &app,
        request("POST", "/v1/trials/start", &key, "org_s", "proj_1"),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Counted from the stream, not by the start itself: nothing until the stream is read.
    let json = trialctl(&["--data", data, "stats", "--json"]);
    let out: serde_json::Value = serde_json::from_str(&text(&json.stdout)).unwrap();
    assert_eq!(out["total"]["started"], 0, "{out}");
    pump_stream(&app, &dir).await;
    let json = trialctl(&["--data", data, "stats", "--since", "7d", "--json"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let out: serde_json::Value = serde_json::from_str(&text(&json.stdout)).unwrap();
    assert_eq!(out["plans"]["growth"]["started"], 1);
    assert_eq!(out["plans"]["pro"]["started"], 0);
    assert_eq!(out["total"]["started"], 1);
    assert_eq!(out["total"]["conversion_rate"], 0.0);
    assert_eq!(out["active_now"], 1);

    let table = trialctl(&["--data", data, "stats", "--plan", "growth"]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let shown = text(&table.stdout);
    assert!(shown.contains("ACTIVE now: 1"), "{shown}");
    let row = shown
        .lines()
        .find(|l| l.starts_with("growth"))
        .expect("a growth row");
    assert_eq!(row.split_whitespace().nth(1), Some("1"), "{row}");

    // A second org's trial: ACTIVE now counts every active trial, not merely some.
    let created = trialctl(&["--data", data, "keys", "create", "--org", "org_s2"]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    let (status, body) = send(
        &app,
        request("POST", "/v1/trials/start", &key, "org_s2", "proj_1"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    pump_stream(&app, &dir).await;
    let json = trialctl(&["--data", data, "stats", "--json"]);
    let out: serde_json::Value = serde_json::from_str(&text(&json.stdout)).unwrap();
    assert_eq!(
        (&out["active_now"], &out["total"]["started"]),
        (&2.into(), &2.into())
    );

    // `--chart`: today's bar, its two starts, from the same counters.
    let chart = trialctl(&["--data", data, "stats", "--since", "1d", "--chart"]);
    assert!(chart.status.success(), "{}", text(&chart.stderr));
    let drawn = text(&chart.stdout);
    let lines: Vec<&str> = drawn.lines().collect();
    assert!(lines[0].starts_with("Trials per day, "), "{drawn}");
    let today = lines[2];
    assert!(
        today.starts_with(&format!("{} ## ", &lines[0][16..26])),
        "{drawn}"
    );
    assert_eq!(today.split_whitespace().nth(2), Some("2"), "{drawn}");
    let both = trialctl(&["--data", data, "stats", "--chart", "--json"]);
    assert_eq!(both.status.code(), Some(2));

    let bad = trialctl(&["--data", data, "stats", "--since", "a month"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("--since"),
        "{}",
        text(&bad.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn plans_check_validates_a_catalog_like_init_does() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/plans-enterprise.json"
    );
    let ok = trialctl(&["plans", "check", example]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let out = text(&ok.stdout);
    // Both durations in the units a plan file uses.
    assert!(
        out.contains("enterprise\tEnterprise\ttrial 14d\tgrace 3d\t"),
        "{out}"
    );
    assert!(out.contains(": ok, 7 plan(s)"), "{out}");
    // How each plan's trials end: a reverse trial names its free plan.
    let line = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{id}\t")))
            .unwrap_or("")
    };
    assert!(
        line("pro-reverse").ends_with("\tdowngrade to free"),
        "{out}"
    );
    assert!(line("enterprise").ends_with("\texpire"), "{out}");

    let dir = data_dir("plans-check");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("plans.json");
    let text_of = std::fs::read_to_string(example).unwrap().replace(
        "\"trial_length\": \"14d\"",
        "\"trial_length\": \"fortnight\"",
    );
    std::fs::write(&bad, text_of).unwrap();
    let failed = trialctl(&["plans", "check", bad.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1));
    let err = text(&failed.stderr);
    assert!(
        err.contains("enterprise") && err.contains("trial_length"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let missing = trialctl(&["plans", "check", "/nonexistent/plans.json"]);
    assert_eq!(missing.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_keys_allowances_and_why_an_org_may_not_start() {
    let dir = data_dir("why");
    let app = app_on(&dir).await;
    let data = dir.to_str().unwrap();

    let created = trialctl(&[
        "--data", data, "keys", "create", "--org", "org_w", "--admin",
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stderr).contains("admin API key"));
    let key = ApiKey::parse(text(&created.stdout).trim()).unwrap();
    let listed = text(&trialctl(&["--data", data, "keys", "list", "--org", "org_w"]).stdout);
    assert!(listed.contains("admin"), "{listed}");

    let why = |org: &str| text(&trialctl(&["--data", data, "trials", "why", "--org", org]).stdout);
    assert!(
        why("org_w").contains("eligible: no trial, no refusal"),
        "{}",
        why("org_w")
    );
    let allowed = trialctl(&["--data", data, "trials", "allow", "--org", "org_w"]);
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    assert!(
        why("org_w").contains("an operator allowance is waiting"),
        "{}",
        why("org_w")
    );

    let (status, body) = send(
        &app,
        request("POST", "/v1/trials/start", key.expose(), "org_w", "proj_1"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    let said = why("org_w");
    assert!(
        said.contains("trial_already_used") && said.contains(id),
        "{said}"
    );
}

/// Issue 26 item 7: `trialctl` takes `DUE_SHARDS` from the functions' configuration code, so a
/// trial it extends under `DUE_SHARDS=1` stays in the one shard the jobs read, and the expire
/// job takes it at its new end.
#[tokio::test(flavor = "multi_thread")]
async fn a_trial_trialctl_extends_under_one_due_shard_is_expired_by_the_jobs() {
    use trials::jobs::{self, Job};
    use trials::store::schema::shard_of;
    const ONE_SHARD: &[(&str, &str)] = &[("DUE_SHARDS", "1")];
    let dir = data_dir("shards");
    let app = app_on_with(&dir, ONE_SHARD).await;
    let data = dir.to_str().unwrap();
    // A trial that four shards would put elsewhere than shard 0 (the only one with one shard),
    // so a trialctl that assumed four would move it out of the jobs' sight.
    let mut id = String::new();
    for n in 0..16 {
        id = start_for(&app, data, &format!("org_shard{n}"), "growth").await;
        if shard_of(&id, 4) != 0 {
            break;
        }
    }
    assert_ne!(shard_of(&id, 4), 0, "no trial outside shard 0 in 16 starts");

    let extended = trialctl_with(
        &["--data", data, "trials", "extend", &id, "--days", "2"],
        ONE_SHARD,
    );
    assert!(extended.status.success(), "{}", text(&extended.stderr));
    let trial_id = trials::domain::TrialId::parse(&id).unwrap();
    let stored = app.store.get_trial(&trial_id).await.unwrap().unwrap();

    // The jobs, at the new end, on the same table and configuration.
    let clock = trials::clock::ManualClock::at(stored.expires_at);
    let at_end = App::new((*app.config).clone(), app.store.clone(), Arc::new(clock));
    // (The trials started before it in the loop, if any, are past their end too.)
    let report = jobs::run(&at_end, Job::Expire, None).await;
    assert!(report.processed >= 1 && report.failed == 0, "{report:?}");
    let expired = app.store.get_trial(&trial_id).await.unwrap().unwrap();
    assert_eq!(expired.status, trials::domain::TrialStatus::Expired);

    // A value the functions would refuse at init is refused here too, naming the variable.
    let bad = trialctl_with(
        &["--data", data, "trials", "show", &id],
        &[("DUE_SHARDS", "0")],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("DUE_SHARDS"),
        "{}",
        text(&bad.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 26 item 9d: `trialctl stats` counts every trial, listing the plans its catalog does
/// not know by id: here the functions ran with a `PLANS_FILE` (an `enterprise` plan) and the
/// operator's shell has none.
#[tokio::test(flavor = "multi_thread")]
async fn stats_count_plans_the_catalog_does_not_know() {
    let plans_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/plans-enterprise.json"
    );
    let dir = data_dir("unknown-plans");
    let app = app_on_with(&dir, &[("PLANS_FILE", plans_file)]).await;
    let data = dir.to_str().unwrap();
    start_for(&app, data, "org_ent", "enterprise").await;
    start_for(&app, data, "org_gro", "growth").await;
    pump_stream(&app, &dir).await;

    let json = trialctl(&["--data", data, "stats", "--json"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let out: serde_json::Value = serde_json::from_str(&text(&json.stdout)).unwrap();
    assert_eq!(out["total"]["started"], 2, "{out}");
    assert_eq!(out["plans"]["enterprise"]["started"], 1, "{out}");
    assert_eq!(out["plans"]["growth"]["started"], 1, "{out}");
    assert_eq!(out["unknown_plans"], serde_json::json!(["enterprise"]));

    let table = trialctl(&["--data", data, "stats"]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let shown = text(&table.stdout);
    let row = |plan: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(plan))
            .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_owned())
    };
    assert_eq!(row("enterprise").as_deref(), Some("1"), "{shown}");
    assert_eq!(row("all").as_deref(), Some("2"), "{shown}");
    assert!(
        shown.contains("not in the catalog (PLANS_FILE): enterprise"),
        "{shown}"
    );

    // With the deployment's PLANS_FILE, the plan is known and nothing is listed as unknown.
    let json = trialctl_with(
        &["--data", data, "stats", "--json"],
        &[("PLANS_FILE", plans_file)],
    );
    let out: serde_json::Value = serde_json::from_str(&text(&json.stdout)).unwrap();
    assert_eq!(out["total"]["started"], 2, "{out}");
    assert_eq!(out["unknown_plans"], serde_json::json!([]));
    std::fs::remove_dir_all(&dir).ok();
}
