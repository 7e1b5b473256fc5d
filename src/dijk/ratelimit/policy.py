"""Compiled rate-limit rules: what to count for a request, and the headers that describe it.

Compiled once per configuration: the key parts become small functions,
the policy header items are preformatted strings. Per request only look-ups and string
joins remain.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from dijk.config.models import RateLimitRule
from dijk.ratelimit.algorithms import Algorithm, Outcome
from dijk.ratelimit.backend import Bucket

if TYPE_CHECKING:
    from dijk.pipeline.context import RequestContext

_PERIOD_SECONDS = {"day": 86_400, "month": 2_592_000}  # a month is nominally 30 days in w=
_IDENTITY_PARTS = ("consumer", "api_key", "claim:")

KeyPart = Callable[["RequestContext"], str]


def digest(value: str) -> str:
    """A short, fixed-size stand-in for a free-form value (headers, claims, usernames).

    Keys never hold what a client sent: no PII in the storage, no key injection through
    ':' or newlines, and a bounded key length.
    """
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


@lru_cache(maxsize=16_384)
def client_network(address: str, ipv4_prefix: int, ipv6_prefix: int) -> str:
    """The counting unit for an address: the address itself, or its network for a prefix.

    IPv6 clients usually hold a whole /64, so counting single addresses would let one
    client rotate through 2**64 buckets. IPv4-mapped IPv6 addresses count as IPv4.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "invalid:" + digest(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        if ipv4_prefix >= 32:
            return str(ip)
        return str(ipaddress.ip_network(f"{ip}/{ipv4_prefix}", strict=False))
    if ipv6_prefix >= 128:
        return str(ip)
    return str(ipaddress.ip_network(f"{ip}/{ipv6_prefix}", strict=False))


def needs_identity(key: str) -> bool:
    """True if the key has a part only known after authentication."""
    return any(part.startswith(_IDENTITY_PARTS) for part in key.split("+"))


def _part(name: str, rule: RateLimitRule) -> KeyPart:
    if name == "consumer":

        def consumer(ctx: RequestContext) -> str:
            identity = ctx.identity
            if identity is None:
                return "-"
            name = identity.consumer
            # Configured names stay readable; a token's own subject ("jwt:<sub>") can be a
            # user id or e-mail address and is hashed like header and claim values.
            return digest(name) if ":" in name else name

        return consumer
    if name == "api_key":

        def api_key(ctx: RequestContext) -> str:
            identity = ctx.identity
            if identity is None:
                return "-"
            return identity.credential_id or "consumer:" + identity.consumer

        return api_key
    if name == "ip":
        v4, v6 = rule.ipv4_prefix, rule.ipv6_prefix
        return lambda ctx: client_network(ctx.client_ip, v4, v6)
    if name == "route":
        return lambda ctx: ctx.route_name
    if name.startswith("header:"):
        header = name.split(":", 1)[1]
        return lambda ctx: digest(",".join(ctx.header_values(header)))
    claim = name.split(":", 1)[1]

    def claim_value(ctx: RequestContext) -> str:
        identity = ctx.identity
        value = identity.claims.get(claim) if identity is not None else None
        return digest("" if value is None else str(value))

    return claim_value


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    key: str
    parts: tuple[KeyPart, ...]
    prefix: str  # storage key prefix: settings prefix + scope + rule fingerprint
    algorithm: Algorithm
    limit: int
    window_ms: float
    burst: int
    window_s: int
    quota: bool
    policy_item: str  # '"name";q=100;w=60'

    @property
    def reason(self) -> str:
        return "ratelimit.quota_exceeded" if self.quota else "ratelimit.exceeded"

    def bucket(self, ctx: RequestContext) -> Bucket:
        value = "|".join(part(ctx) for part in self.parts)
        return Bucket(self.prefix + value, self.algorithm, self.limit, self.window_ms, self.burst)

    def bucket_for(self, value: str) -> Bucket:
        return Bucket(self.prefix + value, self.algorithm, self.limit, self.window_ms, self.burst)

    def describe(self) -> str:
        """For a 429 detail: the policy, never the caller's key value."""
        if self.quota:
            period = "day" if self.algorithm is Algorithm.QUOTA_DAY else "month"
            return f"{self.limit} requests per {period} (UTC) per {self.key}"
        if self.algorithm is Algorithm.GCRA:
            return (
                f"{self.limit} requests per {_seconds(self.window_s)} per {self.key}"
                f" (burst {self.burst})"
            )
        return f"{self.limit} requests per {_seconds(self.window_s)} per {self.key}"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def compile_rule(rule: RateLimitRule, key_prefix: str, scope: str) -> CompiledRule:
    """``scope`` separates counters: ``r:<route>`` for route rules, ``c:<consumer>`` for
    a consumer's own limits."""
    if rule.per is not None:
        algorithm = Algorithm.QUOTA_DAY if rule.per == "day" else Algorithm.QUOTA_MONTH
        window_s = _PERIOD_SECONDS[rule.per]
        window_ms = 0.0
        label: str = rule.per
    else:
        assert rule.per_s is not None
        window_s = math.ceil(rule.per_s)
        label = f"{rule.per_s:g}s"
        if rule.algorithm == "gcra":
            algorithm = Algorithm.GCRA
            window_ms = rule.per_s * 1000.0 / rule.limit  # emission interval
        else:
            algorithm = Algorithm.SLIDING_WINDOW
            window_ms = rule.per_s * 1000.0
    burst = (rule.burst or rule.limit) if algorithm is Algorithm.GCRA else 0
    name = rule.name or f"{rule.key}-{label}"
    fingerprint = digest(f"{rule.key}|{algorithm.name}|{label}")[:10]
    parts = tuple(_part(part, rule) for part in rule.key.split("+"))
    quota = rule.per is not None
    item = f'"{name}";q={rule.limit};w={window_s}'
    return CompiledRule(
        name=name,
        key=rule.key,
        parts=parts,
        prefix=f"{key_prefix}{scope}:{fingerprint}:",
        algorithm=algorithm,
        limit=rule.limit,
        window_ms=window_ms,
        burst=burst,
        window_s=window_s,
        quota=quota,
        policy_item=item,
    )


def ratelimit_item(name: str, outcome: Outcome) -> str:
    """One item of the ``RateLimit`` field: remaining quota and seconds until it resets
    (for a refusal: until a request will be admitted again, as in ``Retry-After``)."""
    reset = outcome.reset_ms if outcome.allowed else outcome.retry_after_ms
    seconds = -(-reset // 1000) if reset > 0 else 0
    return f'"{name}";r={outcome.remaining};t={seconds}'


def policy_header(rules: Sequence[CompiledRule]) -> str:
    """The ``RateLimit-Policy`` value: static per rule set, so built at load."""
    return ", ".join(rule.policy_item for rule in rules)


def ratelimit_header(rules: Sequence[CompiledRule], outcomes: Sequence[Outcome]) -> str:
    if len(rules) == 1:
        return ratelimit_item(rules[0].name, outcomes[0])
    return ", ".join(
        ratelimit_item(rule.name, outcome) for rule, outcome in zip(rules, outcomes, strict=True)
    )


def response_headers(
    rules: Sequence[CompiledRule], outcomes: Sequence[Outcome]
) -> list[tuple[str, str]]:
    return [
        ("ratelimit-policy", policy_header(rules)),
        ("ratelimit", ratelimit_header(rules, outcomes)),
    ]
