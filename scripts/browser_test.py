#!/usr/bin/env python3
"""The local checkout page and the operator console in headless Chromium.

Checkout: start a trial, convert it, open the checkout URL, click Pay, land on the success page,
and see the trial CONVERTED through the API. Console: start two more trials (keys of two more
orgs from trialctl), open /console, check the chart's numbers against GET /v1/stats (an admin
key from trialctl), follow a trial's link from /console/trials, extend it from its page, and
check the new end through the API.

Run by scripts/browser-test.sh (which provides Chromium, chromedriver and selenium). It starts
its own trials-local on a free loopback port with a temporary data directory and a random
webhook secret, waits for it with a deadline, and always stops it. Every wait is bounded.
"""
import argparse
import datetime
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


def api(base: str, method: str, path: str, key: str = "-", body=None, auth=(DEV_KEY, ORG)):
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {auth[0]}",
        "X-Org-Id": auth[1],
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


def trialctl(args, endpoint: str, *argv: str) -> str:
    """trialctl against the running trials-local's embedded DynamoDB; its stdout."""
    out = subprocess.run([args.trialctl, "--endpoint", endpoint, *argv], check=True,
                         capture_output=True, text=True, timeout=STEP_TIMEOUT)
    return out.stdout.strip()


def when(rfc3339: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))


def console(args, base: str, endpoint: str) -> None:
    """Two more trials, then the console: the chart against /v1/stats, a trial's link, extend."""
    auths = {}
    for org in ("org_console_b", "org_console_c"):
        auths[org] = (trialctl(args, endpoint, "keys", "create", "--org", org), org)
        status, body = api(base, "POST", "/v1/trials/start", f"start-{org}", {"plan": "growth"},
                           auth=auths[org])
        assert status == 201, (status, body)
        auths[org + "/trial"] = body["id"]
    admin = (trialctl(args, endpoint, "keys", "create", "--org", "org_console_admin", "--admin"),
             "org_console_admin")

    def stats():
        status, body = api(base, "GET", "/v1/stats", auth=admin)
        assert status == 200, (status, body)
        # The counters are the stream's: wait for the three starts and the conversion.
        total = body["total"]
        return body if (total["started"], total["converted"]) == (3, 1) else None
    funnel = wait_until("the funnel to count 3 starts and 1 conversion", stats, STEP_TIMEOUT)

    trial_id = auths["org_console_b/trial"]
    status, before = api(base, "GET", f"/v1/trials/{trial_id}", auth=auths["org_console_b"])
    assert status == 200, (status, before)

    driver = browser(args.chromium, args.chromedriver)
    try:
        wait = WebDriverWait(driver, STEP_TIMEOUT)
        driver.get(base + "/console")
        wait.until(EC.presence_of_element_located((By.ID, "funnel")))
        days = driver.find_elements(By.CSS_SELECTOR, "#funnel g.day")
        drawn = [{"day": d.get_attribute("data-day"),
                  "started": int(d.get_attribute("data-started")),
                  "converted": int(d.get_attribute("data-converted")),
                  "rate": d.get_attribute("data-rate")} for d in days]
        expected = [{"day": d["day"], "started": d["started"], "converted": d["converted"],
                     "rate": "" if d["conversion_rate"] is None else d["conversion_rate"]}
                    for d in funnel["days"]]
        for d in drawn:
            d["rate"] = float(d["rate"]) if d["rate"] else ""
        assert drawn == expected, (drawn, expected)
        total = driver.find_element(By.ID, "funnel-total")
        assert int(total.get_attribute("data-started")) == 3
        assert int(total.get_attribute("data-converted")) == 1
        assert float(total.get_attribute("data-rate")) == funnel["total"]["conversion_rate"]
        print(f"browser-test: console chart: {len(drawn)} days, as GET /v1/stats says "
              f"(3 started, 1 converted)")

        driver.get(base + "/console/trials")
        link = wait.until(EC.element_to_be_clickable((By.LINK_TEXT, trial_id)))
        link.click()
        wait.until(EC.url_contains(f"/console/trials/{trial_id}"))
        days_input = wait.until(EC.presence_of_element_located((By.ID, "extend-days")))
        assert driver.find_element(By.ID, "field-expires_at").text == before["expires_at"]
        days_input.clear()
        days_input.send_keys("5")
        driver.find_element(By.ID, "extend-reason").send_keys("browser test")
        driver.find_element(By.ID, "extend").click()
        flash = wait.until(EC.presence_of_element_located((By.ID, "flash"))).text
        assert flash.startswith("extend: ACTIVE"), flash
    finally:
        driver.quit()

    status, after = api(base, "GET", f"/v1/trials/{trial_id}", auth=auths["org_console_b"])
    assert status == 200, (status, after)
    moved = when(after["expires_at"]) - when(before["expires_at"])
    assert moved == datetime.timedelta(days=5), (before["expires_at"], after["expires_at"])
    print(f"browser-test: extended {trial_id} from the console: GET /v1/trials/{{id}} ends "
          f"{after['expires_at']}, 5 days later")


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
    parser.add_argument("--trialctl", required=True, help="the trialctl binary")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="trials-browser-")
    port, dynamodb_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    endpoint = f"http://127.0.0.1:{dynamodb_port}"
    env = {k: v for k, v in os.environ.items() if k not in (
        "STRIPE_SECRET_KEY", "STRIPE_API_BASE", "CHECKOUT_SUCCESS_URL", "CHECKOUT_CANCEL_URL",
        "DYNAMODB_ENDPOINT", "EVENT_BUS_NAME", "TABLE_NAME")}
    env.update(STRIPE_WEBHOOK_SECRET="whsec_" + secrets.token_hex(16), JOBS_INTERVAL="1h",
               LOG_LEVEL="warn")
    log_path = os.path.join(work, "trials-local.log")
    log = open(log_path, "w")
    server = subprocess.Popen(
        [args.bin, "--addr", f"127.0.0.1:{port}", "--data", os.path.join(work, "data"),
         "--dynamodb-addr", f"127.0.0.1:{dynamodb_port}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    passed, tests = 0, 2
    try:
        def started():
            if server.poll() is not None:
                raise RuntimeError(f"trials-local exited with status {server.returncode}")
            return answering(base)()
        wait_until(f"trials-local on {base}", started, START_TIMEOUT)
        run(args, base)
        passed += 1
        console(args, base, endpoint)
        passed += 1
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
    print(f"browser-test: {passed} passed, {tests - passed} failed")
    return 0 if passed == tests else 1


if __name__ == "__main__":
    sys.exit(main())
