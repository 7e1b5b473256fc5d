"""Authorization (priority 5500): scopes, scopes per method, consumer groups.

Everything is compiled when the route is built: for each HTTP method, the set of scopes the
caller must *all* hold (route ``scopes`` plus ``scopes_by_method[method]``), and the set of
groups of which the caller must be in *at least one* (route ``groups``). Per request this
is two set operations.

``HEAD`` is ``GET`` without the body: it reveals the same status, headers and
``Content-Length``, and the router sends it wherever ``GET`` goes. So ``HEAD`` always needs
the scopes of ``GET`` (plus any listed under ``HEAD`` itself).
"""

from __future__ import annotations

from typing import ClassVar

from dijk.auth.bearer import bearer_challenge
from dijk.config.models import RouteConfig
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

_EMPTY: frozenset[str] = frozenset()


def head_as_get(by_method: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """``by_method`` where ``HEAD`` needs at least what ``GET`` needs."""
    get = by_method.get("GET")
    if get is None:
        return by_method
    return {**by_method, "HEAD": get | by_method.get("HEAD", frozenset())}


class ScopeStage(Stage):
    name: ClassVar[str] = "authz"
    priority: ClassVar[int] = 5500
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS})

    def __init__(self, route: RouteConfig) -> None:
        base = frozenset(route.scopes)
        self._required = base
        self._by_method = head_as_get(
            {method: base | frozenset(scopes) for method, scopes in route.scopes_by_method.items()}
        )
        self._groups = frozenset(route.groups)

    def required_scopes(self, method: str) -> frozenset[str]:
        return self._by_method.get(method, self._required)

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        identity = ctx.identity
        if identity is None:
            # Authentication stages run first (higher priority) and deny on failure;
            # reaching here without an identity is a wiring fault: fail closed.
            return Decision.deny(401, "auth.missing_credentials", "This route needs credentials.")
        required = self._by_method.get(ctx.method, self._required)
        missing = required - identity.scopes if required else _EMPTY
        if missing:
            scope = " ".join(sorted(required))
            return Decision.deny(
                403,
                "authz.insufficient_scope",
                "The credentials do not grant the scope this route needs: "
                + ", ".join(sorted(missing)),
                (bearer_challenge("insufficient_scope", scope=scope),),
            )
        if self._groups and self._groups.isdisjoint(identity.groups):
            return Decision.deny(
                403,
                "authz.group_not_allowed",
                "The caller is not in a consumer group this route allows.",
            )
        return None
