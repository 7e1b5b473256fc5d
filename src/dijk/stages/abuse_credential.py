"""Abuse guard by credential (priority 5450: after authentication and authorization).

Refuses, throttles or flags a request whose credential (hashed API key, token or consumer)
has an open incident: enumeration of object ids on this route, token misuse (every route),
scanning with a key. Decided from the instance's incident mirror, with no storage call.
"""

from __future__ import annotations

from typing import ClassVar

from dijk.abuse.incidents import verdict
from dijk.abuse.resources import AbuseResources
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage


class AbuseCredentialStage(Stage):
    name: ClassVar[str] = "abuse_credential"
    priority: ClassVar[int] = 5450
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS})

    def __init__(self, resources: AbuseResources, route: str) -> None:
        self._resources = resources
        self._route = route
        resources.acquire()

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        identity = ctx.identity
        resources = self._resources
        book = resources.book
        if identity is None or not book:
            return None
        now = resources.clock()
        credential = identity.credential_id or identity.consumer
        incident = book.active(f"cred:{credential}", self._route, now)
        if incident is None:
            return None
        decision = verdict(incident, now, resources.throttle, credential)
        if decision is not None:
            ctx.findings.append({"rule_id": incident.reason, "field": f"abuse:{incident.signal}"})
        return decision

    async def close(self) -> None:
        await self._resources.release()
