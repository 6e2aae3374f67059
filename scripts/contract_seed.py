#!/usr/bin/env python3
"""Seeds a running Trials API for `scripts/contract-test.sh` and writes the fixtures file that
`scripts/contract_hooks.py` reads.

    contract_seed.py --url http://127.0.0.1:PORT --keys keys.tsv --secret whsec_... \\
        --phase purged|expired|states --fixtures fixtures.json

`keys.tsv`: one `org<TAB>project<TAB>key<TAB>admin key` line per tenant (keys from
`trialctl keys create`, and `trialctl keys create --admin` for the admin key).
Each phase adds its trials to `--fixtures` (created by the first phase run). The trials are in
states that no longer change with time once the last phase is seeded, so a run replayed with
the same schemathesis seed meets the same trials in the same states:

    phase    server settings (contract-test.sh)   tenant  trial
    purged   1 s trial, 1 s grace, jobs every 1 s  5       expired, then purged by the jobs: 410
    expired  1 s trial, 30 d grace                 4       EXPIRED, within its (30 d) grace
    states   30 d trial, 30 d grace                0       ACTIVE
                                                   1       CANCELED          (start, cancel)
                                                   2       CONVERTED         (start, convert,
                                                                              signed webhook)
                                                   3       ACTIVE with an open checkout
                                                   6…      no trial: fuzzed starts get their 201

The first two phases wait for the server's jobs and clock to get the trial there (polling the
API, for up to a minute); nothing is decided by a race against the clock. Every seeding request
must get the documented answer, or this exits 1 (it doubles as a smoke test of the happy
paths). Standard library only.
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

TENANT = {"active": 0, "canceled": 1, "converted": 2, "open_checkout": 3, "expired": 4, "purged": 5}
MIN_TENANTS = 7
POLL_SECS = 60


def call(url, method, path, tenant=None, body=None, headers=None, mutation=True):
    h = {"Content-Type": "application/json"}
    if tenant is not None:
        h["Authorization"] = f"Bearer {tenant['key']}"
        h["X-Org-Id"] = tenant["org"]
        h["X-Project-Id"] = tenant["project"]
        if mutation:
            h["Idempotency-Key"] = str(uuid.uuid4())
    h.update(headers or {})
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def expect(what, got, status):
    if got[0] != status:
        sys.exit(f"contract seed: {what}: expected {status}, got {got[0]} {got[1]}")
    return got[1]


def wait_for(what, probe):
    """Polls `probe()` until it returns something true; exits 1 after POLL_SECS."""
    deadline = time.monotonic() + POLL_SECS
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            sys.exit(f"contract seed: {what}: not reached within {POLL_SECS} s")
        time.sleep(0.2)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--keys", required=True, help="org<TAB>project<TAB>key<TAB>admin key per line")
    p.add_argument("--secret", required=True, help="the server's STRIPE_WEBHOOK_SECRET")
    p.add_argument("--phase", required=True, choices=["purged", "expired", "states"])
    p.add_argument("--fixtures", required=True, help="the JSON file the phases fill in")
    args = p.parse_args()

    tenants = []
    for line in open(args.keys):
        if line.strip():
            org, project, key, admin_key = line.rstrip("\n").split("\t")
            tenants.append({"org": org, "project": project, "key": key, "admin_key": admin_key})
    if len(tenants) < MIN_TENANTS:
        sys.exit(f"contract seed: need at least {MIN_TENANTS} tenants")

    if os.path.exists(args.fixtures):
        fixtures = json.load(open(args.fixtures))
    else:
        fixtures = {"tenants": tenants, "trials": [], "webhook_secret": args.secret}
    url = args.url.rstrip("/")

    def start(state, plan):
        i = TENANT[state]
        body = expect(f"start for tenant {i}", call(url, "POST", "/v1/trials/start", tenants[i], {"plan": plan}), 201)
        fixtures["trials"].append({"id": body["id"], "tenant": i, "state": state})
        return body["id"]

    def status(state, trial_id):
        return call(url, "GET", f"/v1/trials/{trial_id}", tenants[TENANT[state]], mutation=False)

    if args.phase == "purged":
        purged = start("purged", "starter")
        wait_for("the purge job deleting the 1 s trial", lambda: status("purged", purged)[0] == 410)
        expect("status of the purged trial", status("purged", purged), 410)

    elif args.phase == "expired":
        expired = start("expired", "pro")
        wait_for("the 1 s trial expiring", lambda: status("expired", expired)[1].get("status") == "EXPIRED")

    else:
        start("active", "growth")

        canceled = start("canceled", "starter")
        expect("cancel", call(url, "POST", f"/v1/trials/{canceled}/cancel", tenants[TENANT["canceled"]]), 200)

        converted = start("converted", "pro")
        expect("convert", call(url, "POST", f"/v1/trials/{converted}/convert", tenants[TENANT["converted"]]), 200)
        event = {
            "id": f"evt_seed_{uuid.uuid4().hex}",
            "object": "event",
            "type": "checkout.session.completed",
            "created": int(time.time()),
            "data": {"object": {
                "id": f"cs_seed_{uuid.uuid4().hex}",
                "object": "checkout.session",
                # A session convert made: subscription mode, the trial, org and plan in its
                # metadata (the webhook converts only those).
                "mode": "subscription",
                "client_reference_id": converted,
                "payment_status": "paid",
                "customer": "cus_seed",
                "subscription": "sub_seed",
                "metadata": {"trial_id": converted, "org_id": tenants[TENANT["converted"]]["org"], "plan": "pro"},
            }},
        }
        raw = json.dumps(event).encode()
        # Signed now: the server checks the timestamp against its clock, within 5 minutes.
        t = int(time.time())
        sig = hmac.new(args.secret.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
        expect("signed webhook", call(url, "POST", "/v1/webhooks/stripe", body=raw,
                                      headers={"Stripe-Signature": f"t={t},v1={sig}"}), 200)
        view = expect("status of the converted trial", status("converted", converted), 200)
        if view.get("status") != "CONVERTED":
            sys.exit(f"contract seed: the signed webhook did not convert the trial: {view}")

        open_checkout = start("open_checkout", "growth")
        expect("convert", call(url, "POST", f"/v1/trials/{open_checkout}/convert", tenants[TENANT["open_checkout"]]), 200)

        # The earlier phases' trials, as this server (30 d grace) sees them.
        by_state = {t["state"]: t["id"] for t in fixtures["trials"]}
        for state, want in (("expired", 200), ("purged", 410)):
            if state not in by_state:
                sys.exit(f"contract seed: no {state} trial: run the {state} phase first")
            view = expect(f"status of the {state} trial", status(state, by_state[state]), want)
            if state == "expired" and view.get("status") != "EXPIRED":
                sys.exit(f"contract seed: the expired trial is not EXPIRED within grace: {view}")

    with open(args.fixtures, "w") as f:
        json.dump(fixtures, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
