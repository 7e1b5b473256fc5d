"""Polder Bank, unsafe build: the demo bank with planted flaws, for proving ``dijk scan``.

``dijk demo --vulnerable`` serves this app on 127.0.0.1 WITHOUT the gateway. Every flaw
is deliberate and listed in ``vulnerable_truth.yaml`` (id, class, rule, operation); the
tests scan this app and fail if a listed flaw is not reported. Comments marked
``PLANTED <id>`` show where each one lives. Everything else is written as the safe demo
is: JSON errors, no credentials in logs.

The app only ever listens on loopback (:func:`serve` refuses anything else), because two
of its flaws fetch URLs (SSRF) and one runs a shell command built from input.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import hashlib
import importlib.resources
import ipaddress
import json
import operator
import os
import re
import secrets
import shlex
import sqlite3
import sys
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
from aiohttp import web

from dijk.demo.data import CustomerFactory

__all__ = ["JWT_SECRET", "Identity", "VulnerableBank", "create_app", "serve"]

# PLANTED AUTH-5: a guessable HMAC key (it is in every JWT cracking word list).
JWT_SECRET = "changeme"  # noqa: S105 - deliberately weak, that is the flaw
SERVER_HEADER = f"PolderBank/0.9.1 Python/{sys.version.split()[0]} aiohttp/{aiohttp.__version__}"
TOKEN_LIFETIME_S = 3600
MAX_BODY_BYTES = 64 * 1024 * 1024  # PLANTED RES-3: no real body limit
MAX_TRANSFERS = 100_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSONObject = dict[str, Any]


@dataclasses.dataclass
class User:
    id: int
    username: str
    password: str
    role: str
    display_name: str
    email: str
    bsn: str


@dataclasses.dataclass(frozen=True)
class Identity:
    """A user the banner prints, with a token the scanner can use."""

    name: str
    role: str
    token: str
    password: str


class HTTPProblem(Exception):
    def __init__(self, status: int, error: str, detail: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail


class VulnerableBank:
    """Users, accounts (each owned by one user), transactions, cards, tickets, webhooks."""

    def __init__(self, seed: int = 11, *, fixed: bool = False) -> None:
        self.fixed = fixed
        # DIJK_VULN_JWT_SECRET replaces the guessable key (AUTH-5 then goes away): for
        # scanning the other token flaws the way a test environment with a known key is.
        default = secrets.token_urlsafe(32) if fixed else JWT_SECRET
        self.secret = os.environ.get("DIJK_VULN_JWT_SECRET") or default
        self.login_attempts: list[float] = []
        factory = CustomerFactory(seed)
        self.users: dict[int, User] = {}
        names = ["alice", "bob", "admin", "carol", "dave", "erin", "frank"]
        for user_id, username in enumerate(names, start=1):
            person = factory.create(1000 + user_id)
            self.users[user_id] = User(
                id=user_id,
                username=username,
                password=secrets.token_urlsafe(12),
                role="admin" if username == "admin" else "customer",
                display_name=person.name,
                email=f"{username}@example.nl",
                bsn=person.bsn,
            )
        owners = [1, 1, 2, 4, 4, 5, 6, 7, 2, 5]
        self.accounts: dict[int, JSONObject] = {}
        self.owner: dict[int, int] = {}
        for account_id, owner in enumerate(owners, start=1):
            self.accounts[account_id] = dict(factory.create(account_id).to_public_dict())
            self.accounts[account_id]["nickname"] = None
            self.owner[account_id] = owner
        counterparties = [factory.create(2000 + n) for n in range(5)]
        self.transactions: dict[int, list[JSONObject]] = {}
        for account_id in self.accounts:
            rows = []
            for n in range(3):
                other = counterparties[(account_id + n) % len(counterparties)]
                rows.append(
                    {
                        "id": account_id * 100 + n,
                        "amount": f"-{(account_id * 7 + n * 13) % 90 + 10}.50",
                        "description": f"Payment {n + 1}",
                        "counterparty": other.name,
                        # PLANTED PROP-4: the counterparty's IBAN, not in the document.
                        **({} if fixed else {"counterparty_iban": other.iban}),
                    }
                )
            self.transactions[account_id] = rows
        self.tickets: list[JSONObject] = []
        self.webhooks: list[JSONObject] = []
        self.branches = [
            {"name": "Polder Bank Centrum", "city": "Amsterdam"},
            {"name": "Polder Bank Zuid", "city": "Rotterdam"},
            {"name": "Polder Bank Dom", "city": "Utrecht"},
        ]
        self.database = sqlite3.connect(":memory:", check_same_thread=False)
        self.database.execute("CREATE TABLE accounts (id INTEGER, owner INTEGER, name TEXT)")
        self.database.executemany(
            "INSERT INTO accounts VALUES (?, ?, ?)",
            [(key, self.owner[key], value["name"]) for key, value in self.accounts.items()],
        )

    def user_named(self, username: str) -> User | None:
        return next((user for user in self.users.values() if user.username == username), None)

    def token_for(self, user: User, lifetime_s: int = TOKEN_LIFETIME_S) -> str:
        now = int(time.time())
        claims = {"sub": user.username, "role": user.role, "iat": now, "exp": now + lifetime_s}
        with warnings.catch_warnings():  # PyJWT rightly warns about the short key
            warnings.simplefilter("ignore")
            return jwt.encode(claims, self.secret, algorithm="HS256")

    def identities(self) -> list[Identity]:
        return [
            Identity(user.username, user.role, self.token_for(user), user.password)
            for user in self.users.values()
            if user.username in ("alice", "bob", "admin")
        ]


BANK = web.AppKey("vulnerable_bank", VulnerableBank)
SPEC = web.AppKey("vulnerable_spec", str)

# How each operation checks its bearer token: "strict" is right; the others are planted.
Verify = str


def _claims(token: str, verify: Verify, key: str) -> dict[str, Any]:
    if verify == "alg_none":
        # PLANTED AUTH-2: a "legacy" path that trusts unsigned tokens.
        header = jwt.get_unverified_header(token)
        if str(header.get("alg", "")).lower() == "none":
            return dict(jwt.decode(token, options={"verify_signature": False}))
    if verify == "no_signature":
        # PLANTED AUTH-3: the signature is never checked.
        return dict(jwt.decode(token, options={"verify_signature": False}))
    if verify == "no_expiry":
        # PLANTED AUTH-4: the signature is checked, the expiry is not.
        return dict(jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False}))
    return dict(jwt.decode(token, key, algorithms=["HS256"]))


def caller(request: web.Request, verify: Verify = "strict") -> User:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise HTTPProblem(401, "missing_token")
    bank = request.app[BANK]
    try:
        claims = _claims(header[7:].strip(), "strict" if bank.fixed else verify, bank.secret)
    except jwt.PyJWTError:
        raise HTTPProblem(401, "invalid_token") from None
    user = bank.user_named(str(claims.get("sub", "")))
    if user is None:
        raise HTTPProblem(401, "invalid_token")
    return user


def optional_caller(request: web.Request) -> User | None:
    try:
        return caller(request)
    except HTTPProblem:
        return None


async def json_body(request: web.Request) -> JSONObject:
    try:
        value = json.loads(await request.read())
    except ValueError:
        raise HTTPProblem(400, "invalid_json") from None
    if not isinstance(value, dict):
        raise HTTPProblem(400, "invalid_json", "body must be a JSON object")
    return value


def _account_id(request: web.Request) -> int:
    # PLANTED MISC-2: int() on raw input; the ValueError escapes to the error middleware,
    # which answers with the traceback.
    text = request.match_info["id"]
    if request.app[BANK].fixed and not text.isdigit():
        raise HTTPProblem(400, "invalid_parameter", "id must be a number")
    return int(text)


@web.middleware
async def _unsafe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    fixed = request.app[BANK].fixed
    if request.method == "TRACE" and not fixed:
        # PLANTED MISC-3: TRACE echoes the request, Authorization and cookies included.
        lines = [f"TRACE {request.path_qs} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        response: web.StreamResponse = web.Response(
            text="\r\n".join(lines) + "\r\n", content_type="message/http"
        )
    else:
        try:
            response = await handler(request)
        except HTTPProblem as problem:
            body: JSONObject = {"error": problem.error}
            if problem.detail is not None:
                body["detail"] = problem.detail
            response = web.json_response(body, status=problem.status)
        except web.HTTPException as exc:
            response = web.json_response(
                {"error": exc.reason.lower().replace(" ", "_")}, status=exc.status
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            # PLANTED MISC-2: the traceback goes to the client.
            detail = "" if fixed else "\n\n" + traceback.format_exc()
            response = web.Response(
                text="Internal Server Error" + detail, status=500, content_type="text/plain"
            )
    if fixed:
        response.headers["Server"] = "polder-bank"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
    else:
        # PLANTED (version disclosure, part of MISC-2's finding): exact software versions.
        response.headers["Server"] = SERVER_HEADER
        response.headers["X-Powered-By"] = f"Python/{sys.version.split()[0]}"
    return response


async def status(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": "polder-bank-unsafe"})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(text=request.app[SPEC], content_type="application/yaml")


async def login(request: web.Request) -> web.Response:
    # PLANTED RES-1: no limit on attempts.
    body = await json_body(request)
    bank = request.app[BANK]
    if bank.fixed:
        now = time.monotonic()
        bank.login_attempts = [t for t in bank.login_attempts if now - t < 60][-100:]
        bank.login_attempts.append(now)
        if len(bank.login_attempts) > 10:
            raise HTTPProblem(429, "too_many_attempts")
    user = bank.user_named(str(body.get("username", "")))
    password = body.get("password", "")
    if bank.fixed and not isinstance(password, str):
        raise HTTPProblem(400, "invalid_field", "password must be a string")
    if user is None:
        raise HTTPProblem(401, "invalid_credentials")
    if isinstance(password, dict):
        # PLANTED INJ-5: a "query document" for the password, as a document store would
        # take it: {"$ne": "x"} matches every password but "x".
        accepted = _matches(user.password, password)
    else:
        accepted = secrets.compare_digest(str(password).encode(), user.password.encode())
    if not accepted:
        raise HTTPProblem(401, "invalid_credentials")
    return web.json_response({"token": bank.token_for(user)})


def _profile(user: User, fixed: bool) -> JSONObject:
    profile: JSONObject = {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "role": user.role,
        # PLANTED PROP-3: fields the document does not declare.
        "password_hash": hashlib.sha256(user.password.encode()).hexdigest(),
        "bsn": user.bsn,
    }
    if fixed:
        del profile["password_hash"], profile["bsn"]
    return profile


def _cors(request: web.Request, response: web.Response) -> web.Response:
    origin = request.headers.get("Origin")
    if origin and not request.app[BANK].fixed:
        # PLANTED MISC-1: any origin, with credentials.
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
    return response


async def get_profile(request: web.Request) -> web.Response:
    user = caller(request, "alg_none")
    return _cors(request, web.json_response(_profile(user, request.app[BANK].fixed)))


async def update_profile(request: web.Request) -> web.Response:
    user = caller(request)
    body = await json_body(request)
    for key, value in body.items():
        # PLANTED PROP-1: every field is copied, the read-only role included.
        allowed = (
            ("display_name", "email")
            if request.app[BANK].fixed
            else ("display_name", "email", "role")
        )
        if key in allowed and isinstance(value, str):
            setattr(user, key, value)
    return _cors(request, web.json_response(_profile(user, request.app[BANK].fixed)))


async def list_accounts(request: web.Request) -> web.Response:
    user = caller(request)
    bank = request.app[BANK]
    mine = [
        record
        for key, record in bank.accounts.items()
        if bank.owner[key] == user.id or user.role == "admin"
    ]
    return web.json_response({"accounts": mine})


async def create_account(request: web.Request) -> web.Response:
    user = caller(request)
    body = await json_body(request)
    bank = request.app[BANK]
    if not isinstance(body.get("name"), str) or not isinstance(body.get("email"), str):
        raise HTTPProblem(400, "invalid_field", "name and email are required strings")
    account_id = max(bank.accounts) + 1
    record = dict(CustomerFactory(account_id).create(account_id).to_public_dict())
    record["nickname"] = None
    # PLANTED PROP-2: the whole body is copied (balance, iban, anything undeclared).
    record.update(
        {key: value for key, value in body.items() if key != "id"}
        if not bank.fixed
        else {"name": body["name"], "email": body["email"]}
    )
    bank.accounts[account_id] = record
    bank.owner[account_id] = user.id
    return web.json_response(record, status=201)


def _may_see(request: web.Request, user: User, account_id: int) -> bool:
    bank = request.app[BANK]
    return not bank.fixed or user.role == "admin" or bank.owner.get(account_id) == user.id


async def get_account(request: web.Request) -> web.Response:
    user = caller(request)
    account_id = _account_id(request)
    # PLANTED BOLA-1: the owner is never compared with the caller.
    record = request.app[BANK].accounts.get(account_id)
    if record is None or not _may_see(request, user, account_id):
        raise HTTPProblem(404, "not_found")
    return web.json_response(record)


async def rename_account(request: web.Request) -> web.Response:
    user = caller(request)
    account_id = _account_id(request)
    body = await json_body(request)
    record = request.app[BANK].accounts.get(account_id)
    if record is None or not _may_see(request, user, account_id):
        raise HTTPProblem(404, "not_found")
    nickname = body.get("nickname")
    if not isinstance(nickname, str) or not 0 < len(nickname) <= 40:
        raise HTTPProblem(400, "invalid_field", "nickname must be 1 to 40 characters")
    # PLANTED BOLA-3: anyone may rename anyone's account.
    record["nickname"] = nickname
    return web.json_response(record)


async def list_transactions(request: web.Request) -> web.Response:
    user = caller(request, "no_signature")
    account_id = _account_id(request)
    rows = request.app[BANK].transactions.get(account_id)
    if rows is None or not _may_see(request, user, account_id):
        raise HTTPProblem(404, "not_found")
    # PLANTED BOLA-2: no owner check either.
    return web.json_response({"transactions": rows})


async def list_cards(request: web.Request) -> web.Response:
    # PLANTED AUTH-1: the token is optional here; without one, every card is listed.
    user = caller(request) if request.app[BANK].fixed else optional_caller(request)
    owners = [user.id] if user is not None else list(request.app[BANK].users)
    # PLANTED SCHEMA-1: expiry is a number (MMYY), the document says "MM/YY".
    expiry: Any = "12/28" if request.app[BANK].fixed else 1228
    cards = [
        {"id": owner * 10, "last4": f"{4000 + owner:04d}", "expiry": expiry} for owner in owners
    ]
    return web.json_response({"cards": cards})


async def list_transfers(request: web.Request) -> web.Response:
    caller(request, "no_expiry")
    text = request.query.get("limit", "20")
    if not text.isdigit():
        raise HTTPProblem(400, "invalid_parameter", "limit must be a number")
    # PLANTED RES-2: the documented maximum (100) is not applied.
    limit = min(int(text), 100 if request.app[BANK].fixed else MAX_TRANSFERS)
    # PLANTED SCHEMA-2: amounts are numbers, the document says decimal strings.
    amounts: list[Any] = [round(10 + n * 0.25, 2) for n in range(limit)]
    if request.app[BANK].fixed:
        amounts = [f"{amount:.2f}" for amount in amounts]
    transfers = [{"id": n + 1, "amount": amount} for n, amount in enumerate(amounts)]
    return web.json_response({"transfers": transfers})


async def search(request: web.Request) -> web.Response:
    user = caller(request)
    query = request.query.get("q", "")
    bank = request.app[BANK]
    # PLANTED INJ-1: the query text is pasted into the SQL statement.
    statement = f"SELECT id FROM accounts WHERE owner = {user.id} AND name LIKE '%{query}%'"  # noqa: S608
    try:
        if bank.fixed:
            statement = "SELECT id FROM accounts WHERE owner = ? AND name LIKE ?"
            rows = bank.database.execute(statement, (user.id, f"%{query}%")).fetchall()
        else:
            rows = bank.database.execute(statement).fetchall()
    except sqlite3.Error as exc:
        raise HTTPProblem(500, "database_error", f"sqlite3.OperationalError: {exc}") from None
    results = [bank.accounts[row[0]] for row in rows if row[0] in bank.accounts]
    return web.json_response({"results": results})


def _matches(value: str, condition: Any) -> bool:
    if not isinstance(condition, dict):
        return bool(value == condition)
    for op, argument in condition.items():
        if op == "$eq" and value != argument:
            return False
        if op == "$ne" and value == argument:
            return False
        if op == "$regex" and not re.search(str(argument), value):
            return False
        if op == "$gt" and not value > str(argument):
            return False
        if op == "$in" and value not in (argument if isinstance(argument, list) else []):
            return False
    return True


async def list_branches(request: web.Request) -> web.Response:
    city = request.query.get("city", "")
    condition: Any = city
    if city.startswith("{") and not request.app[BANK].fixed:
        # PLANTED INJ-2: the parameter is read as a query document, operators and all.
        try:
            condition = json.loads(city)
        except ValueError:
            raise HTTPProblem(400, "invalid_parameter") from None
    branches = [b for b in request.app[BANK].branches if _matches(b["city"], condition)]
    return web.json_response({"branches": branches})


async def lookup(request: web.Request) -> web.Response:
    caller(request)
    host = request.query.get("host", "")
    # PLANTED INJ-3: the host is pasted into a shell command line. (The command itself
    # only prints, so the build never sends DNS queries off the machine.)
    if request.app[BANK].fixed:
        return web.json_response({"output": f"lookup {host}: not found\n"})
    process = await asyncio.create_subprocess_shell(
        f"printf 'lookup %s: not found\\n' {host}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 10)
    except TimeoutError:
        process.kill()
        raise HTTPProblem(504, "lookup_timeout") from None
    return web.json_response({"output": output.decode(errors="replace")[:2000]})


_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
}


def _evaluate(node: ast.AST) -> Any:
    """Arithmetic only: enough to show that expressions run, nothing that reaches the OS."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | str):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(left, str) and isinstance(right, int) and right > 100:
            raise ValueError("too long")
        return _OPERATORS[type(node.op)](left, right)
    raise ValueError("unsupported expression")


