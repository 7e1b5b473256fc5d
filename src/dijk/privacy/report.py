"""``dijk privacy report``: the Art. 30 register and data-minimisation findings.

Built from the data map in the audit database (what real traffic carried), so the register
describes what the APIs *do*, not what someone remembered to write down. What only the
controller can say (purposes, categories of data subjects, transfers, contact) is left as
``FILL IN`` prompts to fill in.

Findings:

- ``undeclared_field``: personal data returned in a response field the endpoint's OpenAPI
  response schema does not declare (the contract says the API should not return it);
- ``undeclared_operation``: personal data returned by an operation the contract lacks;
- ``unneeded_category``: a category returned to a consumer none of whose scopes needs it
  (per the route's ``privacy.scope_categories``).

OpenAPI documents come from ``--openapi`` or from the routes' ``openapi.spec`` that the
gateway recorded in the database.
"""

# S608: table names come from a validated prefix ([a-z_][a-z0-9_]*); values are bound.
# ruff: noqa: S608
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from dijk.privacy.contract import Contract, load_contract
from dijk.privacy.db import PrivacyDatabase, PrivacyDatabaseError

__all__ = ["FieldUse", "Finding", "Processing", "Register", "build_register", "render_register"]

FILL_IN: Final = "FILL IN"
_SPECIAL: Final = {
    "bsn": "national identification number (BSN): GDPR Art. 87, UAVG Art. 46",
    "card": "payment card number (financial data)",
    "secret": "credentials or secrets",
}


def iso(time_us: int | None) -> str | None:
    if time_us is None:
        return None
    moment = datetime.fromtimestamp(time_us / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class FieldUse:
    direction: str
    path: str
    category: str
    records: int = 0
    occurrences: int = 0
    masked: int = 0
    unneeded: int = 0
    consumers: dict[str, int] = field(default_factory=dict)
    unneeded_by: dict[str, int] = field(default_factory=dict)
    first_us: int = 0
    last_us: int = 0
    declared: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "field": self.path,
            "category": self.category,
            "records": self.records,
            "occurrences": self.occurrences,
            "masked": self.masked,
            "consumers": sorted(name for name in self.consumers if name),
            "anonymous": "" in self.consumers,
            "first_seen": iso(self.first_us),
            "last_seen": iso(self.last_us),
            "declared_in_contract": self.declared,
        }


@dataclass(slots=True)
class Processing:
    """One endpoint: a processing operation of the register."""

    method: str
    endpoint: str
    routes: set[str] = field(default_factory=set)
    fields: dict[tuple[str, str, str], FieldUse] = field(default_factory=dict)
    contract: str | None = None

    def categories(self, direction: str) -> list[str]:
        return sorted({use.category for use in self.fields.values() if use.direction == direction})

    def recipients(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for use in self.fields.values():
            if use.direction != "response":
                continue
            for consumer in use.consumers:
                out.setdefault(consumer, set()).add(use.category)
        return out

    @property
    def first_us(self) -> int:
        return min((use.first_us for use in self.fields.values()), default=0)

    @property
    def last_us(self) -> int:
        return max((use.last_us for use in self.fields.values()), default=0)


@dataclass(slots=True)
class Finding:
    kind: str
    method: str
    endpoint: str
    field: str
    category: str
    consumers: list[str]
    occurrences: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "method": self.method,
            "endpoint": self.endpoint,
            "field": self.field,
            "category": self.category,
            "consumers": self.consumers,
            "occurrences": self.occurrences,
            "detail": self.detail,
        }


@dataclass(slots=True)
class Register:
    generated_us: int
    database: str
    meta: dict[str, str]
    processing: list[Processing]
    consumers: dict[str, dict[str, Any]]
    findings: list[Finding]
    contracts: list[str]
    contract_errors: list[str]

    def as_dict(self) -> dict[str, Any]:
        scopes = {name: info.get("scopes", []) for name, info in self.consumers.items()}
        audit_days = self.meta.get("audit_retention_days") or None
        return {
            "kind": "dijk.privacy.register",
            "version": 1,
            "generated_at": iso(self.generated_us),
            "database": self.database,
            "data_updated_at": iso(int(self.meta["updated_us"]))
            if self.meta.get("updated_us", "").isdigit()
            else None,
            "controller": {"name": FILL_IN, "contact": FILL_IN, "data_protection_officer": FILL_IN},
            "retention": {
                "audit_log_days": int(audit_days) if audit_days else None,
                "exposure_log_days": int(self.meta.get("exposure_retention_days") or 0) or None,
                "note": "Dijk keeps categories and pseudonyms, never values; erasure periods "
                "of the API's own data are the controller's to state."
                if audit_days
                else "The audit log keeps records until pruned (audit.retention_days unset).",
            },
            "security_measures": _measures(self.processing),
            "processing": [_processing_dict(item, scopes) for item in self.processing],
            "recipients": [
                {"consumer": name, **info} for name, info in sorted(self.consumers.items())
            ],
            "findings": [finding.as_dict() for finding in self.findings],
            "openapi_documents": self.contracts,
            "openapi_errors": self.contract_errors,
            "incomplete": int(self.meta.get("dropped_rows") or 0) > 0,
        }


