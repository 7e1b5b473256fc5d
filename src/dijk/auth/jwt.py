"""JWT verification: a strict JWS parser, key-bound signatures, explicit claim rules, a cache.

Order of work, cheapest refusal first, and nothing from the token trusted before its
signature is checked:

1. size cap, then exactly three strict base64url segments (canonical encoding, no padding,
   no stray characters: a lenient decoder would let two spellings of one token exist);
2. the protected header: a JSON object without duplicate members; ``alg`` in the configured
   allowlist (never ``none``); ``crit`` refused (we implement no extension, RFC 7515
   §4.1.11); ``jku``/``x5u``/``jwk``/``x5c`` refused (a token never says where its key
   is); ``b64`` refused; ``typ``, if present, a JWT type;
3. the key the ``kid`` names, whose bound algorithms must include ``alg`` (see
   :mod:`dijk.auth.jwks`); an unknown ``kid`` refreshes a URL key set, rate-limited;
4. the signature, by the key's own algorithm object;
5. the claims: ``exp``, ``iat``, ``iss``, ``aud`` required; ``nbf`` honoured; ``leeway_s``;
   ``exp - iat`` at most ``max_lifetime_s``; ``iat`` not in the future.

A verified token is cached by its SHA-256 until it expires, so a hot token costs a hash
and a dictionary look-up; the cache forgets everything when the key set changes, so a key
removed at the issuer stops working for cached tokens too. Revocation is checked by the
stage on every request, cached or not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dijk.auth import AuthFailure
from dijk.auth.consumers import JWT, TokenConsumers
from dijk.auth.jwks import JwksSource, KeySet

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_KEY_HEADERS = ("jku", "x5u", "jwk", "x5c")
_JWT_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_MAX_KID = 256

MALFORMED = AuthFailure("auth.invalid_token", "The token is malformed.")
TOO_LARGE = AuthFailure("auth.invalid_token", "The token is too large.")
BAD_ALGORITHM = AuthFailure("auth.invalid_token", "The token's algorithm is not accepted.")
CRITICAL = AuthFailure("auth.invalid_token", "The token has critical header parameters.")
KEY_IN_TOKEN = AuthFailure("auth.invalid_token", "The token must not name or carry its key.")
BAD_TYPE = AuthFailure("auth.invalid_token", "The token is not a JWT.")
UNKNOWN_KEY = AuthFailure("auth.invalid_token", "The token was not signed by a known key.")
BAD_SIGNATURE = AuthFailure("auth.invalid_signature", "The token signature is not valid.")
EXPIRED = AuthFailure("auth.expired_token", "The token has expired.")
NOT_YET_VALID = AuthFailure("auth.token_not_yet_valid", "The token is not valid yet.")
ISSUED_IN_FUTURE = AuthFailure("auth.invalid_token", "The token was issued in the future.")
MISSING_CLAIM = AuthFailure("auth.invalid_token", "The token lacks a required claim.")
WRONG_ISSUER = AuthFailure("auth.invalid_token", "The token was issued by another issuer.")
WRONG_AUDIENCE = AuthFailure("auth.invalid_token", "The token is meant for another audience.")
TOO_LONG_LIVED = AuthFailure("auth.invalid_token", "The token lives longer than allowed.")
NO_CONSUMER = AuthFailure("auth.invalid_token", "The token does not name its subject.")


@dataclass(frozen=True, slots=True)
class JwtRules:
    """The claim rules, from ``auth.jwt`` in the configuration."""

    issuer: str
    audiences: frozenset[str]
    algorithms: frozenset[str]
    max_lifetime_s: float
    leeway_s: float
    max_token_bytes: int
    consumer_claim: str = "sub"
    groups_claim: str | None = None
    require_jti: bool = False


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a valid token established; cached until ``expires``."""

    consumer: str
    scopes: frozenset[str]
    groups: frozenset[str]
    credential_id: str
    jti: str | None
    expires: float
    claims: dict[str, Any]
    key_generation: int