def _render(template: str) -> str:
    def substitute(found: re.Match[str]) -> str:
        try:
            return str(_evaluate(ast.parse(found.group(1).strip(), mode="eval")))
        except (SyntaxError, ValueError, TypeError):
            return ""

    return re.sub(r"\{\{(.{1,200}?)\}\}", substitute, template)


async def greeting(request: web.Request) -> web.Response:
    caller(request)
    name = request.query.get("name", "")
    # PLANTED INJ-4: input becomes part of the template before rendering.
    if request.app[BANK].fixed:
        return web.json_response({"output": "Welcome back, " + name + "!"})
    return web.json_response({"output": _render("Welcome back, " + name + "!")})


async def _fetch(url: str, method: str = "GET") -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=3)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, json={"event": "ping"} if method == "POST" else None) as r,
    ):
        return r.status, (await r.text(errors="replace"))[:200]


def _public_url(request: web.Request, url: str) -> bool:
    """The fixed build fetches public addresses only (the literal-address check suffices
    here: it never resolves names, so a name cannot point it at loopback either)."""
    if not request.app[BANK].fixed:
        return True
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return False


async def preview(request: web.Request) -> web.Response:
    caller(request)
    url = request.query.get("url", "")
    if not url.startswith(("http://", "https://")) or not _public_url(request, url):
        raise HTTPProblem(400, "invalid_parameter", "url must be a public http(s) URL")
    # PLANTED SSRF-1: any URL, loopback and private addresses included.
    try:
        status_code, text = await _fetch(url)
    except (aiohttp.ClientError, TimeoutError):
        return web.json_response({"output": "unreachable"})
    return web.json_response({"output": f"{status_code} {text}"})


