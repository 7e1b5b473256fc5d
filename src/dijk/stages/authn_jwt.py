"""JWT bearer authentication (priority 6020): tokens verified locally against a JWKS.

The work is in :mod:`dijk.auth.jwt` (strict parsing, key-bound algorithms, claim rules,
the verified-token cache) and :mod:`dijk.auth.jwks` (key sets). This stage picks the token
out of ``Authorization: Bearer``, checks the revocation list (by ``jti`` and by token
digest) on every request, cached or not, and turns the outcome into an identity or a 401
with ``WWW-Authenticate: Bearer error="invalid_token"``.

It only claims bearer tokens shaped like a JWS (three base64url segments). When the route
also accepts ``introspection``, an opaque token is left to that stage.

The verified ``auth.jwt.consumer_claim`` (``sub`` by default) names the caller through
:class:`~dijk.auth.consumers.TokenConsumers`: a subject listed in a consumer's
``jwt_subjects`` (at the configured issuer) is that consumer — its limits, concurrency cap
and groups, the token's scopes capped by the consumer's — and any other subject is the
consumer ``jwt:<subject>``, which can never be a configured name.

On a route with ``hide_credentials: true`` the ``Authorization`` header is removed once the
caller is identified, by this token or by an earlier method (see
:mod:`dijk.auth.credentials`); an opaque token left to introspection is left in place.
"""

from __future__ import annotations

from typing import ClassVar

from dijk.auth import AuthFailure
from dijk.auth.bearer import bearer_token, failure_headers, looks_like_jws
from dijk.auth.credentials import AUTHORIZATION, drop_header, hides_credentials
from dijk.auth.jwt import JwtVerifier
from dijk.auth.revocation import RevocationList
from dijk.pipeline.context import Identity, RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

REVOKED = AuthFailure("auth.token_revoked", "The token has been revoked.")
NOT_A_JWT = AuthFailure("auth.invalid_token", "The token is malformed.")


class JwtStage(Stage):
    name: ClassVar[str] = "authn_jwt"
    priority: ClassVar[int] = 6020
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS})

    def __init__(
        self,
        verifier: JwtVerifier,
        revocations: RevocationList | None,
        *,
        opaque_tokens_elsewhere: bool = False,
    ) -> None:
        """``opaque_tokens_elsewhere``: the route also accepts introspection."""
        self._verifier = verifier
        self._consumers = verifier.consumers
        self._revocations = revocations
        self._pass_opaque = opaque_tokens_elsewhere
        verifier.attach()
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
        if not looks_like_jws(token):
            return None if self._pass_opaque else deny(NOT_A_JWT)
        verified = await self._verifier.verify(token)
        if isinstance(verified, AuthFailure):
            return deny(verified)
        revocations = self._revocations
        if revocations is not None and (
            await revocations.credential_revoked(verified.credential_id)
            or (verified.jti is not None and await revocations.jti_revoked(verified.jti))
        ):
            return deny(REVOKED)
        caller = self._consumers.caller(
            verified.claims.get("iss"), verified.consumer, verified.scopes, verified.groups
        )
        ctx.identity = Identity(
            consumer=caller.consumer,
            method="jwt",
            scopes=caller.scopes,
            credential_id=verified.credential_id,
            groups=caller.groups,
            claims=verified.claims,
        )
        if hides_credentials(ctx):
            drop_header(ctx, AUTHORIZATION)
        return None

    async def close(self) -> None:
        await self._verifier.detach()
        if self._revocations is not None:
            await self._revocations.detach()


def deny(failure: AuthFailure) -> Decision:
    """A refused bearer token: 401 with the RFC 6750 challenge; never echoes the token."""
    return Decision.deny(failure.status, failure.reason, failure.detail, failure_headers(failure))
