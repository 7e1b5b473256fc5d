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
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from dijk.scan.client import Exchange
from dijk.scan.context import ScanContext
from dijk.scan.exposure import error_signature
from dijk.scan.identities import Identity
from dijk.scan.spec import ApiOperation, Param

__all__ = ["check_injection"]

Send = Callable[[str], Awaitable[Exchange]]
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


def _normal(exchange: Exchange, sent: str) -> tuple[int, str]:
    text = exchange.text()
    for form in {sent, json.dumps(sent)[1:-1], quote(sent, safe=""), quote(sent)}:
        if form:
            text = text.replace(form, "")
    return exchange.status, text


async def check_injection(ctx: ScanContext) -> None:
    primary = ctx.primary
    for operation in ctx.spec.operations:
        if operation.method != "GET":
            continue
        who = None if operation.public else primary
        if not operation.public and who is None:
            continue
        for param in _strings(operation):
            await _probe_parameter(ctx, operation, param, who)


async def _probe_parameter(
    ctx: ScanContext, operation: ApiOperation, param: Param, who: Identity | None
) -> None:
    async def send(value: str, timeout_s: float | None = None) -> Exchange:
        if param.location == "path":
            return await ctx.call(
                operation,
                who,
                path_values={param.name: value},
                purpose="injection",
                timeout_s=timeout_s,
            )
        return await ctx.call(
            operation, who, query={param.name: value}, purpose="injection", timeout_s=timeout_s
        )

    plain = "dijk" + secrets.token_hex(3)
    base = await send(plain)
    if base.status == 0 or base.status >= 500 or base.status in (401, 403):
        return
    reference = _normal(base, plain)
    limit = param.schema.get("maxLength")
    fits: Callable[[str], bool] = (
        (lambda v: len(v) <= limit) if isinstance(limit, int) and limit >= 16 else (lambda v: True)
    )

    for suffix in ("'", '"', "')", "\\"):
        value = plain + suffix
        answer = await send(value)
        sign = error_signature(answer.text())
        if (
            sign
            and any(marker in sign or marker in answer.text() for marker in _SQL_ERRORS)
            and not error_signature(base.text())
        ):
            _found(
                ctx,
                "scan.injection.sql",
                operation,
                param,
                f"a {suffix!r} caused a database error ({sign[:80]!r})",
                [base, answer],
            )
            return

    a, b = secrets.randbelow(900) + 100, secrets.randbelow(900) + 100
    product = str(a * b)
    for shape in ("{{%d*%d}}", "${%d*%d}", "<%%= %d*%d %%>", "#{%d*%d}", "{{=%d*%d}}"):
        value = plain + shape % (a, b)
        if not fits(value):
            continue
        answer = await send(value)
        if product in answer.text() and product not in base.text():
            _found(
                ctx,
                "scan.injection.template",
                operation,
                param,
                f"{shape % (a, b)!r} came back evaluated as {product}",
                [base, answer],
            )
            return

    marker = f"dijk{product}x"
    for shape in (
        ";echo dijk$((%d*%d))x",
        "|echo dijk$((%d*%d))x",
        "$(echo dijk$((%d*%d))x)",
        "`echo dijk$((%d*%d))x`",
        "&&echo dijk$((%d*%d))x",
    ):
        value = plain + shape % (a, b)
        answer = await send(value)
        if marker in answer.text():
            _found(
                ctx,
                "scan.injection.command",
                operation,
                param,
                f"{shape % (a, b)!r} ran: its output {marker} came back",
                [base, answer],
            )
            return

    sql_pairs = [
        ("' OR '1'='1' -- ", "' OR '1'='2' -- "),
        (" OR 1=1 -- ", " OR 1=2 -- "),
        ('" OR "1"="1" -- ', '" OR "1"="2" -- '),
    ]
    for true_part, false_part in sql_pairs:
        if await _boolean(
            ctx,
            send,
            plain + true_part,
            plain + false_part,
            reference,
            operation,
            param,
            "scan.injection.sql",
            base,
        ):
            return
    nosql_pairs = [
        (json.dumps({"$ne": plain}), json.dumps({"$eq": plain})),
        (json.dumps({"$regex": ".*"}), json.dumps({"$regex": f"^{plain}$"})),
    ]
    for true_value, false_value in nosql_pairs:
        if await _boolean(
            ctx,
            send,
            true_value,
            false_value,
            reference,
            operation,
            param,
            "scan.injection.nosql",
            base,
        ):
            return

    await _timing(ctx, send, plain, base, operation, param)


async def _boolean(
    ctx: ScanContext,
    send: Send,
    true_value: str,
    false_value: str,
    reference: tuple[int, str],
    operation: ApiOperation,
    param: Param,
    rule_id: str,
    base: Exchange,
) -> bool:
    true_answer = await send(true_value)
    if not true_answer.ok or _normal(true_answer, true_value) == reference:
        return False
    false_answer = await send(false_value)
    if not false_answer.ok or _normal(false_answer, false_value) != reference:
        return False
    again = await send(true_value)
    if _normal(again, true_value) != _normal(true_answer, true_value):
        return False
    _found(
        ctx,
        rule_id,
        operation,
        param,
        f"{true_value!r} changed the answer ({len(true_answer.body)} bytes) while "
        f"{false_value!r} gave the "
        f"baseline's ({len(false_answer.body)} bytes)",
        [base, true_answer, false_answer],
    )
    return True


async def _timing(
    ctx: ScanContext, send: Any, plain: str, base: Exchange, operation: ApiOperation, param: Param
) -> None:
    delay = ctx.options.time_delay_s
    second = await send(plain)
    slowest = max(base.elapsed_s, second.elapsed_s)
    if slowest > delay:  # too slow to time reliably
        ctx.notes.append(
            f"Injection: {operation.label} '{param.name}' too slow for time-based probes."
        )
        return
    shapes = [
        ("scan.injection.command", ";sleep {d};", ";sleep 0;"),
        ("scan.injection.command", "$(sleep {d})", "$(sleep 0)"),
        ("scan.injection.sql", "' AND SLEEP({d})-- ", "' AND SLEEP(0)-- "),
        ("scan.injection.sql", "' || pg_sleep({d}) || '", "' || pg_sleep(0) || '"),
    ]
    for rule_id, shape, control_shape in shapes:
        value = plain + shape.format(d=f"{delay:g}")
        first = await send(value, timeout_s=delay * 2 + 10)
        if first.elapsed_s < slowest + delay * 0.9:
            continue
        longer = plain + shape.format(d=f"{delay * 2:g}")
        confirm = await send(longer, timeout_s=delay * 3 + 10)
        control = await send(plain + control_shape)
        if confirm.elapsed_s >= slowest + delay * 1.8 and control.elapsed_s < slowest + delay * 0.5:
            _found(
                ctx,
                rule_id,
                operation,
                param,
                f"sleeping {delay:g} s and {delay * 2:g} s delayed the answer by "
                f"{first.elapsed_s - slowest:.1f} s "
                f"and {confirm.elapsed_s - slowest:.1f} s; a zero sleep did not",
                [base, first, confirm, control],
            )
            return


def _found(
    ctx: ScanContext,
    rule_id: str,
    operation: ApiOperation,
    param: Param,
    how: str,
    exchanges: list[Exchange],
) -> None:
    ctx.report(
        rule_id,
        operation,
        f"{param.location} parameter '{param.name}': {how}.",
        exchanges,
        extra={"parameter": param.name},
    )