async def create_webhook(request: web.Request) -> web.Response:
    caller(request)
    body = await json_body(request)
    url = body.get("callback_url")
    if (
        not isinstance(url, str)
        or not url.startswith(("http://", "https://"))
        or not _public_url(request, url)
    ):
        raise HTTPProblem(400, "invalid_field", "callback_url must be a public http(s) URL")
    # PLANTED SSRF-2: the ping goes wherever the client says.
    ping: int | None
    try:
        ping, _ = await _fetch(url, "POST")
    except (aiohttp.ClientError, TimeoutError):
        ping = None
    bank = request.app[BANK]
    hook = {"id": len(bank.webhooks) + 1, "callback_url": url, "last_ping_status": ping}
    bank.webhooks.append(hook)
    return web.json_response(hook, status=201)


async def create_ticket(request: web.Request) -> web.Response:
    caller(request)
    body = await json_body(request)
    # PLANTED RES-3: no length check at all (and a 64 MiB body limit).
    if not isinstance(body.get("subject"), str) or not isinstance(body.get("description"), str):
        raise HTTPProblem(400, "invalid_field", "subject and description are required")
    if request.app[BANK].fixed and len(body["description"]) > 2000:
        raise HTTPProblem(400, "invalid_field", "description is longer than 2000")
    bank = request.app[BANK]
    ticket = {"id": len(bank.tickets) + 1, "subject": body["subject"][:120]}
    bank.tickets.append({**ticket, "size": len(body["description"])})
    return web.json_response(ticket, status=201)


