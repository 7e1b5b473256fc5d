"""Audit records in SIEM formats: ECS JSON, CEF, RFC 5424 syslog, Splunk HEC, Elasticsearch
bulk and OTLP/JSON logs. Pure functions: records in, text out.

Every format carries the record's chain, sequence number and hash, so a copy in a SIEM
can be matched against the tamper-evident original. JSON formats use ECS field names
(with Dijk's own fields under ``dijk.*``); ``url.path`` holds the *path template*, since
raw paths (which may contain personal data) are never recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, Final, Literal, get_args

import orjson

from dijk import __version__
from dijk.audit.chain import ChainedRecord

__all__ = [
    "EXPORT_FORMATS",
    "ExportFormat",
    "cef_line",
    "ecs_document",
    "elastic_bulk_lines",
    "export_lines",
    "otlp_request",
    "record_json",
    "splunk_hec_line",
    "syslog_line",
]

ExportFormat = Literal["ecs", "cef", "syslog", "splunk-hec", "elastic-bulk", "otlp-json"]
EXPORT_FORMATS: Final[tuple[str, ...]] = get_args(ExportFormat)

ECS_VERSION: Final = "8.11.0"
DEFAULT_INDEX: Final = "logs-dijk.audit-default"
# RFC 5424 structured-data ids need an IANA Private Enterprise Number; 32473 is the one
# IANA reserves for documentation, used until Dijk has its own.
SYSLOG_SD_ID: Final = "dijk@32473"
_SYSLOG_FACILITY_AUDIT: Final = 13
_SYSLOG_SEVERITY: Final = {"allow": 6, "monitor": 5, "deny": 4, "abort": 4}
_CEF_SEVERITY: Final = {"allow": 1, "monitor": 5, "deny": 7, "abort": 7}
_OTLP_SEVERITY: Final = {
    "allow": (9, "INFO"),
    "monitor": (10, "INFO2"),
    "deny": (13, "WARN"),
    "abort": (13, "WARN"),
}
_ECS_TYPE: Final = {"deny": "denied", "abort": "error"}
_OTLP_BATCH: Final = 1000
_UNPRINTABLE: Final = re.compile(r"[^\x21-\x7e]")


def _timestamp(row: ChainedRecord) -> str:
    moment = row.record.time
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _outcome(status: int) -> str:
    return "success" if status < 400 else "failure"


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if not value:
                continue
        if value is None:
            continue
        cleaned[key] = value
    return cleaned


def ecs_document(row: ChainedRecord) -> dict[str, Any]:
    """The record as an Elastic Common Schema document."""
    record = row.record
    event_type = ["access", _ECS_TYPE.get(record.decision, "allowed")]
    rule_ids = sorted({finding.rule_id for finding in record.findings})
    return _drop_none(
        {
            "@timestamp": _timestamp(row),
            "ecs": {"version": ECS_VERSION},
            "event": {
                "kind": "event",
                "category": ["web"],
                "type": event_type,
                "action": record.decision,
                "outcome": _outcome(record.status),
                "reason": record.reason,
                "duration": record.gateway_latency_us * 1000,
                "sequence": row.seq,
                "dataset": "dijk.audit",
                "module": "dijk",
            },
            "http": {
                "request": {
                    "id": record.request_id,
                    "method": record.method,
                    "bytes": record.bytes_in,
                },
                "response": {"status_code": record.status, "bytes": record.bytes_out},
            },
            "url": {"path": record.path_template},
            "user": {"name": record.consumer},
            "client": {"address": record.client_ip},
            "rule": {"id": rule_ids or None},
            "service": {"name": "dijk", "type": "api-gateway", "version": __version__},
            "log": {"logger": "dijk.audit"},
            "dijk": {
                "audit": {
                    "chain": row.chain,
                    "seq": row.seq,
                    "hash": row.hash.hex(),
                    "prev_hash": row.prev_hash.hex(),
                },
                "route": record.route,
                "path_template": record.path_template,
                "decision": record.decision,
                "reason": record.reason,
                "auth_method": record.auth_method,
                "credential_id": record.credential_id,
                "findings": [
                    {"rule_id": finding.rule_id, "field": finding.field}
                    for finding in record.findings
                ]
                or None,
                "upstream_latency_us": record.upstream_latency_us,
                "gateway_latency_us": record.gateway_latency_us,
                "pii_categories": list(record.pii_categories) or None,
            },
        }
    )


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_value(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


def cef_line(row: ChainedRecord) -> str:
    """ArcSight Common Event Format (CEF:0), one line."""
    record = row.record
    signature = record.reason or f"request.{record.decision}"
    name = f"{record.method} {record.path_template or record.route or '-'} {record.status}"
    fields: list[tuple[str, object | None]] = [
        ("rt", record.time_us // 1000),
        ("externalId", record.request_id),
        ("requestMethod", record.method),
        ("request", record.path_template),
        ("act", record.decision),
        ("outcome", _outcome(record.status)),
        ("reason", record.reason),
        ("suser", record.consumer),
        ("in", record.bytes_in),
        ("out", record.bytes_out),
        ("cn1Label", "status"),
        ("cn1", record.status),
        ("cn2Label", "seq"),
        ("cn2", row.seq),
        ("cn3Label", "latencyMicros"),
        ("cn3", record.gateway_latency_us),
        ("cs1Label", "route"),
        ("cs1", record.route),
        ("cs2Label", "clientPseudonym"),
        ("cs2", record.client_ip),
        ("cs3Label", "findings"),
        ("cs3", ",".join(f"{item.rule_id}@{item.field}" for item in record.findings) or None),
        ("cs4Label", "authMethod"),
        ("cs4", record.auth_method),
        ("cs5Label", "chain"),
        ("cs5", row.chain),
        ("cs6Label", "hash"),
        ("cs6", row.hash.hex()),
    ]
    extension = " ".join(f"{key}={_cef_value(value)}" for key, value in fields if value is not None)
    header = "|".join(
        _cef_header(part)
        for part in (
            "Dijk",
            "Dijk API Gateway",
            __version__,
            signature,
            name,
            str(_CEF_SEVERITY.get(record.decision, 5)),
        )
    )
    return f"CEF:0|{header}|{extension}"


def _sd_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(value: str, limit: int) -> str:
    token = _UNPRINTABLE.sub("_", value)[:limit]
    return token or "-"


def syslog_line(row: ChainedRecord, hostname: str = "-") -> str:
    """RFC 5424 message (without transport framing): facility *log audit* (13)."""
    record = row.record
    priority = _SYSLOG_FACILITY_AUDIT * 8 + _SYSLOG_SEVERITY.get(record.decision, 5)
    params = {
        "chain": row.chain,
        "seq": row.seq,
        "hash": row.hash.hex(),
        "requestId": record.request_id,
        "method": record.method,
        "route": record.route,
        "status": record.status,
        "decision": record.decision,
        "reason": record.reason,
        "consumer": record.consumer,
    }
    sd = " ".join(
        f'{key}="{_sd_value(value)}"' for key, value in params.items() if value is not None
    )
    message = orjson.dumps(ecs_document(row)).decode()
    host = _header_token(hostname, 255)
    return f"<{priority}>1 {_timestamp(row)} {host} dijk - audit [{SYSLOG_SD_ID} {sd}] {message}"


def splunk_hec_line(
    row: ChainedRecord, hostname: str | None = None, index: str | None = None
) -> str:
    """One Splunk HTTP Event Collector event (``/services/collector/event``)."""
    event: dict[str, Any] = {
        "time": round(row.record.time_us / 1_000_000, 6),
        "source": "dijk",
        "sourcetype": "dijk:audit",
        "event": ecs_document(row),
    }
    if hostname:
        event["host"] = hostname
    if index:
        event["index"] = index
    return orjson.dumps(event).decode()


def elastic_document_id(row: ChainedRecord) -> str:
    """A document id fixed by the record's place in its chain: a retried bulk request
    cannot index a record twice (the second ``create`` answers 409)."""
    return f"{row.chain}-{row.seq}"


def elastic_bulk_lines(
    row: ChainedRecord, index: str = DEFAULT_INDEX, *, with_id: bool = False
) -> str:
    """An action line and a document line for the ``_bulk`` API (``create``: data streams)."""
    target: dict[str, str] = {"_index": index}
    if with_id:
        target["_id"] = elastic_document_id(row)
    action = orjson.dumps({"create": target}).decode()
    return action + "\n" + orjson.dumps(ecs_document(row)).decode()


def record_json(row: ChainedRecord) -> dict[str, Any]:
    """The record as Dijk's own JSON (``audit query --format json``, the admin API)."""
    record = row.record
    return {
        "chain": row.chain,
        "seq": row.seq,
        "time": record.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "request_id": record.request_id,
        "method": record.method,
        "route": record.route,
        "path_template": record.path_template,
        "status": record.status,
        "decision": record.decision,
        "reason": record.reason,
        "consumer": record.consumer,
        "auth_method": record.auth_method,
        "credential_id": record.credential_id,
        "client_ip": record.client_ip,
        "findings": [{"rule_id": item.rule_id, "field": item.field} for item in record.findings],
        "gateway_latency_us": record.gateway_latency_us,
        "upstream_latency_us": record.upstream_latency_us,
        "bytes_in": record.bytes_in,
        "bytes_out": record.bytes_out,
        "pii_categories": list(record.pii_categories),
        "hash": row.hash.hex(),
    }


