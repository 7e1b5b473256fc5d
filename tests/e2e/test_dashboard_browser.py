"""The dashboard in a real browser: Debian's Chromium, headless, driven by Selenium.

Sign in, open every page, compare what it shows with the admin API, use a filter, read
the browser's console (a CSP violation or a script error is a failure), run axe-core
(no serious or critical accessibility violation) and, with ``DIJK_SCREENSHOTS=1``, save
a screenshot of each page into docs/screenshots/ for the README.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require_service
from tests.support.dashboard import (
    admin_audit,
    admin_json,
    admin_shadows,
    api,
    drive_traffic,
    enumerate_accounts,
    wait_for,
)
from tests.support.demo import DemoProcess, start_demo

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AXE = REPO / "tests" / "support" / "vendor" / "axe.min.js"
SCREENSHOTS = REPO / "docs" / "screenshots"
PAGES = ("overview", "security", "audit", "inventory", "privacy", "config")

webdriver: Any = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    running = start_demo(tmp_path_factory.mktemp("browser-demo") / ".dijk")
    try:
        for _ in range(3):
            drive_traffic(running)
        # The write key walks account ids: an abuse incident for the security events page.
        assert enumerate_accounts(running, running.write_key) == 403
        yield running
    finally:
        assert running.stop(20) == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_service(
        CHROMIUM.exists() and CHROMEDRIVER.exists(),
        "Debian's chromium and chromium-driver are not installed (make install adds them)",
    )
    require_service(AXE.exists(), f"axe-core is not vendored at {AXE} (make install)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespaces for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def ui(demo: DemoProcess, browser: Any) -> Any:
    base = f"http://127.0.0.1:{demo.admin_port}"
    browser.get(base + "/ui/")
    assert browser.current_url.endswith("/ui/login")
    browser.find_element(By.ID, "token").send_keys(demo.admin_token)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/ui/"))
    console_errors(browser)  # start each test with an empty console
    return browser


def console_errors(browser: Any) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def open_page(browser: Any, demo: DemoProcess, path: str) -> None:
    browser.get(f"http://127.0.0.1:{demo.admin_port}{path}")
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def axe_violations(browser: Any) -> list[str]:
    browser.execute_script(AXE.read_text(encoding="utf-8"))
    browser.set_script_timeout(30)
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => [v.id, v.impact, v.nodes.length])))"
        ".catch(e => done([['axe-error', 'critical', String(e)]]));"
    )
    return [f"{rule} ({impact}, {nodes})" for rule, impact, nodes in result]


def screenshot(browser: Any, name: str) -> None:
    if os.environ.get("DIJK_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(max(800, int(height) + 40), 2400))
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    browser.set_window_size(1280, 1000)


def traffic_records(demo: DemoProcess) -> list[dict[str, Any]]:
    found = admin_audit(demo, since="24h", limit="1000")["records"]
    assert isinstance(found, list)
    return [r for r in found if not str(r.get("route") or "").startswith("admin:")]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_without_console_errors_or_serious_accessibility_violations(
    ui: Any, demo: DemoProcess, page: str
) -> None:
    if page == "privacy":
        wait_for(lambda: "$.email" in admin_privacy_text(ui, demo))
    open_page(ui, demo, "/ui/overview?range=15m" if page == "overview" else f"/ui/{page}")
    assert ui.find_element(By.TAG_NAME, "h1").text
    if page == "overview":
        WebDriverWait(ui, 10).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-requests canvas")
        )
    errors = console_errors(ui)
    assert errors == [], errors
    serious = [v for v in axe_violations(ui) if "(serious" in v or "(critical" in v]
    assert serious == [], serious
    screenshot(ui, page)


def admin_privacy_text(browser: Any, demo: DemoProcess) -> str:
    open_page(browser, demo, "/ui/privacy")
    return str(browser.find_element(By.ID, "datamap").text)


def test_the_overview_shows_what_the_audit_api_has(ui: Any, demo: DemoProcess) -> None:
    wait_for(lambda: len(traffic_records(demo)) >= 24)
    time.sleep(0.5)
    expected = traffic_records(demo)
    open_page(ui, demo, "/ui/overview?range=24h")
    assert int(ui.find_element(By.ID, "stat-requests").text) == len(expected)
    refused = [r for r in expected if r["decision"] == "deny"]
    assert int(ui.find_element(By.ID, "stat-refused").text) == len(refused)
    reasons = ui.find_element(By.ID, "reasons").text
    for reason in {str(r["reason"]) for r in refused}:
        assert reason in reasons


def test_security_events_show_the_blocked_sql_injection_rule_and_field(
    ui: Any, demo: DemoProcess
) -> None:
    blocked = admin_audit(demo, reason="waf.sqli")["records"]
    assert isinstance(blocked, list)
    assert blocked
    open_page(ui, demo, "/ui/security")
    table = ui.find_element(By.CSS_SELECTOR, "#results table").text
    finding = blocked[0]["findings"][0]
    assert f"{finding['rule_id']} @ {finding['field']}" in table
    assert "waf.sqli" in table


def test_the_audit_filter_narrows_the_table_in_place(ui: Any, demo: DemoProcess) -> None:
    open_page(ui, demo, "/ui/audit")
    expected = admin_audit(demo, reason="waf.sqli")["count"]
    field = ui.find_element(By.ID, "a-reason")
    field.clear()
    field.send_keys("waf.sqli")
    ui.find_element(By.CSS_SELECTOR, "form.filters button").click()
    WebDriverWait(ui, 10).until(lambda d: "reason=waf.sqli" in d.current_url)  # htmx pushed
    WebDriverWait(ui, 10).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#results caption").text.startswith(
            f"{expected} record"
        )
    )
    rows = ui.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    assert len(rows) == expected
    assert all("waf.sqli" in row.text for row in rows)
    assert console_errors(ui) == []


def test_the_inventory_shows_the_shadow_endpoint_and_filters_in_place(
    ui: Any, demo: DemoProcess
) -> None:
    shadows = admin_shadows(demo)
    assert shadows
    open_page(ui, demo, "/ui/inventory")
    shadow_table = ui.find_element(By.ID, "shadow").text
    for url in shadows:
        assert url in shadow_table
    assert "/api/v1/accounts/{id}" in ui.find_element(By.ID, "endpoints").text
    field = ui.find_element(By.ID, "f-path")
    field.clear()
    field.send_keys("/api/v0")
    ui.find_element(By.CSS_SELECTOR, "form.filters button").click()
    WebDriverWait(ui, 10).until(lambda d: "path=%2Fapi%2Fv0" in d.current_url)  # htmx pushed
    WebDriverWait(ui, 10).until(lambda d: "/api/v1/" not in d.find_element(By.ID, "endpoints").text)
    endpoints = ui.find_element(By.ID, "endpoints").text
    assert "/api/v0/accounts/{id}" in endpoints
    assert console_errors(ui) == []


def test_lift_block_in_the_browser_lets_the_blocked_key_through_again(
    ui: Any, demo: DemoProcess
) -> None:
    listing = admin_json(demo, "/admin/api/v1/abuse/incidents")["incidents"]
    assert isinstance(listing, list)
    incident = next(i for i in listing if i["reason"] == "abuse.enumeration")
    assert api(demo, "/api/v1/accounts/1", demo.write_key) == 403
    open_page(ui, demo, "/ui/security")
    row = ui.find_element(By.ID, f"incident-{incident['id']}")
    assert incident["subject"] in row.text
    row.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(ui, 10).until(lambda d: "lifted=ok" in d.current_url)
    assert "Lifted" in ui.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert not ui.find_elements(By.ID, f"incident-{incident['id']}")
    assert api(demo, "/api/v1/accounts/1", demo.write_key) == 200
    assert console_errors(ui) == []


def test_the_csp_header_is_on_the_pages_the_browser_loads(ui: Any, demo: DemoProcess) -> None:
    open_page(ui, demo, "/ui/config")
    # An inline script is blocked by the page's CSP, and says so in the console.
    ui.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        "document.body.appendChild(s);"
    )
    assert ui.execute_script("return window.__ran === undefined")
    messages = console_errors(ui)
    assert any("Content Security Policy" in message for message in messages), messages


def test_a_post_without_the_csrf_token_is_refused_in_the_browser(
    ui: Any, demo: DemoProcess
) -> None:
    open_page(ui, demo, "/ui/config")
    status = ui.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/ui/config/reload', {method: 'POST', credentials: 'same-origin',"
        " headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'x=1'})"
        ".then(r => done(r.status)).catch(e => done(String(e)));"
    )
    assert status == 403
    console_errors(ui)  # the 403 is logged by the browser as a failed resource


def test_without_a_session_the_browser_lands_on_the_login_form(
    browser: Any, demo: DemoProcess, ui: Any
) -> None:
    open_page(browser, demo, "/ui/config")
    cookie = browser.get_cookie("dijk_ui_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    browser.delete_cookie("dijk_ui_session")
    open_page(browser, demo, "/ui/audit")
    assert browser.current_url.endswith("/ui/login")
    assert browser.find_elements(By.ID, "token")
    if os.environ.get("DIJK_SCREENSHOTS") == "1":
        screenshot(browser, "login")
