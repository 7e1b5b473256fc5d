"""The Polder Bank demo upstream over real HTTP on a loopback port."""

from __future__ import annotations

import io
import json
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer
from stdnum import iban as stdnum_iban
from stdnum.nl import bsn as stdnum_bsn

from dijk.demo.data import generate_customers
from dijk.demo.upstream import BANK_KEY, create_app

OPENAPI_FILE = pathlib.Path(__file__).parents[2] / "src" / "dijk" / "demo" / "openapi.yaml"
CUSTOMERS = generate_customers()
PASSWORD = "correct horse battery staple"


@pytest.fixture
async def server(tmp_path: pathlib.Path) -> AsyncIterator[TestServer]:
    test_server = TestServer(create_app(tmp_path), host="127.0.0.1", port=0)
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
        yield session


async def _json(response: aiohttp.ClientResponse, status: int) -> Any:
    """Assert the status and a JSON content type, and return the decoded body."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json", text
    return json.loads(text)


async def _error_code(response: aiohttp.ClientResponse, status: int) -> str:
    body = await _json(response, status)
    assert "Traceback" not in json.dumps(body)
    assert isinstance(body["error"], str)
    return str(body["error"])


# --- status and unknown paths ---------------------------------------------------------


async def test_status_reports_service_and_version(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/status") as response:
        body = await _json(response, 200)
    assert body == {"status": "ok", "service": "polder-bank", "version": "1.0.0"}


@pytest.mark.parametrize("path", ["/nope", "/api/v1", "/api/v1/accounts/1/extra", "/api/v2/status"])
async def test_unknown_path_is_a_json_404(client: aiohttp.ClientSession, path: str) -> None:
    async with client.get(path) as response:
        assert await _error_code(response, 404) == "not_found"


async def test_wrong_method_is_a_json_405(client: aiohttp.ClientSession) -> None:
    async with client.delete("/api/v1/accounts/1") as response:
        assert await _error_code(response, 405) == "method_not_allowed"


async def test_openapi_document_is_served(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/openapi.yaml") as response:
        assert response.status == 200
        assert response.content_type == "application/yaml"
        document = yaml.safe_load(await response.text())
    assert document == yaml.safe_load(OPENAPI_FILE.read_text("utf-8"))


class _BrokenBank:
    @property
    def accounts(self) -> dict[int, Any]:
        raise RuntimeError("secret internal detail")


async def test_internal_error_is_a_json_500_without_details(tmp_path: pathlib.Path) -> None:
    app = create_app(tmp_path)
    app[BANK_KEY] = _BrokenBank()  # type: ignore[misc]
    test_server = TestServer(app, host="127.0.0.1", port=0)
    await test_server.start_server()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(test_server.make_url("/api/v1/accounts")) as response,
        ):
            text = await response.text()
            assert response.status == 500
            assert json.loads(text) == {"error": "internal_error"}
            assert "secret internal detail" not in text
    finally:
        await test_server.close()


# --- login ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"),
    [(CUSTOMERS[0].email, PASSWORD), (CUSTOMERS[0].email.upper(), PASSWORD), ("demo", "demo")],
)
async def test_login_with_demo_credentials_returns_a_token(
    client: aiohttp.ClientSession, username: str, password: str
) -> None:
    async with client.post(
        "/api/v1/login", json={"username": username, "password": password}
    ) as response:
        body = await _json(response, 200)
    assert body["username"] == username
    assert isinstance(body["token"], str)
    assert len(body["token"]) >= 32
    assert password not in body["token"]


async def test_login_tokens_are_random(client: aiohttp.ClientSession) -> None:
    tokens = set()
    for _ in range(3):
        async with client.post(
            "/api/v1/login", json={"username": "demo", "password": "demo"}
        ) as response:
            tokens.add((await _json(response, 200))["token"])
    assert len(tokens) == 3


@pytest.mark.parametrize(
    ("username", "password"),
    [
        (CUSTOMERS[0].email, "wrong"),
        ("nobody@example.nl", PASSWORD),
        ("demo", PASSWORD),  # the demo user has its own password
        (CUSTOMERS[0].email, "demo"),
        ("demo", ""),
    ],
)
async def test_login_with_wrong_credentials_is_401(
    client: aiohttp.ClientSession, username: str, password: str
) -> None:
    async with client.post(
        "/api/v1/login", json={"username": username, "password": password}
    ) as response:
        body = await _json(response, 401)
    assert body == {"error": "invalid_credentials"}


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'{"username": "demo"}',
        b'{"password": "demo"}',
        b'{"username": 5, "password": "demo"}',
        b'{"username": "demo", "password": null}',
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
async def test_malformed_login_is_400(client: aiohttp.ClientSession, payload: bytes) -> None:
    async with client.post(
        "/api/v1/login", data=payload, headers={"Content-Type": "application/json"}
    ) as response:
        assert await _error_code(response, 400) in {"invalid_json", "invalid_field"}


# --- accounts -------------------------------------------------------------------------


async def test_list_accounts_returns_every_customer(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/accounts") as response:
        body = await _json(response, 200)
    assert body["count"] == 50
    assert body["total"] == 50
    assert body["accounts"] == [customer.to_public_dict() for customer in CUSTOMERS]


async def test_list_accounts_pages_with_limit_and_offset(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/accounts", params={"limit": "5", "offset": "10"}) as response:
        body = await _json(response, 200)
    assert [account["id"] for account in body["accounts"]] == [11, 12, 13, 14, 15]
    assert (body["count"], body["total"], body["offset"]) == (5, 50, 10)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "abc"},
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "501"},
        {"limit": "1e3"},
        {"limit": " 5"},
        {"limit": "\u0665"},  # Arabic-Indic five: int() would accept it
        {"offset": "x"},
        {"offset": "-1"},
        {"offset": "99999999999999999999999"},
    ],
)
async def test_list_accounts_rejects_garbage_paging(
    client: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    async with client.get("/api/v1/accounts", params=params) as response:
        assert await _error_code(response, 400) == "invalid_parameter"


async def test_get_account_by_id(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/accounts/7") as response:
        body = await _json(response, 200)
    assert body == CUSTOMERS[6].to_public_dict()


async def test_undocumented_legacy_endpoint_answers_the_whole_record(
    client: aiohttp.ClientSession,
) -> None:
    async with client.get("/api/v0/accounts/7") as response:
        body = await _json(response, 200)
    assert body.items() >= CUSTOMERS[6].to_public_dict().items()
    assert {"kyc_status", "risk_score"} <= set(body)
    async with client.get("/api/v0/accounts/abc") as response:
        assert await _error_code(response, 400) == "invalid_parameter"
    async with client.get("/api/v0/accounts/999999") as response:
        assert await _error_code(response, 404) == "not_found"


@pytest.mark.parametrize("account_id", ["0", "51", "999999", "-3"])
async def test_get_missing_account_is_404(client: aiohttp.ClientSession, account_id: str) -> None:
    async with client.get(f"/api/v1/accounts/{account_id}") as response:
        assert await _error_code(response, 404) == "not_found"


@pytest.mark.parametrize("account_id", ["abc", "1.5", "1%20OR%201=1", "9" * 40, "%C2%B2"])
async def test_get_account_with_non_integer_id_is_400(
    client: aiohttp.ClientSession, account_id: str
) -> None:
    async with client.get(f"/api/v1/accounts/{account_id}") as response:
        assert await _error_code(response, 400) == "invalid_parameter"


async def test_create_account_returns_201_and_journals_it(
    client: aiohttp.ClientSession, tmp_path: pathlib.Path
) -> None:
    payload = {"name": "Anna Kramer", "email": "anna.kramer@example.nl", "phone": "0612345678"}
    async with client.post("/api/v1/accounts", json=payload) as response:
        created = await _json(response, 201)
    assert created["id"] == 51
    assert {key: created[key] for key in payload} == payload
    assert stdnum_iban.is_valid(created["iban"])
    assert stdnum_bsn.is_valid(created["bsn"])
    assert created["bsn"] not in {customer.bsn for customer in CUSTOMERS}

    async with client.get("/api/v1/accounts/51") as response:
        assert await _json(response, 200) == created

    journal = tmp_path / "upstream" / "accounts.jsonl"
    lines = journal.read_text("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [created]

    async with client.post(
        "/api/v1/accounts", json={"name": "Bo Smit", "email": "bo@example.com"}
    ) as response:
        second = await _json(response, 201)
    assert second["id"] == 52
    assert second["phone"] is None
    assert len(journal.read_text("utf-8").splitlines()) == 2

    async with client.get("/api/v1/accounts") as response:
        assert (await _json(response, 200))["total"] == 52


async def test_created_user_can_log_in(client: aiohttp.ClientSession) -> None:
    async with client.post(
        "/api/v1/accounts", json={"name": "Anna Kramer", "email": "anna@example.nl"}
    ) as response:
        await _json(response, 201)
    async with client.post(
        "/api/v1/login", json={"username": "anna@example.nl", "password": PASSWORD}
    ) as response:
        await _json(response, 200)


async def test_create_account_accepts_extra_fields_mass_assignment(
    client: aiohttp.ClientSession,
) -> None:
    """The upstream is deliberately naive; the gateway's OpenAPI stage must block this."""
    payload = {
        "name": "Eve Mallory",
        "email": "eve@example.com",
        "role": "admin",
        "balance": "1000000.00",
        "id": 1,
    }
    async with client.post("/api/v1/accounts", json=payload) as response:
        created = await _json(response, 201)
    assert created["role"] == "admin"
    assert created["balance"] == "1000000.00"
    assert created["id"] == 51  # the server-assigned id is not overwritten
    async with client.get("/api/v1/accounts/1") as response:
        assert (await _json(response, 200))["name"] == CUSTOMERS[0].name


