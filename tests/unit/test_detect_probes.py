"""Shell and SQL probes that split or disguise their words, by attack class, with the
ordinary text that looks like them."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from dijk.detect.engine import Detector
from dijk.detect.findings import RequestParts, Verdict

DETECTOR = Detector(paranoia=1)


def search(value: str) -> Verdict:
    return DETECTOR.inspect(
        RequestParts.from_target("GET", "/api/v1/search?" + urlencode({"q": value}))
    )


@pytest.mark.parametrize(
    ("payload", "category"),
    [
        # a chained command whose trailing arguments are commented out
        ("; sleep 5 #", "cmdi"),
        ("| ping -c 3 10.0.0.1 #", "cmdi"),
        ("&& id #", "cmdi"),
        # backslashes the shell drops from inside a command name
        (";l\\s -la", "cmdi"),
        ("a;w\\ho\\am\\i", "cmdi"),
        ("| c\\a\\t /etc/hosts", "cmdi"),
        # substring expansion standing in for '/'
        ("${PATH:0:1}etc${PATH:0:1}passwd", "cmdi"),
        ("cat ${HOME:0:1}etc${HOME:0:1}shadow", "cmdi"),
        # a string concatenated into SQL: quote, operator, quote
        ("'-'", "sqli"),
        ("'||'", "sqli"),
        ('"^"', "sqli"),
        # the first quote closes the string and casts it (PostgreSQL error-based probes)
        ("1'::int--", "sqli"),
        ("x'::text)", "sqli"),
        ("abc' :: integer and 1=1", "sqli"),
    ],
)
def test_disguised_probes_are_refused_at_paranoia_1(payload: str, category: str) -> None:
    verdict = search(payload)
    assert verdict.blocked, verdict.findings
    assert category in verdict.categories


@pytest.mark.parametrize(
    "text",
    [
        "I need more sleep 5 nights a week",
        "Sleep 5 nights; rest #1 priority",
        "D:\\projects\\dijk\\notes.md",
        "C:\\Program Files\\App\\bin",
        "\\\\fileserver\\share\\notes",
        "Use \\d+ to match digits",
        "server.port=${PORT:8080}",
        "${DATABASE_URL:-postgres://localhost/app}",
        "Use '-' as the separator",
        "O'Brien-O'Neil",
        '"*"',
        "'%'",
        "-",
        "it's 'x'::text in PostgreSQL",
        "price::int",
        "std::string name",
    ],
)
def test_look_alikes_pass(text: str) -> None:
    verdict = search(text)
    assert not verdict.blocked, verdict.findings
