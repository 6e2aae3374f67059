#!/usr/bin/env python3
"""The local checkout page in headless Chromium: start a trial, convert it, open the checkout
URL, click Pay, land on the success page, and see the trial CONVERTED through the API.

Run by scripts/browser-test.sh (which provides Chromium, chromedriver and selenium). It starts
its own trials-local on a free loopback port with a temporary data directory and a random
webhook secret, waits for it with a deadline, and always stops it. Every wait is bounded.
"""
import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

# trials-local's fixed dev key (local/src/dev_key.rs): public, local only.
DEV_KEY = "trk_0000000000000000_10ca1de710ca1de710ca1de710ca1de710ca1de710ca1de710ca1de710ca1de7"
ORG, PROJECT = "org_local", "proj_local"
START_TIMEOUT = 120  # a cold debug binary opening its store
STEP_TIMEOUT = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, method: str, path: str, key: str = "-", body=None):
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {DEV_KEY}",
        "X-Org-Id": ORG,
        "X-Project-Id": PROJECT,
        "Idempotency-Key": key,
        "Content-Type": "application/json",
    })
    try:
        with urllib.request.urlopen(req, timeout=STEP_TIMEOUT) as res:
            return res.status, json.loads(res.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_until(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def answering(base: str):
    def check():
        try:
            api(base, "GET", "/v1/trials/trial_000000000000000000000000")
            return True
        except (urllib.error.URLError, ConnectionError, OSError):
            return False
    return check


def browser(chromium: str, chromedriver: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--window-size=1024,768"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(STEP_TIMEOUT)
    return driver


def run(args, base: str) -> None:
    status, trial = api(base, "POST", "/v1/trials/start", "browser-start", {"plan": "growth"})
    assert status == 201, (status, trial)
    trial_id = trial["id"]
    status, converted = api(base, "POST", f"/v1/trials/{trial_id}/convert", "browser-convert")
    assert status == 200, (status, converted)
    url = converted["checkout_url"]
    assert url.startswith(base + "/checkout/pay/"), url

    driver = browser(args.chromium, args.chromedriver)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, STEP_TIMEOUT)
        pay = wait.until(EC.element_to_be_clickable((By.ID, "pay")))
        product = driver.find_element(By.ID, "product").text
        price = driver.find_element(By.ID, "price").text
        assert product == "Growth", product
        assert "$29.00" in price, price
        assert driver.find_element(By.ID, "pay-delayed").is_displayed()
        assert driver.find_element(By.ID, "cancel").is_displayed()
        pay.click()
        wait.until(EC.url_contains("/checkout/success?session_id=cs_test_"))
        wait.until(EC.text_to_be_present_in_element((By.ID, "trial-status"), "CONVERTED"))
        print(f"browser-test: {product} {price}: paid, success page says "
              f"{driver.find_element(By.ID, 'trial-status').text}")
    finally:
        driver.quit()

    def converted_in_api():
        status, view = api(base, "GET", f"/v1/trials/{trial_id}")
        return status == 200 and view.get("status") == "CONVERTED"
    wait_until("the API to report the trial CONVERTED", converted_in_api, STEP_TIMEOUT)
    print(f"browser-test: GET /v1/trials/{trial_id} says CONVERTED")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the trials-local binary")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="trials-browser-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in (
        "STRIPE_SECRET_KEY", "STRIPE_API_BASE", "CHECKOUT_SUCCESS_URL", "CHECKOUT_CANCEL_URL",
        "DYNAMODB_ENDPOINT", "EVENT_BUS_NAME", "TABLE_NAME")}
    env.update(STRIPE_WEBHOOK_SECRET="whsec_" + secrets.token_hex(16), JOBS_INTERVAL="1h",
               LOG_LEVEL="warn")
    log_path = os.path.join(work, "trials-local.log")
    log = open(log_path, "w")
    server = subprocess.Popen(
        [args.bin, "--addr", f"127.0.0.1:{port}", "--data", os.path.join(work, "data"),
         "--dynamodb-addr", "127.0.0.1:0"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ok = False
    try:
        def started():
            if server.poll() is not None:
                raise RuntimeError(f"trials-local exited with status {server.returncode}")
            return answering(base)()
        wait_until(f"trials-local on {base}", started, START_TIMEOUT)
        run(args, base)
        ok = True
    except Exception as e:  # report, with the server's log, then fail
        print(f"browser-test: FAILED: {e!r}", file=sys.stderr)
        log.flush()
        with open(log_path) as f:
            tail = f.read()[-4000:]
        print(f"--- trials-local log (tail) ---\n{tail}", file=sys.stderr)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    print("browser-test: 1 passed, 0 failed" if ok else "browser-test: 0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
