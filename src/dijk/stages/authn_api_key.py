"""API key authentication (priority 6030).

Keys are never held in the configuration: a consumer lists SHA-256 digests of its keys, or
names environment variables that hold them (read once at load, then only the digest is
kept). A presented key is hashed and looked up by digest, then confirmed with
``hmac.compare_digest``: the look-up is keyed by a hash the caller cannot steer, so its
timing says nothing about which keys exist. Every accepted key is checked against the
revocation list (``storage.url``) on every request, so a key revoked through the admin API
stops working at once, on every instance sharing the store, without a restart.

The key travels in a header (``auth.api_key.header``) or, only if configured, in a query
parameter (``auth.api_key.query_param``; form-decoded, see :mod:`dijk.auth.credentials`).
A key sent twice — two headers, two parameters, or header and parameter — is refused: no
two components in the chain may disagree about which one counts. So is the key header spelt
with ``_`` for ``-`` (``X_API_Key``): it is not a credential source, but CGI/WSGI upstreams
read it as the key header. The key is compared byte for byte as received.

Like every ``authn_*`` stage, it only acts when its credential is present: no key means
"not this method" and the request goes on to the next method; ``authn_required``
(priority 6000) refuses requests that no method identified.

On a route with ``hide_credentials: true`` the key header and parameter are removed from
the request once the caller is identified, by this key or by an earlier method (mTLS).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import ClassVar

from dijk.auth.credentials import (
    drop_header,
    hides_credentials,
    param_variant_present,
    query_values,
    variant_present,
    without_param,
)
from dijk.auth.revocation import RevocationList
from dijk.config.loader import ConfigError, ConfigIssue
from dijk.config.models import ApiKeyAuthConfig, DijkConfig
from dijk.pipeline.context import Identity, RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

_MAX_KEY_LENGTH = 512
_OWS = " \t"


@dataclass(frozen=True, slots=True)
class KeyOwner:
    consumer: str
    scopes: frozenset[str]
    groups: frozenset[str]
    digest: bytes


class KeyRing:
    """Digest → consumer, built once per configuration."""

    def __init__(self, owners: dict[bytes, KeyOwner]) -> None:
        self._owners = owners

    def __len__(self) -> int:
        return len(self._owners)

    @classmethod
    def from_config(cls, config: DijkConfig, source: str = "") -> KeyRing:
        owners: dict[bytes, KeyOwner] = {}
        issues: list[ConfigIssue] = []
        for index, consumer in enumerate(config.consumers):
            for key_index, ref in enumerate(consumer.api_keys):
                path = f"consumers[{index}].api_keys[{key_index}]"
                if ref.env is not None:
                    value = os.environ.get(ref.env)
                    if not value:
                        issues.append(
                            ConfigIssue(
                                source,
                                None,
                                path + ".env",
                                f"environment variable {ref.env} is not set",
                            )
                        )
                        continue
                    digest = hashlib.sha256(value.encode()).digest()
                else:
                    assert ref.sha256 is not None
                    digest = bytes.fromhex(ref.sha256)
                if digest in owners:
                    issues.append(
                        ConfigIssue(source, None, path, "this key is already used by another entry")
                    )
                    continue
                owners[digest] = KeyOwner(
                    consumer.name, frozenset(consumer.scopes), frozenset(consumer.groups), digest
                )
        if issues:
            raise ConfigError(issues)
        return cls(owners)

    def find(self, presented: str) -> KeyOwner | None:
        digest = hashlib.sha256(presented.encode("latin-1")).digest()
        owner = self._owners.get(digest)
        if owner is None or not hmac.compare_digest(owner.digest, digest):
            return None
        return owner


class ApiKeyStage(Stage):
    name: ClassVar[str] = "authn_api_key"
    priority: ClassVar[int] = 6030
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS})

    def __init__(
        self, config: ApiKeyAuthConfig, ring: KeyRing, revocations: RevocationList | None = None
    ) -> None:
        self._header = config.header.lower()
        self._exactly_one = f"Send exactly one API key, in the {config.header} header" + (
            f" or the {config.query_param} parameter." if config.query_param else "."
        )
        self._param = config.query_param
        self._challenge = (challenge(config),)
        self._ring = ring
        self._revocations = revocations
        if revocations is not None:
            revocations.attach()

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        if ctx.identity is not None:
            self._hide(ctx)  # an earlier method identified the caller: a key is only baggage
            return None
        # A field value is what lies between optional SP/HTAB (RFC 9110 §5.5, OWS); the
        # server leaves trailing OWS in place. Nothing else is trimmed: a key with a
        # no-break space or NEL around it is another key.
        values = [value.strip(_OWS) for value in ctx.header_values(self._header)]
        if self._param is not None and ctx.query:
            values += query_values(ctx.query, self._param)
        if variant_present(ctx, self._header) or (
            self._param is not None and param_variant_present(ctx.query, self._param)
        ):
            # X_API_Key (or ?api.key=) is no credential here, but an upstream may read it as
            # X-API-Key (api_key): a key in that spelling is a second key, whether or not
            # one came in the header.
            return Decision.deny(401, "auth.invalid_key", self._exactly_one, self._challenge)
        if not values:
            return None  # not this method; authn_required decides if none applied
        if len(values) > 1:
            return Decision.deny(401, "auth.invalid_key", self._exactly_one, self._challenge)
        if not values[0] or len(values[0]) > _MAX_KEY_LENGTH:
            return self._invalid()
        owner = self._ring.find(values[0])
        if owner is None:
            return self._invalid()
        credential_id = "key:" + owner.digest[:8].hex()
        if self._revocations is not None and await self._revocations.credential_revoked(
            credential_id
        ):
            return Decision.deny(
                401, "auth.key_revoked", "The API key has been revoked.", self._challenge
            )
        ctx.identity = Identity(
            consumer=owner.consumer,
            method="api_key",
            scopes=owner.scopes,
            credential_id=credential_id,
            groups=owner.groups,
        )
        self._hide(ctx)
        return None

    def _hide(self, ctx: RequestContext) -> None:
        """``hide_credentials``: the upstream gets neither the key header nor the parameter."""
        if not hides_credentials(ctx):
            return
        drop_header(ctx, self._header)
        if self._param is not None:
            ctx.query = without_param(ctx.query, self._param)

    def _invalid(self) -> Decision:
        return Decision.deny(401, "auth.invalid_key", "The API key is not valid.", self._challenge)

    async def close(self) -> None:
        if self._revocations is not None:
            await self._revocations.detach()


def challenge(config: ApiKeyAuthConfig) -> tuple[str, str]:
    """The ``WWW-Authenticate`` challenge naming the header (and parameter) the key goes in."""
    value = f'ApiKey realm="dijk", header="{config.header}"'
    if config.query_param is not None:
        value += f', query="{config.query_param}"'
    return ("WWW-Authenticate", value)
