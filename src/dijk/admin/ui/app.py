"""``/ui/``: the dashboard on the admin listener.

Security model:

- Off unless the admin API is on (``admin.token_env`` set): every ``/ui`` request is
  then refused with 403 ``admin.disabled``, like the API.
- Login with the admin token in a form (compared in constant time, as the API's bearer
  token), at most 10 failures per client address a minute (429 ``ui.login_throttled``).
  Every login, failed login, logout and action is a record in the audit chain
  (``admin:ui.login`` ...; see ``dijk.admin.audit``).
- A session cookie (``session.py``) that is ``HttpOnly``, ``SameSite=Strict``, ``Secure``
  over TLS, ``Path=/ui``; pages without one redirect to the login form, other requests
  (POST, htmx fragments, downloads) are refused with 401 ``ui.session_required``.
- A CSRF token in every form, checked on every POST (403 ``ui.csrf_invalid``); the login
  form's token is a double-submit cookie, since there is no session yet.
- A strict Content-Security-Policy on every answer: scripts and styles only from
  ``/ui/static/`` (no inline script or style, no eval), nothing from anywhere else,
  no framing; plus ``nosniff``, ``no-referrer`` and ``no-store`` on pages.

- Configured users (``admin.users``) sign in by name and scrypt-hashed password; their
  roles decide which pages, downloads and actions they may use (:data:`ROLE_RIGHTS`),
  checked before any handler runs; the admin token may do everything.

Extension points for features built beside this one: :data:`NAV` lists the pages (add
an entry and a handler in :attr:`DashboardUI._pages`, and the rights in
:data:`ROLE_RIGHTS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import mimetypes
import os
import re
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, NoReturn
from urllib.parse import parse_qsl, urlencode

import jinja2
import orjson
import structlog
import yaml

from dijk import __version__
from dijk.admin.audit import ActionOutcome, AdminAudit
from dijk.admin.inventory import (
    NO_DOCUMENT,
    InventoryUnavailable,
    declared_documents,
    inventory_diff,
    running_inventory,
)
from dijk.admin.ui import views
from dijk.admin.ui.session import (
    COOKIE,
    LOGIN_COOKIE,
    LoginThrottle,
    Session,
    SessionStore,
    digest,
)
from dijk.audit.api import parse_query
from dijk.audit.chain import ChainedRecord, verify_chain
from dijk.audit.export import export_lines, record_json
from dijk.audit.store import AuditQuery, AuditStore, AuditStoreError, open_store, parse_time
from dijk.audit.summary import SummaryCache
from dijk.auth.passwords import verify_password
from dijk.config.models import AdminUser
from dijk.openapi.errors import SpecError
from dijk.pipeline.decision import Decision
from dijk.proxy.gateway import problem_response
from dijk.proxy.http1 import ProtocolFault, Request, ResponseWriter
from dijk.reporting import Finding

if TYPE_CHECKING:
    from dijk.proxy.server import GatewayServer

__all__ = ["CSP", "NAV", "DashboardUI"]

_LOG: Final = structlog.get_logger("dijk.admin.ui")
PREFIX: Final = "/ui"
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'"
)
_SECURITY_HEADERS: Final = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
]
NAV: Final = [
    ("overview", "Overview"),
    ("security", "Security events"),
    ("audit", "Audit search"),
    ("inventory", "Inventory"),
    ("privacy", "Privacy"),
    ("config", "Configuration"),
    # Extension point: a new page adds its entry here (slug, title) and its handler in
    # DashboardUI._pages.
]
_FLAGS: Final = "HttpOnly; SameSite=Strict"
MAX_FORM_BYTES: Final = 16 * 1024
PAGE_SIZE: Final = 50
EXPORT_LIMIT: Final = 10_000
_VIEWER: Final = frozenset(
    {"overview", "security", "audit", "inventory", "audit/export", "audit/verify"}
    | {"inventory/openapi"}
)
ROLE_RIGHTS: Final = {
    "viewer": _VIEWER,
    "operator": _VIEWER | {"config", "config/reload", "abuse/lift"},
    "privacy": frozenset({"privacy", "privacy/register", "privacy/breach"}),
}
"""What each configured user's role may open or do (pages, downloads, actions); the
admin token may do everything, and anyone signed in may sign out."""
INVENTORY_MAX_AGE_S: Final = 10.0
_INCIDENT_ID: Final = re.compile(r"[0-9a-f]{16}")
_EXPORTS: Final = {"ecs": "ndjson", "cef": "log", "json": "ndjson"}


@cache
def templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("dijk.admin.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(nav=NAV, version=__version__)
    environment.filters["ms"] = lambda us: "—" if us is None else f"{us / 1000:g} ms"
    return environment


def _static_dir() -> Any:
    return resources.files("dijk.admin.ui").joinpath("static")


@dataclass(slots=True)
class _InventorySnapshot:
    """What the inventory page shows, for ``INVENTORY_MAX_AGE_S`` (see ``_inventory``)."""

    taken: float
    when: str
    generation: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    error: str = ""
    diff_error: str = ""


class _UIState:
    """What outlives one admin connection: sessions and login failures."""

    def __init__(self) -> None:
        self.sessions = SessionStore()
        self.throttle = LoginThrottle()
        self.summaries: dict[str, SummaryCache] = {}  # per audit.url
        self.tasks: set[asyncio.Task[None]] = set()
        self.inventory: _InventorySnapshot | None = None


_STATES: weakref.WeakKeyDictionary[GatewayServer, _UIState] = weakref.WeakKeyDictionary()


def _cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in headers:
        if name != "cookie":
            continue
        for part in value.split(";"):
            key, sep, item = part.strip().partition("=")
            if sep and key not in found:
                found[key] = item
    return found


def _header(headers: list[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key == name:
            return value
    return ""


class _Refusal(Exception):
    def __init__(self, decision: Decision) -> None:
        self.decision = decision


class DashboardUI:
    def __init__(self, server: GatewayServer, audit: AdminAudit) -> None:
        self._server = server
        self._audit = audit
        state = _STATES.get(server)
        if state is None:
            state = _STATES[server] = _UIState()
        self._state = state
        self._pages: dict[str, Callable[[Request, Session], Awaitable[str]]] = {
            "overview": self._overview,
            "security": self._security,
            "audit": self._audit_search,
            "inventory": self._inventory,
            "privacy": self._privacy,
            "config": self._config,
        }

    # -- dispatch ---------------------------------------------------------------------

    async def handle(self, request: Request, response: ResponseWriter, request_id: str) -> None:
        try:
            await self._dispatch(request, response, request_id)
        except _Refusal as refusal:
            self._problem(response, refusal.decision, request_id)

    async def _dispatch(self, request: Request, response: ResponseWriter, request_id: str) -> None:
        path, method = request.path, request.method
        token = os.environ.get(self._server.admin_token_env, "")
        if not token:
            raise _Refusal(
                Decision.deny(
                    403,
                    "admin.disabled",
                    f"The dashboard is disabled with the admin API: set"
                    f" {self._server.admin_token_env} to enable it.",
                )
            )
        if path in (PREFIX, PREFIX + "/"):
            path = PREFIX + "/overview"
            if request.path == PREFIX:
                self._redirect(response, PREFIX + "/", request_id)
                return
        if path.startswith(PREFIX + "/static/") and method in ("GET", "HEAD"):
            self._static(response, path.removeprefix(PREFIX + "/static/"), request_id)
            return
        if path == PREFIX + "/login":
            if method in ("GET", "HEAD"):
                self._login_form(request, response, request_id)
                return
            if method == "POST":
                await self._login(request, response, request_id, token)
                return
            raise _Refusal(Decision.deny(405, "route.method_not_allowed", "Method not allowed."))
        session_id = _cookies(request.headers).get(COOKIE, "")
        session = self._current_user(session_id, self._state.sessions.get(session_id, token))
        name = path.removeprefix(PREFIX + "/")
        page = self._pages.get(name)
        if method in ("GET", "HEAD") and page is not None:
            if session is None:
                if _header(request.headers, "hx-request"):
                    raise _Refusal(_no_session())
                self._redirect(response, PREFIX + "/login", request_id)
                return
            if not allowed(session, name):
                if request.path in (PREFIX, PREFIX + "/"):
                    first = next(slug for slug, _ in NAV if allowed(session, slug))
                    self._redirect(response, f"{PREFIX}/{first}", request_id)
                    return
                if _header(request.headers, "hx-request"):
                    raise _Refusal(_forbidden(session, name))
                body = self._render(
                    "forbidden.html", session, page="", detail=_forbidden(session, name).detail
                )
                self._html(response, 403, body, request_id)
                return
            body = await page(request, session)
            self._html(response, 200, body, request_id)
            return
        downloads = {
            "audit/export": self._export,
            "audit/verify": self._verify,
            "privacy/register": self._register_file,
            "inventory/openapi": self._inventory_openapi,
        }
        if method in ("GET", "HEAD") and name in downloads:
            if session is None:
                raise _Refusal(_no_session())
            if not allowed(session, name):
                raise _Refusal(_forbidden(session, name))
            await downloads[name](request, response, request_id, session)
            return
        posts = {
            "logout": self._logout,
            "config/reload": self._reload,
            "abuse/lift": self._lift,
            "privacy/breach": self._breach,
        }
        if name in posts:
            if method != "POST":
                raise _Refusal(
                    Decision.deny(405, "route.method_not_allowed", "Use POST for this action.")
                )
            action = "ui." + name.replace("/", ".")
            if session is None:
                await self._refuse(request, request_id, action, _no_session())
            form = await self._form(request)
            presented = form.get("csrf") or _header(request.headers, "x-csrf-token")
            if session is None or not presented or not session.csrf_matches(presented):
                detail = "The form's CSRF token is missing or wrong: reload the page and try again."
                await self._refuse(
                    request, request_id, action, Decision.deny(403, "ui.csrf_invalid", detail)
                )
            if not allowed(session, name):
                await self._refuse(request, request_id, action, _forbidden(session, name))
            await posts[name](request, response, request_id, session, form)
            return
        raise _Refusal(Decision.deny(404, "route.not_found", "No such dashboard page."))

    def _current_user(self, session_id: str, session: Session | None) -> Session | None:
        """``session`` unless it is a user's whose password hash or roles have changed
        (or who is no longer configured): then it ends, and the user signs in again."""
        if session is None or not session.user:
            return session
        user = self._users().get(session.user)
        if (
            user is None
            or not hmac.compare_digest(digest(user.password_hash), session.secret)
            or frozenset(user.roles) != session.roles
        ):
            self._state.sessions.end(session_id)
            return None
        return session

    def _users(self) -> dict[str, AdminUser]:
        return {user.name: user for user in self._server.gateway.state.config.admin.users}

    # -- answers ----------------------------------------------------------------------

    def _headers(
        self, request_id: str, content_type: str, *extra: tuple[str, str]
    ) -> list[tuple[str, str]]:
        return [
            ("content-type", content_type),
            ("x-request-id", request_id),
            *_SECURITY_HEADERS,
            *extra,
        ]

    def _html(
        self,
        response: ResponseWriter,
        status: int,
        body: str,
        request_id: str,
        *extra: tuple[str, str],
    ) -> None:
        headers = self._headers(
            request_id, "text/html; charset=utf-8", ("cache-control", "no-store"), *extra
        )
        response.send(status, headers, body.encode())

    def _redirect(
        self, response: ResponseWriter, location: str, request_id: str, *extra: tuple[str, str]
    ) -> None:
        headers = self._headers(
            request_id,
            "text/plain; charset=utf-8",
            ("location", location),
            ("cache-control", "no-store"),
            *extra,
        )
        response.send(303, headers, b"")

    def _problem(self, response: ResponseWriter, decision: Decision, request_id: str) -> None:
        status, headers, body = problem_response(decision, request_id)
        response.send(status, [*headers, *_SECURITY_HEADERS, ("cache-control", "no-store")], body)

    def _download(
        self,
        response: ResponseWriter,
        request_id: str,
        content: bytes,
        content_type: str,
        filename: str,
    ) -> None:
        headers = self._headers(
            request_id,
            content_type,
            ("content-disposition", f'attachment; filename="{filename}"'),
            ("cache-control", "no-store"),
        )
        response.send(200, headers, content)

    def _render(self, template: str, session: Session | None, **context: Any) -> str:
        return (
            templates()
            .get_template(template)
            .render(
                csrf=session.csrf if session else "",
                signed_in=session is not None,
                nav=[item for item in NAV if session is not None and allowed(session, item[0])],
                user=session.user if session is not None else "",
                **context,
            )
        )

    def _static(self, response: ResponseWriter, name: str, request_id: str) -> None:
        parts = name.split("/")
        if not name or any(not part or part.startswith(".") for part in parts):
            raise _Refusal(Decision.deny(404, "route.not_found", "No such file."))
        resource = _static_dir().joinpath(*parts)
        if not resource.is_file():
            raise _Refusal(Decision.deny(404, "route.not_found", "No such file."))
        content_type = (
            {
                ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8",
                ".md": "text/plain; charset=utf-8",
                ".LICENSE": "text/plain; charset=utf-8",
            }.get(os.path.splitext(name)[1])
            or mimetypes.guess_type(name)[0]
            or "text/plain"
        )
        headers = self._headers(request_id, content_type, ("cache-control", "max-age=3600"))
        response.send(200, headers, resource.read_bytes())

    async def _form(self, request: Request) -> dict[str, str]:
        content_type = _header(request.headers, "content-type").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _Refusal(
                Decision.deny(415, "ui.unsupported_media_type", "Send a form (urlencoded).")
            )
        try:
            raw = await request.body.read_all(MAX_FORM_BYTES)
        except ProtocolFault as fault:
            raise _Refusal(Decision.deny(fault.status, fault.reason, fault.detail)) from None
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError):
            raise _Refusal(Decision.deny(400, "ui.bad_form", "The form is malformed.")) from None
        form: dict[str, str] = {}
        for key, value in pairs:
            if key in form:
                raise _Refusal(Decision.deny(400, "ui.bad_form", f"Field {key!r} given twice."))
            form[key] = value
        return form

    async def _record(
        self,
        request: Request,
        request_id: str,
        action: str,
        status: int,
        reason: str | None = None,
        *,
        accepted: bool,
        token: str = "",
        target: str | None = None,
        session: Session | None = None,
    ) -> None:
        """Put one dashboard login or action on the audit record (before answering).

        A configured user's actions name them (``user:<name>``) as actor and credential;
        the admin token's name the token's variable, as the admin API does.
        """
        actor, current = _actor(self._server.admin_token_env, session)
        if not accepted:
            current = token
        await self._audit.record(
            request,
            request_id,
            ActionOutcome(status, reason, target),
            accepted=accepted,
            bytes_out=0,
            action=action,
            token=current or token,
            actor=actor,
        )

    async def _refuse(
        self, request: Request, request_id: str, action: str, decision: Decision
    ) -> NoReturn:
        """Put a refused login or action on record, then answer it with its problem."""
        await self._record(
            request, request_id, action, decision.status, decision.reason, accepted=False
        )
        raise _Refusal(decision)

    # -- login --------------------------------------------------------------------------

    def _secure(self, request: Request) -> str:
        return "; Secure" if request.scheme == "https" else ""

    def _login_form(
        self,
        request: Request,
        response: ResponseWriter,
        request_id: str,
        error: str = "",
        status: int = 200,
    ) -> None:
        nonce = secrets.token_urlsafe(32)
        cookie = (
            f"{LOGIN_COOKIE}={nonce}; Path={PREFIX}/login; HttpOnly; SameSite=Strict;"
            f" Max-Age=1800{self._secure(request)}"
        )
        body = (
            templates()
            .get_template("login.html")
            .render(csrf=nonce, signed_in=False, error=error, page="login")
        )
        self._html(response, status, body, request_id, ("set-cookie", cookie))

    async def _login(
        self, request: Request, response: ResponseWriter, request_id: str, token: str
    ) -> None:
        client = request.client_ip
        if self._state.throttle.blocked(client):
            wait = "Too many failed logins; wait a minute."
            throttled = Decision.deny(429, "ui.login_throttled", wait, (("Retry-After", "60"),))
            await self._refuse(request, request_id, "ui.login", throttled)
        form = await self._form(request)
        expected = _cookies(request.headers).get(LOGIN_COOKIE, "")
        presented_csrf = form.get("csrf", "")
        if not expected or not hmac.compare_digest(presented_csrf.encode(), expected.encode()):
            detail = "The login form's CSRF token is missing or wrong: reload the login page."
            await self._refuse(
                request, request_id, "ui.login", Decision.deny(403, "ui.csrf_invalid", detail)
            )
        name = form.get("user", "").strip()
        presented = form.get("token", "")
        throttle_keys = [client] + ([f"user:{name[:100]}"] if name else [])
        if name and self._state.throttle.blocked(throttle_keys[1]):
            wait = "Too many failed logins for this user; wait a minute."
            throttled = Decision.deny(429, "ui.login_throttled", wait, (("Retry-After", "60"),))
            await self._refuse(request, request_id, "ui.login", throttled)
        session: Session | None = None
        if name:
            user = self._users().get(name)
            # An unknown name costs the same scrypt work as a wrong password.
            matches = await asyncio.to_thread(
                verify_password, presented, user.password_hash if user else None
            )
            if matches and user is not None:
                session_id, session = self._state.sessions.create(
                    token, user.name, frozenset(user.roles), user.password_hash
                )
            failure = "That user name and password do not match."
            credential = f"user:{name[:100]}"
        else:
            # The token as typed, against the token's UTF-8 bytes: only the exact token matches.
            if presented and hmac.compare_digest(
                presented.encode("utf-8", "surrogatepass"), token.encode()
            ):
                session_id, session = self._state.sessions.create(token)
            failure = "That is not the admin token."
            credential = presented
        if session is None:
            for key in throttle_keys:
                self._state.throttle.failed(key)
            await self._record(
                request,
                request_id,
                "ui.login",
                401,
                "ui.login_failed",
                accepted=False,
                token=credential,
            )
            self._login_form(request, response, request_id, failure, 401)
            return
        await self._record(request, request_id, "ui.login", 200, accepted=True, session=session)
        self._warm()
        secure = self._secure(request)
        self._redirect(
            response,
            PREFIX + "/",
            request_id,
            (
                "set-cookie",
                f"{COOKIE}={session_id}; Path={PREFIX}; {_FLAGS}{secure}",
            ),
            (
                "set-cookie",
                f"{LOGIN_COOKIE}=; Path={PREFIX}/login; Max-Age=0; {_FLAGS}{secure}",
            ),
        )

    async def _logout(
        self,
        request: Request,
        response: ResponseWriter,
        request_id: str,
        session: Session,
        form: dict[str, str],
    ) -> None:
        self._state.sessions.end(_cookies(request.headers).get(COOKIE, ""))
        await self._record(request, request_id, "ui.logout", 200, accepted=True, session=session)
        secure = self._secure(request)
        self._redirect(
            response,
            PREFIX + "/login",
            request_id,
            (
                "set-cookie",
                f"{COOKIE}=; Path={PREFIX}; Max-Age=0; {_FLAGS}{secure}",
            ),
        )

    # -- data sources -----------------------------------------------------------------

    def _running_chain(self) -> list[str]:
        audit = self._server.gateway.state.resources.audit
        if audit is None or audit.service is None:
            return []
        return [audit.service.settings.chain]

    def _summaries(self) -> SummaryCache:
        url = self._server.gateway.state.config.audit.url
        cache = self._state.summaries.get(url)
        if cache is None:
            self._state.summaries.clear()  # a reload moved the log: forget the old one
            cache = self._state.summaries[url] = SummaryCache()
        return cache

    def _warm(self) -> None:
        """Fill the overview's cache and take the inventory's snapshot in the background
        after a login (the first look at a week of records then need not read them all)."""

        async def warm() -> None:
            with contextlib.suppress(Exception):  # a failure shows on the page instead
                async with self._reader() as store:
                    if store is not None:
                        now = datetime.now(UTC)
                        await self._summaries().summary(store, now - _hours(1), now, 1)
            with contextlib.suppress(Exception):
                await self._inventory_snapshot()

        task = asyncio.get_running_loop().create_task(warm(), name="dijk-ui-warm")
        self._state.tasks.add(task)
        task.add_done_callback(self._state.tasks.discard)

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[AuditStore | None]:
        """A reader of the running audit log for one request (None when it is disabled).

        Its own connection, not the writer's: a page's grouped scan does not hold up the
        writer's group commits (SQLite in WAL mode reads beside a writer), and nothing is
        left open when the gateway stops.
        """
        state = self._server.gateway.state
        audit = state.resources.audit
        if audit is None or audit.service is None:
            yield None
            return
        store = open_store(state.config.audit.url, create=False)
        try:
            await store.connect()
        except AuditStoreError as exc:
            await store.close()
            raise _Refusal(
                Decision.deny(503, "audit.unavailable", f"The audit log cannot be read: {exc}")
            ) from None
        try:
            yield store
        finally:
            await store.close()

    # -- pages ------------------------------------------------------------------------

    async def _overview(self, request: Request, session: Session) -> str:
        params = dict(parse_qsl(request.query))
        chosen = params.get("range", "24h")
        if chosen not in views.RANGES:
            chosen = "24h"
        span, buckets = views.RANGES[chosen]
        until = datetime.now(UTC)
        since = until - span
        summary = None
        error = ""
        async with self._reader() as store:
            enabled = store is not None
            if store is not None:
                try:
                    summary = await self._summaries().summary(store, since, until, buckets)
                except AuditStoreError as exc:
                    error = str(exc)
        chart = orjson.dumps(views.chart_data(summary)).decode() if summary else "{}"
        return self._render(
            "overview.html",
            session,
            page="overview",
            range=chosen,
            ranges=list(views.RANGES),
            summary=summary,
            chart=chart,
            error=error,
            audit_enabled=enabled,
            since=views.local(since),
            until=views.local(until),
        )

    def _filters(self, request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
        return {
            key: value.strip()
            for key, value in parse_qsl(request.query, keep_blank_values=True)
            if key in allowed and value.strip()
        }

    async def _security(self, request: Request, session: Session) -> str:
        filters = self._filters(
            request, ("since", "until", "route", "consumer", "decision", "reason", "cursor")
        )
        filters.setdefault("reason", "waf.*")
        filters.setdefault("since", "24h")
        async with self._reader() as store:
            rows, next_cursor, error = await self._query(store, filters)
        incidents, incidents_error = await self._incidents()
        return self._render(
            "security.html",
            session,
            incidents=incidents,
            incidents_error=incidents_error,
            abuse_on=self._server.gateway.state.resources.abuse is not None,
            can_lift=allowed(session, "abuse/lift"),
            lifted=dict(parse_qsl(request.query)).get("lifted", ""),
            page="security",
            rows=rows,
            filters=filters,
            next_url=self._next_url("security", filters, next_cursor),
            error=error,
            fragment=bool(_header(request.headers, "hx-request")),
        )

    async def _incidents(self) -> tuple[list[dict[str, Any]], str]:
        """Open abuse incidents as the admin API lists them (none when abuse is off)."""
        from dijk.storage import StorageUnavailable

        abuse = self._server.gateway.state.resources.abuse
        if abuse is None:
            return [], ""
        try:
            found = await abuse.list_incidents()
        except StorageUnavailable:
            return [], "The abuse incidents cannot be read: storage.url did not answer."
        return [views.incident_row(incident.public()) for incident in found], ""

    async def _lift(
        self,
        request: Request,
        response: ResponseWriter,
        request_id: str,
        session: Session,
        form: dict[str, str],
    ) -> None:
        """Lift one abuse incident, as ``POST /admin/api/v1/abuse/lift`` does (on record)."""
        from dijk.storage import StorageUnavailable

        wanted = form.get("id", "")
        if not _INCIDENT_ID.fullmatch(wanted):
            detail = "The form names no incident id."
            await self._refuse(
                request, request_id, "abuse.lift", Decision.deny(400, "ui.bad_form", detail)
            )
        abuse = self._server.gateway.state.resources.abuse
        try:
            found = abuse is not None and await abuse.lift(wanted)
        except StorageUnavailable:
            detail = "storage.url did not answer: the incident is not lifted."
            await self._refuse(
                request, request_id, "abuse.lift", Decision.deny(503, "abuse.unavailable", detail)
            )
        await self._record(
            request,
            request_id,
            "abuse.lift",
            200 if found else 404,
            "abuse.lifted" if found else "abuse.not_found",
            accepted=True,
            target=f"incident:{wanted}",
            session=session,
        )
        self._redirect(
            response, f"{PREFIX}/security?lifted={'ok' if found else 'gone'}", request_id
        )

    async def _query(
        self, store: AuditStore | None, filters: dict[str, str]
    ) -> tuple[list[dict[str, Any]], str | None, str]:
        if store is None:
            return [], None, "The audit log is disabled (audit.enabled: false)."
        try:
            query = parse_query([*filters.items(), ("limit", str(PAGE_SIZE))])
            page = await views.query(store, query)
        except ValueError as exc:
            return [], None, str(exc)
        except AuditStoreError as exc:
            return [], None, f"The audit database cannot be read: {exc}"
        return page.rows, page.next_cursor, ""

    def _next_url(self, page: str, filters: dict[str, str], cursor: str | None) -> str:
        if cursor is None:
            return ""
        kept = {k: v for k, v in filters.items() if k != "cursor"}
        return f"{PREFIX}/{page}?" + urlencode({**kept, "cursor": cursor})

    async def _audit_search(self, request: Request, session: Session) -> str:
        names = ("since", "until", "route", "consumer", "decision", "reason", "status", "cursor")
        filters = self._filters(request, names)
        chains: list[str] = []
        checkpoints: list[dict[str, Any]] = []
        async with self._reader() as store:
            rows, next_cursor, error = await self._query(store, filters)
            if store is not None and not error:
                try:
                    # Not store.chains(): DISTINCT over every record. The chains are the
                    # running writer's and those with checkpoints.
                    all_checkpoints = await store.checkpoints()
                    chains = sorted({c.chain for c in all_checkpoints} | set(self._running_chain()))
                    for checkpoint in all_checkpoints[-10:]:
                        checkpoints.append(
                            {
                                "chain": checkpoint.chain,
                                "seq": checkpoint.seq,
                                "time": views.local(checkpoint.time),
                                "kind": checkpoint.kind,
                                "key_id": checkpoint.key_id,
                            }
                        )
                except AuditStoreError as exc:
                    error = str(exc)
        export_query = urlencode({k: v for k, v in filters.items() if k != "cursor"})
        return self._render(
            "audit.html",
            session,
            page="audit",
            rows=rows,
            filters=filters,
            error=error,
            next_url=self._next_url("audit", filters, next_cursor),
            chains=chains,
            checkpoints=list(reversed(checkpoints)),
            export_query=export_query,
            exports=list(_EXPORTS),
            export_limit=EXPORT_LIMIT,
            fragment=bool(_header(request.headers, "hx-request")),
        )

    async def _verify(
        self, request: Request, response: ResponseWriter, request_id: str, session: Session
    ) -> None:
        service = self._server.gateway.state.resources.audit
        async with self._reader() as store:
            if store is None or service is None or service.service is None:
                raise _Refusal(Decision.deny(404, "audit.disabled", "The audit log is disabled."))
            keys = service.service.keys
            started = time.perf_counter()
            reports = [
                await verify_chain(store, chain, keys.hmac_key, keys.public_key)
                for chain in await store.chains()
            ]
        body = self._render(
            "verify.html",
            session,
            reports=reports,
            seconds=round(time.perf_counter() - started, 2),
            checked=views.local(datetime.now(UTC)),
        )
        self._html(response, 200, body, request_id)

    async def _export(
        self, request: Request, response: ResponseWriter, request_id: str, session: Session
    ) -> None:
        params = dict(parse_qsl(request.query, keep_blank_values=True))
        fmt = params.pop("format", "ecs")
        if fmt not in _EXPORTS:
            raise _Refusal(Decision.deny(400, "audit.bad_query", "format must be ecs, cef or json"))
        filters = {
            k: v
            for k, v in params.items()
            if v and k in ("since", "until", "route", "consumer", "decision", "reason", "status")
        }
        try:
            query = parse_query([*filters.items(), ("limit", "1000")])
        except ValueError as exc:
            raise _Refusal(Decision.deny(400, "audit.bad_query", str(exc))) from None
        rows: list[ChainedRecord] = []
        async with self._reader() as store:
            if store is None:
                raise _Refusal(Decision.deny(404, "audit.disabled", "The audit log is disabled."))
            cursor = None
            while len(rows) < EXPORT_LIMIT:
                page = await store.query(
                    AuditQuery(**{**_query_fields(query), "cursor": cursor, "limit": 1000})
                )
                rows.extend(page.records)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        rows = rows[:EXPORT_LIMIT]
        if fmt == "json":
            lines = [orjson.dumps(record_json(row)).decode() for row in rows]
        else:
            lines = list(export_lines(rows, fmt))
        await self._record(
            request, request_id, "ui.audit_export", 200, accepted=True, session=session
        )
        content = ("\n".join(lines) + ("\n" if lines else "")).encode()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._download(
            response,
            request_id,
            content,
            "application/x-ndjson" if fmt != "cef" else "text/plain",
            f"dijk-audit-{stamp}.{fmt}.{_EXPORTS[fmt]}",
        )

    async def _inventory_snapshot(self) -> _InventorySnapshot:
        """The inventory and its diff as of at most ``INVENTORY_MAX_AGE_S`` ago.

        Loading (templates folded) and comparing a few thousand endpoints takes longer
        than a page may; filters and repeated looks use the snapshot instead.
        """
        state = self._server.gateway.state
        kept = self._state.inventory
        now = time.monotonic()
        if (
            kept is not None
            and kept.generation == state.generation
            and now - kept.taken < INVENTORY_MAX_AGE_S
        ):
            return kept
        snapshot = _InventorySnapshot(now, views.local(datetime.now(UTC)), state.generation)
        endpoints: list[dict[str, Any]] = []
        try:
            endpoints = await running_inventory(state)
        except InventoryUnavailable as exc:
            snapshot.error = exc.detail
        snapshot.documents = declared_documents(state)
        if not snapshot.error and snapshot.documents:
            try:
                snapshot.findings = (await inventory_diff(state, endpoints)).findings
            except (InventoryUnavailable, SpecError) as exc:
                snapshot.diff_error = f"The routes' OpenAPI documents cannot be compared: {exc}"
        elif not snapshot.error:
            snapshot.diff_error = NO_DOCUMENT
        snapshot.rows = views.inventory_rows(endpoints)
        self._state.inventory = snapshot
        return snapshot

    async def _inventory(self, request: Request, session: Session) -> str:
        filters = self._filters(request, ("method", "path", "route", "pii", "unrouted", "from"))
        start = int(filters["from"]) if filters.get("from", "").isdigit() else 0
        snapshot = await self._inventory_snapshot()
        rows = views.filter_inventory(snapshot.rows, filters)
        end = start + views.INVENTORY_ROWS
        kept = {k: v for k, v in filters.items() if k != "from"}
        return self._render(
            "inventory.html",
            session,
            page="inventory",
            rows=rows[start:end],
            total=len(rows),
            first=start + 1,
            last=min(end, len(rows)),
            limit=views.INVENTORY_ROWS,
            next_url=f"{PREFIX}/inventory?" + urlencode({**kept, "from": end})
            if end < len(rows)
            else "",
            filters=filters,
            error=snapshot.error,
            diff_error=snapshot.diff_error,
            findings=views.inventory_findings(snapshot.findings, filters),
            documents=snapshot.documents,
            taken=snapshot.when,
            max_age=INVENTORY_MAX_AGE_S,
            methods=sorted({row["method"] for row in snapshot.rows}),
            routes=sorted({row["route"] for row in snapshot.rows} - {""}),
            categories=sorted({c for row in snapshot.rows for c in row["pii"]}),
            fragment=bool(_header(request.headers, "hx-request")),
        )

    async def _inventory_openapi(
        self, request: Request, response: ResponseWriter, request_id: str, session: Session
    ) -> None:
        """The inventory as an OpenAPI 3.1 draft to download (as the admin API's)."""
        from dijk.discovery.openapi import build_document

        try:
            endpoints = await running_inventory(self._server.gateway.state)
        except InventoryUnavailable as exc:
            raise _Refusal(Decision.deny(exc.status, exc.reason, exc.detail)) from None
        unrouted = dict(parse_qsl(request.query)).get("unrouted") == "show"
        document = build_document(endpoints, include_unrouted=unrouted)
        await self._record(
            request, request_id, "ui.discovery_openapi", 200, accepted=True, session=session
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._download(
            response,
            request_id,
            orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n",
            "application/json",
            f"dijk-openapi-draft-{stamp}.json",
        )

    async def _privacy_register(self) -> tuple[dict[str, Any] | None, str]:
        from dijk.privacy.db import PrivacyDatabaseError, open_privacy_db
        from dijk.privacy.report import build_register

        config = self._server.gateway.state.config
        if not config.privacy.datamap:
            return None, "The data map is off (privacy.datamap: false)."
        try:
            async with open_privacy_db(config.audit.url, config.privacy.table_prefix) as database:
                await database.connect(create=False)
                register = await build_register(database, [])
        except (PrivacyDatabaseError, AuditStoreError, OSError, ValueError) as exc:
            return None, f"No data map yet: {exc}"
        return register.as_dict(), ""

    async def _privacy(self, request: Request, session: Session) -> str:
        register, error = await self._privacy_register()
        now = datetime.now(UTC)
        return self._render(
            "privacy.html",
            session,
            page="privacy",
            register=register,
            error=error,
            datamap=views.data_map(register) if register else [],
            organisation=self._server.gateway.state.config.privacy.organisation,
            default_since=(now.replace(microsecond=0) - _hours(24)).strftime("%Y-%m-%dT%H:%M"),
            default_until=now.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M"),
            report="",
            form={},
        )

    async def _register_file(
        self, request: Request, response: ResponseWriter, request_id: str, session: Session
    ) -> None:

        fmt = dict(parse_qsl(request.query)).get("format", "html")
        if fmt not in ("html", "pdf"):
            raise _Refusal(Decision.deny(400, "ui.bad_form", "format must be html or pdf"))
        register, error = await self._privacy_register()
        if register is None:
            raise _Refusal(Decision.deny(404, "privacy.no_data_map", error))
        await self._record(
            request, request_id, "ui.privacy_report", 200, accepted=True, session=session
        )
        await self._document(response, request_id, "register", register, fmt, "art30-register")

    async def _document(
        self,
        response: ResponseWriter,
        request_id: str,
        kind: str,
        data: dict[str, Any],
        fmt: str,
        name: str,
    ) -> None:
        """A report as a file to download: ``fmt`` html or pdf (``privacy.documents``)."""
        from dijk.privacy.documents import document_html, document_pdf

        organisation = self._server.gateway.state.config.privacy.organisation
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        if fmt == "pdf":
            content = await _to_thread(document_pdf, kind, data, organisation)
            self._download(response, request_id, content, "application/pdf", f"{name}-{stamp}.pdf")
            return
        text = document_html(kind, data, organisation).encode()
        self._download(
            response, request_id, text, "text/html; charset=utf-8", f"{name}-{stamp}.html"
        )

    async def _breach(
        self,
        request: Request,
        response: ResponseWriter,
        request_id: str,
        session: Session,
        form: dict[str, str],
    ) -> None:
        from dijk.audit.store import parse_store_url
        from dijk.privacy.breach import BreachFilter, build_breach
        from dijk.privacy.db import PrivacyDatabaseError, open_privacy_db
        from dijk.privacy.documents import body_html

        config = self._server.gateway.state.config
        now = datetime.now(UTC)
        fmt = form.get("format", "page")
        problem = ""
        try:
            if fmt not in ("page", "html", "pdf"):
                raise ValueError("format must be page, html or pdf")
            since = parse_time(form.get("since", "") or "24h", now)
            until = parse_time(form["until"], now) if form.get("until") else now
            detected = parse_time(form["detected"], now) if form.get("detected") else now
            if until <= since:
                raise ValueError("the end of the window must be after its start")
        except ValueError as exc:
            problem = str(exc)
        data: dict[str, Any] | None = None
        if not problem:
            breach = BreachFilter(
                since=since,
                until=until,
                consumer=form.get("consumer") or None,
                reason=form.get("reason") or None,
            )
            try:
                async with open_privacy_db(config.audit.url, config.privacy.table_prefix) as db:
                    await db.connect(create=False)
                    report = await build_breach(
                        db,
                        breach,
                        detected=detected,
                        now=now,
                        audit_table=parse_store_url(config.audit.url).table,
                    )
                data = report.as_dict(now)
            except (PrivacyDatabaseError, AuditStoreError, OSError, ValueError) as exc:
                problem = f"The breach report cannot be made: {exc}"
        status = 200 if data is not None else 422
        await self._record(
            request,
            request_id,
            "ui.breach_report",
            status,
            None if data is not None else "ui.report_failed",
            accepted=True,
            session=session,
        )
        organisation = config.privacy.organisation
        if data is not None and fmt in ("html", "pdf"):
            await self._document(response, request_id, "breach", data, fmt, "breach-report")
            return
        register, error = await self._privacy_register()
        body = self._render(
            "privacy.html",
            session,
            page="privacy",
            register=register,
            error=error,
            datamap=views.data_map(register) if register else [],
            organisation=organisation,
            default_since=form.get("since", ""),
            default_until=form.get("until", ""),
            report=jinja2_markup(body_html("breach", data, organisation)) if data else "",
            breach_error=problem,
            form=form,
        )
        self._html(response, status, body, request_id)

    async def _config(self, request: Request, session: Session) -> str:
        state = self._server.gateway.state
        redacted = views.redact(state.config.model_dump(mode="json"))
        text = yaml.safe_dump(redacted, sort_keys=False, allow_unicode=True, width=100)
        last = self._server.last_reload
        reload_info = None
        if last is not None:
            moment, result = last
            reload_info = {
                "time": views.local(datetime.fromtimestamp(moment, UTC)),
                **result.as_dict(),
            }
        return self._render(
            "config.html",
            session,
            page="config",
            config_text=text,
            generation=state.generation,
            source=state.source,
            last_reload=reload_info,
            flash=dict(parse_qsl(request.query)).get("reloaded", ""),
        )

    async def _reload(
        self,
        request: Request,
        response: ResponseWriter,
        request_id: str,
        session: Session,
        form: dict[str, str],
    ) -> None:
        logs = self._audit.services()
        denied = self._audit.guard(logs)
        if denied is not None:
            raise _Refusal(denied)
        result = await self._server.reload()
        await self._audit.record(
            request,
            request_id,
            ActionOutcome(
                200 if result.ok else 422,
                None if result.ok else "admin.reload_failed",
                f"generation:{result.generation}",
            ),
            accepted=True,
            bytes_out=0,
            services=self._audit.after(logs),
            action="reload",
            token=_actor(self._server.admin_token_env, session)[1],
            actor=_actor(self._server.admin_token_env, session)[0],
        )
        self._redirect(
            response, f"{PREFIX}/config?reloaded={'ok' if result.ok else 'failed'}", request_id
        )


def allowed(session: Session, name: str) -> bool:
    """Whether ``session`` may open the page, download or action ``name``."""
    if "admin" in session.roles or name == "logout":
        return True
    return any(name in ROLE_RIGHTS.get(role, ()) for role in session.roles)


def _forbidden(session: Session, name: str) -> Decision:
    roles = ", ".join(sorted(session.roles))
    return Decision.deny(
        403,
        "ui.forbidden",
        f"Signed in as {session.user} ({roles}): that role may not open {PREFIX}/{name}.",
    )


def _actor(token_env: str, session: Session | None) -> tuple[str, str]:
    """The actor and the credential (pseudonymised by the audit log) of an action."""
    if session is not None and session.user:
        return f"user:{session.user}", f"user:{session.user}"
    return f"admin:{token_env}", os.environ.get(token_env, "")


def _no_session() -> Decision:
    return Decision.deny(
        401, "ui.session_required", f"Sign in at {PREFIX}/login first (no valid session)."
    )


def _hours(count: int) -> timedelta:
    return timedelta(hours=count)


def _query_fields(query: AuditQuery) -> dict[str, Any]:
    return {
        name: getattr(query, name)
        for name in ("since", "until", "consumer", "status", "reason", "decision", "chain", "route")
    } | {"newest_first": query.newest_first}


async def _to_thread(function: Callable[..., bytes], *args: Any) -> bytes:
    """WeasyPrint takes a second or so: off the event loop that also proxies traffic."""
    import asyncio

    try:
        return await asyncio.to_thread(function, *args)
    except RuntimeError as exc:
        raise _Refusal(Decision.deny(503, "ui.pdf_unavailable", str(exc))) from None


def jinja2_markup(html: str) -> Any:
    # The report body is the output of an autoescaping template: safe to insert as is.
    import markupsafe

    return markupsafe.Markup(html)  # noqa: S704
