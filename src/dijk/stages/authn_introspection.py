"""OAuth2 token introspection (priority 6010): opaque bearer tokens checked at the issuer.

The client, its caches and the rules for an answer are in :mod:`dijk.auth.introspection`.
This stage takes the bearer token (JWS-shaped tokens are left to ``authn_jwt`` when the
route accepts both), checks the revocation list, and turns the answer into an identity.

The answer's ``auth.introspection.consumer_claim`` (``client_id`` by default: RFC 7662 names
the client the token was issued to, the natural unit for a consumer; use ``sub`` for the
resource owner) names the caller: a value listed in a consumer's ``introspection_subjects``
is that consumer (see :mod:`dijk.auth.consumers`), any other is ``introspection:<value>``.

Endpoint down or slow: by default a 503 ``auth.introspection_unavailable`` (fail closed).
With ``auth.introspection.on_unavailable: allow`` the request goes on as the consumer
``unverified`` with no scopes and no groups, so that only routes which need no scope stay
reachable; each such request is logged and counted as a stage fault.

On a route with ``hide_credentials: true`` the ``Authorization`` header is removed once the
caller is identified — by this token (verified or, with ``allow``, unverified) or by an
earlier method (see :mod:`dijk.auth.credentials`).
"""

from __future__ import annotations

from typing import ClassVar

import structlog

from dijk import metrics
from dijk.auth import AuthFailure
from dijk.auth.bearer import bearer_token, looks_like_jws
from dijk.auth.credentials import AUTHORIZATION, drop_header, hides_credentials
from dijk.auth.introspection import IntrospectionUnavailable, Introspector
from dijk.auth.revocation import RevocationList, credential_for_token
from dijk.pipeline.context import Identity, RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage
from dijk.stages.authn_jwt import REVOKED, deny

log = structlog.get_logger("dijk.stages.introspection")

UNVERIFIED = "unverified"


class IntrospectionStage(Stage):
    name: ClassVar[str] = "authn_introspection"
    priority: ClassVar[int] = 6010
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS})

    def __init__(
        self,
        introspector: Introspector,
        revocations: RevocationList | None,
        *,
        jwts_elsewhere: bool = False,
    ) -> None:
        """``jwts_elsewhere``: the route also accepts ``jwt``, which claims JWS tokens."""
        self._introspector = introspector
        self._consumers = introspector.consumers
        self._revocations = revocations
        self._skip_jws = jwts_elsewhere
        self._allow_when_down = introspector.config.on_unavailable == "allow"
        introspector.attach()
        if revocations is not None:
            revocations.attach()

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        if ctx.identity is not None:
            if hides_credentials(ctx):
                drop_header(ctx, AUTHORIZATION)  # sent along, never checked: not forwarded
            return None
        token = bearer_token(ctx.headers)
        if token is None:
            return None
        if isinstance(token, AuthFailure):
            return deny(token)
        if self._skip_jws and looks_like_jws(token):
            return None
        revocations = self._revocations
        if revocations is not None and await revocations.credential_revoked(
            credential_for_token(token)
        ):
            return deny(REVOKED)
        try:
            answer = await self._introspector.introspect(token)
        except IntrospectionUnavailable as error:
            if not self._allow_when_down:
                raise
            metrics.stage_fault(self.name)
            log.warning(
                "introspection_unavailable_allowed",
                request_id=ctx.request_id,
                why=error.why,
                route=ctx.route_name,
            )
            ctx.annotations["auth_unverified"] = True
            ctx.identity = Identity(
                consumer=UNVERIFIED,
                method="introspection",
                credential_id=credential_for_token(token),
            )
            if hides_credentials(ctx):
                drop_header(ctx, AUTHORIZATION)
            return None
        if isinstance(answer, AuthFailure):
            return deny(answer)
        caller = self._consumers.caller(None, answer.consumer, answer.scopes, answer.groups)
        ctx.identity = Identity(
            consumer=caller.consumer,
            method="introspection",
            scopes=caller.scopes,
            credential_id=answer.credential_id,
            groups=caller.groups,
            claims=answer.claims,
        )
        if hides_credentials(ctx):
            drop_header(ctx, AUTHORIZATION)
        return None

    async def close(self) -> None:
        await self._introspector.detach()
        if self._revocations is not None:
            await self._revocations.detach()
