"""Behaviour and abuse detection against ``dijk demo``, tried as a new user would."""

from __future__ import annotations

import http.client
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.demo import DemoProcess, start_demo

# Public addresses in four countries (the offline registry data the network policy uses).
COUNTRIES = {"81.2.69.142": "GB", "8.8.8.8": "US", "145.1.1.1": "NL", "133.1.1.1": "JP"}


@dataclass
class Running:
    demo: DemoProcess
    username: str
    password: str

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        port: int | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port or self.demo.port, timeout=10)
        try:
            sent = {"Content-Type": "application/json", **(headers or {})}
            payload = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            answer = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, answer
        finally:
            connection.close()

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, answer = self.call(
            method,
            path,
            body,
            {"Authorization": f"Bearer {self.demo.admin_token}"},
            port=self.demo.admin_port,
        )
        return status, json.loads(answer)

    def login(self, username: str, password: str, address: str) -> tuple[int, dict[str, Any]]:
        status, _, answer = self.call(
            "POST",
            "/api/v1/login",
            {"username": username, "password": password},
            {"X-Forwarded-For": address},
        )
        return status, json.loads(answer)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    demo = start_demo(
        tmp_path_factory.mktemp("abuse") / ".dijk", wait_for="DIJK_DEMO_LOGIN=", timeout=60
    )
    line = next(line for line in demo.lines if line.startswith("DIJK_DEMO_LOGIN="))
    username, password = line.strip().split("=", 1)[1].split(":", 1)
    yield Running(demo, username, password)
    assert demo.stop(30) == 0


def public_address(rng: random.Random) -> str:
    while True:
        first = rng.randint(11, 223)
        if first not in (100, 127, 169, 172, 192, 198, 203):
            return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def test_the_banner_prints_the_demo_login(running: Running) -> None:
    assert running.username
    assert running.password
    status, answer = running.login(running.username, running.password, "192.0.2.10")
    assert status == 200, answer


def test_distributed_stuffing_is_refused_while_the_demo_user_still_logs_in(
    running: Running,
) -> None:
    home = "192.0.2.10"  # the demo user logged in from here before the attack
    assert running.login(running.username, running.password, home)[0] == 200
    rng = random.Random(14)
    refused_at = None
    refusal: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for attempt in range(400):
        status, headers, answer = running.call(
            "POST",
            "/api/v1/login",
            {"username": f"customer{attempt}@example.nl", "password": "Winter2024!"},
            {"X-Forwarded-For": public_address(rng)},
        )
        if status != 401:
            refused_at, refusal = attempt, json.loads(answer)
            break
    assert refused_at is not None
    assert refused_at < 150, refused_at
    assert refusal["reason"] == "abuse.credential_stuffing"
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["retry-after"]) > 0
    assert "accounts tried from" in refusal["detail"]
    assert "baseline" in refusal["detail"]
    # The attack goes on from new addresses: still refused.
    status, _, answer = running.call(
        "POST",
        "/api/v1/login",
        {"username": "someone-else@example.nl", "password": "x"},
        {"X-Forwarded-For": public_address(rng)},
    )
    assert status == 403
    assert json.loads(answer)["reason"] == "abuse.credential_stuffing"
    # The account's owner, from the network it logged in from before, still gets in.
    status, answer = running.login(running.username, running.password, home)
    assert status == 200, answer
    # The incident is listed on the admin API, with its explanation.
    status, listing = running.admin("GET", "/admin/api/v1/abuse/incidents")
    assert status == 200
    reasons = {(item["reason"], item["subject"]) for item in listing["incidents"]}
    assert ("abuse.credential_stuffing", "route:login") in reasons


def test_a_key_walking_through_account_ids_meets_enumeration_but_rereading_five_does_not(
    running: Running,
) -> None:
    write = {"X-API-Key": running.demo.write_key}
    for round_number in range(30):
        for account in range(1, 6):
            status, _, answer = running.call("GET", f"/api/v1/accounts/{account}", headers=write)
            assert status == 200, (round_number, account, answer)
    read = {"X-API-Key": running.demo.read_key}
    refused_at = None
    refusal: dict[str, Any] = {}
    for account in range(1, 150):
        status, headers, answer = running.call("GET", f"/api/v1/accounts/{account}", headers=read)
        if status not in (200, 404):
            refused_at, refusal = account, json.loads(answer)
            break
    assert refused_at is not None
    assert refused_at < 150
    assert refusal["reason"] == "abuse.enumeration", refusal
    assert "/api/v1/accounts/{id}" in refusal["detail"]
    assert int(headers["retry-after"]) > 0
    # Blocked on this route for every id, including the ones it read before ...
    assert running.call("GET", "/api/v1/accounts/1", headers=read)[0] == 403
    # ... and lifted by an operator through the admin API.
    status, listing = running.admin("GET", "/admin/api/v1/abuse/incidents")
    incident = next(i for i in listing["incidents"] if i["reason"] == "abuse.enumeration")
    assert running.admin("POST", "/admin/api/v1/abuse/lift", {"id": incident["id"]}) == (
        200,
        {"lifted": incident["id"], "reason": "abuse.lifted"},
    )
    assert running.call("GET", "/api/v1/accounts/1", headers=read)[0] == 200
    assert running.admin("POST", "/admin/api/v1/abuse/lift", {"id": incident["id"]})[0] == 404


def test_the_write_key_from_four_countries_is_a_token_misuse_finding(running: Running) -> None:
    write = running.demo.write_key
    for address in COUNTRIES:
        status, _, _ = running.call(
            "GET",
            "/api/v1/accounts/2",
            headers={"X-API-Key": write, "X-Forwarded-For": address, "User-Agent": "app/2"},
        )
        assert status == 200  # monitor in the demo: a finding, not a refusal
    deadline = time.monotonic() + 30  # batched audit writes, on a loaded machine
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not records:
        status, page = running.admin("GET", "/admin/api/v1/audit?reason=abuse.token_misuse")
        assert status == 200, page
        records = page["records"]
        time.sleep(0.2)
    assert records, "no abuse.token_misuse record in the audit log"
    record = records[0]
    assert record["decision"] == "monitor"
    assert record["consumer"] == "demo-write"
    assert {"rule_id": "abuse.token_misuse", "field": "abuse:countries"} in record["findings"]
    status, listing = running.admin("GET", "/admin/api/v1/abuse/incidents")
    misuse = [i for i in listing["incidents"] if i["reason"] == "abuse.token_misuse"]
    assert misuse
    assert misuse[0]["action"] == "monitor"
    # The first finding opened the incident: a second country seconds after the first.
    assert "US 0 s after GB" in misuse[0]["detail"] or "countries" in misuse[0]["detail"]


def test_a_listed_address_is_refused_once_the_list_file_appears(running: Running) -> None:
    lists = Path(running.demo.data_dir) / "reputation"
    (lists / "tor-exits.txt").write_text("ExitAddress 198.51.100.66 2026-01-01 00:00:00\n")
    deadline = time.monotonic() + 20  # re-read within reload_interval_s (10 s)
    status, answer = 0, b""
    while time.monotonic() < deadline:
        status, _, answer = running.call(
            "GET", "/api/v1/status", headers={"X-Forwarded-For": "198.51.100.66"}
        )
        if status == 403:
            break
        time.sleep(0.5)
    assert status == 403
    document = json.loads(answer)
    assert document["reason"] == "abuse.reputation"
    assert "tor-exits.txt" in document["detail"]
    assert (
        running.call("GET", "/api/v1/status", headers={"X-Forwarded-For": "198.51.100.67"})[0]
        == 200
    )
