"""The JSON fast path gives the same verdicts as walking the document, only faster."""

from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dijk.detect.engine import Detector
from dijk.detect.findings import RequestParts, Verdict
from dijk.detect.json_fast import matched_strings, scan_buffer

FAST = Detector(paranoia=4)
SLOW = Detector(paranoia=4, json_fast_path=False)

# Text that often trips rules and gates: SQL, markup, shell, escapes, non-ASCII.
FRAGMENTS = [
    "' OR '1'='1",
    "<script>",
    "; cat /etc/passwd",
    "../../",
    "${jndi:ldap://x}",
    "UNION SELECT",
    "%27",
    "&#60;",
    "é",
    "\\",
    '"',
    "\n",
    "$ne",
    "__proto__",
    "http://127.0.0.1/",
    "O'Brien",
    "eyJhbGciOiJIUzI1NiJ9",
    "PHNjcmlwdD4=",
    "{{7*7}}",
    "",
]
text = st.lists(
    st.sampled_from(FRAGMENTS) | st.text(string.printable, max_size=12), max_size=4
).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)


def key(verdict: Verdict) -> tuple[object, ...]:
    findings = sorted((f.rule_id, f.location, f.field, f.transform) for f in verdict.findings)
    return (verdict.score, verdict.blocked, tuple(findings))


def body(value: object) -> RequestParts:
    return RequestParts.from_target(
        "POST",
        "/api/v1/accounts",
        [("Content-Type", "application/json")],
        json.dumps(value).encode(),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fast_path_verdicts_equal_the_walk(value: object) -> None:
    request = body(value)
    assert key(FAST.inspect(request)) == key(SLOW.inspect(request))


def test_strings_are_found_as_values_and_keys_with_identifier_keys_left_out() -> None:
    buffer = scan_buffer({"name": "a", "x-y": "b", "list": ["c", {"k": "d"}]})
    assert buffer is not None
    ends = [index + 1 for index, byte in enumerate(buffer) if byte not in (0,)]
    found = set(matched_strings(buffer, ends))
    assert found == {
        ("json", "a"),
        ("json_name", "x-y"),
        ("json", "b"),
        ("json", "c"),
        ("json", "d"),
    }


def test_documents_with_escapes_or_operator_keys_take_the_slow_path() -> None:
    # They still get inspected: the fast path only steps aside.
    for value in ({"q": 'say "hi"'}, {"$ne": 1}, {"__proto__": {"admin": True}}):
        request = body(value)
        assert key(FAST.inspect(request)) == key(SLOW.inspect(request))
    assert FAST.inspect(body({"$ne": 1})).blocked
    assert FAST.inspect(body({"__proto__": {"admin": True}})).blocked


def test_attack_found_on_the_fast_path_is_reported_with_its_field_path() -> None:
    verdict = FAST.inspect(body({"owner": {"note": "1 UNION SELECT password FROM users"}}))
    assert verdict.blocked
    assert {finding.field for finding in verdict.findings} == {"$.owner.note"}
