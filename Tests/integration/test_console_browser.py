"""The web console in a real browser: headless Chromium driven by Selenium against a running cluster.

Each test opens the console with the token ``nimbus up`` wrote (``<data>/console-token``), does what a
person would (Run Task 9, kill a process, scale a worker, the Lambda Test button, subscribe and click
the confirmation link in the inbox), waits for the page to show the outcome (WebDriverWait, never a
sleep) and saves a screenshot in its tmp_path. The Flow page under load is saved too; it replaces
docs/console-flow.png when that file is missing or NIMBUS_CONSOLE_SCREENSHOT=1.

Needs Debian's chromium and chromium-driver and PyPI's selenium (Scripts/lib/deps.sh:
ensure_browser_deps); the module skips, saying why, when they are not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import threading
import time
import uuid
import zlib
from pathlib import Path

import pytest
import requests

from conftest import REPO, sink_mails, wait_until

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - reported as a skip below
    webdriver = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

if webdriver is None or not CHROMIUM or not CHROMEDRIVER:
    missing = [name for name, found in (("selenium", webdriver), ("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not found]
    pytest.skip(f"browser tests need {', '.join(missing)} (Scripts/lib/deps.sh ensure_browser_deps installs them; "
                "it could not here)", allow_module_level=True)

UI_TIMEOUT = 20  # seconds for the page to show what an action did
PIPELINE_TIMEOUT = 90  # seconds for an order to go through a debug build's whole pipeline
FLOW_SCREENSHOT = REPO / "docs" / "console-flow.png"
FLOW_SCREENSHOT_LIMIT = 150 * 1024


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def by_testid(name: str) -> tuple[str, str]:
    """A locator for ``data-testid="name"``."""
    return By.CSS_SELECTOR, f'[data-testid="{name}"]'


def console_token(cluster) -> str:
    return (cluster.directory / "data" / "console-token").read_text().strip()


def console_api(cluster, method: str, path: str, body: dict | None = None, timeout: float = 30) -> dict:
    """One console API call with the bearer token; raises on an error answer."""
    response = requests.request(method, f"{cluster.http_url}/console/api/{path}", json=body, timeout=timeout,
                                headers={"Authorization": f"Bearer {console_token(cluster)}"})
    assert response.ok, f"{method} /console/api/{path}: {response.status_code} {response.text}"
    return response.json()


def wait(driver, timeout: float = UI_TIMEOUT) -> "WebDriverWait":
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,))


def attribute_is(locator: tuple[str, str], name: str, value: str):
    """A wait condition: the element at ``locator`` exists and its attribute ``name`` is ``value``."""
    def check(driver):
        found = driver.find_elements(*locator)
        return bool(found) and found[0].get_attribute(name) == value
    return check


def go(driver, page: str) -> None:
    """Follows the nav link to a page and waits for its section to show."""
    driver.find_element(By.CSS_SELECTOR, f'nav a[data-route="{page}"]').click()
    wait(driver).until(EC.visibility_of_element_located((By.ID, f"page-{page}")))


def alert_text(driver) -> str:
    found = driver.find_elements(*by_testid("alert"))
    return found[0].text if found and found[0].is_displayed() else ""


def confirm_email_subscription(cluster, address: str) -> None:
    """Subscribes ``address`` through the console API and opens its mail's confirmation link."""
    console_api(cluster, "POST", "topic/subscribe", {"protocol": "email", "endpoint": address})

    def link():
        for mail in sink_mails(cluster.mail_directory, to=address):
            found = re.search(r"http://\S+/sns/confirm\?\S+", mail.get_content())
            if found:
                return found.group(0)
        return None

    url = wait_until(link, timeout=PIPELINE_TIMEOUT, interval=0.3, message=f"confirmation mail to {address}")
    assert requests.get(url, timeout=10).ok, url
    wait_until(lambda: any(s["Endpoint"] == address and s["status"] == "Confirmed"
                           for s in console_api(cluster, "GET", "topic")["subscriptions"]),
               timeout=UI_TIMEOUT, message=f"{address} confirmed")


