"""The end of authentication (priority 6000): no method identified the caller → 401.

How the methods cooperate ("any of these"): each accepted method is its own
stage, run in a fixed order by priority — ``authn_mtls`` 6040, ``authn_api_key`` 6030,
``authn_jwt`` 6020, ``authn_introspection`` 6010. A method stage acts only when its
credential is present: valid → it sets ``ctx.identity`` and the later methods step aside;
present but invalid → 401 at once (a bad credential is never silently ignored in favour of
another one); absent → the request goes on. This stage then refuses requests that still
have no identity, with one ``WWW-Authenticate`` challenge per accepted method.

With ``hide_credentials: true`` the method stages have, by the time this stage lets a
request on, removed every credential location of the route's methods (the key header and
parameter, ``Authorization``), whichever method identified the caller
(:mod:`dijk.auth.credentials`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage


class AuthnRequiredStage(Stage):
    name: ClassVar[str] = "authn_required"
    priority: ClassVar[int] = 6000
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS})

    def __init__(self, challenges: Sequence[tuple[str, str]]) -> None:
        self._challenges = tuple(dict.fromkeys(challenges))
        self._denial = Decision.deny(
            401, "auth.missing_credentials", "This route needs credentials.", self._challenges
        )

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        if ctx.identity is None:
            return self._denial
        return None
