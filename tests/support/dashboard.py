"""A small HTTP client for the dashboard (``/ui/``) that keeps its cookies, and the demo
traffic that the dashboard's tests look at."""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlencode

from tests.support.demo import DemoProcess

CSRF = re.compile(r'name="csrf" value="([^"]*)"')
SQLI = "1' OR '1'='1"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value

    def csrf(self) -> str:
        found = CSRF.search(self.text)
        assert found, self.text[:500]
        return found.group(1)


@dataclass
class DashboardClient:
    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    source: str = ""  # a loopback address to send from (127.0.0.2...): another client

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        connection = http.client.HTTPConnection(
            "127.0.0.1",
            self.port,
            timeout=30,
            source_address=(self.source, 0) if self.source else None,
        )
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        cookies = response.headers.get_all("set-cookie") or []
        for cookie in cookies:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return Answer(
            response.status, {k.lower(): v for k, v in response.headers.items()}, cookies, data
        )

    def get(self, path: str, **headers: str) -> Answer:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: dict[str, str]) -> Answer:
        return self.request("POST", path, form)

    def login(self, token: str) -> Answer:
        csrf = self.get("/ui/login").csrf()
        answer = self.post("/ui/login", {"csrf": csrf, "token": token})
        assert answer.status == 303, answer.text
        return answer

    def sign_in(self, user: str, password: str) -> Answer:
        """A configured user's sign-in (the answer, whatever it is)."""
        csrf = self.get("/ui/login").csrf()
        return self.post("/ui/login", {"csrf": csrf, "user": user, "token": password})


def api(demo: DemoProcess, path: str, key: str | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{demo.port}{path}")
    if key:
        request.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return int(error.code)


def drive_traffic(demo: DemoProcess) -> dict[str, int]:
    """Requests a user of the demo would make: reads, a missing key, a SQL injection, and
    a call of the bank's forgotten, undeclared endpoint (a shadow endpoint)."""
    statuses = {
        "shadow": api(demo, "/api/v0/accounts/7", demo.read_key),
        "read": api(demo, "/api/v1/accounts/1", demo.read_key),
        "status": api(demo, "/api/v1/status"),
        "no_key": api(demo, "/api/v1/accounts"),
        "sqli": api(demo, "/api/v1/search?" + urlencode({"q": SQLI}), demo.read_key),
    }
    for number in range(2, 6):
        api(demo, f"/api/v1/accounts/{number}", demo.read_key)
    return statuses


def admin_audit(demo: DemoProcess, **filters: str) -> dict[str, object]:
    """The admin API's audit query, to check pages against."""
    return admin_json(demo, "/admin/api/v1/audit?" + urlencode(filters))


def enumerate_accounts(demo: DemoProcess, key: str, first: int = 100) -> int:
    """Walk account ids with ``key`` until the demo's enumeration detector blocks it (an
    abuse incident); the status of the last request (403 once blocked)."""
    status = 0
    for number in range(first, first + 60):
        status = api(demo, f"/api/v1/accounts/{number}", key)
        if status == 403:
            break
    return status


def admin_json(demo: DemoProcess, path: str) -> dict[str, object]:
    """An admin API answer (JSON object), to check pages against."""
    request = urllib.request.Request(f"http://127.0.0.1:{demo.admin_port}{path}")
    request.add_header("Authorization", f"Bearer {demo.admin_token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        value = json.loads(response.read())
    assert isinstance(value, dict)
    return value


def admin_shadows(demo: DemoProcess) -> list[str]:
    """The shadow endpoints' templates in the admin API's discovery diff."""
    findings = admin_json(demo, "/admin/api/v1/discovery/diff")["findings"]
    assert isinstance(findings, list)
    return [f["location"]["url"] for f in findings if f["rule_id"].endswith("shadow_endpoint")]


def wait_for(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {check}")
