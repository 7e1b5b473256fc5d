"""What every check shares: the document, the client, identities, harvested ids, findings.

Checks call :meth:`ScanContext.call` to send a request for a documented operation (the
URL is built from the template; parameters from harvested ids, examples or overrides) and
:meth:`ScanContext.report` to file a finding with its exchanges as evidence. One finding
per rule and operation: the first proof is kept, later ones only count.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from dijk.reporting import Finding, Location, Severity
from dijk.scan.canary import Canary
from dijk.scan.client import Exchange, ScanClient
from dijk.scan.identities import Identity, LoginRecipe
from dijk.scan.rules import rule, rule_class
from dijk.scan.spec import ApiOperation, ApiSpec
from dijk.scan.values import example_value

__all__ = ["ScanContext", "ScanOptions"]

ORIGIN = "https://dijk-scan.invalid"


@dataclass(slots=True)
class ScanOptions:
    spec_path: str
    target: str
    identities: list[Identity]
    allow_writes: bool = False
    budget: int = 2000
    concurrency: int = 4
    rate: float = 50.0
    timeout_s: float = 10.0
    burst: int = 25
    time_delay_s: float = 2.5
    checks: frozenset[str] = frozenset()
    logins: list[LoginRecipe] = field(default_factory=list)
    admins: frozenset[str] = frozenset()
    canary_address: str = "127.0.0.1"
    jwt_secret: str | None = None


@dataclass(slots=True)
class ScanContext:
    spec: ApiSpec
    client: ScanClient
    options: ScanOptions
    canary: Canary
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ids: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    baseline: dict[tuple[str, str], Exchange] = field(default_factory=dict)
    on_exchange: Callable[[ApiOperation | None, Exchange], None] | None = None

    # ------------------------------------------------------------------ identities
    @property
    def identities(self) -> list[Identity]:
        return self.options.identities

    @property
    def users(self) -> list[Identity]:
        """Identities that are not administrators."""
        return [identity for identity in self.identities if not identity.admin]

    @property
    def primary(self) -> Identity | None:
        users = self.users
        return users[0] if users else (self.identities[0] if self.identities else None)

    @property
    def admin(self) -> Identity | None:
        return next((identity for identity in self.identities if identity.admin), None)

    def enabled(self, check: str) -> bool:
        return not self.options.checks or check in self.options.checks

    # ------------------------------------------------------------------ requests
    def path_for(self, operation: ApiOperation, values: dict[str, Any] | None = None) -> str:
        return self.path_for_template(operation, operation.template, values)

    def path_for_template(
        self, operation: ApiOperation, template: str, values: dict[str, Any] | None = None
    ) -> str:
        """``template`` (the operation's, or a variant of it) with its parameters filled."""
        path = template
        for param in operation.path_params:
            value = (values or {}).get(param.name)
            if value is None:
                value = self.harvested_id(operation, param.name, None)
            if value is None:
                value = example_value(param.schema)
            path = path.replace("{" + param.name + "}", quote(str(value), safe=""))
        return path

    def query_for(
        self, operation: ApiOperation, overrides: dict[str, Any] | None = None
    ) -> dict[str, str]:
        query: dict[str, str] = {}
        for param in operation.params:
            if param.location == "query" and param.required:
                query[param.name] = _text(example_value(param.schema))
        for name, value in (overrides or {}).items():
            query[name] = _text(value)
        return query

    def harvested_id(self, operation: ApiOperation, name: str, identity: str | None) -> Any:
        collection = collection_of(operation.template, name)
        if collection is None:
            return None
        by_identity = self.ids.get(collection, {})
        for who in [identity] if identity else [i.name for i in self.identities]:
            values = by_identity.get(who or "")
            if values:
                return values[0]
        return None

    async def call(
        self,
        operation: ApiOperation,
        identity: Identity | None,
        *,
        path_values: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        body: Any = None,
        raw_body: bytes | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
        purpose: str = "",
        paced: bool = True,
        timeout_s: float | None = None,
    ) -> Exchange:
        target_path = path if path is not None else self.path_for(operation, path_values)
        if path is None:
            params = self.query_for(operation, query)
        else:  # a path of our own (inventory, TRACE): only the query asked for
            params = {name: _text(value) for name, value in (query or {}).items()}
        if params:
            target_path += "?" + urlencode(params)
        request_headers = {"Origin": ORIGIN, "Accept": "application/json"}
        if identity is not None:
            request_headers.update(identity.headers)
        request_headers.update(headers or {})
        payload = raw_body
        if payload is None and body is not None:
            payload = orjson.dumps(body)
        elif (
            payload is None
            and operation.body_schema is not None
            and (method or operation.method) != "GET"
        ):
            payload = b"{}"
        exchange = await self.client.send(
            method or operation.method,
            target_path,
            headers=request_headers,
            body=payload,
            content_type=operation.body_media,
            identity=identity.name if identity else None,
            purpose=purpose,
            paced=paced,
            timeout_s=timeout_s,
        )
        if self.on_exchange is not None:
            self.on_exchange(operation if path is None else None, exchange)
        return exchange

    async def working_write(
        self, operation: ApiOperation, body: dict[str, Any], *, accept_refusal: bool = False
    ) -> tuple[Identity | None, dict[str, Any]] | None:
        """The first identity (users, then the admin) whose ordinary write succeeds, with
        the path values it used; ``accept_refusal`` also takes a 400/401/403 (a login with
        made-up credentials is refused, and that refusal is the baseline)."""
        admins = [self.admin] if self.admin is not None else []
        callers: list[Identity | None] = [None] if operation.public else [*self.users, *admins]
        for who in callers:
            values = {
                param.name: self.harvested_id(operation, param.name, who.name if who else None)
                for param in operation.path_params
            }
            first = await self.call(
                operation, who, path_values=values, body=body, purpose="baseline write"
            )
            if first.ok or (accept_refusal and first.status in (400, 401, 403)):
                return who, values
        return None

    # ------------------------------------------------------------------ findings
    def report(
        self,
        rule_id: str,
        operation: ApiOperation | None,
        message: str,
        exchanges: list[Exchange],
        *,
        severity: Severity | None = None,
        method: str | None = None,
        template: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        method = method or (operation.method if operation else "*")
        template = template or (operation.template if operation else "*")
        label = f"{method} {template}"
        key = (rule_id, label)
        self.counts[key] = self.counts.get(key, 0) + 1
        if key in self.findings:
            return
        definition = rule(rule_id)
        url = exchanges[0].url if exchanges else self.client.target
        evidence: dict[str, Any] = {
            "class": rule_class(rule_id),
            "operation": label,
            "exchanges": [exchange.evidence() for exchange in exchanges],
        }
        evidence.update(extra or {})
        line = operation.line if operation is not None and template == operation.template else None
        location = Location(
            file=self.spec.path if line is not None else None,
            line=line,
            pointer=operation.pointer if line is not None and operation is not None else None,
            method=exchanges[0].method if exchanges else method,
            url=_without_secrets(url, self.client.secrets),
        )
        self.findings[key] = Finding(
            rule_id=rule_id,
            title=definition.name,
            severity=severity or definition.severity,
            owasp=definition.owasp,
            message=message if label == "* *" else f"{label}: {message}",
            fix=definition.fix,
            location=location,
            evidence=evidence,
        )

    def found(self, rule_id: str, operation: ApiOperation) -> bool:
        return (rule_id, operation.label) in self.findings


def collection_of(template: str, name: str) -> str | None:
    """``/accounts`` for ``{id}`` in ``/accounts/{id}/transactions``."""
    marker = "/{" + name + "}"
    index = template.find(marker)
    if index <= 0:
        return None
    return template[:index]


def token() -> str:
    return secrets.token_hex(4)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _without_secrets(url: str, hidden: tuple[str, ...]) -> str:
    from dijk.scan.client import redact

    return redact(url, hidden)
