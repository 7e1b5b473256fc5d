"""Who may do what: the baseline crawl, BOLA (API1), authentication (API2), BFLA (API5).

The baseline calls every read operation once per identity with ordinary values, which
proves the operation works and harvests object ids: the ``id`` values in each identity's
answers from a collection (``GET /accounts`` feeds ``/accounts/{id}``). An object is
*owned* by A when A's answers contain its id and B's do not — only then does B reading
it count as BOLA, so APIs where every user may see every object (and says so by listing
them to everyone) raise no false alarm.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dijk.reporting import Severity
from dijk.scan.client import Exchange
from dijk.scan.context import ScanContext, collection_of
from dijk.scan.identities import (
    Identity,
    describe,
    expired_claims,
    resigned_token,
    signed_token,
    signs,
    unsigned_token,
    weak_secret,
)
from dijk.scan.spec import ApiOperation
from dijk.scan.values import example_body

__all__ = ["baseline", "check_authentication", "check_bfla", "check_bola"]

MISSING_ID = 2_147_480_000
_REFUSED = frozenset({401, 403})


def _ids(value: Any, limit: int = 50) -> list[Any]:
    """``id`` values of the objects in a collection response (top level arrays included)."""
    found: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if len(found) >= limit or depth > 4:
            return
        if isinstance(node, dict):
            if isinstance(node.get("id"), int | str) and not isinstance(node.get("id"), bool):
                found.append(node["id"])
            for child in node.values():
                if isinstance(child, list | dict):
                    walk(child, depth + 1)
        elif isinstance(node, list):
            for child in node:
                walk(child, depth + 1)

    walk(value, 0)
    return list(dict.fromkeys(found))


async def baseline(ctx: ScanContext) -> None:
    """Every read operation, once per identity (collections first, so ids are known)."""
    reads = [op for op in ctx.spec.operations if op.method == "GET"]
    reads.sort(key=lambda op: len(op.path_params))
    for operation in reads:
        callers: list[Identity | None] = [None] if operation.public else list(ctx.identities)
        results = await asyncio.gather(
            *(
                ctx.call(
                    operation, who, path_values=_own_values(ctx, operation, who), purpose="baseline"
                )
                for who in callers
            )
        )
        for who, exchange in zip(callers, results, strict=True):
            name = who.name if who else "(none)"
            ctx.baseline[(operation.label, name)] = exchange
            if exchange.ok and not operation.path_params and exchange.json is not None:
                ctx.ids.setdefault(operation.template, {})[name] = _ids(exchange.json)


def _own_values(ctx: ScanContext, operation: ApiOperation, who: Identity | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in operation.path_params:
        value = ctx.harvested_id(operation, param.name, who.name if who else None)
        if value is not None:
            values[param.name] = value
    return values


def _owned(ctx: ScanContext, collection: str, owner: Identity, other: Identity) -> list[Any]:
    by_identity = ctx.ids.get(collection, {})
    theirs = set(map(str, by_identity.get(other.name, [])))
    return [value for value in by_identity.get(owner.name, []) if str(value) not in theirs]


def _same_object(a: Exchange, b: Exchange, object_id: Any) -> bool:
    if a.body == b.body:
        return True
    if isinstance(b.json, dict) and str(b.json.get("id")) == str(object_id):
        return True
    return isinstance(a.json, dict | list) and a.json == b.json


async def check_bola(ctx: ScanContext) -> None:
    users = ctx.users
    if len(users) < 2:
        ctx.notes.append("BOLA: skipped, it needs two non-admin identities (--auth).")
        return
    tested = 0
    for operation in ctx.spec.operations:
        params = operation.path_params
        if not params or operation.public or operation.admin:
            continue
        if not operation.safe and (not ctx.options.allow_writes or operation.method == "DELETE"):
            continue
        param = params[0]
        collection = collection_of(operation.template, param.name)
        if collection is None:
            continue
        for owner in users:
            for other in users:
                if owner is other or ctx.found(_bola_rule(operation), operation):
                    continue
                owned = _owned(ctx, collection, owner, other)
                if not owned:
                    continue
                tested += 1
                await _bola_pair(ctx, operation, param.name, owner, other, owned[0])
    if not tested:
        ctx.notes.append(
            "BOLA: no object was seen by one identity and not the other, so none could be tested "
            "(the identities see the same objects, or no collection lists ids)."
        )


def _bola_rule(operation: ApiOperation) -> str:
    return "scan.bola.read" if operation.safe else "scan.bola.write"


async def _bola_pair(
    ctx: ScanContext,
    operation: ApiOperation,
    name: str,
    owner: Identity,
    other: Identity,
    object_id: Any,
) -> None:
    values = {name: object_id}
    if operation.safe:
        mine = await ctx.call(operation, owner, path_values=values, purpose="bola: owner reads")
        if not mine.ok:
            return
        theirs = await ctx.call(operation, other, path_values=values, purpose="bola: other reads")
        if theirs.ok and _same_object(mine, theirs, object_id):
            ctx.report(
                "scan.bola.read",
                operation,
                f"{other.name} read {owner.name}'s object {object_id} (absent from "
                f"{other.name}'s own listing).",
                [mine, theirs],
                extra={"owner": owner.name, "attacker": other.name, "object_id": str(object_id)},
            )
        return
    body = example_body(operation.body_schema or {})
    theirs = await ctx.call(
        operation, other, path_values=values, body=body, purpose="bola: other writes"
    )
    if not theirs.ok:
        return
    control = await ctx.call(
        operation,
        other,
        path_values={name: MISSING_ID},
        body=body,
        purpose="bola: write to a missing id",
    )
    if control.ok:
        ctx.notes.append(
            f"BOLA: {operation.label} answers 2xx even for a missing id; inconclusive."
        )
        return
    ctx.report(
        "scan.bola.write",
        operation,
        f"{other.name} changed {owner.name}'s object {object_id} ({theirs.status}; a missing "
        f"id gets {control.status}).",
        [theirs, control],
        extra={"owner": owner.name, "attacker": other.name, "object_id": str(object_id)},
    )


async def check_authentication(ctx: ScanContext) -> None:
    primary = ctx.primary
    if primary is None:
        ctx.notes.append("Authentication: skipped, no identity given (--auth).")
        return
    key = None
    if primary.jwt is not None:
        key = weak_secret(primary.jwt)
        given = ctx.options.jwt_secret
        if key is None and given is not None:
            if signs(primary.jwt, given):
                key = given
            else:
                ctx.notes.append(
                    f"Authentication: the --jwt-secret-env key does not verify {primary.name}'s "
                    "token; the expired-token test did not run."
                )
        elif key is not None:
            ctx.report(
                "scan.auth.weak_jwt_secret",
                None,
                f"{primary.name}'s token is HMAC-signed with a well-known key ({len(key)} "
                "characters).",
                [],
                extra={"token": describe(primary.value[len(primary.prefix) :])},
            )
    for operation in ctx.spec.operations:
        if operation.public or not operation.safe:
            continue
        base = ctx.baseline.get((operation.label, primary.name))
        if base is None or not base.ok:
            continue
        values = _own_values(ctx, operation, primary)
        await _auth_probes(ctx, operation, primary, values, base, key)


async def _auth_probes(
    ctx: ScanContext,
    operation: ApiOperation,
    who: Identity,
    values: dict[str, Any],
    base: Exchange,
    key: str | None,
) -> None:
    anonymous = await ctx.call(operation, None, path_values=values, purpose="auth: no credential")
    if anonymous.ok:
        ctx.report(
            "scan.auth.no_credential",
            operation,
            f"answered {anonymous.status} without any credential (the document requires one).",
            [anonymous],
        )
        return  # every other credential test is moot

    async def presenting(token: str, purpose: str) -> Exchange:
        headers = who.with_token(token)
        return await ctx.call(operation, None, path_values=values, headers=headers, purpose=purpose)

    bogus = await presenting("dijk-scan-invalid-credential", "auth: made-up credential")
    if bogus.ok:
        ctx.report(
            "scan.auth.invalid_credential",
            operation,
            f"answered {bogus.status} to a made-up credential.",
            [bogus],
        )
        return
    if who.jwt is None:
        return
    forged = resigned_token(who.jwt)
    resigned = await presenting(forged, "auth: JWT signed with another key")
    if resigned.ok:
        ctx.report(
            "scan.auth.signature_not_verified",
            operation,
            f"accepted {who.name}'s claims signed with a random key ({resigned.status}).",
            [resigned],
            extra={"token": describe(forged)},
        )
        return
    unsigned = unsigned_token(who.jwt)
    none = await presenting(unsigned, "auth: alg none")
    if none.ok:
        ctx.report(
            "scan.auth.alg_none",
            operation,
            f"accepted an unsigned token (alg: none) with {who.name}'s claims ({none.status}).",
            [none],
            extra={"token": describe(unsigned)},
        )
    if key is not None:
        alg = str(who.jwt.header.get("alg", "HS256"))
        expired = signed_token(who.jwt, key.encode(), expired_claims(who.jwt, time.time()), alg)
        late = await presenting(expired, "auth: expired JWT")
        if late.ok:
            ctx.report(
                "scan.auth.expired_token",
                operation,
                f"accepted {who.name}'s token signed correctly but expired an hour ago "
                f"({late.status}).",
                [late],
                extra={"token": describe(expired)},
            )


async def check_bfla(ctx: ScanContext) -> None:
    admin_ops = [op for op in ctx.spec.operations if op.admin]
    if not admin_ops:
        ctx.notes.append(
            "BFLA: the document marks no operation as an admin one (tag, path or scope)."
        )
        return
    admin = ctx.admin
    if admin is None:
        ctx.notes.append(
            "BFLA: no --admin identity; low identities were tried against admin operations alone."
        )
    for operation in admin_ops:
        if not operation.safe and not ctx.options.allow_writes:
            ctx.notes.append(f"BFLA: {operation.label} not tried (writes need --allow-writes).")
            continue
        # Writes go to an id that does not exist: the check needs the function, not the data.
        values = (
            {param.name: MISSING_ID for param in operation.path_params}
            if not operation.safe
            else None
        )
        body = example_body(operation.body_schema or {}) if operation.body_schema else None
        reference = None
        if admin is not None:
            reference = await ctx.call(
                operation, admin, path_values=values, body=body, purpose="bfla: admin"
            )
            if reference.status in _REFUSED or reference.status == 0:
                continue
        for user in ctx.users:
            attempt = await ctx.call(
                operation, user, path_values=values, body=body, purpose="bfla: user"
            )
            if attempt.status in _REFUSED or attempt.status == 0 or attempt.status >= 500:
                continue
            same = reference is not None and attempt.status == reference.status
            if attempt.ok or same:
                # A 2xx is the function working for a user; the admin's own error status
                # (a missing id) shows it reachable, but an API that looks ids up before
                # authorising answers so too: medium.
                severity = Severity.high if attempt.ok else Severity.medium
                ctx.report(
                    "scan.bfla",
                    operation,
                    f"{user.name} (not an admin) was not refused: {attempt.status}"
                    + (f", as the admin got {reference.status}" if reference is not None else "")
                    + ".",
                    [attempt, *([reference] if reference is not None else [])],
                    severity=severity,
                    extra={"attacker": user.name},
                )
                break