class JwtVerifier:
    """Verifies tokens for one configuration; shared by every route that accepts ``jwt``.

    ``consumers`` links verified subjects to configured consumers (see
    :mod:`dijk.auth.consumers`); it travels with the verifier so that every route's stage
    uses the one index built for the configuration. A verified token still reports the raw
    claim value as ``consumer``: the stage applies the link.
    """

    def __init__(
        self,
        rules: JwtRules,
        source: JwksSource,
        *,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        consumers: TokenConsumers | None = None,
    ) -> None:
        self.rules = rules
        self.source = source
        self.consumers = consumers if consumers is not None else TokenConsumers(JWT)
        self._clock = clock
        self._cache: OrderedDict[bytes, VerifiedToken] = OrderedDict()
        self._cache_size = cache_size
        self._cache_generation = -1
        self._users = 0

    def attach(self) -> None:
        self._users += 1

    async def detach(self) -> None:
        self._users -= 1
        if self._users <= 0:
            await self.source.close()

    async def verify(self, token: str) -> VerifiedToken | AuthFailure:
        """Check one token completely; never raises for anything the token contains."""
        if len(token) > self.rules.max_token_bytes:
            return TOO_LARGE
        digest = hashlib.sha256(token.encode("latin-1")).digest()
        keys = await self.source.keys()
        cached = self._cached(digest, keys)
        if cached is not None:
            return self._still_valid(cached)
        parsed = parse_compact(token)
        if isinstance(parsed, AuthFailure):
            return parsed
        header, claims_bytes, signing_input, signature = parsed
        checked = self.check_header(header)
        if isinstance(checked, AuthFailure):
            return checked
        algorithm, kid = checked
        key = keys.find(kid, algorithm)
        if key is None and kid is not None and not keys.knows(kid):
            refreshed = await self.source.refresh_for_unknown_kid()
            if refreshed is not None and refreshed is not keys:
                keys = refreshed
                key = keys.find(kid, algorithm)
        if key is None:
            return UNKNOWN_KEY
        if not key.verify(algorithm, signing_input, signature):
            return BAD_SIGNATURE
        claims = _json_object(claims_bytes)
        if claims is None:
            return MALFORMED
        verified = self.check_claims(claims, digest, keys.generation)
        if isinstance(verified, AuthFailure):
            return verified
        self._remember(digest, verified, keys)
        return verified

    # ---- the steps, public so that the advisory tests can aim at each ----------------------
    def check_header(self, header: dict[str, Any]) -> tuple[str, str | None] | AuthFailure:
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.rules.algorithms:
            return BAD_ALGORITHM
        if "crit" in header:
            return CRITICAL
        if any(name in header for name in _KEY_HEADERS):
            return KEY_IN_TOKEN
        if "b64" in header:
            return CRITICAL
        token_type = header.get("typ")
        if token_type is not None and (
            not isinstance(token_type, str) or token_type.lower() not in _JWT_TYPES
        ):
            return BAD_TYPE
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > _MAX_KID):
            return UNKNOWN_KEY
        return algorithm, kid

    def check_claims(
        self, claims: dict[str, Any], digest: bytes, generation: int
    ) -> VerifiedToken | AuthFailure:
        rules = self.rules
        now = self._clock()
        expires, issued = as_time(claims.get("exp")), as_time(claims.get("iat"))
        if expires is None or issued is None:
            return MISSING_CLAIM
        not_before = as_time(claims.get("nbf"))
        if not_before is None and "nbf" in claims:
            return MALFORMED
        if now > expires + rules.leeway_s:
            return EXPIRED
        if not_before is not None and now + rules.leeway_s < not_before:
            return NOT_YET_VALID
        if issued > now + rules.leeway_s:
            return ISSUED_IN_FUTURE
        if expires - issued > rules.max_lifetime_s:
            return TOO_LONG_LIVED
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            return MISSING_CLAIM
        if issuer != rules.issuer:
            return WRONG_ISSUER
        audience = claims.get("aud")
        if isinstance(audience, str):
            audience = [audience]
        if not isinstance(audience, list) or not audience:
            return MISSING_CLAIM
        if not any(isinstance(aud, str) and aud in rules.audiences for aud in audience):
            return WRONG_AUDIENCE
        jti = claims.get("jti")
        if jti is not None and (not isinstance(jti, str) or not jti or len(jti) > 256):
            return MALFORMED
        if jti is None and rules.require_jti:
            return MISSING_CLAIM
        consumer = claims.get(rules.consumer_claim)
        if not isinstance(consumer, str) or not consumer or len(consumer) > 256:
            return NO_CONSUMER
        return VerifiedToken(
            consumer=consumer,
            scopes=scopes_from(claims),
            groups=groups_from(claims, rules.groups_claim),
            credential_id="tok:" + digest[:8].hex(),
            jti=jti,
            expires=expires,
            claims=claims,
            key_generation=generation,
        )

    # ---- cache ------------------------------------------------------------------------------
    def _cached(self, digest: bytes, keys: KeySet) -> VerifiedToken | None:
        if self._cache_generation != keys.generation:
            self._cache.clear()  # keys changed: a removed key must not live on in the cache
            self._cache_generation = keys.generation
            return None
        return self._cache.get(digest)

    def _still_valid(self, verified: VerifiedToken) -> VerifiedToken | AuthFailure:
        if self._clock() > verified.expires + self.rules.leeway_s:
            return EXPIRED
        return verified

    def _remember(self, digest: bytes, verified: VerifiedToken, keys: KeySet) -> None:
        if self._cache_size <= 0 or verified.key_generation != keys.generation:
            return
        if self._cache_generation != keys.generation:
            self._cache.clear()
            self._cache_generation = keys.generation
        self._cache[digest] = verified
        if len(self._cache) > self._cache_size:
            self._evict()

    def _evict(self) -> None:
        now = self._clock()
        for digest in [d for d, v in self._cache.items() if v.expires <= now]:
            del self._cache[digest]
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)  # the oldest entry