def _attribute(key: str, value: object) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64 is a string in JSON
    if isinstance(value, list):
        items = [{"stringValue": str(item)} for item in value]
        return {"key": key, "value": {"arrayValue": {"values": items}}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _otlp_log(row: ChainedRecord) -> dict[str, Any]:
    record = row.record
    number, text = _OTLP_SEVERITY.get(record.decision, (9, "INFO"))
    values: list[tuple[str, object | None]] = [
        ("event.name", "dijk.audit.request"),
        ("http.request.method", record.method),
        ("http.response.status_code", record.status),
        ("http.route", record.path_template),
        ("http.request.body.size", record.bytes_in),
        ("http.response.body.size", record.bytes_out),
        ("client.address", record.client_ip),
        ("user.name", record.consumer),
        ("dijk.request_id", record.request_id),
        ("dijk.route", record.route),
        ("dijk.decision", record.decision),
        ("dijk.reason", record.reason),
        ("dijk.auth_method", record.auth_method),
        ("dijk.credential_id", record.credential_id),
        ("dijk.rule_ids", [item.rule_id for item in record.findings] or None),
        ("dijk.finding_fields", [item.field for item in record.findings] or None),
        ("dijk.pii_categories", list(record.pii_categories) or None),
        ("dijk.gateway_latency_us", record.gateway_latency_us),
        ("dijk.upstream_latency_us", record.upstream_latency_us),
        ("dijk.audit.chain", row.chain),
        ("dijk.audit.seq", row.seq),
        ("dijk.audit.hash", row.hash.hex()),
    ]
    nanos = str(record.time_us * 1000)
    body = f"{record.method} {record.path_template or '-'} {record.status} {record.decision}"
    return {
        "timeUnixNano": nanos,
        "observedTimeUnixNano": nanos,
        "severityNumber": number,
        "severityText": text,
        "body": {"stringValue": body},
        "attributes": [_attribute(key, value) for key, value in values if value is not None],
    }


def otlp_request(rows: Iterable[ChainedRecord]) -> dict[str, Any]:
    """An OTLP/JSON ``ExportLogsServiceRequest`` holding ``rows``."""
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        _attribute("service.name", "dijk"),
                        _attribute("service.version", __version__),
                    ]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "dijk.audit", "version": __version__},
                        "logRecords": [_otlp_log(row) for row in rows],
                    }
                ],
            }
        ]
    }


def export_lines(
    rows: Iterable[ChainedRecord], export_format: str, *, hostname: str = "-"
) -> Iterator[str]:
    """Lines of text (without newline) for ``rows`` in ``export_format``.

    OTLP/JSON yields one ``ExportLogsServiceRequest`` per line, 1000 records each.
    """
    if export_format == "ecs":
        for row in rows:
            yield orjson.dumps(ecs_document(row)).decode()
    elif export_format == "cef":
        yield from (cef_line(row) for row in rows)
    elif export_format == "syslog":
        yield from (syslog_line(row, hostname) for row in rows)
    elif export_format == "splunk-hec":
        yield from (splunk_hec_line(row, None if hostname == "-" else hostname) for row in rows)
    elif export_format == "elastic-bulk":
        yield from (elastic_bulk_lines(row) for row in rows)
    elif export_format == "otlp-json":
        batch: list[ChainedRecord] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= _OTLP_BATCH:
                yield orjson.dumps(otlp_request(batch)).decode()
                batch = []
        if batch:
            yield orjson.dumps(otlp_request(batch)).decode()
    else:
        raise ValueError(f"unknown export format {export_format!r}; use one of {EXPORT_FORMATS}")
