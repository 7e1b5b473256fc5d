"""Authorization by scopes (priority 5500): the route's scopes must all be granted."""

from __future__ import annotations

from typing import ClassVar

from dijk.config.models import RouteConfig
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage


class ScopeStage(Stage):
    name: ClassVar[str] = "authz"
    priority: ClassVar[int] = 5500
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS})

    def __init__(self, route: RouteConfig) -> None:
        self._required = frozenset(route.scopes)
        scope = " ".join(sorted(self._required))
        self._challenge = (
            ("WWW-Authenticate", f'Bearer error="insufficient_scope", scope="{scope}"'),
        )

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        identity = ctx.identity
        if identity is None:
            # Authentication stages run first (higher priority) and deny on failure;
            # reaching here without an identity is a wiring fault: fail closed.
            return Decision.deny(401, "auth.missing_credentials", "This route needs credentials.")
        missing = self._required - identity.scopes
        if missing:
            return Decision.deny(
                403,
                "authz.insufficient_scope",
                "The credentials do not grant the scope this route needs: "
                + ", ".join(sorted(missing)),
                self._challenge,
            )
        return None
