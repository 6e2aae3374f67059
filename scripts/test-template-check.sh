#!/usr/bin/env bash
# Proves that scripts/template-check.py can fail: each case copies template.yaml, breaks it in one
# way that cfn-lint alone lets through (or that one step exists to catch), and asserts that the
# named step rejects the copy, for the expected reason. A mutation that no longer applies (the
# template changed under it) fails the test too, so no case can pass by testing nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# case NAME STEP EXPECTED FROM TO: replace the first FROM (a literal) with TO in a copy of the
# template, run STEP on it, and require a failure whose output contains EXPECTED.
case_() {
  local name=$1 step=$2 expected=$3 from=$4 to=$5
  local copy="$tmp/$name.yaml" out="$tmp/$name.out"
  if ! FROM="$from" TO="$to" "$PY" - template.yaml "$copy" <<'EOF'
import os, sys
src = open(sys.argv[1]).read()
frm, to = os.environ["FROM"], os.environ["TO"]
if frm not in src:
    sys.exit(f"mutation does not apply: {frm!r} is not in template.yaml")
open(sys.argv[2], "w").write(src.replace(frm, to, 1))
EOF
  then
    echo "FAIL $name: could not break the template"; failed=$((failed + 1)); return
  fi
  if "$PY" scripts/template-check.py --step "$step" "$copy" >"$out" 2>&1; then
    echo "FAIL $name: step '$step' accepted the broken template"; failed=$((failed + 1))
  elif ! grep -qF -- "$expected" "$out"; then
    echo "FAIL $name: step '$step' failed, but not with '$expected':"; sed 's/^/    /' "$out"
    failed=$((failed + 1))
  else
    echo "ok   $name ($step)"; passed=$((passed + 1))
  fi
}

# The translator (both through `sam validate` and through its Python API) catches what the
# schema-only cfn-lint does not.
for step in sam-validate translated; do
  case_ "misspelled-httpapi-property-$step" "$step" "PayloadFormatVersoin not defined" \
    '            PayloadFormatVersion: "2.0"' '            PayloadFormatVersoin: "2.0"'
  case_ "missing-httpapi-path-$step" "$step" "Property 'Path' is required" \
    "            Path: /v1/trials/start" "            Paht: /v1/trials/start"
  case_ "unknown-event-type-$step" "$step" "HttpApy" \
    "          Type: HttpApi" "          Type: HttpApy"
  case_ "bad-policy-template-argument-$step" "$step" "required parameters of template 'DynamoDBReadPolicy'" \
    "      Policies:
        - Version: \"2012-10-17\"
          Statement:
            - Effect: Allow
              # BatchGetItem" \
    "      Policies:
        - DynamoDBReadPolicy:
            TableNam: !Ref Table
        - Version: \"2012-10-17\"
          Statement:
            - Effect: Allow
              # BatchGetItem"
done

# cfn-lint-serverless: the ignores are per rule and resource, not a blanket off switch.
case_ "no-tracing" source "WS1000" "    Tracing: Active
" ""
case_ "stream-without-dlq" source "ES1001" "            DestinationConfig:
              OnFailure:
                Destination: !GetAtt PublishDeadLetterQueue.Arn
" ""

# Our own checks.
case_ "dashboard-metric-not-emitted" own "'TrialStartd' is not emitted" \
  '["Trials", "TrialStarted", {"label": "started"}]' '["Trials", "TrialStartd", {"label": "started"}]'
case_ "alarm-metric-not-emitted" own "'PaymentsUnmatched' is not emitted" \
  "MetricName: PaymentUnmatched" "MetricName: PaymentsUnmatched"
case_ "alarm-dimension-not-emitted" own "dimension 'Jobs'" \
  "        - { Name: Job, Value: expire }" "        - { Name: Jobs, Value: expire }"
case_ "log-group-without-retention" own "PublishFunction: LoggingConfig.LogGroup" \
  "/publish
      RetentionInDays: !Ref LogRetentionDays" "/publish"

echo "template-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