def _staff(request: web.Request) -> None:
    user = caller(request)
    if request.app[BANK].fixed and user.role != "admin":
        raise HTTPProblem(403, "forbidden")


async def admin_users(request: web.Request) -> web.Response:
    _staff(request)  # PLANTED BFLA-1: signed in is enough, the role is not checked.
    users = [
        {"id": u.id, "username": u.username, "role": u.role}
        for u in request.app[BANK].users.values()
    ]
    return web.json_response({"users": users})


async def admin_delete_user(request: web.Request) -> web.Response:
    _staff(request)  # PLANTED BFLA-2: signed in is enough, the role is not checked.
    user_id = _account_id(request)
    if request.app[BANK].users.pop(user_id, None) is None:
        raise HTTPProblem(404, "not_found")
    return web.Response(status=204)


async def admin_audit(request: web.Request) -> web.Response:
    user = caller(request)
    if user.role != "admin":  # done right, as a control for the scanner
        raise HTTPProblem(403, "forbidden")
    return web.json_response({"entries": []})


async def legacy_account(request: web.Request) -> web.Response:
    # PLANTED INV-1: the retired v0 API, still routed, with no authentication at all.
    text = request.match_info["id"]
    record = request.app[BANK].accounts.get(int(text)) if text.isdigit() else None
    if record is None:
        raise HTTPProblem(404, "not_found")
    return web.json_response(record)