def _measures(processing: list[Processing]) -> list[str]:
    measures = [
        "Personal data found in API traffic is recorded as categories and keyed pseudonyms "
        "only (HMAC-SHA256); no values are stored in logs or the audit database.",
        "Dijk's own key material is sealed with AES-256-GCM under a versioned key ring.",
    ]
    masked = sorted(
        {
            f"{item.method} {item.endpoint}"
            for item in processing
            for use in item.fields.values()
            if use.masked
        }
    )
    if masked:
        measures.append("Responses are masked by the gateway on: " + ", ".join(masked) + ".")
    return measures


def _processing_dict(item: Processing, scopes: dict[str, Any]) -> dict[str, Any]:
    response = item.categories("response")
    special = sorted({_SPECIAL[c] for c in item.categories("request") + response if c in _SPECIAL})
    return {
        "method": item.method,
        "endpoint": item.endpoint,
        "routes": sorted(item.routes),
        "purpose": FILL_IN,
        "data_subjects": FILL_IN,
        "personal_data": {"request": item.categories("request"), "response": response},
        "special_or_sensitive": special,
        "recipients": [
            {
                "consumer": consumer or "(anonymous)",
                "scopes": scopes.get(consumer, []),
                "categories": sorted(categories),
            }
            for consumer, categories in sorted(item.recipients().items())
        ],
        "transfers_outside_eea": FILL_IN,
        "first_seen": iso(item.first_us),
        "last_seen": iso(item.last_us),
        "openapi_document": item.contract,
        "fields": [use.as_dict() for use in _ordered(item)],
    }


def _ordered(item: Processing) -> list[FieldUse]:
    return sorted(item.fields.values(), key=lambda use: (use.direction != "request", use.path))


async def build_register(
    database: PrivacyDatabase, openapi: list[str] | None = None, now_us: int | None = None
) -> Register:
    """Read the data map and check it against the contracts; see the module docstring."""
    table = database.table("datamap")
    if not await database.has_table(table):
        raise PrivacyDatabaseError(
            f"no data map in {database.redacted} (has the gateway run with a route"
            " `privacy:` and privacy.datamap on?)"
        )
    rows = await database.fetch(
        "SELECT method, endpoint, direction, field, category, consumer, route, records,"
        f" occurrences, masked, unneeded, first_seen_us, last_seen_us FROM {table}"
    )
    meta = dict(await database.fetch(f"SELECT name, value FROM {database.table('datamap_meta')}"))
    consumers: dict[str, dict[str, Any]] = {}
    for name, method, scopes, first, last in await database.fetch(
        "SELECT consumer, auth_method, scopes, first_seen_us, last_seen_us"
        f" FROM {database.table('datamap_consumer')}"
    ):
        consumers[name] = {
            "auth_method": method,
            "scopes": orjson.loads(scopes) if scopes else [],
            "first_seen": iso(first),
            "last_seen": iso(last),
        }
    processing = _aggregate(rows)
    contracts, errors = _contracts(processing, meta, openapi or [])
    findings = _findings(processing, contracts)
    return Register(
        generated_us=now_us if now_us is not None else int(datetime.now(UTC).timestamp() * 1e6),
        database=database.redacted,
        meta=meta,
        processing=processing,
        consumers=consumers,
        findings=findings,
        contracts=sorted({contract.location for contract in contracts.values() if contract}),
        contract_errors=errors,
    )


