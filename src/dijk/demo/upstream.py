"""Polder Bank: the deliberately naive upstream API that the Dijk demo protects.

It does no authentication, no authorization and little validation — that is the
gateway's job, and the demo shows the difference. It does keep its own house in order:
bad input gets a JSON 4xx, never a traceback, and it never logs credentials.

Run alone with ``python -m dijk.demo.upstream --port 8081 --data-dir ./.dijk``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import importlib.resources
import json
import logging
import os
import pathlib
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import IO, Any

import graphql
from aiohttp import web
from aiohttp.typedefs import Middleware

from dijk.demo.data import DEFAULT_COUNT, DEFAULT_SEED, CustomerFactory

__all__ = ["BANK_KEY", "Bank", "create_app", "main"]

SERVICE = "polder-bank"
VERSION = "1.0.0"
DEMO_PASSWORD = "correct horse battery staple"  # noqa: S105 - a published demo credential
DEMO_USERNAME = "demo"
DEMO_USER_PASSWORD = "demo"  # noqa: S105 - a published demo credential

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
MAX_OFFSET = 1_000_000
MAX_QUERY_LENGTH = 200
MAX_GRAPHQL_TOKENS = 2_000

JSONObject = dict[str, Any]
Record = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_logger = logging.getLogger(__name__)
_INTEGER = re.compile(r"-?[0-9]{1,18}")

GRAPHQL_SDL = """
type Account {
  id: Int!
  name: String!
  email: String!
  phone: String
  iban: String!
  balance: String!
}

type Query {
  account(id: Int!): Account
  accounts(limit: Int): [Account!]!
  search(q: String!): [Account!]!
}
"""

GRAPHQL_SCHEMA = graphql.build_schema(GRAPHQL_SDL)


class BadRequestError(Exception):
    """Client input we refuse; becomes a 400 JSON answer naming the problem."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


class Bank:
    """The in-memory account store plus the journal of accounts created through the API."""

    def __init__(self, data_dir: pathlib.Path, seed: int) -> None:
        self._factory = CustomerFactory(seed)
        self.accounts: dict[int, Record] = {}
        for customer_id in range(1, DEFAULT_COUNT + 1):
            self.accounts[customer_id] = dict(self._factory.create(customer_id).to_public_dict())
        self.journal = data_dir / "upstream" / "accounts.jsonl"
        self._journal_lock = asyncio.Lock()

    def search(self, query: str) -> list[Record]:
        """Case-insensitive substring match on names (plain Python, no query language)."""
        needle = query.casefold()
        return [record for record in self.accounts.values() if needle in record["name"].casefold()]

    def known_username(self, username: str) -> bool:
        """Usernames are customers' e-mail addresses, plus the shared ``demo`` user."""
        if username == DEMO_USERNAME:
            return True
        wanted = username.casefold()
        return any(
            isinstance(record.get("email"), str) and record["email"].casefold() == wanted
            for record in self.accounts.values()
        )

    async def open_account(
        self, name: str, email: str, phone: str | None, body: Mapping[str, Any]
    ) -> Record:
        """Create, store and journal an account; returns its JSON form."""
        customer_id = max(self.accounts, default=0) + 1
        customer = self._factory.create(
            customer_id, name=name, email=email, phone=phone, generate_phone=False
        )
        record: Record = dict(customer.to_public_dict())
        # DELIBERATE WEAKNESS (OWASP API3:2023, mass assignment): like many real upstreams,
        # this one copies every field of the request body into the new record, so a client
        # can send {"role": "admin"} or {"balance": "1000000.00"} and have it stored and
        # echoed. The gateway's OpenAPI stage blocks it (AccountCreate has
        # additionalProperties: false). Only the server-assigned id is protected, to keep
        # the store's keys consistent.
        record.update({key: value for key, value in body.items() if key != "id"})
        self.accounts[customer_id] = record
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        async with self._journal_lock:
            await asyncio.to_thread(_append_line, self.journal, line)
        return record