@pytest.mark.parametrize(
    "payload",
    [
        b"nope",
        b"null",
        b'"a string"',
        b'{"name": "Anna"}',
        b'{"email": "a@example.nl"}',
        b'{"name": "", "email": "a@example.nl"}',
        b'{"name": 1, "email": "a@example.nl"}',
        b'{"name": "Anna", "email": ["a@example.nl"]}',
        b'{"name": "Anna", "email": "a@example.nl", "phone": 612345678}',
        b'{"name": "Anna", "email": "a@example.nl", "balance": NaN}',
    ],
)
async def test_create_account_rejects_bad_bodies(
    client: aiohttp.ClientSession, payload: bytes, tmp_path: pathlib.Path
) -> None:
    async with client.post(
        "/api/v1/accounts", data=payload, headers={"Content-Type": "application/json"}
    ) as response:
        assert await _error_code(response, 400) in {"invalid_json", "invalid_field"}
    assert not (tmp_path / "upstream" / "accounts.jsonl").exists()


async def test_oversized_body_is_a_json_413(client: aiohttp.ClientSession) -> None:
    payload = b'{"name": "' + b"a" * 2_000_000 + b'", "email": "a@example.nl"}'
    async with client.post(
        "/api/v1/accounts", data=io.BytesIO(payload), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 413
        assert response.content_type == "application/json"


# --- support desk ---------------------------------------------------------------------


async def test_a_ticket_is_opened_with_its_markdown_kept_as_sent(
    client: aiohttp.ClientSession,
) -> None:
    ticket = {"subject": "Export", "description": "Steps:\n\n```sql\nSELECT 1;\n```"}
    async with client.post("/api/v1/tickets", json=ticket) as response:
        created = await _json(response, 201)
    assert created == {**ticket, "id": 1, "status": "open"}
    async with client.post("/api/v1/tickets", json={"subject": "x"}) as response:
        assert await _error_code(response, 400) == "invalid_field"


# --- search ---------------------------------------------------------------------------


async def test_search_matches_names_case_insensitively(client: aiohttp.ClientSession) -> None:
    last_name = CUSTOMERS[0].name.split(" ", 1)[1]
    async with client.get("/api/v1/search", params={"q": last_name.upper()}) as response:
        body = await _json(response, 200)
    expected = [c.to_public_dict() for c in CUSTOMERS if last_name.lower() in c.name.lower()]
    assert body == {"results": expected, "query": last_name.upper()}
    assert 1 <= len(expected) < 50


@pytest.mark.parametrize("query", ["zzzz", "' OR '1'='1", "%", ".*", '{"$ne": null}'])
async def test_search_treats_query_as_plain_text(client: aiohttp.ClientSession, query: str) -> None:
    async with client.get("/api/v1/search", params={"q": query}) as response:
        body = await _json(response, 200)
    assert body == {"results": [], "query": query}


async def test_search_without_q_is_400(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/search") as response:
        assert await _error_code(response, 400) == "invalid_parameter"


async def test_search_with_overlong_q_is_400(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/search", params={"q": "a" * 201}) as response:
        assert await _error_code(response, 400) == "invalid_parameter"


# --- graphql --------------------------------------------------------------------------


async def _graphql(client: aiohttp.ClientSession, body: object, status: int = 200) -> Any:
    async with client.post("/graphql", json=body) as response:
        return await _json(response, status)


async def test_graphql_account_with_variables(client: aiohttp.ClientSession) -> None:
    body = await _graphql(
        client,
        {
            "query": "query One($id: Int!) "
            "{ account(id: $id) { id name email phone iban balance } }",
            "variables": {"id": 3},
            "operationName": "One",
        },
    )
    customer = CUSTOMERS[2]
    assert body == {
        "data": {
            "account": {
                "id": 3,
                "name": customer.name,
                "email": customer.email,
                "phone": customer.phone,
                "iban": customer.iban,
                "balance": customer.balance,
            }
        }
    }


async def test_graphql_missing_account_is_null(client: aiohttp.ClientSession) -> None:
    body = await _graphql(client, {"query": "{ account(id: 999) { id } }"})
    assert body == {"data": {"account": None}}


async def test_graphql_accounts_and_search(client: aiohttp.ClientSession) -> None:
    first_name = CUSTOMERS[1].name.split(" ")[0]
    body = await _graphql(
        client,
        {
            "query": "query($q: String!) { accounts(limit: 2) { id } search(q: $q) { name } }",
            "variables": {"q": first_name.lower()},
        },
    )
    assert body["data"]["accounts"] == [{"id": 1}, {"id": 2}]
    names = [result["name"] for result in body["data"]["search"]]
    assert CUSTOMERS[1].name in names
    assert all(first_name.lower() in name.lower() for name in names)


async def test_graphql_cannot_reach_fields_outside_the_schema(
    client: aiohttp.ClientSession,
) -> None:
    body = await _graphql(client, {"query": "{ account(id: 1) { bsn } }"}, status=400)
    assert "bsn" in body["errors"][0]["message"]
    assert "data" not in body


@pytest.mark.parametrize(
    "request_body",
    [
        {"query": "{ account(id: 1) { id "},  # syntax error
        {"query": "{ nope }"},  # validation error
        {"query": "query($id: Int!) { account(id: $id) { id } }", "variables": {"id": "x"}},
        {"query": "query($id: Int!) { account(id: $id) { id } }"},  # missing variable
        {"query": "query A { accounts { id } }", "operationName": "B"},
    ],
)
async def test_graphql_request_errors_are_400_with_errors(
    client: aiohttp.ClientSession, request_body: dict[str, Any]
) -> None:
    body = await _graphql(client, request_body, status=400)
    assert body["errors"]
    assert all(isinstance(error["message"], str) for error in body["errors"])


@pytest.mark.parametrize(
    "request_body",
    [
        {},
        {"query": 5},
        {"query": "{ accounts { id } }", "variables": [1]},
        {"query": "{ accounts { id } }", "operationName": 3},
        [],
    ],
)
async def test_malformed_graphql_request_is_400(
    client: aiohttp.ClientSession, request_body: object
) -> None:
    body = await _graphql(client, request_body, status=400)
    assert body["error"] in {"invalid_graphql", "invalid_json"}


async def test_graphql_rejects_huge_documents(client: aiohttp.ClientSession) -> None:
    query = "{ " + " ".join(f"a{i}: accounts {{ id }}" for i in range(2000)) + " }"
    body = await _graphql(client, {"query": query}, status=400)
    assert "token" in body["errors"][0]["message"].lower()


# --- the OpenAPI document --------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = yaml.safe_load(OPENAPI_FILE.read_text("utf-8"))
    assert document["openapi"].startswith("3.1")
    validator.validate(document)


def test_openapi_document_declares_exactly_the_demo_endpoints() -> None:
    document = yaml.safe_load(OPENAPI_FILE.read_text("utf-8"))
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert operations == {
        ("GET", "/api/v1/status"),
        ("POST", "/api/v1/login"),
        ("GET", "/api/v1/accounts"),
        ("POST", "/api/v1/accounts"),
        ("GET", "/api/v1/accounts/{id}"),
        ("GET", "/api/v1/search"),
        ("POST", "/api/v1/tickets"),
        ("POST", "/graphql"),
    }
    public = {("GET", "/api/v1/status"), ("POST", "/api/v1/login")}
    for method, path in operations:
        security = document["paths"][path][method.lower()]["security"]
        assert security == ([] if (method, path) in public else [{"ApiKeyAuth": []}])
    scheme = document["components"]["securitySchemes"]["ApiKeyAuth"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    create = document["components"]["schemas"]["AccountCreate"]
    assert create["additionalProperties"] is False
    assert create["required"] == ["name", "email"]


async def test_responses_conform_to_the_openapi_schemas(client: aiohttp.ClientSession) -> None:
    """The upstream must honour its own contract (apart from the mass-assignment echo)."""
    jsonschema = pytest.importorskip("jsonschema")
    document = yaml.safe_load(OPENAPI_FILE.read_text("utf-8"))

    def check(body: object, schema_name: str) -> None:
        schema = {"$ref": f"#/components/schemas/{schema_name}", "components": {}}
        schema["components"] = document["components"]
        jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        ).validate(body)

    async with client.get("/api/v1/status") as response:
        check(await _json(response, 200), "Status")
    async with client.get("/api/v1/accounts") as response:
        check(await _json(response, 200), "AccountList")
    async with client.get("/api/v1/search", params={"q": "a"}) as response:
        check(await _json(response, 200), "SearchResults")
    async with client.post(
        "/api/v1/accounts", json={"name": "Anna Kramer", "email": "anna@example.nl"}
    ) as response:
        check(await _json(response, 201), "Account")
    async with client.post("/api/v1/login", json={"username": "demo", "password": "x"}) as response:
        check(await _json(response, 401), "Error")
    ticket = {"subject": "Export", "description": "```sql\nSELECT 1;\n```"}
    async with client.post("/api/v1/tickets", json=ticket) as response:
        check(await _json(response, 201), "Ticket")
    async with client.get("/api/v1/accounts/abc") as response:
        check(await _json(response, 400), "Error")
    check(
        await _graphql(client, {"query": "{ accounts(limit: 1) { id iban } }"}), "GraphQLResponse"
    )
    check(await _graphql(client, {"query": "{ x }"}, status=400), "GraphQLResponse")


# --- the command line ------------------------------------------------------------------


def test_main_rejects_a_bad_port() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dijk.demo.upstream", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "not a TCP port" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_main_serves_and_stops_cleanly_on_signal(
    tmp_path: pathlib.Path, stop_signal: signal.Signals
) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dijk.demo.upstream",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/v1/status", timeout=2
                ) as reply:
                    assert json.load(reply)["service"] == "polder-bank"
                    break
            except OSError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "upstream did not start"
                time.sleep(0.1)
        assert (tmp_path / "upstream").is_dir()
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert stdout == ""
