#!/usr/bin/env python3
"""Seeds a running Trials API for `scripts/contract-test.sh` and writes the fixtures file that
`scripts/contract_hooks.py` reads.

    contract_seed.py --url http://127.0.0.1:PORT --keys keys.tsv --secret whsec_... > fixtures.json

`keys.tsv`: one `org<TAB>project<TAB>key` line per tenant (keys from `trialctl keys create`).
With 5 or more tenants, the first four get a trial each, in a different state:

    0  ACTIVE, left to expire (not canceled by the run before its expires_at)
    1  CANCELED                       (start, cancel)
    2  CONVERTED                      (start, convert, signed checkout.session.completed)
    3  ACTIVE with an open checkout   (start, convert)
    4… no trial yet: fuzzed starts get their 201 there

Every seeding request must get the documented answer, or this exits 1 (it doubles as a smoke
test of the happy paths). Standard library only.
"""
import argparse
import datetime
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request
import uuid


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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--keys", required=True, help="org<TAB>project<TAB>key per line")
    p.add_argument("--secret", required=True, help="the server's STRIPE_WEBHOOK_SECRET")
    args = p.parse_args()

    tenants = []
    for line in open(args.keys):
        if line.strip():
            org, project, key = line.rstrip("\n").split("\t")
            tenants.append({"org": org, "project": project, "key": key})
    if len(tenants) < 5:
        sys.exit("contract seed: need at least 5 tenants")

    url = args.url.rstrip("/")
    trials = []

    def start(i, plan, protect=False):
        body = expect(f"start for tenant {i}", call(url, "POST", "/v1/trials/start", tenants[i], {"plan": plan}), 201)
        expires_at = datetime.datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
        expires_at = int(expires_at.replace(tzinfo=datetime.timezone.utc).timestamp())
        trials.append({"id": body["id"], "tenant": i, "expires_at": expires_at, "protect": protect})
        return body["id"]

    # Left to run out: the hooks never cancel it before it expires.
    start(0, "growth", protect=True)

    canceled = start(1, "starter")
    expect("cancel", call(url, "POST", f"/v1/trials/{canceled}/cancel", tenants[1]), 200)

    converted = start(2, "pro")
    expect("convert", call(url, "POST", f"/v1/trials/{converted}/convert", tenants[2]), 200)
    event = {
        "id": f"evt_seed_{uuid.uuid4().hex}",
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {"object": {
            "id": f"cs_seed_{uuid.uuid4().hex}",
            "object": "checkout.session",
            "mode": "subscription",
            "client_reference_id": converted,
            "payment_status": "paid",
            "customer": "cus_seed",
            "subscription": "sub_seed",
            "metadata": {"trial_id": converted, "org_id": tenants[2]["org"], "plan": "pro"},
        }},
    }
    raw = json.dumps(event).encode()
    t = int(time.time())
    sig = hmac.new(args.secret.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    expect("signed webhook", call(url, "POST", "/v1/webhooks/stripe", body=raw,
                                  headers={"Stripe-Signature": f"t={t},v1={sig}"}), 200)
    view = expect("status of the converted trial", call(url, "GET", f"/v1/trials/{converted}", tenants[2], mutation=False), 200)
    if view.get("status") != "CONVERTED":
        sys.exit(f"contract seed: the signed webhook did not convert the trial: {view}")

    open_checkout = start(3, "growth")
    expect("convert", call(url, "POST", f"/v1/trials/{open_checkout}/convert", tenants[3]), 200)

    json.dump({"tenants": tenants, "trials": trials, "webhook_secret": args.secret}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
