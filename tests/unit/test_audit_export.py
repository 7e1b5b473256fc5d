"""SIEM export formats: well-formed, escaped, and carrying the chain position."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson

from dijk.audit.chain import ChainSealer
from dijk.audit.export import (
    EXPORT_FORMATS,
    cef_line,
    ecs_document,
    elastic_bulk_lines,
    export_lines,
    otlp_request,
    splunk_hec_line,
    syslog_line,
)
from dijk.audit.record import AuditRecord, Finding

# RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]
SYSLOG = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<host>[!-~]{1,255})"
    r" dijk - audit (?P<sd>\[dijk@32473( [a-zA-Z]+=\"([^\"\\\]]|\\[\"\\\]])*\")+\]) (?P<msg>.*)$"
)
CEF = re.compile(r"^CEF:0\|Dijk\|Dijk API Gateway\|[^|]+\|(?P<sig>(?:[^|\\]|\\.)+)\|")


def sealed(**changes: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "time": datetime(2025, 1, 31, 12, 0, 0, 5, tzinfo=UTC),
        "request_id": "req-1",
        "method": "POST",
        "status": 403,
        "decision": "deny",
        "route": "accounts",
        "path_template": "/api/v1/accounts/{id}",
        "reason": "waf.sqli",
        "consumer": "mobile-app",
        "client_ip": "5723e9f8",
        "findings": (Finding("942100", "$.name"),),
        "gateway_latency_us": 1500,
        "bytes_in": 42,
        "bytes_out": 120,
    }
    values.update(changes)
    return ChainSealer(b"k" * 32, "default").seal(AuditRecord(**values))  # type: ignore[arg-type]


def test_ecs_document_uses_ecs_field_names() -> None:
    document = ecs_document(sealed())
    assert document["@timestamp"] == "2025-01-31T12:00:00.000005Z"
    assert document["event"]["type"] == ["access", "denied"]
    assert document["event"]["outcome"] == "failure"
    assert document["event"]["duration"] == 1_500_000
    assert document["http"]["response"]["status_code"] == 403
    assert document["user"]["name"] == "mobile-app"
    assert document["rule"]["id"] == ["942100"]
    assert document["dijk"]["audit"]["seq"] == 1
    assert len(document["dijk"]["audit"]["hash"]) == 64


def test_ecs_document_leaves_out_absent_values() -> None:
    document = ecs_document(sealed(consumer=None, reason=None, findings=(), decision="allow"))
    assert "user" not in document
    assert "rule" not in document
    assert "reason" not in document["event"]


def test_syslog_line_is_rfc5424_with_escaped_structured_data() -> None:
    line = syslog_line(sealed(consumer='ev"il]\\'), hostname="gw 1")
    match = SYSLOG.match(line)
    assert match, line
    assert match["pri"] == str(13 * 8 + 4)
    assert match["host"] == "gw_1"
    assert 'consumer="ev\\"il\\]\\\\"' in match["sd"]
    assert orjson.loads(match["msg"])["event"]["sequence"] == 1


def test_cef_line_escapes_header_and_extension() -> None:
    line = cef_line(sealed(reason="waf.a|b", consumer="a=b\\c\nd"))
    match = CEF.match(line)
    assert match, line
    assert match["sig"] == "waf.a\\|b"
    assert "suser=a\\=b\\\\c\\nd" in line
    assert "\n" not in line
    assert "cn2=1" in line
    assert "act=deny" in line


def test_splunk_hec_event_has_epoch_time_and_ecs_event() -> None:
    event = orjson.loads(splunk_hec_line(sealed(), hostname="gw1"))
    assert event["time"] == 1738324800.000005
    assert event["sourcetype"] == "dijk:audit"
    assert event["host"] == "gw1"
    assert event["event"]["http"]["request"]["method"] == "POST"


def test_elastic_bulk_is_an_action_line_then_a_document() -> None:
    action, document = elastic_bulk_lines(sealed()).split("\n")
    assert orjson.loads(action) == {"create": {"_index": "logs-dijk.audit-default"}}
    assert orjson.loads(document)["event"]["dataset"] == "dijk.audit"


def test_otlp_json_follows_the_logs_service_request_shape() -> None:
    request = otlp_request([sealed()])
    log = request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert log["timeUnixNano"] == "1738324800000005000"
    assert log["severityText"] == "WARN"
    attributes = {item["key"]: item["value"] for item in log["attributes"]}
    assert attributes["http.response.status_code"] == {"intValue": "403"}
    assert attributes["dijk.rule_ids"] == {"arrayValue": {"values": [{"stringValue": "942100"}]}}


def test_every_format_yields_lines_without_newlines_inside() -> None:
    rows = [sealed(request_id=f"r{index}") for index in range(3)]
    for export_format in EXPORT_FORMATS:
        lines = list(export_lines(rows, export_format, hostname="gw"))
        assert lines, export_format
        expected = {"otlp-json": 1}.get(export_format, 3)
        assert len(lines) == expected, export_format
        for line in lines:
            parts = line.split("\n")
            assert len(parts) == (2 if export_format == "elastic-bulk" else 1)
