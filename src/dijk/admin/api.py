"""The admin listener: health, readiness, Prometheus metrics and the admin API.

Health and metrics are open (bind the admin listener to a private address); everything
under ``/admin/api/`` needs ``Authorization: Bearer <token>`` with the token from the
environment variable named by ``admin.token_env``, and is disabled when it is not set.
State-changing actions and refused admin requests are recorded in the audit log
(``dijk.admin.audit``). ``/ui/`` is the dashboard (``dijk.admin.ui``), on and off with
the admin API.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson

from dijk import __version__, metrics
from dijk.admin.audit import (
    READ_ONLY,
    ActionOutcome,
    AdminAudit,
    action_of,
    authorization_count,
    bearer_token,
    outcome_of,
)
from dijk.admin.inventory import (
    NO_DOCUMENT,
    InventoryUnavailable,
    declared_documents,
    inventory_diff,
    running_inventory,
)
from dijk.admin.ui.app import DashboardUI
from dijk.audit.api import query_page
from dijk.auth.revocation import revoke_from_request
from dijk.pipeline.decision import Decision
from dijk.proxy.gateway import new_request_id, problem_response, request_id_from
from dijk.proxy.http1 import ProtocolFault, Request, ResponseWriter
from dijk.storage import StorageUnavailable

if TYPE_CHECKING:
    from dijk.proxy.server import GatewayServer

_JSON = [("content-type", "application/json")]
_INCIDENT_ID = re.compile(r"[0-9a-f]{16}")


class AdminHandler:
    def __init__(self, server: GatewayServer) -> None:
        self._server = server
        self._audit_log = AdminAudit(server)
        self._ui = DashboardUI(server, self._audit_log)
        self._routes: dict[tuple[str, str], Callable[[Request], Awaitable[tuple[int, bytes]]]] = {
            ("POST", "/admin/api/v1/reload"): self._reload,
            ("GET", "/admin/api/v1/status"): self._status,
            ("POST", "/admin/api/v1/keys/revoke"): self._revoke_keys,
            ("POST", "/admin/api/v1/tokens/revoke"): self._revoke_tokens,
            ("GET", "/admin/api/v1/audit"): self._audit,
            ("GET", "/admin/api/v1/abuse/incidents"): self._incidents,
            ("POST", "/admin/api/v1/abuse/lift"): self._lift,
            ("GET", "/admin/api/v1/discovery/openapi"): self._discovery_openapi,
            ("GET", "/admin/api/v1/discovery/diff"): self._discovery_diff,
        }

    async def _readyz(self, response: ResponseWriter, request_id: str) -> None:
        """200 once serving; 503 while starting or stopping, or while a fail-closed
        dependency is down (every request that needs it would be refused)."""
        if not self._server.ready:
            self._json(response, 503, {"status": "starting"}, request_id)
            return
        failing = await self._server.state.failing_dependencies()
        if failing:
            self._json(response, 503, {"status": "unavailable", "failing": failing}, request_id)
            return
        self._json(response, 200, {"status": "ready"}, request_id)

    def protocol_error(
        self, fault: ProtocolFault, request: Request | None, client_ip: str = ""
    ) -> tuple[list[tuple[str, str]], bytes]:
        request_id = (
            request_id_from(request.headers, self._server.gateway.trusts_peer(request.client_ip))
            if request
            else new_request_id()
        )
        _, headers, body = problem_response(
            Decision.deny(fault.status, fault.reason, fault.detail), request_id
        )
        return headers, body

    async def handle(self, request: Request, response: ResponseWriter) -> None:
        request_id = request_id_from(
            request.headers, self._server.gateway.trusts_peer(request.client_ip)
        )
        path = request.path
        if path == "/ui" or path.startswith("/ui/"):
            await self._ui.handle(request, response, request_id)  # the dashboard
            return
        if request.method in ("GET", "HEAD"):
            if path == "/healthz":
                self._json(response, 200, {"status": "ok"}, request_id)
                return
            if path == "/readyz":
                await self._readyz(response, request_id)
                return
            if path == "/metrics":
                response.send(
                    200,
                    [
                        ("content-type", "text/plain; version=0.0.4; charset=utf-8"),
                        ("x-request-id", request_id),
                    ],
                    metrics.render(),
                )
                return
        handler = self._routes.get((request.method, path))
        if handler is None:
            known = {p for _, p in self._routes} | {"/healthz", "/readyz", "/metrics"}
            if path in known:
                self._deny(
                    response,
                    Decision.deny(405, "route.method_not_allowed", "Method not allowed."),
                    request_id,
                )
            else:
                self._deny(
                    response,
                    Decision.deny(404, "route.not_found", "No such admin endpoint."),
                    request_id,
                )
            return
        denied = self._authorise(request)
        if denied is not None:
            await self._refuse(request, response, denied, request_id, accepted=False)
            return
        if request.method not in READ_ONLY:
            await self._change(action_of(path), handler, request, response, request_id)
            return
        status, body = await handler(request)  # read-only: not recorded
        response.send(status, [*_JSON, ("x-request-id", request_id)], body)

    async def _change(
        self,
        action: str,
        handler: Callable[[Request], Awaitable[tuple[int, bytes]]],
        request: Request,
        response: ResponseWriter,
        request_id: str,
    ) -> None:
        """Run a state-changing action and put it on record before answering."""
        logs = self._audit_log.services()  # the log in force when the action is authorised
        denied = self._audit_log.guard(logs)
        if denied is not None:
            await self._refuse(request, response, denied, request_id, accepted=True)
            return
        try:
            status, body = await handler(request)
        except Exception:
            failed = ActionOutcome(500, "gateway.internal_error")
            await self._audit_log.record(
                request,
                request_id,
                failed,
                accepted=True,
                bytes_out=0,
                services=self._audit_log.after(logs),
            )
            raise
        await self._audit_log.record(
            request,
            request_id,
            outcome_of(action, status, body),
            accepted=True,
            bytes_out=len(body),
            services=self._audit_log.after(logs),  # and the new log, if a reload moved it
        )
        response.send(status, [*_JSON, ("x-request-id", request_id)], body)

    async def _refuse(
        self,
        request: Request,
        response: ResponseWriter,
        decision: Decision,
        request_id: str,
        *,
        accepted: bool,
    ) -> None:
        """Answer a refused admin request with its problem document, on record first."""
        status, headers, body = problem_response(decision, request_id)
        outcome = ActionOutcome(status, decision.reason)
        await self._audit_log.record(
            request, request_id, outcome, accepted=accepted, bytes_out=len(body)
        )
        response.send(status, headers, body)

    def _authorise(self, request: Request) -> Decision | None:
        token = os.environ.get(self._server.admin_token_env, "")
        if not token:
            return Decision.deny(
                403,
                "admin.disabled",
                f"The admin API is disabled: set {self._server.admin_token_env} to enable it.",
            )
        challenge = (("WWW-Authenticate", 'Bearer realm="dijk-admin"'),)
        if authorization_count(request.headers) > 1:
            # As on the data plane: no two components may disagree about which one counts.
            return Decision.deny(
                401,
                "auth.invalid_request",
                "Send exactly one Authorization header.",
                (("WWW-Authenticate", 'Bearer realm="dijk-admin", error="invalid_request"'),),
            )
        presented = bearer_token(request.headers)
        if not presented:
            return Decision.deny(
                401, "auth.missing_credentials", "A bearer token is required.", challenge
            )
        # The bytes as received (header values are latin-1 strings) against the token's
        # UTF-8 bytes: nothing is normalised, so only the exact token matches.
        if not hmac.compare_digest(presented.encode("latin-1"), token.encode()):
            return Decision.deny(
                401, "auth.invalid_token", "The bearer token is not valid.", challenge
            )
        return None

    async def _reload(self, request: Request) -> tuple[int, bytes]:
        result = await self._server.reload()
        return (200 if result.ok else 422), orjson.dumps(result.as_dict())

    async def _status(self, request: Request) -> tuple[int, bytes]:
        state = self._server.gateway.state
        return 200, orjson.dumps(
            {
                "version": __version__,
                "generation": state.generation,
                "config": state.source,
                "routes": [route.name for route in state.router.routes],
                "upstreams": sorted(state.upstreams),
            }
        )

    async def _revoke_keys(self, request: Request) -> tuple[int, bytes]:
        return await self._revoke(request, "keys")

    async def _revoke_tokens(self, request: Request) -> tuple[int, bytes]:
        return await self._revoke(request, "tokens")

    async def _revoke(self, request: Request, kind: str) -> tuple[int, bytes]:
        """Revoke an API key, client certificate or token; takes effect at once."""
        state = self._server.gateway.state
        identity = state.resources.identity
        if identity is None:
            return 503, orjson.dumps({"reason": "admin.unavailable", "detail": "No identity."})
        try:
            body = await request.body.read_all(4096)
        except ProtocolFault as fault:
            return fault.status, orjson.dumps({"reason": fault.reason, "detail": fault.detail})
        jwt = state.config.auth.jwt
        ttl = jwt.max_lifetime_s + jwt.leeway_s if jwt is not None else 86_400.0
        status, answer = await revoke_from_request(identity.revocations, kind, body, ttl)
        return status, orjson.dumps(answer)

    async def _audit(self, request: Request) -> tuple[int, bytes]:
        """The activity log, filtered and paged (see ``dijk.audit.api``)."""
        audit = self._server.gateway.state.resources.audit
        if audit is None or audit.service is None:
            detail = "The audit log is disabled (audit.enabled: false)."
            return 404, orjson.dumps({"status": 404, "reason": "audit.disabled", "detail": detail})
        status, body = await query_page(audit.service.writer.store, request.query)
        return status, orjson.dumps(body)

    async def _incidents(self, request: Request) -> tuple[int, bytes]:
        """Open abuse incidents (blocks, throttles, monitored subjects), oldest first."""
        abuse = self._server.gateway.state.resources.abuse
        if abuse is None:
            return 200, orjson.dumps({"incidents": []})
        try:
            found = await abuse.list_incidents()
        except StorageUnavailable:
            return 503, orjson.dumps(
                {"reason": "abuse.unavailable", "detail": "storage.url did not answer."}
            )
        return 200, orjson.dumps({"incidents": [incident.public() for incident in found]})

    async def _lift(self, request: Request) -> tuple[int, bytes]:
        """Lift one incident: ``{"id": "<incident id>"}``; every instance sees it at once."""
        abuse = self._server.gateway.state.resources.abuse
        try:
            body = await request.body.read_all(1024)
        except ProtocolFault as fault:
            return fault.status, orjson.dumps({"reason": fault.reason, "detail": fault.detail})
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = None
        wanted = document.get("id") if isinstance(document, dict) else None
        if not (isinstance(wanted, str) and _INCIDENT_ID.fullmatch(wanted)):
            return 400, orjson.dumps(
                {"reason": "admin.invalid_request", "detail": 'Send {"id": "<incident id>"}.'}
            )
        if abuse is None:
            return 404, orjson.dumps({"reason": "abuse.not_found", "detail": "No such incident."})
        try:
            found = await abuse.lift(wanted)
        except StorageUnavailable:
            return 503, orjson.dumps(
                {"reason": "abuse.unavailable", "detail": "storage.url did not answer."}
            )
        if not found:
            return 404, orjson.dumps({"reason": "abuse.not_found", "detail": "No such incident."})
        return 200, orjson.dumps({"lifted": wanted, "reason": "abuse.lifted"})

    async def _discovery_openapi(self, request: Request) -> tuple[int, bytes]:
        """The inventory as an OpenAPI 3.1 draft (``?unrouted=true``: also 404 probes)."""
        from dijk.discovery.openapi import build_document

        try:
            endpoints = await running_inventory(self._server.gateway.state)
        except InventoryUnavailable as exc:
            return _problem(exc.status, exc.reason, exc.detail)
        unrouted = "unrouted=true" in request.query.split("&")
        return 200, orjson.dumps(build_document(endpoints, include_unrouted=unrouted))

    async def _discovery_diff(self, request: Request) -> tuple[int, bytes]:
        """Shadow, zombie and drift against the routes' documents (``?format=sarif``)."""
        from dijk.reporting import render

        state = self._server.gateway.state
        if not declared_documents(state):
            return _problem(404, "discovery.no_document", NO_DOCUMENT)
        try:
            report = await inventory_diff(state, await running_inventory(state))
        except InventoryUnavailable as exc:
            return _problem(exc.status, exc.reason, exc.detail)
        fmt = "sarif" if "format=sarif" in request.query.split("&") else "json"
        return 200, render(report, fmt).encode()

    def _json(self, response: ResponseWriter, status: int, body: object, request_id: str) -> None:
        response.send(status, [*_JSON, ("x-request-id", request_id)], orjson.dumps(body))

    def _deny(self, response: ResponseWriter, decision: Decision, request_id: str) -> None:
        status, headers, body = problem_response(decision, request_id)
        response.send(status, headers, body)


def _problem(status: int, reason: str, detail: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"status": status, "reason": reason, "detail": detail})