async def debug(request: web.Request) -> web.Response:
    # PLANTED INV-2: an undocumented debug page.
    return web.json_response(
        {
            "debug": True,
            "database": "sqlite::memory:",
            "python": sys.version,
            "users": len(request.app[BANK].users),
        }
    )


def create_app(seed: int = 11, *, fixed: bool = False) -> web.Application:
    """The unsafe build; ``fixed=True`` is the same API with every planted flaw repaired,
    which the tests scan to show that the scanner's findings come from the flaws."""
    app = web.Application(
        middlewares=[_unsafe_middleware], client_max_size=1024 * 1024 if fixed else MAX_BODY_BYTES
    )
    app[BANK] = VulnerableBank(seed, fixed=fixed)
    app[SPEC] = spec_text()
    add = app.router.add_route
    add("GET", "/api/v1/status", status)
    add("GET", "/api/v1/openapi.yaml", openapi)
    add("POST", "/api/v1/login", login)
    add("GET", "/api/v1/profile", get_profile)
    add("PATCH", "/api/v1/profile", update_profile)
    add("GET", "/api/v1/accounts", list_accounts)
    add("POST", "/api/v1/accounts", create_account)
    add("GET", "/api/v1/accounts/{id}", get_account)
    add("PATCH", "/api/v1/accounts/{id}", rename_account)
    add("GET", "/api/v1/accounts/{id}/transactions", list_transactions)
    add("GET", "/api/v1/cards", list_cards)
    add("GET", "/api/v1/transfers", list_transfers)
    add("GET", "/api/v1/search", search)
    add("GET", "/api/v1/branches", list_branches)
    add("GET", "/api/v1/tools/lookup", lookup)
    add("GET", "/api/v1/greeting", greeting)
    add("GET", "/api/v1/preview", preview)
    add("POST", "/api/v1/webhooks", create_webhook)
    add("POST", "/api/v1/tickets", create_ticket)
    add("GET", "/api/v1/admin/users", admin_users)
    add("DELETE", "/api/v1/admin/users/{id}", admin_delete_user)
    add("GET", "/api/v1/admin/audit", admin_audit)
    if not fixed:
        add("GET", "/api/v0/accounts/{id}", legacy_account)
        add("GET", "/api/v1/debug", debug)
    return app


