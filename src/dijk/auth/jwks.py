"""JSON Web Key Sets compiled into verification keys, each bound to its own algorithms.

Algorithm confusion is made impossible here, not in the verifier: every key is turned into
a :class:`VerificationKey` that carries the exact set of algorithms it may verify, derived
from its ``kty`` (and curve), its ``alg`` if published, and the configured allowlist. An
RSA key can only ever verify RS*/PS*, an EC key only the ES* of its curve, an ``oct`` secret
only HS*, and a key set never mixes secrets with public keys. The token's ``alg`` header
selects nothing by itself: it must be one of the algorithms bound to the key its ``kid``
names.

Keys that are unsafe to use are refused when the set loads: private key material in a set
meant for verification, RSA below 2048 bits or with a tiny public exponent, moduli with the
ROCA fingerprint (CVE-2017-15361), EC points not on their curve, ``alg``/curve mismatches,
HMAC secrets shorter than their hash, duplicate ``kid``. Keys published for another purpose
(``use: enc``, ``key_ops`` without ``verify``, ``alg`` of an encryption scheme or outside the
allowlist) are skipped, because real issuers publish them beside their signing keys.

``JwksSource`` holds the current set: read once from a file, or fetched from a URL with a
timeout and a size cap, cached, fetched again when too old or when a token names an
unknown ``kid`` (at most once per refresh interval, so random ``kid`` values cannot turn
the gateway into a fetch amplifier). Nothing in a token (``jku``, ``x5u``, ``jwk``, ``x5c``)
ever decides where keys come from.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError

from dijk.pipeline.stage import DependencyUnavailable

log = structlog.get_logger("dijk.auth.jwks")

MAX_JWKS_BYTES = 512 * 1024
MAX_KEYS = 100
MIN_RSA_BITS = 2048

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHM_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_EC_CURVE_TYPES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
OKP_CURVES = frozenset({"Ed25519", "Ed448"})
HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
SIGNATURE_ALGORITHMS = (
    RSA_ALGORITHMS | set(EC_ALGORITHM_BY_CURVE.values()) | {"EdDSA"} | set(HMAC_MIN_BYTES)
)
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})

# PyJWT's algorithm objects do the primitive operations (padding, DER conversion, constant
# time HMAC comparison); which key may use which of them is decided in this module.
ALGORITHMS: dict[str, Algorithm] = {
    name: algorithm
    for name, algorithm in get_default_algorithms().items()
    if name in SIGNATURE_ALGORITHMS
}


class JwksError(ValueError):
    """A key set (or one key in it) that must not be used; the message names the key."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key (or HMAC secret) and the only algorithms it may verify."""

    kid: str | None
    kty: str
    algorithms: frozenset[str]
    key: Any

    def verify(self, algorithm: str, signing_input: bytes, signature: bytes) -> bool:
        if algorithm not in self.algorithms:
            return False
        return bool(ALGORITHMS[algorithm].verify(signing_input, self.key, signature))


class KeySet:
    """Verification keys by ``kid``; immutable. ``generation`` changes on every refresh."""

    def __init__(self, keys: Iterable[VerificationKey], generation: int = 0) -> None:
        self.keys = tuple(keys)
        self.generation = generation
        self._by_kid = {key.kid: key for key in self.keys if key.kid is not None}

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, kid: str | None, algorithm: str) -> VerificationKey | None:
        """The key a token names; without ``kid`` only if exactly one key fits ``algorithm``."""
        if kid is not None:
            key = self._by_kid.get(kid)
            return key if key is not None and algorithm in key.algorithms else None
        fitting = [key for key in self.keys if algorithm in key.algorithms]
        return fitting[0] if len(fitting) == 1 else None

    def knows(self, kid: str) -> bool:
        return kid in self._by_kid


def parse_jwks(
    document: bytes | Mapping[str, Any],
    algorithms: Iterable[str],
    *,
    strict: bool = True,
    generation: int = 0,
) -> KeySet:
    """Compile a JWKS document; raise :class:`JwksError` if it is unsafe or has no usable key.

    ``strict`` (local files): a broken signing key is an error. Not strict (fetched sets):
    a broken key is skipped with a warning, so one bad key at the issuer does not take all
    authentication down; the set as a whole must still be sound.
    """
    allowed = frozenset(algorithms)
    if isinstance(document, bytes | bytearray):
        if len(document) > MAX_JWKS_BYTES:
            raise JwksError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
        try:
            data = orjson.loads(document)
        except orjson.JSONDecodeError:
            raise JwksError("the JWKS is not valid JSON") from None
    else:
        data = document
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise JwksError("a JWKS is a JSON object with a 'keys' array")
    entries = data["keys"]
    if len(entries) > MAX_KEYS:
        raise JwksError(f"the JWKS has more than {MAX_KEYS} keys")
    keys: list[VerificationKey] = []
    kinds: set[str] = set()
    seen_kids: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise JwksError(f"keys[{index}] is not a JSON object")
        label = _label(index, entry)
        kty = entry.get("kty")
        if isinstance(kty, str):
            kinds.add("secret" if kty == "oct" else "public")
        try:
            key = _compile_key(entry, allowed, label)
        except JwksError as error:
            if strict:
                raise
            log.warning("jwks_key_refused", key=label, problem=str(error))
            continue
        if key is None:
            continue
        if key.kid is not None:
            if key.kid in seen_kids:
                raise JwksError(f"{label}: duplicate kid (a token could not say which key)")
            seen_kids.add(key.kid)
        keys.append(key)
    if len(kinds) > 1:
        raise JwksError("the JWKS mixes HMAC secrets with public keys (algorithm confusion)")
    if not keys:
        raise JwksError("the JWKS has no key usable with the configured algorithms")
    return KeySet(keys, generation)


