#!/usr/bin/env python3
"""Smoke test of the Lambda functions as cargo-lambda runs them.

Starts `trials-local` (for its embedded DynamoDB on a known port, its dev API key and its Stripe
stand-in), runs every function under `cargo lambda watch` pointed at that DynamoDB, invokes each
with its `events/` file (the dev key, a fresh idempotency key and the new trial's id patched in),
and asserts on the responses: start 201, status 200, convert 200, the webhook converts the
trial, cancel then answers 409, and the scheduled jobs return their counts.

Standard library only; expects the debug binaries built (`cargo build --workspace --bins`) and
cargo-lambda in .venv.
"""
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
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
WEBHOOK_SECRET = "whsec_smoke"


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
            [os.path.join(ROOT, "target", "debug", "trials-local"), "--addr", f"127.0.0.1:{api_port}",
             "--data", os.path.join(workdir, "data"), "--dynamodb-addr", f"127.0.0.1:{dynamo_port}"],
            cwd=ROOT, stdout=local_log, stderr=subprocess.STDOUT,
            env={**os.environ, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "JOBS_INTERVAL": "1h"},
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
        assert status["days_remaining"] == 7 and status["status"] == "ACTIVE", status
        converted = expect("convert", invoke(invoke_port, "convert", http_event("convert", key, trial_id), workdir), 200)
        # The Stripe stand-in's checkout page, served by trials-local on loopback.
        assert converted["checkout_url"].startswith(f"http://127.0.0.1:{api_port}/checkout/pay/cs_test_"), converted
        paid = expect("stripe-webhook", invoke(invoke_port, "stripe-webhook", webhook_event(trial_id), workdir), 200)
        assert paid["outcome"] == "converted", paid
        refused = expect("cancel (of a converted trial)",
                         invoke(invoke_port, "cancel", http_event("cancel", key, trial_id), workdir), 409)
        assert refused["error"]["code"] == "trial_already_converted", refused
        for job in ("expire", "purge"):
            report = invoke(invoke_port, job, load_event(job), workdir)
            for field in ("processed", "skipped", "failed", "complete"):
                assert field in report, (job, report)
            assert report["failed"] == 0 and report["complete"] is True, (job, report)
            print(f"smoke: {job}: {report}")
        print("smoke: all functions answered as expected")
        return 0
    except (AssertionError, SystemExit) as e:
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