def spec_text() -> str:
    return (
        importlib.resources.files("dijk.demo")
        .joinpath("vulnerable_openapi.yaml")
        .read_text("utf-8")
    )


def truth_text() -> str:
    return (
        importlib.resources.files("dijk.demo").joinpath("vulnerable_truth.yaml").read_text("utf-8")
    )


def banner(url: str, spec_path: str, identities: list[Identity], fixed: bool = False) -> str:
    title = (
        "Polder Bank, unsafe build with every planted flaw repaired (a false-positive control)"
        if fixed
        else "Polder Bank, unsafe build: DELIBERATELY VULNERABLE, no gateway in front"
    )
    lines = [
        title + " (loopback only)",
        f"  url   {url}",
        f"  spec  {spec_path}",
        f"DIJK_VULN_URL={url}",
        f"DIJK_VULN_SPEC={spec_path}",
    ]
    lines += [f"DIJK_VULN_{i.name.upper()}=Authorization: Bearer {i.token}" for i in identities]
    lines += [f"DIJK_VULN_PASSWORD_{i.name.upper()}={i.password}" for i in identities]
    auth = " ".join(
        shlex.quote(f"--auth={i.name}=Authorization: Bearer {i.token}") for i in identities
    )
    lines += [
        "Identities: alice and bob (customers), admin (staff); tokens valid for one hour"
        ' (or log in: --login \'alice=/api/v1/login:{"username":"alice","password":"..."}\').',
        "Scan it:",
        f"  dijk scan --spec {shlex.quote(spec_path)} --target {url} {auth}"
        " --admin admin --allow-writes",
        "Stop with Ctrl-C.",
    ]
    return "\n".join(lines)


async def serve(
    host: str,
    port: int,
    on_started: Callable[[str, list[Identity]], None],
    *,
    fixed: bool = False,
) -> None:
    """Serve until cancelled; only loopback addresses are accepted."""
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("the unsafe build listens on loopback only")
    app = create_app(fixed=fixed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        on_started(f"http://{host}:{port}", app[BANK].identities())
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """``python -m dijk.demo.vulnerable [--fixed] --port N``: the build alone (``--fixed``,
    with every planted flaw repaired, exists for the scanner's false-positive tests)."""
    import argparse
    import contextlib

    parser = argparse.ArgumentParser(prog="python -m dijk.demo.vulnerable")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--fixed", action="store_true", help="repair every planted flaw")
    args = parser.parse_args(argv)
    spec = str(importlib.resources.files("dijk.demo").joinpath("vulnerable_openapi.yaml"))

    def started(url: str, identities: list[Identity]) -> None:
        print(banner(url, spec, identities, args.fixed), flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve("127.0.0.1", args.port, started, fixed=args.fixed))


if __name__ == "__main__":
    main()
