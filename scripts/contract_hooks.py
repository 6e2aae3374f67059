"""Schemathesis hooks for `scripts/contract-test.sh`: make fuzzed requests reach the real logic.

Left alone, almost every generated request would stop at the door: a random bearer token is
401, a random `X-Org-Id` is 403, a random trial id is 404, a random `Stripe-Signature` is 400.
Those answers are checked too, but nothing behind them would be. So, for each generated case,
deterministically from its content (the same case is always rewritten the same way, which
keeps shrinking and replays stable):

- `Authorization`: the run's key of the chosen tenant, except for 1 case in 8, which keeps the
  generated (wrong, or missing) credentials to check the 401 path. The admin-only routes
  (`PATCH /v1/trials/{id}`, extend, `GET /v1/stats`) get the tenant's admin key, except for 1
  case in 8 of those, which get its standard key (403 `forbidden`); so does 1 start in 4, so the admin's
  `expires_at` and `notes` at start are fuzzed too. (A fuzzed admin may set a near
  `expires_at`: that trial then changes with time, the only state a run's clock can reach.)
- `X-Org-Id` / `X-Project-Id`: replaced by the tenant's when the generated value is well formed
  (1 case in 10 keeps a well-formed stranger's org: 403). Missing or malformed values are left
  as generated, so the 400 paths stay fuzzed.
- `{id}`: a well-formed generated id is replaced, in 3 cases out of 4, by a trial the seed
  created (ACTIVE, CANCELED, CONVERTED, ACTIVE with an open checkout, EXPIRED within grace,
  purged) or one a fuzzed start created, with that trial's tenant; ill-formed ids are left alone
  (404). The seeded states do not change with time during the run (30-day trials and grace):
  only the requests change them, so the same seed replays the same run.
- `Idempotency-Key`: 3 well-formed bare keys in 4 get a suffix unique to the case, so requests
  execute rather than collide (the rest still exercise replays and 422 idempotency_key_reused).
- `POST /v1/trials/start`: spread over the tenants, so several organizations get their one 201.
- `POST /v1/webhooks/stripe`: half of the deliveries are signed with the run's webhook secret
  over the exact bytes sent; half of those are turned into a Checkout event naming a seeded
  trial, so conversions and expired sessions happen under fuzzing. The others keep their
  generated (invalid) signatures: `400 invalid_signature`.

Rewritten requests are what schemathesis prints to reproduce a failure (the body is sent as the
bytes that were signed, so a reproduced webhook delivery fails only on its stale timestamp).

Configuration: `CONTRACT_FIXTURES`, the JSON file `scripts/contract_seed.py` wrote:
`{"tenants": [{"key", "admin_key", "org", "project"}], "trials": [{"id", "tenant", "state"}],
"webhook_secret"}`.
"""
import hashlib
import hmac
import json
import os
import re
import threading
import time

import schemathesis

_FIXTURES = json.load(open(os.environ["CONTRACT_FIXTURES"]))
TENANTS = _FIXTURES["tenants"]
TRIALS = _FIXTURES["trials"]
SECRET = _FIXTURES["webhook_secret"]

TRIAL_ID = re.compile(r"^trial_[0-9a-f]{24}$")
TENANT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# A well-formed bare key (a quoted one would no longer be one once suffixed).
IDEM_KEY = re.compile(r"^[!#-~]([ -~]*[!-~])?$")
STRANGER_ORG = "contract-stranger-org"
# The routes only an admin key may call (anything else of the org is 403 forbidden).
ADMIN_ROUTES = {
    ("PATCH", "/v1/trials/{id}"),
    ("POST", "/v1/trials/{id}/extend"),
    ("GET", "/v1/stats"),
}

# Trials created by fuzzed starts (id -> tenant index), so later cases can use them too.
_created: dict = {}
_lock = threading.Lock()

CHECKOUT_EVENTS = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.expired",
    "checkout.session.async_payment_failed",
]


def _digest(case) -> int:
    """A stable number drawn from the generated content of `case`."""
    material = repr(
        (
            case.method,
            case.path,
            sorted((str(k), repr(v)) for k, v in (case.headers or {}).items()),
            sorted((str(k), repr(v)) for k, v in (case.path_parameters or {}).items()),
            repr(case.body),
        )
    )
    return int.from_bytes(hashlib.sha256(material.encode()).digest()[:8], "big")


def _header(headers, name):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return k, v
    return None, None


def _set_header(headers, name, value):
    key, _ = _header(headers, name)
    if key is not None and key != name:
        del headers[key]
    headers[name] = value


