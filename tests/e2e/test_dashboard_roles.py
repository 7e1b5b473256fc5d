"""Configured dashboard users and their roles, through a real ``dijk serve`` process.

``admin.users`` gives people a name, an scrypt password hash and roles: ``viewer``
(overview, security events, audit search, inventory), ``operator`` (also the
configuration page and its reload) and ``privacy`` (the privacy page, register and
breach reports). A page outside the role answers a friendly 403 page, a download or
action a 403 ``ui.forbidden`` problem (actions on record); the admin token still signs in
with every right; the audit log names the user; failed sign-ins are throttled per
address and per user name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dijk.auth.passwords import hash_password
from tests.support.dashboard import DashboardClient
from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream

TOKEN = "dashboard-roles-admin-token-0123456789"
PASSWORDS = {"vera": "viewer pass 1", "otto": "operator pass 2", "pia": "privacy pass 3"}
ROLES = {"vera": ["viewer"], "otto": ["operator"], "pia": ["privacy"]}
VIEWER_PAGES = ("overview", "security", "audit", "inventory")
ENV = {"DIJK_ADMIN_TOKEN": TOKEN, "DIJK_AUDIT_KEY": "dashboard-roles-audit-secret-0123456789"}


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream
) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("dashboard-roles")
    config = base_config(
        upstream.port,
        audit={"url": "sqlite:///./audit.db"},
        admin={
            "address": "127.0.0.1",
            "port": base_config(upstream.port)["admin"]["port"],
            "users": [
                {"name": name, "password_hash": hash_password(password), "roles": ROLES[name]}
                for name, password in PASSWORDS.items()
            ],
        },
    )
    running = GatewayProcess(config, directory, ENV).start()
    try:
        yield running
    finally:
        running.stop()


def signed_in(gateway: GatewayProcess, user: str) -> DashboardClient:
    client = DashboardClient(gateway.admin_port)
    answer = client.sign_in(user, PASSWORDS[user])
    assert answer.status == 303, answer.text
    return client


def admin_records(gateway: GatewayProcess, **filters: str) -> list[dict[str, Any]]:
    token = DashboardClient(gateway.admin_port)
    token.login(TOKEN)
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    deadline = time.monotonic() + 10
    while True:
        answer = token.get(f"/ui/audit/export?format=json&{query}")
        lines = [line for line in answer.text.splitlines() if line]
        if lines or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.3)


def test_a_viewer_opens_the_viewer_pages_and_gets_a_friendly_403_elsewhere(
    gateway: GatewayProcess,
) -> None:
    vera = signed_in(gateway, "vera")
    for page in VIEWER_PAGES:
        answer = vera.get(f"/ui/{page}")
        assert answer.status == 200, (page, answer.text[:300])
        assert "vera" in answer.text
    for page in ("privacy", "config"):
        answer = vera.get(f"/ui/{page}")
        assert answer.status == 403
        assert answer.headers["content-type"].startswith("text/html")
        assert 'id="forbidden"' in answer.text
        assert "viewer" in answer.text
        assert "content-security-policy" in answer.headers
    nav = vera.get("/ui/overview").text.split("<nav", 1)[1].split("</nav>", 1)[0]
    assert 'href="/ui/inventory"' in nav
    assert 'href="/ui/privacy"' not in nav
    assert 'href="/ui/config"' not in nav


def test_a_viewer_is_refused_downloads_and_actions_outside_the_role_with_a_problem(
    gateway: GatewayProcess,
) -> None:
    vera = signed_in(gateway, "vera")
    csrf = vera.get("/ui/overview").csrf()
    before = DashboardClient(gateway.admin_port)
    before.login(TOKEN)
    generation = before.get("/ui/config").text.split('id="generation">')[1].split("<")[0]
    for answer in (
        vera.get("/ui/privacy/register?format=html"),
        vera.get("/ui/privacy", **{"HX-Request": "true"}),
        vera.post("/ui/config/reload", {"csrf": csrf}),
        vera.post("/ui/privacy/breach", {"csrf": csrf, "since": "1h"}),
        vera.post("/ui/abuse/lift", {"csrf": csrf, "id": "0" * 16}),
    ):
        assert answer.status == 403
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["reason"] == "ui.forbidden"
    after = before.get("/ui/config").text.split('id="generation">')[1].split("<")[0]
    assert after == generation  # the refused reload did not happen
    refused = admin_records(gateway, route="admin:ui.config.reload", reason="ui.forbidden")
    assert refused


def test_an_operator_reloads_and_the_audit_record_names_the_user(
    gateway: GatewayProcess,
) -> None:
    otto = signed_in(gateway, "otto")
    assert otto.get("/ui/privacy").status == 403
    assert 'action="/ui/abuse/lift"' not in signed_in(gateway, "vera").get("/ui/security").text
    # An operator may lift blocks (here none is open).
    lift_csrf = otto.get("/ui/security").csrf()
    gone = otto.post("/ui/abuse/lift", {"csrf": lift_csrf, "id": "0" * 16})
    assert gone.headers["location"] == "/ui/security?lifted=gone"
    csrf = otto.get("/ui/config").csrf()
    answer = otto.post("/ui/config/reload", {"csrf": csrf})
    assert answer.status == 303
    assert answer.headers["location"] == "/ui/config?reloaded=ok"
    reloads = admin_records(gateway, route="admin:reload", consumer="user:otto")
    assert reloads
    assert reloads[-1]["status"] == 200
    logins = admin_records(gateway, route="admin:ui.login", consumer="user:otto")
    assert logins


def test_a_privacy_officer_sees_the_privacy_page_only_and_lands_there(
    gateway: GatewayProcess,
) -> None:
    pia = signed_in(gateway, "pia")
    landing = pia.get("/ui/")
    assert landing.status == 303
    assert landing.headers["location"] == "/ui/privacy"
    assert pia.get("/ui/privacy").status == 200
    for page in (*VIEWER_PAGES, "config"):
        assert pia.get(f"/ui/{page}").status == 403, page
    assert pia.get("/ui/audit/export?format=json").json()["reason"] == "ui.forbidden"
    csrf = pia.get("/ui/privacy").csrf()
    report = pia.post("/ui/privacy/breach", {"csrf": csrf, "since": "1h", "format": "html"})
    assert report.status in (200, 422)  # allowed (no data map yet may make it 422)
    assert admin_records(gateway, route="admin:ui.breach_report", consumer="user:pia")


def test_the_admin_token_still_signs_in_with_every_right(gateway: GatewayProcess) -> None:
    admin = DashboardClient(gateway.admin_port)
    admin.login(TOKEN)
    for page in (*VIEWER_PAGES, "privacy", "config"):
        assert admin.get(f"/ui/{page}").status == 200, page


def test_a_wrong_password_and_an_unknown_user_are_refused_alike_and_on_record(
    gateway: GatewayProcess,
) -> None:
    client = DashboardClient(gateway.admin_port, source="127.0.0.21")
    wrong = client.sign_in("vera", "not her password")
    unknown = client.sign_in("nobody", "whatever")
    assert wrong.status == unknown.status == 401
    assert "do not match" in wrong.text
    assert "do not match" in unknown.text
    assert "dijk_ui_session" not in " ".join(wrong.cookies + unknown.cookies)
    # The password hash is no admin token: it does not sign in either way.
    assert client.sign_in("", PASSWORDS["vera"]).status == 401
    failed = admin_records(gateway, route="admin:ui.login", reason="ui.login_failed")
    assert len(failed) >= 3
    assert all(record["consumer"] is None for record in failed)
    assert all(PASSWORDS["vera"] not in str(record) for record in failed)


def test_failed_sign_ins_are_throttled_per_user_across_addresses(
    gateway: GatewayProcess,
) -> None:
    # Ten wrong passwords for otto, each from another loopback address (none of those
    # addresses reaches the per-address limit).
    for number in range(10):
        client = DashboardClient(gateway.admin_port, source=f"127.0.0.{30 + number}")
        assert client.sign_in("otto", f"guess {number}").status == 401
    fresh = DashboardClient(gateway.admin_port, source="127.0.0.50")
    throttled = fresh.sign_in("otto", PASSWORDS["otto"])
    assert throttled.status == 429
    assert throttled.json()["reason"] == "ui.login_throttled"
    # The address itself is not throttled: another user signs in from it.
    assert fresh.sign_in("vera", PASSWORDS["vera"]).status == 303


def test_failed_sign_ins_are_throttled_per_address_across_users(
    gateway: GatewayProcess,
) -> None:
    client = DashboardClient(gateway.admin_port, source="127.0.0.60")
    for number in range(10):
        assert client.sign_in(f"someone{number}", "guess").status == 401
    assert client.sign_in("vera", PASSWORDS["vera"]).status == 429


def test_a_plain_password_in_the_configuration_is_refused() -> None:
    from pydantic import ValidationError

    from dijk.config.models import AdminUser

    with pytest.raises(ValidationError, match="plain passwords are not accepted"):
        AdminUser(name="vera", password_hash="hunter2", roles=["viewer"])
    with pytest.raises(ValidationError):
        AdminUser(name="vera", password_hash=hash_password("x"), roles=["superuser"])  # type: ignore[list-item]


def test_two_users_of_one_name_are_refused() -> None:
    from pydantic import ValidationError

    from dijk.config.models import AdminConfig

    encoded = hash_password("x")
    twice = [{"name": "vera", "password_hash": encoded, "roles": ["viewer"]}] * 2
    with pytest.raises(ValidationError, match="names must be unique"):
        AdminConfig(users=twice)  # type: ignore[arg-type]