def _label(index: int, entry: Mapping[str, Any]) -> str:
    kid = entry.get("kid")
    if isinstance(kid, str) and kid.isprintable() and len(kid) <= 64:
        return f"keys[{index}] (kid {kid!r})"
    return f"keys[{index}]"


def _compile_key(
    entry: Mapping[str, Any], allowed: frozenset[str], label: str
) -> VerificationKey | None:
    """One JWK → a bound key; ``None`` for keys published for something else."""
    if entry.get("kty") != "oct" and _PRIVATE_MEMBERS & entry.keys():
        raise JwksError(f"{label}: private key material in a verification key set")
    use = entry.get("use")
    if use is not None and use != "sig":
        return None
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    published = entry.get("alg")
    if published is not None and (
        not isinstance(published, str) or published not in SIGNATURE_ALGORITHMS
    ):
        if published == "none":
            raise JwksError(f"{label}: alg 'none' is never accepted")
        return None  # an encryption key, or an algorithm we do not implement
    kid = entry.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
        raise JwksError(f"{label}: kid must be a non-empty string of at most 256 characters")
    kty = entry.get("kty")
    if kty == "RSA":
        candidates = RSA_ALGORITHMS
    elif kty == "EC":
        curve = entry.get("crv")
        if curve not in EC_ALGORITHM_BY_CURVE:
            raise JwksError(f"{label}: unsupported EC curve {curve!r}")
        candidates = frozenset({EC_ALGORITHM_BY_CURVE[curve]})
        if published is not None and published not in candidates:
            raise JwksError(f"{label}: alg {published} does not match curve {curve}")
    elif kty == "OKP":
        if entry.get("crv") not in OKP_CURVES:
            raise JwksError(f"{label}: unsupported OKP curve {entry.get('crv')!r}")
        candidates = frozenset({"EdDSA"})
    elif kty == "oct":
        candidates = frozenset(HMAC_MIN_BYTES)
    else:
        raise JwksError(f"{label}: unsupported key type {kty!r}")
    if published is not None:
        if published not in candidates:
            raise JwksError(f"{label}: alg {published} cannot be used with a {kty} key")
        candidates = frozenset({published})
    bound = candidates & allowed
    if not bound:
        return None  # a valid key for an algorithm this gateway does not accept
    material = _load(entry, kty, next(iter(bound)), label)
    if kty == "RSA":
        _check_rsa(material, label)
    elif kty == "EC":
        expected = _EC_CURVE_TYPES[entry["crv"]]
        if not isinstance(material.curve, expected):  # pragma: no cover - PyJWT checks too
            raise JwksError(f"{label}: key is not on curve {entry['crv']}")
    elif kty == "oct":
        bound = frozenset(alg for alg in bound if len(material) >= HMAC_MIN_BYTES[alg])
        if not bound:
            raise JwksError(f"{label}: HMAC secret is shorter than the hash (RFC 7518 §3.2)")
    return VerificationKey(kid, kty, bound, material)


def _load(entry: Mapping[str, Any], kty: str, algorithm: str, label: str) -> Any:
    try:
        return ALGORITHMS[algorithm].from_jwk(dict(entry))
    except (InvalidKeyError, ValueError, TypeError, KeyError) as error:
        raise JwksError(f"{label}: not a valid {kty} key ({type(error).__name__})") from None


def _check_rsa(key: Any, label: str) -> None:
    if not isinstance(key, rsa.RSAPublicKey):
        raise JwksError(f"{label}: not an RSA public key")
    numbers = key.public_numbers()
    if numbers.n.bit_length() < MIN_RSA_BITS:
        raise JwksError(f"{label}: RSA key of {numbers.n.bit_length()} bits (minimum 2048)")
    if numbers.e < 3 or numbers.e % 2 == 0:
        raise JwksError(f"{label}: RSA public exponent {numbers.e} is unsafe")
    if has_roca_fingerprint(numbers.n):
        raise JwksError(f"{label}: RSA modulus has the ROCA fingerprint (CVE-2017-15361)")