def _append_line(path: pathlib.Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as journal:
        journal.write(line)


def _error(status: int, error: str, detail: str | None = None) -> web.Response:
    body: JSONObject = {"error": error}
    if detail is not None:
        body["detail"] = detail
    return web.json_response(body, status=status)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


async def _json_object(request: web.Request) -> JSONObject:
    """Parse the body as a JSON object or raise BadRequestError."""
    raw = await request.read()
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # ValueError covers bad UTF-8 and bad JSON
        raise BadRequestError("invalid_json", "request body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise BadRequestError("invalid_json", "request body must be a JSON object")
    return value


def _required_string(body: Mapping[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError("invalid_field", f"'{field}' must be a non-empty string")
    return value


def _optional_string(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise BadRequestError("invalid_field", f"'{field}' must be a string")
    return value


def _bounded_int(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not _INTEGER.fullmatch(text) or not low <= int(text) <= high:
        raise BadRequestError(
            "invalid_parameter", f"'{name}' must be an integer from {low} to {high}"
        )
    return int(text)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a small JSON body: no HTML error pages, no tracebacks."""
    try:
        return await handler(request)
    except BadRequestError as exc:
        return _error(400, exc.error, exc.detail)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = exc.reason.lower().replace(" ", "_")
        response = _error(exc.status, error)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except asyncio.CancelledError:
        raise
    except Exception:
        _logger.exception("unhandled error in %s %s", request.method, request.path)
        return _error(500, "internal_error")


REQUEST_LOG_ENV = "DIJK_DEMO_UPSTREAM_LOG"


def _request_log(stream: IO[str]) -> Middleware:
    """A middleware that writes one JSON line per request received, before it is handled.

    The line holds what a test needs to match it against the gateway's verdict (the
    ``X-Request-Id`` the gateway sent, method, raw path, body length and SHA-256), never
    the body itself or any header value that could hold a credential.
    """

    @web.middleware
    async def log_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        line = {
            "request_id": request.headers.get("X-Request-Id", ""),
            "method": request.method,
            "path": request.raw_path,
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        stream.write(json.dumps(line, separators=(",", ":")) + "\n")
        return await handler(request)

    return log_request


BANK_KEY = web.AppKey("bank", Bank)
OPENAPI_KEY = web.AppKey("openapi", str)
TICKETS_KEY = web.AppKey("tickets", list[dict[str, object]])


async def _status(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": SERVICE, "version": VERSION})


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(text=request.app[OPENAPI_KEY], content_type="application/yaml")


async def _login(request: web.Request) -> web.Response:
    body = await _json_object(request)
    username = _required_string(body, "username")
    password = body.get("password")
    if not isinstance(password, str):
        raise BadRequestError("invalid_field", "'password' must be a string")
    expected = DEMO_USER_PASSWORD if username == DEMO_USERNAME else DEMO_PASSWORD
    # Always compare (in constant time), so a wrong user and a wrong password look alike.
    password_ok = hmac.compare_digest(password.encode(), expected.encode())
    if not (request.app[BANK_KEY].known_username(username) and password_ok):
        return _error(401, "invalid_credentials")
    return web.json_response({"token": secrets.token_urlsafe(32), "username": username})


async def _list_accounts(request: web.Request) -> web.Response:
    limit = _bounded_int(request.query.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _bounded_int(request.query.get("offset"), "offset", 0, 0, MAX_OFFSET)
    records = list(request.app[BANK_KEY].accounts.values())
    page = records[offset : offset + limit]
    return web.json_response(
        {"accounts": page, "count": len(page), "total": len(records), "offset": offset}
    )


def _account_of(request: web.Request) -> Record | None:
    text = request.match_info["id"]
    if not _INTEGER.fullmatch(text):
        raise BadRequestError("invalid_parameter", "'id' must be an integer")
    record: Record | None = request.app[BANK_KEY].accounts.get(int(text))
    return record


async def _get_account(request: web.Request) -> web.Response:
    record = _account_of(request)
    if record is None:
        return _error(404, "not_found", "no account with this id")
    return web.json_response(record)


async def _get_legacy_account(request: web.Request) -> web.Response:
    """``GET /api/v0/accounts/{id}``: the first version of the API, never documented.

    DELIBERATE WEAKNESS (OWASP API9:2023, improper inventory management): the old endpoint
    was never switched off and answers the whole internal record, including fields v1 never
    returns. It is in no OpenAPI document; the demo's catch-all route lets it through in
    monitor mode, and `dijk discover diff` names it as a shadow endpoint.
    """
    record = _account_of(request)
    if record is None:
        return _error(404, "not_found", "no account with this id")
    legacy = dict(record)
    legacy["kyc_status"] = "verified" if int(record["id"]) % 3 else "pending"
    legacy["risk_score"] = int(record["id"]) * 7 % 100
    return web.json_response(legacy)


async def _create_account(request: web.Request) -> web.Response:
    body = await _json_object(request)
    name = _required_string(body, "name")
    email = _required_string(body, "email")
    phone = _optional_string(body, "phone")
    record = await request.app[BANK_KEY].open_account(name, email, phone, body)
    return web.json_response(record, status=201)


async def _search(request: web.Request) -> web.Response:
    query = request.query.get("q")
    if query is None:
        raise BadRequestError("invalid_parameter", "query parameter 'q' is required")
    if len(query) > MAX_QUERY_LENGTH:
        raise BadRequestError("invalid_parameter", f"'q' is longer than {MAX_QUERY_LENGTH}")
    return web.json_response({"results": request.app[BANK_KEY].search(query), "query": query})


MAX_TICKET_SUBJECT = 200
MAX_TICKET_DESCRIPTION = 20_000


async def _create_ticket(request: web.Request) -> web.Response:
    """The support desk: a subject (plain text) and a markdown description, kept in memory."""
    body = await _json_object(request)
    subject = _required_string(body, "subject")
    description = _required_string(body, "description")
    if len(subject) > MAX_TICKET_SUBJECT or len(description) > MAX_TICKET_DESCRIPTION:
        raise BadRequestError("invalid_field", "subject or description is too long")
    tickets = request.app[TICKETS_KEY]
    ticket = {
        "id": len(tickets) + 1,
        "subject": subject,
        "description": description,
        "status": "open",
    }
    tickets.append(ticket)
    return web.json_response(ticket, status=201)


class _QueryRoot:
    """GraphQL root value: graphql-core's default resolver calls these methods by name."""

    def __init__(self, bank: Bank) -> None:
        self._bank = bank

    def account(self, info: graphql.GraphQLResolveInfo[None], id: int) -> Record | None:
        return self._bank.accounts.get(id)

    def accounts(
        self, info: graphql.GraphQLResolveInfo[None], limit: int | None = None
    ) -> list[Record]:
        records = list(self._bank.accounts.values())
        return records if limit is None else records[: max(limit, 0)]

    def search(self, info: graphql.GraphQLResolveInfo[None], q: str) -> list[Record]:
        return self._bank.search(q)


def _graphql_request(body: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None, str | None]:
    query = body.get("query")
    variables = body.get("variables")
    operation_name = body.get("operationName")
    if not isinstance(query, str):
        raise BadRequestError("invalid_graphql", "'query' must be a string")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequestError("invalid_graphql", "'variables' must be an object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequestError("invalid_graphql", "'operationName' must be a string")
    return query, variables, operation_name


def _graphql_errors(errors: list[graphql.GraphQLError]) -> web.Response:
    return web.json_response({"errors": [error.formatted for error in errors]}, status=400)


async def _graphql(request: web.Request) -> web.Response:
    query, variables, operation_name = _graphql_request(await _json_object(request))
    try:
        document = graphql.parse(query, max_tokens=MAX_GRAPHQL_TOKENS)
    except graphql.GraphQLError as exc:
        return _graphql_errors([exc])
    validation_errors = graphql.validate(GRAPHQL_SCHEMA, document)
    if validation_errors:
        return _graphql_errors(validation_errors)
    result = graphql.execute(
        GRAPHQL_SCHEMA,
        document,
        root_value=_QueryRoot(request.app[BANK_KEY]),
        variable_values=variables,
        operation_name=operation_name,
    )
    assert isinstance(result, graphql.ExecutionResult)  # all resolvers are synchronous
    if result.data is None and result.errors and all(e.path is None for e in result.errors):
        # Nothing executed (bad variables, unknown operation): a request error, 400.
        # Field errors (which carry a path) are execution results and stay 200.
        return _graphql_errors(result.errors)
    return web.json_response(result.formatted)


def create_app(
    data_dir: pathlib.Path, seed: int = DEFAULT_SEED, request_log: pathlib.Path | None = None
) -> web.Application:
    """Build the Polder Bank app; created accounts are journalled under data_dir/upstream/.

    With ``request_log``, every request received is first written there as a JSON line
    (see ``_request_log``): the reliability benches check it against what the gateway
    refused.
    """
    (data_dir / "upstream").mkdir(parents=True, exist_ok=True)
    middlewares: list[Middleware] = []
    stream: IO[str] | None = None
    if request_log is not None:
        stream = request_log.open("a", encoding="utf-8", buffering=1)
        middlewares.append(_request_log(stream))
    app = web.Application(middlewares=[_json_errors, *middlewares])
    if stream is not None:
        log_stream = stream

        async def close_log(_app: web.Application) -> None:
            log_stream.close()

        app.on_cleanup.append(close_log)
    app[BANK_KEY] = Bank(data_dir, seed)
    app[TICKETS_KEY] = []
    app[OPENAPI_KEY] = (
        importlib.resources.files("dijk.demo").joinpath("openapi.yaml").read_text("utf-8")
    )
    app.router.add_get("/api/v1/status", _status)
    app.router.add_get("/api/v1/openapi.yaml", _openapi)
    app.router.add_post("/api/v1/login", _login)
    app.router.add_get("/api/v1/accounts", _list_accounts)
    app.router.add_post("/api/v1/accounts", _create_account)
    app.router.add_get("/api/v1/accounts/{id}", _get_account)
    app.router.add_get("/api/v0/accounts/{id}", _get_legacy_account)
    app.router.add_get("/api/v1/search", _search)
    app.router.add_post("/api/v1/tickets", _create_ticket)
    app.router.add_post("/graphql", _graphql)
    return app


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: serve the upstream until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m dijk.demo.upstream", description="Polder Bank demo upstream API"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=8081, help="port to listen on")
    parser.add_argument(
        "--data-dir", type=pathlib.Path, default=pathlib.Path(".dijk"), help="state directory"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="fake data seed")
    parser.add_argument(
        "--request-log",
        type=pathlib.Path,
        default=os.environ.get(REQUEST_LOG_ENV) or None,
        help=f"write one JSON line per request received (default: ${REQUEST_LOG_ENV})",
    )
    args = parser.parse_args(argv)
    # run_app installs SIGINT/SIGTERM handlers and shuts down gracefully on either.
    web.run_app(
        create_app(args.data_dir, seed=args.seed, request_log=args.request_log),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        # Accept every request line and header the gateway lets through (its
        # limits.max_header_bytes, 16 KiB in the demo), not aiohttp's 8190-byte default.
        max_line_size=65536,
        max_field_size=65536,
        handle_signals=True,
        shutdown_timeout=5.0,
    )


if __name__ == "__main__":
    main()
