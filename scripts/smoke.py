#!/usr/bin/env python3
"""Smoke test of the Lambda functions as cargo-lambda runs them.

Starts `trials-local` (for its embedded DynamoDB on a known port, its dev API key and its Stripe
stand-in), runs every function under `cargo lambda watch` pointed at that DynamoDB, invokes each
with its `events/` file (the dev key, a fresh idempotency key and the new trial's id patched in),
and checks the responses: start 201, status 200, convert 200, the webhook converts the trial,
cancel then answers 409. Then the scheduled jobs get work that is due: a second org's trial,
started through trials-local with a 1 s trial and 3 s of grace, which the `expire` function must
expire (processed 1) and, once the grace has passed, the `purge` function must delete
(processed 1; the trial then answers 410).

Every check raises SystemExit (no `assert`: `python -O` would drop them). Standard library
only; expects the debug binaries built (`cargo build --workspace --bins`, in $CARGO_TARGET_DIR
if set) and cargo-lambda in .venv.
"""
import calendar
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
# Where cargo put the binaries: $CARGO_TARGET_DIR (relative to the workspace) or target/.
TARGET_BIN = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target", "debug")
WEBHOOK_SECRET = "whsec_smoke"
# The trial the jobs find due: trials-local starts it with these (the functions get the same
# grace, so the purge function agrees it is over).
DUE_ORG = "org_smoke_due"
DUE_TRIAL_LENGTH_SECS = 1
DUE_GRACE_SECS = 3


