#!/usr/bin/env bash
# Contract fuzzing: schemathesis against trials-local, checked against openapi.yaml.
#
#   scripts/contract-test.sh            (make contract)
#
# 1. Builds trials-local and trialctl (debug), creates API keys for a handful of fresh orgs in
#    a throw-away data directory, and starts trials-local on a free port with the embedded
#    DynamoDB, the Stripe stand-in, a webhook secret, short trial and grace periods (so trials
#    expire and are purged during the run) and the jobs every 2 s.
# 2. Seeds trials in every state (scripts/contract_seed.py).
# 3. Runs schemathesis over every operation of openapi.yaml, positive and negative inputs, with
#    scripts/contract_hooks.py steering cases to the run's keys, orgs, trials and webhook
#    signature. Checks: no 5xx, and every response's status code, content type, headers and
#    body conform to the document. A failure prints the request that reproduces it (curl).
# 4. Fails as well if the server logged a panic. The server is stopped on exit, always.
#
# Environment:
#   CONTRACT_MAX_TIME   schemathesis time budget in seconds (default 90)
#   CONTRACT_SEED       schemathesis seed, to replay a run (default: random, printed)
#   CONTRACT_WORKERS    concurrent schemathesis workers (default 1: with more, hypothesis hits a
#                       thread-safety bug of Python 3.11's ast module, gh-106905, and errors out)
#   CONTRACT_SPEC       the document to check against (default openapi.yaml)
#   CONTRACT_KEEP=1     keep the temporary directory (server log, data, fixtures, report)
#   VENV                the Python venv with schemathesis (default .venv; `make tools`)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
MAX_TIME="${CONTRACT_MAX_TIME:-90}"
SPEC="$(cd "$(dirname "${CONTRACT_SPEC:-openapi.yaml}")" && pwd)/$(basename "${CONTRACT_SPEC:-openapi.yaml}")"
WORKERS="${CONTRACT_WORKERS:-1}"
SEED="${CONTRACT_SEED:-$(( (RANDOM << 15) | RANDOM ))}"

log() { printf 'contract: %s\n' "$*" >&2; }

for tool in "$VENV/bin/schemathesis" "$VENV/bin/python"; do
  [[ -x "$tool" ]] || { log "$tool missing: run 'make tools' first"; exit 2; }
done
VENV="$(cd "$VENV" && pwd)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/trials-contract.XXXXXX")"
SERVER_PID=""
cleanup() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ "${CONTRACT_KEEP:-}" == 1 || $rc -ne 0 ]]; then
    log "kept $TMP (server.log, data/, fixtures.json, report/)"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building trials-local and trialctl (debug)"
cargo build --quiet -p trials-local --bins
BIN="$ROOT/target/debug"

# A webhook secret and orgs of this run only: nothing collides with an earlier run.
RUN="$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
SECRET="whsec_contract_$RUN"
PROJECT="proj_contract"
DATA="$TMP/data"
mkdir -p "$DATA"
: > "$TMP/keys.tsv"
for i in 0 1 2 3 4 5 6 7; do
  org="org_contract_${RUN}_$i"
  out="$("$BIN/trialctl" --data "$DATA" keys create --org "$org" --project "$PROJECT" 2>&1)" || {
    log "trialctl keys create failed:"; printf '%s\n' "$out" >&2; exit 1; }
  key="$(grep -oE 'trk_[0-9a-f]{16}_[0-9a-f]{64}' <<<"$out" | head -n1 || true)"
  [[ -n "$key" ]] || { log "no key in trialctl's output:"; printf '%s\n' "$out" >&2; exit 1; }
  printf '%s\t%s\t%s\n' "$org" "$PROJECT" "$key" >> "$TMP/keys.tsv"
done

log "starting trials-local (data in $DATA)"
# The OS picks the port; trials-local prints the URL it serves once it listens.
env -u STRIPE_SECRET_KEY -u DYNAMODB_ENDPOINT -u EVENT_BUS_NAME \
  STRIPE_WEBHOOK_SECRET="$SECRET" TRIAL_LENGTH=40s GRACE_PERIOD=30s JOBS_INTERVAL=2s \
  "$BIN/trials-local" --addr 127.0.0.1:0 --dynamodb-addr 127.0.0.1:0 --data "$DATA" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
URL=""
for _ in $(seq 300); do
  URL="$(grep -oE 'Trials API on http://[0-9.]+:[0-9]+' "$TMP/server.log" | head -n1 | sed 's/^Trials API on //' || true)"
  [[ -n "$URL" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { log "trials-local exited:"; cat "$TMP/server.log" >&2; exit 1; }
  sleep 0.2
done
[[ -n "$URL" ]] || { log "trials-local did not come up in 60 s:"; tail -n 50 "$TMP/server.log" >&2; exit 1; }
log "serving on $URL"

log "seeding trials in every state"
"$VENV/bin/python" scripts/contract_seed.py --url "$URL" --keys "$TMP/keys.tsv" --secret "$SECRET" \
  > "$TMP/fixtures.json"

log "schemathesis: ${MAX_TIME}s, $WORKERS workers, seed $SEED (replay: CONTRACT_SEED=$SEED $0)"
status=0
COLOR=--no-color
[[ -t 1 ]] && COLOR=--force-color
# Run from $TMP: schemathesis keeps its crash cache under ./.schemathesis, which belongs to this
# run (its server is gone afterwards), not to the repository.
(cd "$TMP" && CONTRACT_FIXTURES="$TMP/fixtures.json" SCHEMATHESIS_HOOKS="$ROOT/scripts/contract_hooks.py" \
  "$VENV/bin/schemathesis" run "$SPEC" \
    --url "$URL" "$COLOR" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --mode all \
    --max-time "$MAX_TIME" \
    --workers "$WORKERS" \
    --seed "$SEED" \
    --request-timeout 15 \
    --generation-database none \
    --report junit,ndjson --report-dir "$TMP/report") \
  || status=$?

if grep -qE 'panicked at|RUST_BACKTRACE' "$TMP/server.log"; then
  log "trials-local panicked:"
  grep -nE -A5 'panicked at' "$TMP/server.log" >&2 || true
  status=1
fi
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  log "trials-local died during the run:"
  tail -n 50 "$TMP/server.log" >&2
  status=1
fi
if [[ $status -ne 0 ]]; then
  log "FAILED (schemathesis exit $status); server log: $TMP/server.log"
  exit "$status"
fi
log "OK: every response conformed to openapi.yaml"