def _sign(body: bytes) -> str:
    # Signed as Stripe would sign it now (the server accepts 5 minutes either way).
    t = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _webhook(case, d: int):
    if d % 2:
        return case  # keep the generated signature: 400 invalid_signature
    body = case.body
    if (d >> 1) % 2 == 0 and isinstance(body, dict) and TRIALS:
        trial = TRIALS[(d >> 2) % len(TRIALS)]["id"]
        kind = CHECKOUT_EVENTS[(d >> 5) % len(CHECKOUT_EVENTS)]
        body = dict(body)
        # Mostly fresh event ids (1 in 4 keeps the generated one: duplicates are exercised too).
        keep = (d >> 12) % 4 == 0 and isinstance(body.get("id"), str) and body["id"]
        body["id"] = body["id"] if keep else f"evt_contract_{d:x}"
        body["type"] = kind
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        obj = data.get("object") if isinstance(data.get("object"), dict) else {}
        obj = dict(obj)
        obj["id"] = obj["id"] if isinstance(obj.get("id"), str) and obj["id"] else f"cs_contract_{d:x}"
        obj["client_reference_id"] = trial
        if kind == "checkout.session.completed":
            obj["payment_status"] = ["paid", "no_payment_required", "unpaid"][(d >> 8) % 3]
        body["data"] = dict(data, object=obj)
    if isinstance(body, (bytes, bytearray)):
        raw = bytes(body)
    elif body is None or type(body).__name__ == "NotSet":
        raw = b""
    else:
        # What requests would send for `json=`, fixed now so the signature covers these bytes.
        raw = json.dumps(body, ensure_ascii=False).encode()
    case.body = raw
    case.media_type = case.media_type or "application/json"
    case.headers = case.headers if case.headers is not None else {}
    _set_header(case.headers, "Stripe-Signature", _sign(raw))
    _set_header(case.headers, "Content-Type", "application/json")
    return case


@schemathesis.hook
def map_case(context, case):
    d = _digest(case)
    if case.path == "/v1/webhooks/stripe":
        return _webhook(case, d)

    tenant = (d >> 4) % len(TENANTS) if case.path == "/v1/trials/start" else 0
    params = case.path_parameters or {}
    trial_id = params.get("id")
    if isinstance(trial_id, str) and TRIAL_ID.match(trial_id):
        with _lock:
            known = dict(_created)
        pool = TRIALS + [{"id": i, "tenant": t} for i, t in known.items()]
        by_id = {p["id"]: p for p in pool}
        # Schemathesis also feeds ids it saw in responses back into generated cases, so a
        # generated id may already be one of ours: it then goes with its own tenant.
        chosen = by_id.get(trial_id)
        if chosen is None and (d >> 4) % 4 and pool:
            chosen = pool[(d >> 6) % len(pool)]
        if chosen is not None:
            params["id"] = chosen["id"]
            tenant = chosen["tenant"]
    t = TENANTS[tenant]

    headers = case.headers if case.headers is not None else {}
    if d % 8:
        if (case.method.upper(), case.path) in ADMIN_ROUTES:
            admin = (d >> 14) % 8 != 0
        else:
            admin = case.path == "/v1/trials/start" and (d >> 14) % 4 == 0
        _set_header(headers, "Authorization", f"Bearer {t['admin_key' if admin else 'key']}")
    _, org = _header(headers, "X-Org-Id")
    if isinstance(org, str) and TENANT_ID.match(org.strip()):
        _set_header(headers, "X-Org-Id", STRANGER_ORG if (d >> 10) % 10 == 0 else t["org"])
    _, project = _header(headers, "X-Project-Id")
    if isinstance(project, str) and TENANT_ID.match(project.strip()):
        _set_header(headers, "X-Project-Id", t["project"])
    _, idem = _header(headers, "Idempotency-Key")
    if isinstance(idem, str) and IDEM_KEY.match(idem) and (d >> 12) % 4:
        _set_header(headers, "Idempotency-Key", f"{idem[:200]}.{d:016x}")
    case.headers = headers
    return case


@schemathesis.hook
def after_call(context, case, response):
    """Remembers the trials fuzzed starts created, with the tenant that owns them."""
    if case.path != "/v1/trials/start" or response.status_code != 201:
        return
    try:
        trial_id = response.json()["id"]
    except Exception:  # the response checks report a malformed body
        return
    _, org = _header(case.headers or {}, "X-Org-Id")
    for index, t in enumerate(TENANTS):
        if t["org"] == org:
            with _lock:
                _created[trial_id] = index
