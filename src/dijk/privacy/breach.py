"""``dijk breach report``: what personal data left through the gateway in a window, and to whom.

Read from the exposure log (:mod:`dijk.privacy.db`): per time bucket, endpoint, consumer,
pseudonymous client and reason, the responses and values of each category the gateway
delivered (and how many of them it masked), and the distinct pseudonymous data subjects.
Filters narrow it to the suspected incident: a consumer (a leaked API key), a client
address range (``--ip``, matched by pseudonym: the addresses are not stored), or the
reason code the requests were recorded with (``waf.sqli`` in monitor mode, say).

The GDPR gives the controller 72 hours from becoming aware of a breach to notify the
supervisory authority (Art. 33(1)); the report states the detection time, the deadline
and the time left, and the fields the notification asks for (Art. 33(3); the Dutch
Autoriteit Persoonsgegevens' form asks the same): the nature of the breach, the
categories and approximate numbers of data subjects and records, the likely consequences
and the measures taken. What traffic cannot tell (consequences, measures, contacts) is a
``FILL IN`` prompt.

Numbers are what the gateway saw: the window is widened to whole buckets
(``privacy.exposure_bucket_s``), "data subjects" is the largest number of distinct values
of one identifying category (a person with two e-mail addresses counts twice; two
categories of one person once), so it is an estimate, given with its upper bound.
"""

# S608: table names come from a validated prefix ([a-z_][a-z0-9_]*); values are bound.
# ruff: noqa: S608
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from dijk.privacy.db import PrivacyDatabase, PrivacyDatabaseError
from dijk.privacy.report import FILL_IN

__all__ = ["NOTIFICATION_HOURS", "BreachFilter", "BreachReport", "build_breach", "render_breach"]

NOTIFICATION_HOURS: Final = 72
ANY: Final = "*"
_IDENTIFYING: Final = ("email", "bsn", "iban", "phone", "card", "date_of_birth")
_CONSEQUENCES: Final = {
    "email": "phishing and spam aimed at the people concerned",
    "phone": "phishing calls and SMS (smishing), SIM-swap attempts",
    "iban": "direct-debit fraud and convincing payment phishing",
    "bsn": "identity fraud (the BSN is a national identification number)",
    "card": "payment card fraud",
    "date_of_birth": "identity fraud when combined with other data",
    "postcode": "locating people when combined with other data",
    "ip": "tracking or locating devices",
    "secret": "account takeover with the exposed credentials or tokens",
}


@dataclass(frozen=True, slots=True)
class BreachFilter:
    since: datetime
    until: datetime
    consumer: str | None = None
    reason: str | None = None
    ip: str | None = None
    clients: frozenset[str] | None = None
    client_column: str = "client"

    def describe(self) -> str:
        parts = []
        if self.consumer is not None:
            parts.append(f"consumer {self.consumer}")
        if self.ip is not None:
            parts.append(f"client addresses in {self.ip}")
        if self.reason is not None:
            parts.append(f"reason {self.reason}")
        return ", ".join(parts) or "all traffic"