def _aggregate(rows: list[tuple[Any, ...]]) -> list[Processing]:
    endpoints: dict[tuple[str, str], Processing] = {}
    for row in rows:
        method, endpoint, direction, path, category, consumer, route = row[:7]
        records, occurrences, masked, unneeded, first, last = (int(v) for v in row[7:13])
        item = endpoints.setdefault((endpoint, method), Processing(method, endpoint))
        item.routes.add(route)
        key = (direction, path, category)
        use = item.fields.get(key)
        if use is None:
            use = item.fields[key] = FieldUse(direction, path, category, first_us=first)
        use.records += records
        use.occurrences += occurrences
        use.masked += masked
        use.unneeded += unneeded
        use.consumers[consumer] = use.consumers.get(consumer, 0) + occurrences
        if unneeded:
            use.unneeded_by[consumer] = use.unneeded_by.get(consumer, 0) + unneeded
        use.first_us = min(use.first_us, first)
        use.last_us = max(use.last_us, last)
    return [endpoints[key] for key in sorted(endpoints)]


def _contracts(
    processing: list[Processing], meta: dict[str, str], explicit: list[str]
) -> tuple[dict[tuple[str, str], Contract | None], list[str]]:
    """The contract that applies to each endpoint (explicit documents first)."""
    loaded: dict[str, Contract | None] = {}
    errors: list[str] = []

    def load(location: str) -> Contract | None:
        if location not in loaded:
            try:
                loaded[location] = load_contract(location)
            except ValueError as exc:
                loaded[location] = None
                errors.append(str(exc).splitlines()[0][:300])
        return loaded[location]

    documents = [contract for contract in (load(location) for location in explicit) if contract]
    chosen: dict[tuple[str, str], Contract | None] = {}
    for item in processing:
        contract: Contract | None = None
        for candidate in documents:
            if candidate.operation_path(item.method, item.endpoint) is not None:
                contract = candidate
                break
        if contract is None and documents and not _route_specs(item, meta):
            contract = documents[0]
        if contract is None:
            for location in _route_specs(item, meta):
                contract = load(location)
                if contract is not None:
                    break
        chosen[(item.method, item.endpoint)] = contract
        item.contract = contract.location if contract is not None else None
    return chosen, errors


def _route_specs(item: Processing, meta: dict[str, str]) -> list[str]:
    return [meta[f"openapi:{route}"] for route in sorted(item.routes) if f"openapi:{route}" in meta]


def _findings(
    processing: list[Processing], contracts: dict[tuple[str, str], Contract | None]
) -> list[Finding]:
    findings: list[Finding] = []
    for item in processing:
        contract = contracts.get((item.method, item.endpoint))
        declared = contract.response_fields(item.method, item.endpoint) if contract else None
        for use in _ordered(item):
            if use.direction != "response":
                continue
            consumers = sorted(name or "(anonymous)" for name in use.consumers)
            if contract is not None and declared is None:
                use.declared = False
                findings.append(
                    Finding(
                        "undeclared_operation",
                        item.method,
                        item.endpoint,
                        use.path,
                        use.category,
                        consumers,
                        use.occurrences,
                        f"{item.method} {item.endpoint} returns {use.category} but is not an"
                        f" operation of {contract.location}.",
                    )
                )
            elif declared is not None:
                use.declared = declared.declares(use.path)
                if not use.declared:
                    findings.append(
                        Finding(
                            "undeclared_field",
                            item.method,
                            item.endpoint,
                            use.path,
                            use.category,
                            consumers,
                            use.occurrences,
                            f"{use.category} returned in {use.path}, which the response"
                            " schema does not declare.",
                        )
                    )
            if use.unneeded:
                who = sorted(name or "(anonymous)" for name in use.unneeded_by)
                findings.append(
                    Finding(
                        "unneeded_category",
                        item.method,
                        item.endpoint,
                        use.path,
                        use.category,
                        who,
                        use.unneeded,
                        f"{use.category} returned to {', '.join(who)}, whose scopes do not"
                        " need it (privacy.scope_categories)"
                        + (f"; masked {use.masked} of {use.occurrences}" if use.masked else "")
                        + ".",
                    )
                )
    return findings


# -- rendering -----------------------------------------------------------------------------


