# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
ADDR ?= 127.0.0.1:3000
DATA ?= .trials

.PHONY: run test tools fmt-check clippy cargo-test template-lint openapi-lint smoke contract browser bench sizes chaos mutants clean

## Serve the whole API on http://$(ADDR) on the embedded DynamoDB under $(DATA) (listening on
## $(DYNAMODB_ADDR) for functions run by cargo-lambda). Builds `trials-local` and `trialctl` with
## the dev profile (dependencies unoptimised, SQLite at -O2): about 2.5 minutes on 2 cores, and
## the same build that `make test` makes, where the Lambda functions' release profile (size,
## fat LTO) takes far longer and buys nothing on a laptop.
DYNAMODB_ADDR ?= 127.0.0.1:8000
run:
	cargo build --bin trials-local --bin trialctl
	$(or $(CARGO_TARGET_DIR),target)/debug/trials-local --addr $(ADDR) --data $(DATA) --dynamodb-addr $(DYNAMODB_ADDR)

## Every test: formatting, lints, unit + integration tests, template and OpenAPI checks,
## the cargo-lambda smoke test, the contract fuzzing and the checkout page in a browser.
test: tools fmt-check clippy cargo-test template-lint openapi-lint smoke contract browser

## Python tools (cargo-lambda, SAM CLI and translator, cfn-lint and its serverless rules,
## openapi-spec-validator, schemathesis, selenium) into .venv.
tools: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

cargo-test:
	cargo test --workspace

## The template as CloudFormation will get it, offline (no credentials, region only):
## `sam validate`, cfn-lint on the SAM translator's output, cfn-lint with the serverless rules
## (accepted findings: IGNORED in scripts/template-check.py), and metric names against
## shared/src/metrics.rs. Then broken copies of the template prove each check can fail.
template-lint: tools
	$(BIN)/python scripts/template-check.py template.yaml
	scripts/test-template-check.sh

openapi-lint: tools
	$(BIN)/openapi-spec-validator openapi.yaml

## Every function under `cargo lambda watch`, invoked with its events/ file.
smoke: tools
	cargo build --workspace --bins
	$(BIN)/python scripts/smoke.py

## schemathesis against the local API: no 5xx, every response as openapi.yaml says.
contract: tools
	scripts/contract-test.sh

## The local checkout page in headless Chromium (Debian's chromium + chromium-driver, installed
## by the script when missing): start a trial, convert, click Pay, see it CONVERTED; then the
## operator console: its chart against /v1/stats, a trial's link, an extension from the page.
browser: tools
	scripts/browser-test.sh

## Benchmarks (not part of `make test`): prints one table and writes BENCHMARKS.md.
## The CPU section runs bench/cpu-worker, built here with the functions' release profile.
FUNCTIONS := start status convert cancel stripe-webhook expire purge publish usage manage
TARGET := $(or $(CARGO_TARGET_DIR),target)
bench: tools
	cargo build --release $(addprefix -p ,$(FUNCTIONS)) -p hello-world -p cpu-worker
	scripts/bench-zips.sh
	cargo run --profile harness -p trials-bench -- --bin-dir $(TARGET)/release \
		--zip-dir $(TARGET)/lambda --zip-arch "$$(cat $(TARGET)/lambda/ARCH 2>/dev/null || echo n/a)" --out BENCHMARKS.md

## The deployed sizes (not part of `make test`: about half an hour on 2 cores from nothing):
## every function's arm64 zip as `sam build` makes it (cargo-lambda, zig), printed as a table;
## fails if any is 2.5 MB or more. BENCHMARKS.md's section 10 records the last run.
sizes: tools
	scripts/sizes.sh

## The issue-25 workloads at 64 concurrency under the DynamoDB semantics layer (not part of
## `make test`; tests/integration/chaos.rs asserts the invariants at a small scale): prints
## first-attempt 5xx, p50/p99 per route and conflicts by item kind. CHAOS_SEED=n reseeds it.
chaos:
	cargo run -p trials-tests --example chaos

## Mutation testing with cargo-mutants (not part of `make test` nor CI: hours on 2 cores). The
## scope and timeouts are in .cargo/mutants.toml; see MUTANTS.md. Installs cargo-mutants from
## crates.io into .tools/ the first time. Narrow a run with MUTANTS_ARGS, e.g.
##   make mutants MUTANTS_ARGS='--re ^shared/src/stripe/signature.rs'
MUTANTS_VERSION := 27.1.0
MUTANTS_ROOT := .tools/cargo-mutants-$(MUTANTS_VERSION)
MUTANTS_ARGS ?=
mutants: $(MUTANTS_ROOT)/bin/cargo-mutants
	PATH="$(CURDIR)/$(MUTANTS_ROOT)/bin:$$PATH" cargo mutants $(MUTANTS_ARGS)

$(MUTANTS_ROOT)/bin/cargo-mutants:
	cargo install --locked --root $(MUTANTS_ROOT) --version $(MUTANTS_VERSION) cargo-mutants

clean:
	rm -rf $(VENV) $(DATA) target .tools mutants.out mutants.out.old