@dataclass(slots=True)
class Exposure:
    method: str
    endpoint: str
    records: int = 0
    categories: dict[str, list[int]] = field(default_factory=dict)  # [values, masked]
    subjects: dict[str, set[str]] = field(default_factory=dict)
    consumers: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class BreachReport:
    filter: BreachFilter
    detected: datetime
    generated: datetime
    database: str
    bucket_s: int
    window_start: datetime
    window_end: datetime
    endpoints: list[Exposure]
    clients: int
    networks: int
    audit_requests: int | None
    incomplete: bool

    @property
    def deadline(self) -> datetime:
        return self.detected + timedelta(hours=NOTIFICATION_HOURS)

    def totals(self) -> dict[str, Any]:
        categories: dict[str, list[int]] = {}
        subjects: dict[str, set[str]] = {}
        consumers: dict[str, int] = {}
        for item in self.endpoints:
            for category, (values, masked) in item.categories.items():
                entry = categories.setdefault(category, [0, 0])
                entry[0] += values
                entry[1] += masked
            for category, found in item.subjects.items():
                subjects.setdefault(category, set()).update(found)
            for consumer, records in item.consumers.items():
                consumers[consumer] = consumers.get(consumer, 0) + records
        distinct = {category: len(found) for category, found in subjects.items()}
        identifying = [distinct.get(category, 0) for category in _IDENTIFYING]
        return {
            "records": sum(item.records for item in self.endpoints),
            "categories": {
                category: {"values": values, "masked": masked, "unmasked": values - masked}
                for category, (values, masked) in sorted(categories.items())
            },
            "distinct_subjects_by_category": dict(sorted(distinct.items())),
            "data_subjects_estimate": max(identifying, default=0),
            "data_subjects_upper_bound": sum(identifying),
            "consumers": dict(sorted(consumers.items())),
        }

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        moment = now or self.generated
        totals = self.totals()
        left = (self.deadline - moment).total_seconds() / 3600
        exposed = [c for c, v in totals["categories"].items() if v["unmasked"]]
        masked_only = [c for c, v in totals["categories"].items() if not v["unmasked"]]
        return {
            "kind": "dijk.breach.report",
            "version": 1,
            "generated_at": _iso(self.generated),
            "database": self.database,
            "window": {
                "since": _iso(self.filter.since),
                "until": _iso(self.filter.until),
                "counted_from": _iso(self.window_start),
                "counted_until": _iso(self.window_end),
                "bucket_s": self.bucket_s,
                "filter": self.filter.describe(),
            },
            "detection": {
                "detected_at": _iso(self.detected),
                "notification_deadline": _iso(self.deadline),
                "hours_left": round(left, 1),
                "overdue": left < 0,
                "rule": "GDPR Art. 33(1): notify the supervisory authority without undue"
                " delay and, where feasible, within 72 hours of becoming aware of the breach.",
            },
            "endpoints": [
                {
                    "method": item.method,
                    "endpoint": item.endpoint,
                    "records": item.records,
                    "categories": {
                        category: {
                            "values": values,
                            "masked": masked,
                            "distinct_subjects": len(item.subjects.get(category, ())),
                        }
                        for category, (values, masked) in sorted(item.categories.items())
                    },
                    "consumers": dict(sorted(item.consumers.items())),
                }
                for item in self.endpoints
            ],
            "totals": totals,
            "clients": {"distinct": self.clients, "networks": self.networks},
            "audit_log_requests": self.audit_requests,
            "incomplete": self.incomplete,
            "notification": {
                "nature_of_breach": {
                    "summary": _summary(self, totals),
                    "description": f"{FILL_IN}: what happened, how it was found, whether it"
                    " is contained.",
                },
                "categories_of_personal_data": exposed,
                "categories_masked_by_the_gateway": masked_only,
                "categories_of_data_subjects": f"{FILL_IN}: e.g. customers, employees.",
                "approximate_number_of_data_subjects": totals["data_subjects_estimate"],
                "approximate_number_of_records": totals["records"],
                "likely_consequences": {
                    "prompt": f"{FILL_IN}: describe the likely consequences for the people"
                    " concerned.",
                    "to_consider": [_CONSEQUENCES[c] for c in exposed if c in _CONSEQUENCES],
                },
                "measures_taken_or_proposed": {
                    "prompt": f"{FILL_IN}: measures taken or proposed to address the breach and"
                    " mitigate its effects.",
                    "to_consider": _measures(self.filter),
                },
                "data_protection_officer_contact": f"{FILL_IN}: name and contact.",
                "data_subjects_informed": f"{FILL_IN}: Art. 34, if the risk to them is high.",
            },
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary(report: BreachReport, totals: dict[str, Any]) -> str:
    if not report.endpoints:
        return (
            f"No personal data was delivered through the gateway between"
            f" {_iso(report.window_start)} and {_iso(report.window_end)} for"
            f" {report.filter.describe()}."
        )
    categories = ", ".join(totals["categories"]) or "none"
    consumers = ", ".join(c or "(anonymous)" for c in totals["consumers"]) or "none"
    return (
        f"Between {_iso(report.window_start)} and {_iso(report.window_end)}"
        f" ({report.filter.describe()}), {totals['records']} responses from"
        f" {len(report.endpoints)} endpoint(s) carried personal data ({categories}) to"
        f" {consumers}, concerning about {totals['data_subjects_estimate']} people."
    )


def _measures(breach: BreachFilter) -> list[str]:
    hints = []
    if breach.consumer:
        hints.append(f"revoke and replace the credentials of consumer {breach.consumer}")
    if breach.ip:
        hints.append(f"block {breach.ip} (network.ip_deny)")
    hints += [
        "mask or drop the exposed fields (route privacy.mask_response / privacy.fields)",
        "rotate keys: dijk keys rotate --reencrypt",
        "keep the audit log and this report as evidence (dijk audit verify)",
    ]
    return hints


async def build_breach(
    database: PrivacyDatabase,
    breach: BreachFilter,
    *,
    detected: datetime,
    now: datetime | None = None,
    audit_table: str | None = None,
) -> BreachReport:
    exposure, subjects = database.table("exposure"), database.table("exposure_subject")
    if not await database.has_table(exposure):
        raise PrivacyDatabaseError(
            f"no exposure log in {database.redacted} (has the gateway run with a route"
            " `privacy:` and privacy.datamap on?)"
        )
    meta = dict(await database.fetch(f"SELECT name, value FROM {database.table('datamap_meta')}"))
    bucket_s = int(meta.get("exposure_bucket_s") or 300)
    bucket_us = bucket_s * 1_000_000
    since_us = _us(breach.since) - _us(breach.since) % bucket_us
    until_us = _us(breach.until)
    where, params = _where(breach, since_us, until_us)
    rows = await database.fetch(
        "SELECT method, endpoint, consumer, client, client_net, category, records,"
        f" occurrences, masked FROM {exposure} WHERE {where}",
        params,
    )
    endpoints: dict[tuple[str, str], Exposure] = {}
    clients: set[str] = set()
    networks: set[str] = set()
    for method, endpoint, consumer, client, net, category, records, values, masked in rows:
        if not _client_matches(breach, client, net):
            continue
        item = endpoints.setdefault((method, endpoint), Exposure(method, endpoint))
        if category == ANY:
            item.records += int(records)
            item.consumers[consumer] = item.consumers.get(consumer, 0) + int(records)
            clients.add(client)
            networks.add(net)
            continue
        entry = item.categories.setdefault(category, [0, 0])
        entry[0] += int(values)
        entry[1] += int(masked)
    nets = await _client_networks(database, exposure, breach, where, params)
    for method, endpoint, client, category, subject in await database.fetch(
        f"SELECT method, endpoint, client, category, subject FROM {subjects} WHERE {where}",
        params,
    ):
        if not _client_matches(breach, client, nets.get(client, "")):
            continue
        target = endpoints.get((method, endpoint))
        if target is not None:
            target.subjects.setdefault(category, set()).add(subject)
    audit_requests = await _audit_count(database, audit_table, breach)
    generated = now or datetime.now(UTC)
    return BreachReport(
        filter=breach,
        detected=detected,
        generated=generated,
        database=database.redacted,
        bucket_s=bucket_s,
        window_start=datetime.fromtimestamp(since_us / 1_000_000, UTC),
        window_end=breach.until,
        endpoints=[endpoints[key] for key in sorted(endpoints, key=lambda k: (k[1], k[0]))],
        clients=len(clients),
        networks=len(networks),
        audit_requests=audit_requests,
        incomplete=int(meta.get("dropped_rows") or 0) > 0,
    )


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _where(breach: BreachFilter, since_us: int, until_us: int) -> tuple[str, list[Any]]:
    clauses = ["bucket_us >= ?", "bucket_us < ?"]
    params: list[Any] = [since_us, until_us]
    if breach.consumer is not None:
        clauses.append("consumer = ?")
        params.append(breach.consumer)
    if breach.reason is not None:
        if breach.reason.endswith("*"):
            clauses.append("substr(reason, 1, ?) = ?")
            params += [len(breach.reason) - 1, breach.reason[:-1]]
        else:
            clauses.append("reason = ?")
            params.append(breach.reason)
    return " AND ".join(clauses), params


def _client_matches(breach: BreachFilter, client: str, net: str) -> bool:
    if breach.clients is None:
        return True
    return (net if breach.client_column == "client_net" else client) in breach.clients


async def _client_networks(
    database: PrivacyDatabase, exposure: str, breach: BreachFilter, where: str, params: list[Any]
) -> dict[str, str]:
    if breach.clients is None or breach.client_column != "client_net":
        return {}
    rows = await database.fetch(
        f"SELECT DISTINCT client, client_net FROM {exposure} WHERE {where}",
        params,
    )
    return {client: net for client, net in rows}


async def _audit_count(
    database: PrivacyDatabase, table: str | None, breach: BreachFilter
) -> int | None:
    """Requests in the audit log for the window (consumer/reason filters only)."""
    if table is None or breach.clients is not None or not await database.has_table(table):
        return None
    params: list[Any]
    if database.dialect == "postgresql":  # the audit store keeps a timestamptz there
        clauses = ["time >= ?", "time < ?"]
        params = [breach.since, breach.until]
    else:
        clauses = ["time_us >= ?", "time_us < ?"]
        params = [_us(breach.since), _us(breach.until)]
    if breach.consumer is not None:
        clauses.append("consumer = ?")
        params.append(breach.consumer)
    if breach.reason is not None and not breach.reason.endswith("*"):
        clauses.append("reason = ?")
        params.append(breach.reason)
    try:
        rows = await database.fetch(
            f"SELECT count(*) FROM {table} WHERE {' AND '.join(clauses)}",
            params,
        )
    except Exception:  # a table of another shape: the cross-check is left out
        return None
    return int(rows[0][0]) if rows else None


# -- rendering -----------------------------------------------------------------------------


def render_breach(report: BreachReport, fmt: str, now: datetime | None = None) -> str:
    data = report.as_dict(now)
    if fmt == "json":
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
    return _markdown(data)


def _bullets(items: Iterable[str]) -> list[str]:
    return [f"  - {item}" for item in items]


def _markdown(data: dict[str, Any]) -> str:
    detection = data["detection"]
    window = data["window"]
    totals = data["totals"]
    notification = data["notification"]
    masked = notification["categories_masked_by_the_gateway"]
    left = detection["hours_left"]
    status = f"**OVERDUE** by {-left:.1f} hours" if detection["overdue"] else f"{left:.1f} h left"
    lines = [
        "# Personal data breach report",
        "",
        f"- **Detected**: {detection['detected_at']}",
        f"- **Notification deadline** (72 hours after detection, GDPR Art. 33):"
        f" **{detection['notification_deadline']}** ({status})",
        f"- **Window**: {window['since']} to {window['until']} ({window['filter']});"
        f" counted in {window['bucket_s']} s buckets from {window['counted_from']}",
        f"- **Source**: `{data['database']}`, generated {data['generated_at']}",
    ]
    if data["incomplete"]:
        lines.append("- **Note**: the gateway dropped rows under load: numbers are lower bounds.")
    lines += [
        "",
        "## Scope",
        "",
        f"- Responses with personal data: **{totals['records']}**",
        f"- Data subjects (estimate): **{totals['data_subjects_estimate']}**"
        f" (at most {totals['data_subjects_upper_bound']})",
        f"- Clients: {data['clients']['distinct']} (pseudonymous), networks:"
        f" {data['clients']['networks']}",
    ]
    if data["audit_log_requests"] is not None:
        lines.append(f"- Requests in the audit log for this window: {data['audit_log_requests']}")
    consumers = ", ".join(f"{c or '(anonymous)'} ({n})" for c, n in totals["consumers"].items())
    lines.append(f"- Consumers (responses): {consumers or 'none'}")
    lines += [
        "",
        "| endpoint | category | values | masked | distinct subjects |",
        "|---|---|---:|---:|---:|",
    ]
    for item in data["endpoints"]:
        for category, numbers in item["categories"].items():
            lines.append(
                f"| {item['method']} {item['endpoint']} | {category} | {numbers['values']} |"
                f" {numbers['masked']} | {numbers['distinct_subjects']} |"
            )
    lines += [
        "",
        "## Notification to the supervisory authority (Art. 33(3))",
        "",
        f"- **Nature of the breach**: {notification['nature_of_breach']['summary']}",
        f"  - {notification['nature_of_breach']['description']}",
        "- **Categories of personal data**: "
        + (", ".join(notification["categories_of_personal_data"]) or "none")
        + (f" (masked by the gateway: {', '.join(masked)})" if masked else ""),
        f"- **Categories of data subjects**: {notification['categories_of_data_subjects']}",
        "- **Approximate number of data subjects**:"
        f" {notification['approximate_number_of_data_subjects']}",
        f"- **Approximate number of records**: {notification['approximate_number_of_records']}",
        f"- **Likely consequences**: {notification['likely_consequences']['prompt']}",
        *_bullets(notification["likely_consequences"]["to_consider"]),
        f"- **Measures taken or proposed**: {notification['measures_taken_or_proposed']['prompt']}",
        *_bullets(notification["measures_taken_or_proposed"]["to_consider"]),
        f"- **Data protection officer**: {notification['data_protection_officer_contact']}",
        f"- **Data subjects informed**: {notification['data_subjects_informed']}",
    ]
    return "\n".join(lines) + "\n"