def check(condition: bool, what: str, detail: object = "") -> None:
    """Fails the smoke test unless `condition` holds (an `assert` that `python -O` keeps)."""
    if not condition:
        raise SystemExit(f"smoke: {what}: {detail}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"smoke: {what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"smoke: {what} did not listen on {port} within {seconds}s")


def load_event(name: str) -> dict:
    with open(os.path.join(ROOT, "events", f"{name}.json")) as f:
        return json.load(f)


def invoke(port: int, function: str, event: dict, workdir: str) -> dict:
    path = os.path.join(workdir, f"{function}-{uuid.uuid4().hex[:8]}.json")
    with open(path, "w") as f:
        json.dump(event, f)
    out = subprocess.run(
        [os.path.join(VENV_BIN, "cargo-lambda"), "lambda", "invoke", function,
         "--data-file", path, "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
         "--retry-attempts", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    if out.returncode != 0:
        raise SystemExit(f"smoke: invoke {function} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout)


def http_event(name: str, key: str, trial_id: str | None = None) -> dict:
    event = load_event(name)
    event["headers"]["authorization"] = f"Bearer {key}"
    event["headers"]["x-org-id"] = "org_local"
    event["headers"]["x-project-id"] = "proj_local"
    if "idempotency-key" in event["headers"]:
        event["headers"]["idempotency-key"] = f"smoke-{uuid.uuid4()}"
    if trial_id:
        event["pathParameters"] = {"id": trial_id}
        for field in ("rawPath",):
            event[field] = re.sub(r"trial_[0-9a-f]{24}", trial_id, event[field])
        event["requestContext"]["http"]["path"] = event["rawPath"]
    return event


def webhook_event(trial_id: str) -> dict:
    event = load_event("stripe-webhook")
    body = json.loads(event["body"])
    body["id"] = f"evt_smoke_{uuid.uuid4().hex[:12]}"
    session = body["data"]["object"]
    session["client_reference_id"] = trial_id
    session.setdefault("metadata", {})["trial_id"] = trial_id
    raw = json.dumps(body)
    t = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{t}.{raw}".encode(), hashlib.sha256).hexdigest()
    event["body"] = raw
    event["headers"]["stripe-signature"] = f"t={t},v1={mac}"
    return event


def api(port: int, method: str, path: str, key: str, org: str, body: dict | None = None) -> tuple[int, dict]:
    """A request to trials-local's HTTP API: (status, JSON body)."""
    headers = {"Authorization": f"Bearer {key}", "X-Org-Id": org, "X-Project-Id": "proj_local"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = f"smoke-{uuid.uuid4()}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, json.loads(res.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def epoch(rfc3339: str) -> int:
    """`2026-04-06T10:00:00Z` as epoch seconds."""
    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))


def wait_until(epoch_secs: int) -> None:
    """Returns once the wall clock has passed `epoch_secs` (the functions read the same clock)."""
    while time.time() < epoch_secs:
        time.sleep(max(0.05, epoch_secs - time.time()))


def job_report(job: str, report: dict) -> dict:
    for field in ("processed", "skipped", "failed", "complete"):
        check(field in report, f"{job}: no {field} in the report", report)
    check(report["failed"] == 0 and report["complete"] is True, f"{job}: failed or incomplete", report)
    print(f"smoke: {job}: {report}")
    return report


def expect(what: str, response: dict, status: int) -> dict:
    got = response.get("statusCode")
    body = json.loads(response.get("body") or "{}")
    if got != status:
        raise SystemExit(f"smoke: {what}: expected {status}, got {got}: {body}")
    print(f"smoke: {what}: {got} ok")
    return body


def main() -> int:
    workdir = tempfile.mkdtemp(prefix="trials-smoke-")
    api_port, dynamo_port, invoke_port = free_port(), free_port(), free_port()
    procs = []
    log_path = os.path.join(workdir, "trials-local.log")
    try:
        local_log = open(log_path, "w")
        local = subprocess.Popen(
            [os.path.join(TARGET_BIN, "trials-local"), "--addr", f"127.0.0.1:{api_port}",
             "--data", os.path.join(workdir, "data"), "--dynamodb-addr", f"127.0.0.1:{dynamo_port}"],
            cwd=ROOT, stdout=local_log, stderr=subprocess.STDOUT,
            # Its jobs run once at start (nothing is due yet), then not again during the test.
            env={**os.environ, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "JOBS_INTERVAL": "1h",
                 "TRIAL_LENGTH": f"{DUE_TRIAL_LENGTH_SECS}s", "GRACE_PERIOD": f"{DUE_GRACE_SECS}s"},
        )
        procs.append(local)
        wait_for_port(api_port, 120, local, "trials-local")
        with open(os.path.join(workdir, "data", "dev-api-key")) as f:
            key = f.read().strip()
        stripe_base = None
        with open(log_path) as f:
            for line in f:
                if "Stripe stand-in" in line and line.startswith("{"):
                    stripe_base = json.loads(line).get("url")
        if not stripe_base:
            raise SystemExit("smoke: trials-local did not report its Stripe stand-in")

        env = {
            "TABLE_NAME": "trials-local",
            "DYNAMODB_ENDPOINT": f"http://127.0.0.1:{dynamo_port}",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "STRIPE_API_BASE": stripe_base,
            "STRIPE_SECRET_KEY": "sk_test_local_standin",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "GRACE_PERIOD": f"{DUE_GRACE_SECS}s",
            "LOG_LEVEL": "warn",
        }
        watch = subprocess.Popen(
            [os.path.join(VENV_BIN, "cargo-lambda"), "lambda", "watch", "--ignore-changes", "--timeout", "60",
             "--invoke-address", "127.0.0.1", "--invoke-port", str(invoke_port),
             "--env-vars", ",".join(f"{k}={v}" for k, v in env.items())],
            cwd=ROOT, stdout=open(os.path.join(workdir, "watch.log"), "w"), stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"},
            start_new_session=True,
        )
        procs.append(watch)
        wait_for_port(invoke_port, 120, watch, "cargo lambda watch")

        started = expect("start", invoke(invoke_port, "start", http_event("start", key), workdir), 201)
        trial_id = started["id"]
        status = expect("status", invoke(invoke_port, "status", http_event("status", key, trial_id), workdir), 200)
        check(status.get("days_remaining") == 7 and status.get("status") == "ACTIVE", "status of the new trial", status)
        # manage serves extend, pause and resume; its event file is an extension by 3 days, which
        # only an admin key may ask for (the dev key is a standard one: 403).
        refused = invoke(invoke_port, "manage", http_event("manage", key, trial_id), workdir)
        check(refused.get("statusCode") == 403, "extend with a standard key", refused)
        made_admin = subprocess.run(
            [os.path.join(TARGET_BIN, "trialctl"), "--endpoint", f"http://127.0.0.1:{dynamo_port}",
             "keys", "create", "--org", "org_local", "--admin"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        check(made_admin.returncode == 0, "trialctl keys create --admin", made_admin.stderr)
        admin_key = made_admin.stdout.strip()
        extended = expect("manage (extend)", invoke(invoke_port, "manage", http_event("manage", admin_key, trial_id), workdir), 200)
        check(extended.get("days_remaining") == 10 and extended.get("status") == "ACTIVE", "the extended trial", extended)
        converted = expect("convert", invoke(invoke_port, "convert", http_event("convert", key, trial_id), workdir), 200)
        # The Stripe stand-in's checkout page, served by trials-local on loopback.
        check(str(converted.get("checkout_url", "")).startswith(f"http://127.0.0.1:{api_port}/checkout/pay/cs_test_"), "convert's checkout_url", converted)
        paid = expect("stripe-webhook", invoke(invoke_port, "stripe-webhook", webhook_event(trial_id), workdir), 200)
        check(paid.get("outcome") == "converted", "the webhook's outcome", paid)
        refused = expect("cancel (of a converted trial)",
                         invoke(invoke_port, "cancel", http_event("cancel", key, trial_id), workdir), 409)
        check(refused.get("error", {}).get("code") == "trial_already_converted", "cancel's error code", refused)

        # Work for the jobs: another org's trial, 1 s long, started through trials-local.
        made = subprocess.run(
            [os.path.join(TARGET_BIN, "trialctl"), "--endpoint", f"http://127.0.0.1:{dynamo_port}",
             "keys", "create", "--org", DUE_ORG],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        check(made.returncode == 0, "trialctl keys create", made.stderr)
        due_key = made.stdout.strip()
        code, due = api(api_port, "POST", "/v1/trials/start", due_key, DUE_ORG, {"plan": "starter"})
        check(code == 201, "start of the trial the jobs get", (code, due))
        expires_at = epoch(due["expires_at"])
        check(expires_at - epoch(due["started_at"]) == DUE_TRIAL_LENGTH_SECS, "the due trial's length", due)

        wait_until(expires_at + 1)
        report = job_report("expire", invoke(invoke_port, "expire", load_event("expire"), workdir))
        check(report["processed"] == 1 and report["skipped"] == 0, "expire: the due trial, and only it", report)
        code, view = api(api_port, "GET", f"/v1/trials/{due['id']}", due_key, DUE_ORG)
        check(code == 200 and view.get("status") == "EXPIRED", "the trial the expire job expired", (code, view))

        wait_until(expires_at + DUE_GRACE_SECS + 1)
        report = job_report("purge", invoke(invoke_port, "purge", load_event("purge"), workdir))
        check(report["processed"] == 1 and report["skipped"] == 0, "purge: the trial past its grace, and only it", report)
        code, view = api(api_port, "GET", f"/v1/trials/{due['id']}", due_key, DUE_ORG)
        check(code == 410, "the purged trial", (code, view))

        # The stream's publisher: a batch of one event record, published (to the log: no bus).
        published = invoke(invoke_port, "publish", load_event("publish"), workdir)
        check(published == {"batchItemFailures": []}, "publish: no batch item failures", published)
        print("smoke: all functions answered as expected")
        return 0
    except (SystemExit, Exception) as e:
        for name in ("trials-local.log", "watch.log"):
            path = os.path.join(workdir, name)
            if os.path.exists(path):
                print(f"--- {name} (tail) ---", file=sys.stderr)
                with open(path) as f:
                    print("".join(f.readlines()[-40:]), file=sys.stderr)
        raise SystemExit(f"smoke failed: {e}")
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM) if p is not procs[0] else p.terminate()
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