# ROCA (CVE-2017-15361): primes made by a flawed Infineon generator are p = k*M + (65537^a
# mod M), where M is the product of the first 126 primes for 2048-bit keys (more for larger
# keys), so the modulus is a power of 65537 modulo each of those primes. A random modulus
# passes the test for all odd primes up to 701 with probability about 2^-167.
_ROCA_PRIMES = tuple(p for p in range(3, 702) if all(p % q for q in range(2, math.isqrt(p) + 1)))


def _subgroup(prime: int) -> frozenset[int]:
    members, value = set(), 1
    while value not in members:
        members.add(value)
        value = value * 65537 % prime
    return frozenset(members)


_ROCA_SUBGROUPS = tuple((prime, _subgroup(prime)) for prime in _ROCA_PRIMES)


def has_roca_fingerprint(modulus: int) -> bool:
    return all(modulus % prime in members for prime, members in _ROCA_SUBGROUPS)


# ---- sources --------------------------------------------------------------------------------


class JwksSource:
    """The current key set: from a file (fixed) or a URL (fetched, cached, refreshed)."""

    def __init__(
        self,
        algorithms: Iterable[str],
        *,
        keys: KeySet | None = None,
        url: str | None = None,
        timeout_s: float = 3.0,
        refresh_interval_s: float = 60.0,
        max_age_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (keys is None) == (url is None):
            raise ValueError("give a key set or a URL")
        self.algorithms = frozenset(algorithms)
        self.url = url
        self._keys = keys
        self._timeout_s = timeout_s
        self._refresh_interval_s = refresh_interval_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self._session: aiohttp.ClientSession | None = None
        self._generation = 0
        self.fetches = 0

    @classmethod
    def from_file(cls, path: str, algorithms: Iterable[str]) -> JwksSource:
        """Read and compile a JWKS file now (configuration load); JwksError if unusable."""
        try:
            with open(path, "rb") as handle:
                document = handle.read(MAX_JWKS_BYTES + 1)
        except OSError as error:
            raise JwksError(f"cannot read {path}: {error.strerror}") from None
        allowed = list(algorithms)
        return cls(allowed, keys=parse_jwks(document, allowed, strict=True))

    @property
    def current(self) -> KeySet | None:
        return self._keys

    async def keys(self) -> KeySet:
        """The key set to verify with; fetched first if there is none or it is too old."""
        if self.url is None:
            assert self._keys is not None
            return self._keys
        if self._keys is None or self._too_old():
            await self._refresh(force=self._keys is None)
        if self._keys is None:
            raise DependencyUnavailable(
                "auth.jwks_unavailable", "The token issuer's keys cannot be fetched right now."
            )
        return self._keys

    async def refresh_for_unknown_kid(self) -> KeySet | None:
        """Fetch again because a token named an unknown ``kid``; rate-limited."""
        if self.url is None:
            return self._keys
        await self._refresh(force=False)
        return self._keys

    def _too_old(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._max_age_s

    async def _refresh(self, *, force: bool) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        attempted = self._attempted_at
        async with self._lock:
            if self._attempted_at != attempted:
                return  # another request fetched while this one waited
            now = self._clock()
            if (
                not force
                and self._attempted_at is not None
                and now - self._attempted_at < self._refresh_interval_s
            ):
                return
            if force and self._attempted_at is not None and now - self._attempted_at < 1.0:
                return  # an outage: at most one attempt per second, not one per request
            self._attempted_at = now
            try:
                document = await self._fetch()
                self._generation += 1
                keys = parse_jwks(
                    document, self.algorithms, strict=False, generation=self._generation
                )
            except (JwksError, aiohttp.ClientError, TimeoutError, OSError) as error:
                log.warning(
                    "jwks_fetch_failed",
                    url=self.url,
                    error=type(error).__name__,
                    problem=str(error)[:200] if isinstance(error, JwksError) else None,
                    keeping_keys=self._keys is not None,
                )
                return
            self._keys = keys
            self._fetched_at = now
            log.info("jwks_fetched", url=self.url, keys=len(keys), generation=keys.generation)

    async def _fetch(self) -> bytes:
        assert self.url is not None
        self.fetches += 1
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                headers={"Accept": "application/json, application/jwk-set+json"},
            )
        async with self._session.get(self.url, allow_redirects=False) as response:
            if response.status != 200:
                raise JwksError(f"the JWKS endpoint answered HTTP {response.status}")
            declared = response.content_length
            if declared is not None and declared > MAX_JWKS_BYTES:
                raise JwksError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
            body = await response.content.read(MAX_JWKS_BYTES + 1)
            if len(body) > MAX_JWKS_BYTES:
                raise JwksError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
            return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
