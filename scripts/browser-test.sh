#!/usr/bin/env bash
# The checkout page in a real browser (part of `make test`, also `make browser`): headless
# Chromium, driven by Selenium, against trials-local with the Stripe stand-in. Starts a
# trial, converts it, opens the checkout URL, clicks Pay, lands on the success page and sees
# the trial CONVERTED through the API; then the operator console: its chart against
# GET /v1/stats, a trial's link, an extension from the page (scripts/browser_test.py).
#
# Chromium and its driver come from Debian's packages (installed here when missing: we are
# root on the dev machines and in CI); selenium from PyPI into .venv (`make tools`). Nothing
# is downloaded from anywhere else: the driver's path is given to Selenium, so Selenium
# Manager never looks for one, and SE_OFFLINE keeps it offline whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium_bin=$(command -v chromium || true)
driver_bin=$(command -v chromedriver || true)
if [[ -z "$chromium_bin" || -z "$driver_bin" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "browser-test: chromium and chromium-driver are missing; install them as root:" >&2
        echo "  apt-get update && apt-get install -y chromium chromium-driver" >&2
        exit 1
    fi
    echo "browser-test: installing chromium and chromium-driver from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    chromium_bin=$(command -v chromium)
    driver_bin=$(command -v chromedriver)
fi

if ! .venv/bin/python -c 'import selenium' 2>/dev/null; then
    echo "browser-test: selenium is not in .venv: run 'make tools' first" >&2
    exit 1
fi

cargo build --quiet --bin trials-local --bin trialctl
target_dir=${CARGO_TARGET_DIR:-target}

export SE_OFFLINE=true
exec .venv/bin/python scripts/browser_test.py \
    --bin "$target_dir/debug/trials-local" \
    --trialctl "$target_dir/debug/trialctl" \
    --chromium "$chromium_bin" \
    --chromedriver "$driver_bin"