def render_register(register: Register, fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps(register.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        return _csv(register)
    return _markdown(register)


def _csv(register: Register) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "method",
            "endpoint",
            "routes",
            "direction",
            "field",
            "category",
            "consumers",
            "records",
            "occurrences",
            "masked",
            "first_seen",
            "last_seen",
            "declared_in_contract",
            "findings",
        ]
    )
    by_place: dict[tuple[str, str, str, str], list[str]] = {}
    for finding in register.findings:
        key = (finding.method, finding.endpoint, finding.field, finding.category)
        by_place.setdefault(key, []).append(finding.kind)
    for item in register.processing:
        for use in _ordered(item):
            kinds = by_place.get((item.method, item.endpoint, use.path, use.category), [])
            writer.writerow(
                [
                    item.method,
                    item.endpoint,
                    " ".join(sorted(item.routes)),
                    use.direction,
                    _cell(use.path),
                    use.category,
                    " ".join(sorted(name or "(anonymous)" for name in use.consumers)),
                    use.records,
                    use.occurrences,
                    use.masked,
                    iso(use.first_us),
                    iso(use.last_us),
                    "" if use.declared is None else str(use.declared).lower(),
                    " ".join(kinds) if use.direction == "response" else "",
                ]
            )
    return buffer.getvalue()


def _cell(text: str) -> str:
    """Keep spreadsheet programs from running a cell as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _days(value: int | None) -> str:
    return f"{value} days" if value else "until pruned"


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(register: Register) -> str:
    data = register.as_dict()
    lines = [
        "# Register of processing activities (GDPR Art. 30)",
        "",
        f"Generated {data['generated_at']} from the data map in `{register.database}`"
        f" (data up to {data['data_updated_at'] or 'unknown'}). Built from observed API"
        " traffic: categories and counts, never values. Complete every FILL IN.",
        "",
        f"- **Controller**: {FILL_IN} (name, contact); **data protection officer**: {FILL_IN}",
        f"- **Retention**: audit log {_days(data['retention']['audit_log_days'])}; exposure"
        f" log {_days(data['retention']['exposure_log_days'])}. {data['retention']['note']}",
        "- **Security measures**: " + " ".join(data["security_measures"]),
    ]
    if data["incomplete"]:
        lines.append(
            "- **Note**: the gateway dropped rows under memory pressure; counts are lower bounds."
        )
    lines += ["", "## Processing per endpoint", ""]
    for entry in data["processing"]:
        lines += [
            f"### {entry['method']} {_md(entry['endpoint'])}",
            "",
            f"- Routes: {', '.join(entry['routes'])}; seen {entry['first_seen']} to"
            f" {entry['last_seen']}",
            f"- Purpose: {FILL_IN}; categories of data subjects: {FILL_IN};"
            f" transfers outside the EEA: {FILL_IN}",
            "- Personal data received (requests): "
            + (", ".join(entry["personal_data"]["request"]) or "none"),
            "- Personal data disclosed (responses): "
            + (", ".join(entry["personal_data"]["response"]) or "none"),
        ]
        if entry["special_or_sensitive"]:
            lines.append("- Sensitive: " + "; ".join(entry["special_or_sensitive"]))
        recipients = [
            f"{item['consumer']} (scopes: {', '.join(item['scopes']) or '-'};"
            f" {', '.join(item['categories'])})"
            for item in entry["recipients"]
        ]
        lines.append("- Recipients: " + ("; ".join(recipients) or "none"))
        if entry["openapi_document"]:
            lines.append(f"- Contract: `{entry['openapi_document']}`")
        lines += [
            "",
            "| direction | field | category | records | values | masked | declared |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        for use in entry["fields"]:
            declared = {True: "yes", False: "**no**", None: "-"}[use["declared_in_contract"]]
            lines.append(
                f"| {use['direction']} | `{_md(use['field'])}` | {use['category']} |"
                f" {use['records']} | {use['occurrences']} | {use['masked']} | {declared} |"
            )
        lines.append("")
    lines += ["## Data-minimisation findings", ""]
    if not register.findings:
        lines.append("None.")
    else:
        lines += ["| finding | endpoint | field | category | consumers | values | detail |"]
        lines += ["|---|---|---|---|---|---:|---|"]
        for finding in register.findings:
            lines.append(
                f"| {finding.kind} | {finding.method} {_md(finding.endpoint)} |"
                f" `{_md(finding.field)}` | {finding.category} |"
                f" {_md(', '.join(finding.consumers))} | {finding.occurrences} |"
                f" {_md(finding.detail)} |"
            )
    checked = ", ".join(f"`{location}`" for location in register.contracts) or "none"
    lines += ["", f"OpenAPI documents checked: {checked}."]
    for error in register.contract_errors:
        lines.append(f"- could not read a document: {_md(error)}")
    return "\n".join(lines) + "\n"