def small_png(data: bytes) -> bytes:
    """The same PNG recompressed at zlib level 9 (Chromium's screenshots are compressed lightly)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks, position, idat = [], 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        payload = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IDAT":
            idat += payload
            continue
        if idat and not any(c[0] == b"IDAT" for c in chunks):
            chunks.append((b"IDAT", zlib.compress(zlib.decompress(idat), 9)))
        chunks.append((kind, payload))
    out = data[:8]
    for kind, payload in chunks:
        out += struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    return out


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                     "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console(browser, cluster, tmp_path, request):
    """The browser on the console's Cluster page, live; a screenshot of whatever it shows at the end
    (``<tmp_path>/console-<test>.png``), and no browser window but the first left open."""
    name = request.node.name.removeprefix("test_").replace("_", "-")
    try:
        browser.get(f"{cluster.http_url}/console/#token={console_token(cluster)}")
        wait(browser).until(EC.visibility_of_element_located((By.ID, "nav")))
        wait(browser).until(attribute_is(by_testid("live-indicator"), "data-state", "live"))
        assert "token=" not in browser.current_url, "the token stays in the address bar"
    except Exception:
        browser.save_screenshot(str(tmp_path / f"console-{name}-opening.png"))
        raise
    try:
        yield browser
    finally:
        browser.switch_to.window(browser.window_handles[0])
        browser.save_screenshot(str(tmp_path / f"console-{name}.png"))
        for handle in browser.window_handles[1:]:
            browser.switch_to.window(handle)
            browser.close()
        browser.switch_to.window(browser.window_handles[0])


# --------------------------------------------------------------------------------------------
# tests (in this order: the chaos ones last)
# --------------------------------------------------------------------------------------------


def test_page_is_served_with_its_security_headers(cluster):
    response = requests.get(f"{cluster.http_url}/console/", timeout=10)
    assert response.status_code == 200 and "Nimbus console" in response.text
    policy = response.headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in policy and "style-src 'self'" in policy, policy
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    weight = sum(len(requests.get(f"{cluster.http_url}/console/{name}", timeout=10).content)
                 for name in ("", "console.css", "console.js"))
    assert weight <= 200 * 1024, f"page weight {weight} bytes"


def test_without_a_token_the_page_says_to_open_the_printed_url(browser, cluster, tmp_path):
    browser.get(f"{cluster.http_url}/console/")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    screen = wait(browser).until(EC.visibility_of_element_located((By.ID, "no-token")))
    assert "nimbus up" in screen.text
    assert not browser.find_element(By.ID, "nav").is_displayed()
    browser.save_screenshot(str(tmp_path / "console-no-token.png"))


def test_lab_task_9_reaches_mail_delivered(console, cluster):
    confirm_email_subscription(cluster, f"lab-{uuid.uuid4().hex[:8]}@example.com")
    go(console, "lab")
    console.find_element(*by_testid("lab-run")).click()
    wait(console).until(EC.text_to_be_present_in_element(by_testid("lab-status"), "trace"))
    wait(console, PIPELINE_TIMEOUT).until(attribute_is(by_testid("lab-step-mail delivered"), "data-state", "done"))
    wait(console).until(EC.text_to_be_present_in_element(by_testid("lab-status"), "Done"))
    for stage in ("posted", "queued", "row written", "stream record", "published", "mail delivered"):
        step = console.find_element(*by_testid(f"lab-step-{stage}"))
        assert step.get_attribute("data-state") == "done", stage
        assert "ms" in step.find_element(By.CLASS_NAME, "at").text, step.text
    assert alert_text(console) == ""


def test_functions_test_button_runs_the_sqs_event(console):
    go(console, "functions")
    function = wait(console).until(EC.element_to_be_clickable(by_testid("test-function")))
    wait(console).until(lambda _: Select(function).options and Select(console.find_element(*by_testid("test-template"))).options)
    ingest = next(o.get_attribute("value") for o in Select(function).options if "ingest-worker" in o.text)
    Select(function).select_by_value(ingest)
    template = Select(console.find_element(*by_testid("test-template")))
    assert {"sqs", "dynamodb-update"} <= {o.get_attribute("value") for o in template.options}

    # Not JSON: said under the field, nothing is sent.
    event = console.find_element(*by_testid("test-event"))
    event.clear()
    event.send_keys('{"Records": [')
    console.find_element(*by_testid("invoke-test")).click()
    wait(console).until(EC.text_to_be_present_in_element(by_testid("test-event-error"), "not valid JSON"))
    assert console.find_element(*by_testid("invoke-result")).text == ""

    # The SQS template (choosing it again restores it), then Test.
    template.select_by_value("dynamodb-update")
    template.select_by_value("sqs")
    assert "Hello from SQS!" in console.find_element(*by_testid("test-event")).get_attribute("value")
    console.find_element(*by_testid("invoke-test")).click()
    wait(console, 30).until(EC.text_to_be_present_in_element(by_testid("invoke-result"), "Execution result: succeeded"))
    assert console.find_element(*by_testid("invoke-payload")).is_displayed()
    assert alert_text(console) == ""


def test_topic_subscribe_and_confirm_from_the_inbox(console, cluster):
    address = f"console-{uuid.uuid4().hex[:8]}@example.com"
    go(console, "topic")
    console.find_element(*by_testid("subscribe-endpoint")).send_keys(address)
    console.find_element(*by_testid("subscribe-submit")).click()
    row = by_testid(f"subscription-{address}")
    wait(console).until(attribute_is(row, "data-status", "PendingConfirmation"))

    def confirmation_link(driver):
        for mail in driver.find_elements(By.CSS_SELECTOR, '[data-testid="inbox"] > li'):
            if address in mail.find_element(By.CLASS_NAME, "meta").text:
                links = [a for a in mail.find_elements(*by_testid("mail-link")) if "confirm" in a.get_attribute("href")]
                if links:
                    return links[0]
        return False

    link = wait(console, PIPELINE_TIMEOUT).until(confirmation_link)
    assert link.get_attribute("target") == "_blank" and "noopener" in link.get_attribute("rel")
    link.click()
    wait(console).until(attribute_is(row, "data-status", "Confirmed"))
    assert alert_text(console) == ""


def test_flow_page_under_load(console, cluster, tmp_path):
    go(console, "flow")
    stop = threading.Event()
    sent = [0]

    def post_orders():
        session = requests.Session()
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline and sent[0] < 50000:
            try:
                session.post(f"{cluster.http_url}/", json={"item": "latex gloves", "customerID": str(sent[0])}, timeout=5)
            except requests.RequestException:
                pass
            sent[0] += 1

    def samples(driver) -> int:
        return driver.execute_script(
            "return document.querySelector('polyline[data-series=\"gateway>queue\"]').points.numberOfItems")

    def loaded(driver) -> bool:
        rate = driver.find_element(By.CSS_SELECTOR, '[data-edge="gateway>queue"] text').text.removesuffix("/s").replace(",", "")
        return rate.replace(".", "", 1).isdigit() and float(rate) >= 20

    threads = [threading.Thread(target=post_orders, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait(console, 30).until(loaded)
        # about 15 seconds of the load in the charts (one sample a second), then the picture
        before = samples(console)
        wait(console, 40).until(lambda d: samples(d) >= before + 15)
        assert loaded(console)
        picture = small_png(console.find_element(By.ID, "main").screenshot_as_png)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    (tmp_path / "console-flow.png").write_bytes(picture)
    assert len(picture) <= FLOW_SCREENSHOT_LIMIT, f"flow screenshot is {len(picture)} bytes"
    if not FLOW_SCREENSHOT.exists() or os.environ.get("NIMBUS_CONSOLE_SCREENSHOT") == "1":
        FLOW_SCREENSHOT.write_bytes(picture)
    assert alert_text(console) == ""


def test_cluster_kill_queue_comes_back_with_a_new_incarnation(console):
    row = by_testid("process-row-queue")
    wait(console).until(lambda d: d.find_element(*row).get_attribute("data-incarnation"))
    before = console.find_element(*row).get_attribute("data-incarnation")
    console.find_element(*by_testid("kill-queue")).click()
    wait(console).until(EC.alert_is_present())
    console.switch_to.alert.accept()
    wait(console, 30).until(lambda d: d.find_element(*row).get_attribute("data-incarnation") not in ("", before)
                            and d.find_element(*row).get_attribute("data-state") == "running")
    assert "queue" in console.find_element(By.ID, "cluster-status").text


def test_cluster_scale_ingest_worker_to_three(console, cluster):
    rows = (By.CSS_SELECTOR, '[data-testid^="process-row-ingest-worker-"]')
    field = console.find_element(*by_testid("scale-ingest-worker"))
    field.clear()
    field.send_keys("3")
    console.find_element(*by_testid("scale-apply-ingest-worker")).click()
    try:
        wait(console, 60).until(lambda d: len(d.find_elements(*rows)) == 3
                                and all(r.get_attribute("data-state") == "running" for r in d.find_elements(*rows)))
        assert {r.get_attribute("data-name") for r in console.find_elements(*rows)} == \
            {"ingest-worker-1", "ingest-worker-2", "ingest-worker-3"}
    finally:
        console_api(cluster, "POST", "cluster/scale", {"kind": "ingest-worker", "count": 1})


def test_page_has_no_script_errors(browser):
    """Nothing the page did above broke a content-security rule or threw."""
    problems = [entry["message"] for entry in browser.get_log("browser")
                if entry["level"] == "SEVERE" and entry.get("source") != "network"]
    assert not problems, problems
