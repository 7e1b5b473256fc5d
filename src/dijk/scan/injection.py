"""Injection probes: SQL, NoSQL, OS command and template, with oracles that need proof.

Each string parameter of a read operation is first sent with a plain random value (the
baseline). Then, in order, stopping at the first proof:

- *error*: a quote makes a database error appear that the baseline did not show (SQL);
- *output*: an expression only an evaluator can turn into its result — ``{{a*b}}`` for
  templates, ``$((a*b))`` inside ``echo`` for shells — and the result (never sent) comes
  back; random factors make a coincidence practically impossible;
- *boolean*: a always-true variant changes the answer and an always-false one gives the
  baseline's answer back, the true one twice the same (SQL ``OR '1'='1'``, NoSQL
  ``{"$ne": v}``); answers are compared with every echo of the sent value removed;
- *time*: ``sleep``/``SLEEP()``/``pg_sleep()`` of D seconds delays the answer by at least
  0.9 D over the slowest of two baselines, a second probe with 2 D confirms it, and a
  zero-second control stays fast. Used only when nothing cheaper answered.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dijk.scan.client import Exchange
from dijk.scan.context import ScanContext
from dijk.scan.exposure import error_signature
from dijk.scan.identities import Identity
from dijk.scan.spec import ApiOperation, Param, is_login
from dijk.scan.ssrf import url_like
from dijk.scan.values import example_body, string_properties

__all__ = ["check_injection"]

Send = Callable[..., Awaitable[Exchange]]
_SQL_ERRORS = (
    "sqlite3.",
    "SQLSTATE",
    "SQL syntax",
    "ORA-",
    "PG::",
    "psycopg",
    "unterminated quoted string",
    "syntax error",
    "unrecognized token",
    "OLE DB",
    "ODBC",
)


def _strings(operation: ApiOperation) -> list[Param]:
    out = []
    for param in operation.params:
        schema = param.schema
        kind = schema.get("type")
        if param.location not in ("query", "path") or schema.get("enum"):
            continue
        if kind not in (None, "string") or schema.get("format") in (
            "date",
            "date-time",
            "uuid",
            "uri",
            "url",
        ):
            continue
        out.append(param)
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _normal(exchange: Exchange, sent: Any) -> tuple[int, str]:
    text = exchange.text()
    shown = _text(sent)
    for form in {shown, json.dumps(shown)[1:-1], quote(shown, safe=""), quote(shown)}:
        if form:
            text = text.replace(form, "")
    return exchange.status, text


def _shape(exchange: Exchange) -> tuple[int, Any]:
    """What must repeat for a true probe to count: the status and the answer's JSON keys
    (a login returns a new token each time), else the text."""
    if isinstance(exchange.json, dict):
        return exchange.status, tuple(sorted(exchange.json))
    return exchange.status, exchange.text()


@dataclass(slots=True)
class Input:
    """One place a value goes: a query/path parameter or a JSON body property."""

    location: str
    name: str
    schema: dict[str, Any]
    send: Send


async def check_injection(ctx: ScanContext) -> None:
    primary = ctx.primary
    for operation in ctx.spec.operations:
        who = None if operation.public else primary
        if not operation.public and who is None:
            continue
        if operation.method == "GET":
            for param in _strings(operation):
                await _probe(ctx, operation, _parameter_input(ctx, operation, param, who))
        elif operation.body_schema is not None and not operation.admin:
            await _probe_body(ctx, operation)


def _parameter_input(
    ctx: ScanContext, operation: ApiOperation, param: Param, who: Identity | None
) -> Input:
    async def send(value: Any, timeout_s: float | None = None) -> Exchange:
        text = _text(value)
        if param.location == "path":
            values = {param.name: text}
            return await ctx.call(
                operation, who, path_values=values, purpose="injection", timeout_s=timeout_s
            )
        query = {param.name: text}
        return await ctx.call(operation, who, query=query, purpose="injection", timeout_s=timeout_s)

    return Input(param.location, param.name, param.schema, send)


async def _probe_body(ctx: ScanContext, operation: ApiOperation) -> None:
    """String properties of a JSON body: a login's always (failed logins change nothing),
    every other write's only with ``--allow-writes``."""
    assert operation.body_schema is not None
    if not (is_login(operation) or ctx.options.allow_writes):
        return
    body = example_body(operation.body_schema)
    found = await ctx.working_write(operation, body, accept_refusal=is_login(operation))
    if found is None:
        return
    who, values = found
    for name, schema in string_properties(operation.body_schema):
        if url_like(name, schema) or schema.get("format") in ("date", "date-time", "uuid"):
            continue

        async def send(value: Any, timeout_s: float | None = None, name: str = name) -> Exchange:
            return await ctx.call(
                operation,
                who,
                path_values=values,
                body={**body, name: value},
                purpose="injection",
                timeout_s=timeout_s,
            )

        await _probe(ctx, operation, Input("body", name, schema, send))


