"""Abuse guard by address (priority 7200, before authentication and rate limits).

Refuses, throttles or flags a request whose client address or network has an open
incident (scanning, stuffing from one address or network), or that a local reputation list
names (``abuse.reputation``). It runs before authentication so that a blocked scanner gets
the same 403 everywhere, on routes that need a key and on paths that match no route, and
learns nothing about what exists.

On login routes it also reads the username (``request_body``) for the observer, and
enforces the login incidents: route-wide stuffing, one account attacked from many
addresses, one country. Those let a *known* (username, network) pair through — a user who
logged in successfully from that network before — so an attack does not lock out the
account's owner. That check is the only storage round trip in a request phase, and only
while such an incident is open.

Decisions come from the instance's incident mirror (``dijk.abuse.incidents``): no storage
call otherwise.
"""

from __future__ import annotations

from typing import ClassVar

from dijk.abuse.incidents import Incident, verdict
from dijk.abuse.resources import AbuseResources
from dijk.abuse.signals import known_key
from dijk.abuse.store import Kind, Op
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage
from dijk.ratelimit.policy import digest
from dijk.stages.login_guard import username_from_body
from dijk.storage import StorageUnavailable

USERNAME = "abuse.username"
"""``ctx.annotations`` key: digest of the login's normalised username."""
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class AbuseGuardStage(Stage):
    name: ClassVar[str] = "abuse_guard"
    priority: ClassVar[int] = 7200
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS, Phase.REQUEST_BODY})

    def __init__(
        self, resources: AbuseResources, route: str = "", username_field: str | None = None
    ) -> None:
        self._resources = resources
        self._route = route
        self._field = username_field
        settings = resources.settings.reputation
        self._reputation_action = settings.action
        resources.acquire()

    def wants_request_body(self, ctx: RequestContext) -> bool:
        return self._field is not None and ctx.method in _BODY_METHODS

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        resources = self._resources
        lists = resources.reputation
        if lists is not None:
            listed = lists.lookup(ctx.client_ip)
            if listed is not None:
                return self._listed(ctx, listed)
        book = resources.book
        if not book:
            return None
        now = resources.clock()
        ip = ctx.client_ip
        incident = book.active(f"ip:{ip}", self._route, now) or book.active(
            f"net:{resources.network(ip)}", self._route, now
        )
        if incident is None:
            return None
        return _decide(ctx, incident, now, resources, ip)

    def _listed(self, ctx: RequestContext, listed: str) -> Decision:
        detail = f"This address is on the reputation list {listed}."
        ctx.findings.append({"rule_id": "abuse.reputation", "field": f"abuse:list:{listed}"})
        if self._reputation_action == "block":
            return Decision.deny(403, "abuse.reputation", detail)
        return Decision.monitor(403, "abuse.reputation", detail)

    async def request_body(self, ctx: RequestContext) -> Decision | None:
        field = self._field
        if field is None or not ctx.inspected_body:
            return None
        username = username_from_body(ctx.inspected_body or b"", ctx.content_type, field)
        if username is None:
            return None
        user = digest(username)
        ctx.annotations[USERNAME] = user
        resources = self._resources
        book = resources.book
        if not book:
            return None
        now = resources.clock()
        route = self._route
        incident = book.active(f"route:{route}", route, now) or book.active(
            f"account:{user}", route, now
        )
        if incident is None:
            country = resources.country(ctx.client_ip)
            if country is not None:
                incident = book.active(f"country:{country}", route, now)
        if incident is None:
            return None
        if incident.action != "monitor" and await self._known(ctx, user, now):
            return None  # the account's owner, from a network it logged in from before
        return _decide(ctx, incident, now, resources, ctx.client_ip)

    async def _known(self, ctx: RequestContext, user: str, now: float) -> bool:
        resources = self._resources
        network = resources.network(ctx.client_ip)
        key = known_key(resources.prefix, self._route, user, network)
        try:
            batch = await resources.store.run([Op(Kind.KNOWN, key)], resources.book.epoch, now)
        except StorageUnavailable:
            return False  # cannot vouch for the pair: the incident applies (fail closed)
        return bool(batch.results and batch.results[0])

    async def close(self) -> None:
        await self._resources.release()


def _decide(
    ctx: RequestContext, incident: Incident, now: float, resources: AbuseResources, key: str
) -> Decision | None:
    decision = verdict(incident, now, resources.throttle, key)
    if decision is not None:
        ctx.findings.append({"rule_id": incident.reason, "field": f"abuse:{incident.signal}"})
    return decision
