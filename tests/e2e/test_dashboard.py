"""The dashboard over HTTP as a new user meets it: `dijk demo`, its token, the pages.

The browser tests (`test_dashboard_browser.py`) drive the same pages in Chromium; these
check what a browser cannot show: headers, refusals, CSRF, the audit records made.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.support.dashboard import (
    SQLI,
    DashboardClient,
    admin_audit,
    admin_json,
    admin_shadows,
    api,
    drive_traffic,
    enumerate_accounts,
    wait_for,
)
from tests.support.demo import DemoProcess, start_demo
from tests.support.gateway import GatewayProcess

PAGES = ("overview", "security", "audit", "inventory", "privacy", "config")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    running = start_demo(tmp_path_factory.mktemp("dashboard-demo") / ".dijk")
    try:
        statuses = drive_traffic(running)
        assert statuses["sqli"] == 403
        yield running
    finally:
        assert running.stop(20) == 0


@pytest.fixture
def client(demo: DemoProcess) -> DashboardClient:
    signed_in = DashboardClient(demo.admin_port)
    signed_in.login(demo.admin_token)
    return signed_in


def records(demo: DemoProcess, **filters: str) -> list[dict[str, object]]:
    found = admin_audit(demo, **filters)["records"]
    assert isinstance(found, list)
    return found


def recorded(demo: DemoProcess, count: int = 1, **filters: str) -> list[dict[str, object]]:
    """The records matching ``filters`` once there are ``count`` (the demo's log commits
    in batches, a moment after the answer)."""
    wait_for(lambda: len(records(demo, **filters)) >= count, timeout=10)
    return records(demo, **filters)


def test_demo_prints_the_dashboard_address_and_the_admin_token(demo: DemoProcess) -> None:
    printed = "".join(demo.lines)
    assert f"http://127.0.0.1:{demo.admin_port}/ui/" in printed
    assert f"DIJK_ADMIN_TOKEN={demo.admin_token}" in printed
    assert len(demo.admin_token) > 30


def test_pages_without_a_session_send_the_browser_to_the_login_form(demo: DemoProcess) -> None:
    anonymous = DashboardClient(demo.admin_port)
    for page in ("/ui/", *(f"/ui/{name}" for name in PAGES)):
        answer = anonymous.get(page)
        assert answer.status == 303, page
        assert answer.headers["location"] in ("/ui/login", "/ui/")
        assert b"<table" not in answer.body


def test_requests_without_a_session_are_refused_with_a_problem(demo: DemoProcess) -> None:
    anonymous = DashboardClient(demo.admin_port)
    for answer in (
        anonymous.get("/ui/audit/export?format=ecs"),
        anonymous.get("/ui/privacy/register?format=pdf"),
        anonymous.get("/ui/inventory/openapi"),
        anonymous.get("/ui/inventory", **{"HX-Request": "true"}),
        anonymous.get("/ui/audit", **{"HX-Request": "true"}),
        anonymous.post("/ui/config/reload", {"csrf": "x"}),
        anonymous.post("/ui/privacy/breach", {"csrf": "x", "since": "1h"}),
    ):
        assert answer.status == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["reason"] == "ui.session_required"


def test_a_forged_session_cookie_is_not_a_session(demo: DemoProcess) -> None:
    forged = DashboardClient(demo.admin_port, {"dijk_ui_session": "A" * 43})
    assert forged.get("/ui/config").status == 303
    assert forged.post("/ui/config/reload", {"csrf": "x"}).status == 401


def test_every_answer_carries_a_strict_content_security_policy(
    demo: DemoProcess, client: DashboardClient
) -> None:
    answers = [
        DashboardClient(demo.admin_port).get("/ui/login"),
        DashboardClient(demo.admin_port).get("/ui/overview"),
        DashboardClient(demo.admin_port).get("/ui/nope"),
        client.get("/ui/static/app.css"),
        *(client.get(f"/ui/{page}") for page in PAGES),
    ]
    for answer in answers:
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "style-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_pages_have_no_inline_script_or_style_and_load_nothing_from_elsewhere(
    client: DashboardClient,
) -> None:
    for page in PAGES:
        html = client.get(f"/ui/{page}").text
        assert "<style" not in html
        assert " style=" not in html
        assert " on" + "click=" not in html
        for tag in html.split("<script")[1:]:
            assert tag.lstrip().startswith('src="/ui/static/'), tag[:80]
        assert "http://" not in html.replace("http://127.0.0.1", "")
        assert "https://" not in html


def test_the_session_cookie_is_httponly_samesite_strict_and_scoped_to_the_ui(
    demo: DemoProcess,
) -> None:
    fresh = DashboardClient(demo.admin_port)
    answer = fresh.login(demo.admin_token)
    session = next(c for c in answer.cookies if c.startswith("dijk_ui_session="))
    assert "HttpOnly" in session
    assert "SameSite=Strict" in session
    assert "Path=/ui" in session
    assert "Secure" not in session  # plain HTTP on loopback: a Secure cookie would be lost
    assert demo.admin_token not in session


def test_a_wrong_token_is_refused_and_the_failed_login_is_on_record(demo: DemoProcess) -> None:
    stranger = DashboardClient(demo.admin_port)
    csrf = stranger.get("/ui/login").csrf()
    answer = stranger.post("/ui/login", {"csrf": csrf, "token": demo.admin_token + "x"})
    assert answer.status == 401
    assert "dijk_ui_session" not in stranger.cookies
    found = recorded(demo, route="admin:ui.login", reason="ui.login_failed")
    assert found[0]["decision"] == "deny"
    assert demo.admin_token not in str(found)


def test_a_login_without_its_csrf_token_is_refused(demo: DemoProcess) -> None:
    stranger = DashboardClient(demo.admin_port)
    stranger.get("/ui/login")
    answer = stranger.post("/ui/login", {"token": demo.admin_token})
    assert answer.status == 403
    assert answer.json()["reason"] == "ui.csrf_invalid"
    assert "dijk_ui_session" not in stranger.cookies


def test_a_successful_login_is_on_record(demo: DemoProcess) -> None:
    before = len(records(demo, route="admin:ui.login", decision="allow"))
    DashboardClient(demo.admin_port).login(demo.admin_token)
    after = recorded(demo, before + 1, route="admin:ui.login", decision="allow")
    assert len(after) == before + 1
    assert after[0]["consumer"] == "admin:DIJK_ADMIN_TOKEN"
    assert str(after[0]["credential_id"]).startswith("adm:")


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(
    demo: DemoProcess, client: DashboardClient
) -> None:
    generation = client.get("/ui/config").text.split('id="generation">')[1].split("<")[0]
    for form in ({}, {"csrf": ""}, {"csrf": "not-the-token"}):
        answer = client.post("/ui/config/reload", form)
        assert answer.status == 403
        assert answer.json()["reason"] == "ui.csrf_invalid"
    after = client.get("/ui/config").text.split('id="generation">')[1].split("<")[0]
    assert after == generation
    assert len(recorded(demo, 3, route="admin:ui.config.reload", reason="ui.csrf_invalid")) == 3


def test_the_reload_button_reloads_and_the_reload_is_on_record(
    demo: DemoProcess, client: DashboardClient
) -> None:
    page = client.get("/ui/config")
    generation = int(page.text.split('id="generation">')[1].split("<")[0])
    answer = client.post("/ui/config/reload", {"csrf": page.csrf()})
    assert answer.status == 303
    assert answer.headers["location"] == "/ui/config?reloaded=ok"
    after = client.get("/ui/config?reloaded=ok").text
    assert f'id="generation">{generation + 1}<' in after
    assert "succeeded, generation" in after
    reloads = recorded(demo, route="admin:reload")
    assert reloads[0]["findings"] == [
        {"rule_id": "admin.target", "field": f"generation:{generation + 1}"}
    ]


def test_the_running_configuration_is_shown_without_secrets(client: DashboardClient) -> None:
    html = client.get("/ui/config").text
    assert "token_env: DIJK_ADMIN_TOKEN" in html  # the variable's name, not its value
    assert "dk_admin_" not in html
    assert "dk_read_" not in html


def test_security_events_list_the_blocked_sql_injection_with_rule_and_field(
    demo: DemoProcess, client: DashboardClient
) -> None:
    blocked = records(demo, reason="waf.*")
    assert blocked
    html = client.get("/ui/security").text
    for record in blocked:
        assert record["request_id"] is not None
        finding = record["findings"][0]  # type: ignore[index]
        assert f"<code>{finding['rule_id']}</code> @ <code>{finding['field']}</code>" in html
    assert str(blocked[0]["reason"]) in html
    assert SQLI not in html  # the record holds no values


def test_each_security_event_shows_its_rule_from_the_catalogue_and_links_to_its_record(
    demo: DemoProcess, client: DashboardClient
) -> None:
    from dijk.detect.rules import RULES_BY_ID

    blocked = records(demo, reason="waf.sqli")
    assert blocked
    record = blocked[0]
    html = client.get("/ui/security").text
    row = html.split(f'id="rec-{record["request_id"]}"', 1)[1].split("</tr>", 1)[0]
    finding = record["findings"][0]  # type: ignore[index]
    rule = RULES_BY_ID[finding["rule_id"]]
    assert rule.category in row
    assert f"(+{rule.severity})" in row
    link = re.search(r'href="([^"]+)" class="record-link"', row)
    assert link
    target = link.group(1).replace("&amp;", "&")
    assert target.endswith(f"#rec-{record['request_id']}")
    audit = client.get(target.split("#", 1)[0]).text
    assert "1 record</caption>" in audit  # exactly that record
    assert f'id="rec-{record["request_id"]}"' in audit
    assert "add exclusion" not in html.lower()  # no admin API writes exclusions


def test_audit_search_finds_the_refusal_by_reason_as_the_api_does(
    demo: DemoProcess, client: DashboardClient
) -> None:
    expected = records(demo, reason="waf.sqli")
    html = client.get("/ui/audit?reason=waf.sqli").text
    assert f"{len(expected)} record" in html
    assert html.count("<td>waf.sqli</td>") == len(expected)
    bad = client.get("/ui/audit?since=yesterday-ish").text
    assert "cannot read time" in bad


def test_audit_search_pages_with_the_cursor(demo: DemoProcess, client: DashboardClient) -> None:
    for _ in range(8):
        drive_traffic(demo)
    wait_for(lambda: len(records(demo, limit="1000")) > 60)
    first = client.get("/ui/audit").text
    assert "50 records" in first
    next_url = first.split('class="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = client.get(next_url.replace("&amp;", "&")).text
    assert "records" in second
    assert first.split("<tbody>")[1] != second.split("<tbody>")[1]


def test_the_chain_verifies_from_the_dashboard(client: DashboardClient) -> None:
    html = client.get("/ui/audit/verify").text
    assert "intact" in html
    assert "NOT intact" not in html


def test_an_export_downloads_the_filtered_records_and_is_on_record(
    demo: DemoProcess, client: DashboardClient
) -> None:
    answer = client.get("/ui/audit/export?format=json&reason=waf.sqli")
    assert answer.status == 200
    assert "attachment" in answer.headers["content-disposition"]
    lines = [line for line in answer.text.splitlines() if line]
    assert len(lines) == len(records(demo, reason="waf.sqli"))
    assert recorded(demo, route="admin:ui.audit_export")


def test_the_privacy_page_shows_the_data_map_and_the_breach_pdf_downloads(
    demo: DemoProcess, client: DashboardClient
) -> None:
    wait_for(lambda: "$.email" in client.get("/ui/privacy").text)
    page = client.get("/ui/privacy")
    assert "GET /api/v1/accounts/{id}" in page.text
    since = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 3600))
    form = {"csrf": page.csrf(), "since": since, "format": "page"}
    shown = client.post("/ui/privacy/breach", form)
    assert shown.status == 200
    assert "Notify the supervisory authority by" in shown.text
    assert "Polder Bank (demo)" in shown.text
    pdf = client.post("/ui/privacy/breach", {**form, "format": "pdf"})
    assert pdf.status == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.body.startswith(b"%PDF-")
    assert recorded(demo, route="admin:ui.breach_report")
    register = client.get("/ui/privacy/register?format=html")
    assert "Record of processing activities" in register.text


def test_static_files_are_only_the_packaged_ones(client: DashboardClient) -> None:
    assert client.get("/ui/static/vendor/htmx.min.js").status == 200
    for path in ("/ui/static/../api.py", "/ui/static/.hidden", "/ui/static/%2e%2e/api.py"):
        assert client.get(path).status == 404


def test_every_page_with_what_it_loads_is_under_100_kb(client: DashboardClient) -> None:
    for page in PAGES:
        html = client.get(f"/ui/{page}").text
        assets = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', html)
        assert "/ui/static/app.css" in assets
        total = len(html.encode()) + sum(len(client.get(path).body) for path in assets)
        assert total < 100_000, (page, total)


def test_logout_ends_the_session(demo: DemoProcess) -> None:
    user = DashboardClient(demo.admin_port)
    user.login(demo.admin_token)
    cookie = dict(user.cookies)
    csrf = user.get("/ui/config").csrf()
    assert user.post("/ui/logout", {"csrf": csrf}).status == 303
    replay = DashboardClient(demo.admin_port, cookie)
    assert replay.get("/ui/config").status == 303


def test_the_dashboard_is_off_when_the_admin_api_is_off(start_gateway: object) -> None:
    gateway: GatewayProcess = start_gateway(env={"DIJK_ADMIN_TOKEN": ""})  # type: ignore[operator]
    client = DashboardClient(gateway.admin_port)
    for answer in (client.get("/ui/"), client.get("/ui/login"), client.post("/ui/login", {})):
        assert answer.status == 403
        assert answer.json()["reason"] == "admin.disabled"


def test_the_inventory_lists_the_endpoints_the_admin_api_learnt(
    demo: DemoProcess, client: DashboardClient
) -> None:
    document = admin_json(demo, "/admin/api/v1/discovery/openapi")
    paths = document["paths"]
    assert isinstance(paths, dict)
    assert "/api/v1/accounts/{id}" in paths
    html = client.get("/ui/inventory").text
    table = html.split('id="endpoints"', 1)[1].split("</table>", 1)[0]
    for path, operations in paths.items():
        for method in operations:
            assert f"<td>{method.upper()}</td><td><code>{path}</code>" in table, (method, path)
    # Five reads of /api/v1/accounts/{id} (and more by other tests): a count, not a path.
    row = table.split("<code>/api/v1/accounts/{id}</code>", 1)[1].split("</tr>", 1)[0]
    assert int(re.findall(r"<td>(\d+)</td>", row)[0]) >= 5
    assert "200&nbsp;\u00d7" in row
    assert "api_key&nbsp;\u00d7" in row
    assert "/api/v1/accounts/2" not in html


def test_the_inventory_lists_the_shadow_endpoint_of_the_admin_diff(
    demo: DemoProcess, client: DashboardClient
) -> None:
    assert admin_shadows(demo) == ["/api/v0/accounts/{id}"]
    html = client.get("/ui/inventory").text
    shadow_table = html.split('id="shadow"', 1)[1].split("</table>", 1)[0]
    assert "<code>/api/v0/accounts/{id}</code>" in shadow_table
    assert "discovery.shadow_endpoint" in shadow_table
    drift_table = html.split('id="drift"', 1)[1].split("</table>", 1)[0]
    assert "/api/v0/" not in drift_table


def test_the_inventory_filters_by_method_and_path(client: DashboardClient) -> None:
    html = client.get("/ui/inventory?path=v0&method=GET").text
    table = html.split('id="endpoints"', 1)[1].split("</table>", 1)[0]
    assert "<code>/api/v0/accounts/{id}</code>" in table
    assert "/api/v1/" not in table
    assert "/api/v1/" not in html.split('id="shadow"', 1)[1].split("</table>", 1)[0]
    nothing = client.get("/ui/inventory?method=DELETE").text
    assert "No endpoints match the filters." in nothing


def test_the_openapi_draft_downloads_as_the_admin_api_serves_it_and_is_on_record(
    demo: DemoProcess, client: DashboardClient
) -> None:
    answer = client.get("/ui/inventory/openapi")
    assert answer.status == 200
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    document = answer.json()
    assert document["openapi"].startswith("3.1")
    api_document = admin_json(demo, "/admin/api/v1/discovery/openapi")
    assert sorted(document["paths"]) == sorted(api_document["paths"])  # type: ignore[call-overload]
    assert recorded(demo, route="admin:ui.discovery_openapi")


def test_an_abuse_incident_is_listed_and_lifted_from_security_events_and_on_record(
    demo: DemoProcess, client: DashboardClient
) -> None:
    # The write key walks account ids until enumeration blocks it (the read key, which
    # the other tests use, stays clean).
    assert enumerate_accounts(demo, demo.write_key) == 403
    listing = admin_json(demo, "/admin/api/v1/abuse/incidents")["incidents"]
    assert isinstance(listing, list)
    incident = next(i for i in listing if i["reason"] == "abuse.enumeration")
    html = client.get("/ui/security").text
    row = html.split(f'id="incident-{incident["id"]}"', 1)[1].split("</tr>", 1)[0]
    assert incident["subject"] in row
    assert "abuse.enumeration" in row
    csrf = client.get("/ui/security").csrf()
    # Without its CSRF token the lift is refused and the block stays.
    assert client.post("/ui/abuse/lift", {"id": incident["id"]}).status == 403
    assert api(demo, "/api/v1/accounts/1", demo.write_key) == 403
    lifted = client.post("/ui/abuse/lift", {"csrf": csrf, "id": incident["id"]})
    assert lifted.status == 303
    assert lifted.headers["location"] == "/ui/security?lifted=ok"
    after = admin_json(demo, "/admin/api/v1/abuse/incidents")["incidents"]
    assert incident["id"] not in {i["id"] for i in after}  # type: ignore[union-attr]
    assert f'id="incident-{incident["id"]}"' not in client.get("/ui/security").text
    on_record = recorded(demo, route="admin:abuse.lift")
    assert on_record[0]["status"] == 200
    # Lifting it again: no such incident any more.
    again = client.post("/ui/abuse/lift", {"csrf": csrf, "id": incident["id"]})
    assert again.headers["location"] == "/ui/security?lifted=gone"
    # The key is let through again (its next ids may well open a new incident).
    assert api(demo, "/api/v1/accounts/1", demo.write_key) == 200