async def _probe(ctx: ScanContext, operation: ApiOperation, target: Input) -> None:
    send = target.send
    plain = "dijk" + secrets.token_hex(3) + "z"  # ends in a letter: a product after it stands alone
    base = await send(plain)
    if base.status == 0 or base.status >= 500:
        return
    if base.status in (401, 403) and not operation.public:
        return
    reference = _normal(base, plain)
    limit = target.schema.get("maxLength")
    fits: Callable[[str], bool] = (
        (lambda v: len(v) <= limit) if isinstance(limit, int) and limit >= 16 else (lambda v: True)
    )

    for suffix in ("'", '"', "')", "\\"):
        answer = await send(plain + suffix)
        sign = error_signature(answer.text())
        if (
            sign
            and any(marker in sign or marker in answer.text() for marker in _SQL_ERRORS)
            and not error_signature(base.text())
        ):
            how = f"a {suffix!r} caused a database error ({sign[:80]!r})"
            _found(ctx, "scan.injection.sql", operation, target, how, [base, answer])
            return

    # Four-digit factors: the product has seven or eight digits, and only counts standing
    # alone (an IBAN or a BSN in an answer may hold any shorter run of digits).
    a, b = secrets.randbelow(9000) + 1000, secrets.randbelow(9000) + 1000
    product = str(a * b)
    alone = re.compile(rf"(?<![0-9]){product}(?![0-9])")
    for shape in ("{{%d*%d}}", "${%d*%d}", "<%%= %d*%d %%>", "#{%d*%d}", "{{=%d*%d}}"):
        value = plain + shape % (a, b)
        if not fits(value):
            continue
        answer = await send(value)
        if alone.search(answer.text()) and not alone.search(base.text()):
            how = f"{shape % (a, b)!r} came back evaluated as {product}"
            _found(ctx, "scan.injection.template", operation, target, how, [base, answer])
            return

    marker = f"dijk{product}x"
    for shape in (
        ";echo dijk$((%d*%d))x",
        "|echo dijk$((%d*%d))x",
        "$(echo dijk$((%d*%d))x)",
        "`echo dijk$((%d*%d))x`",
        "&&echo dijk$((%d*%d))x",
    ):
        answer = await send(plain + shape % (a, b))
        if marker in answer.text():
            how = f"{shape % (a, b)!r} ran: its output {marker} came back"
            _found(ctx, "scan.injection.command", operation, target, how, [base, answer])
            return

    pairs: list[tuple[str, Any, Any]] = [
        ("scan.injection.sql", plain + "' OR '1'='1' -- ", plain + "' OR '1'='2' -- "),
        ("scan.injection.sql", plain + " OR 1=1 -- ", plain + " OR 1=2 -- "),
        ("scan.injection.sql", plain + '" OR "1"="1" -- ', plain + '" OR "1"="2" -- '),
        ("scan.injection.nosql", {"$ne": plain}, {"$eq": plain}),
        ("scan.injection.nosql", {"$regex": ".*"}, {"$regex": f"^{plain}$"}),
    ]
    for rule_id, true_value, false_value in pairs:
        if await _boolean(
            ctx, target, true_value, false_value, reference, operation, rule_id, base
        ):
            return

    await _timing(ctx, target, plain, base, operation)


async def _boolean(
    ctx: ScanContext,
    target: Input,
    true_value: Any,
    false_value: Any,
    reference: tuple[int, str],
    operation: ApiOperation,
    rule_id: str,
    base: Exchange,
) -> bool:
    """The always-true variant succeeds and differs from the baseline, the always-false one
    gives the baseline's answer back, and the true one does so again."""
    true_answer = await target.send(true_value)
    if not true_answer.ok or _normal(true_answer, true_value) == reference:
        return False
    false_answer = await target.send(false_value)
    if _normal(false_answer, false_value) != reference:
        return False
    again = await target.send(true_value)
    if _shape(again) != _shape(true_answer):
        return False
    _found(
        ctx,
        rule_id,
        operation,
        target,
        f"{_text(true_value)!r} changed the answer ({true_answer.status}, "
        f"{len(true_answer.body)} bytes) while {_text(false_value)!r} gave the baseline's "
        f"({false_answer.status}, {len(false_answer.body)} bytes)",
        [base, true_answer, false_answer],
    )
    return True


async def _timing(
    ctx: ScanContext, target: Input, plain: str, base: Exchange, operation: ApiOperation
) -> None:
    send = target.send
    delay = ctx.options.time_delay_s
    second = await send(plain)
    slowest = max(base.elapsed_s, second.elapsed_s)
    if slowest > delay:  # too slow to time reliably
        ctx.notes.append(
            f"Injection: {operation.label} '{target.name}' too slow for time-based probes."
        )
        return
    shapes = [
        ("scan.injection.command", ";sleep {d};", ";sleep 0;"),
        ("scan.injection.command", "$(sleep {d})", "$(sleep 0)"),
        ("scan.injection.sql", "' AND SLEEP({d})-- ", "' AND SLEEP(0)-- "),
        ("scan.injection.sql", "' || pg_sleep({d}) || '", "' || pg_sleep(0) || '"),
    ]
    for rule_id, shape, control_shape in shapes:
        first = await send(plain + shape.format(d=f"{delay:g}"), timeout_s=delay * 2 + 10)
        if first.elapsed_s < slowest + delay * 0.9:
            continue
        confirm = await send(plain + shape.format(d=f"{delay * 2:g}"), timeout_s=delay * 3 + 10)
        control = await send(plain + control_shape)
        if confirm.elapsed_s >= slowest + delay * 1.8 and control.elapsed_s < slowest + delay * 0.5:
            _found(
                ctx,
                rule_id,
                operation,
                target,
                f"sleeping {delay:g} s and {delay * 2:g} s delayed the answer by "
                f"{first.elapsed_s - slowest:.1f} s and {confirm.elapsed_s - slowest:.1f} s; "
                "a zero sleep did not",
                [base, first, confirm, control],
            )
            return


def _found(
    ctx: ScanContext,
    rule_id: str,
    operation: ApiOperation,
    target: Input,
    how: str,
    exchanges: list[Exchange],
) -> None:
    where = "body property" if target.location == "body" else f"{target.location} parameter"
    ctx.report(
        rule_id,
        operation,
        f"{where} '{target.name}': {how}.",
        exchanges,
        extra={"parameter": target.name, "in": target.location},
    )