def rules_from_config(config: Any) -> JwtRules:
    """``auth.jwt`` (a :class:`~dijk.config.models.JwtAuthConfig`) → :class:`JwtRules`."""
    audience = config.audience
    audiences = frozenset([audience] if isinstance(audience, str) else audience)
    return JwtRules(
        issuer=config.issuer,
        audiences=audiences,
        algorithms=frozenset(config.algorithms),
        max_lifetime_s=config.max_lifetime_s,
        leeway_s=config.leeway_s,
        max_token_bytes=config.max_token_bytes,
        consumer_claim=config.consumer_claim,
        groups_claim=config.groups_claim,
        require_jti=config.require_jti,
    )


# ---- parsing ----------------------------------------------------------------------------------


def parse_compact(token: str) -> tuple[dict[str, Any], bytes, bytes, bytes] | AuthFailure:
    """Split and strictly decode a compact JWS: (header, payload, signing input, signature)."""
    parts = token.split(".")
    if len(parts) != 3:
        return MALFORMED
    encoded_header, encoded_payload, encoded_signature = parts
    if not encoded_header or not encoded_payload or not encoded_signature:
        return MALFORMED
    header_bytes = b64url_decode(encoded_header)
    payload = b64url_decode(encoded_payload)
    signature = b64url_decode(encoded_signature)
    if header_bytes is None or payload is None or signature is None:
        return MALFORMED
    header = _json_object(header_bytes)
    if header is None:
        return MALFORMED
    signing_input = (encoded_header + "." + encoded_payload).encode("ascii")
    return header, payload, signing_input, signature


def b64url_decode(segment: str) -> bytes | None:
    """Strict base64url without padding: the canonical spelling only, or ``None``."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        return None
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != segment.encode("ascii"):
        return None  # non-zero unused bits: a second spelling of the same bytes
    return decoded


def _reject_duplicates(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError("duplicate member")
        result[name] = value
    return result


def _json_object(data: bytes) -> dict[str, Any] | None:
    """A JSON object with unique member names (RFC 7515 §4 says refuse duplicates)."""
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def as_time(value: object) -> float | None:
    """A NumericDate (RFC 7519 §2): a finite JSON number, not a boolean; else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def space_separated(value: str) -> frozenset[str]:
    """The items of a space-delimited list (RFC 6749 §3.3: separated by SP only). A
    no-break space, NEL or any other character is part of an item, never a separator, so
    one odd scope can never become two granted ones."""
    return frozenset(item for item in value.split(" ") if item)


def scopes_from(claims: dict[str, Any]) -> frozenset[str]:
    """Scopes from ``scope`` (space-separated, RFC 8693/9068) or ``scp`` (string or list)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return space_separated(scope)
    scp = claims.get("scp")
    if isinstance(scp, str):
        return space_separated(scp)
    if isinstance(scp, list):
        return frozenset(item for item in scp if isinstance(item, str))
    return frozenset()


def groups_from(claims: dict[str, Any], claim: str | None) -> frozenset[str]:
    if claim is None:
        return frozenset()
    value = claims.get(claim)
    if isinstance(value, str):
        return space_separated(value)
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


__all__ = [
    "JwtRules",
    "JwtVerifier",
    "VerifiedToken",
    "as_time",
    "b64url_decode",
    "parse_compact",
    "rules_from_config",
    "scopes_from",
]
