"""Stages: one module per stage; this module only says which stages a route gets.

Order is never decided here: each stage carries its numeric priority and the pipeline
sorts by it (STYLE.md rule 2). Adding a capability means one module plus one line below.
"""

from __future__ import annotations

from dataclasses import dataclass

from dijk.auth.resources import IdentityResources
from dijk.config.models import DijkConfig, RouteConfig
from dijk.pipeline.stage import Stage
from dijk.ratelimit.backend import Limiter, open_limiter
from dijk.ratelimit.errors import StorageErrorPolicy
from dijk.ratelimit.policy import CompiledRule, compile_rule, needs_identity
from dijk.stages.authn_api_key import ApiKeyStage, KeyRing
from dijk.stages.authn_api_key import challenge as api_key_challenge
from dijk.stages.authn_introspection import IntrospectionStage
from dijk.stages.authn_jwt import JwtStage
from dijk.stages.authn_mtls import CHALLENGE as MTLS_CHALLENGE
from dijk.stages.authn_mtls import MtlsStage
from dijk.stages.authn_required import AuthnRequiredStage
from dijk.stages.authz import ScopeStage
from dijk.stages.client_limits import ClientLimitsStage
from dijk.stages.concurrency import ConcurrencyStage, InFlight
from dijk.stages.load_shed import LoadShedStage
from dijk.stages.login_guard import LoginGuardStage
from dijk.stages.network import NetworkStage, needs_network_stage
from dijk.stages.ratelimit import PreAuthRateLimitStage, RateLimitStage
from dijk.storage import Storage, open_storage


@dataclass(slots=True)
class StageResources:
    """Things built once per configuration and shared by the stages of every route."""

    key_ring: KeyRing | None
    # Shared state behind storage.url, opened when rate limits are configured (no
    # connection until first use); the limiter closes it when its last stage closes.
    storage: Storage | None = None
    limiter: Limiter | None = None
    in_flight: InFlight | None = None
    # JWT verifier, introspection client, certificate ring, revocation list (issue 4).
    identity: IdentityResources | None = None

    @classmethod
    def from_config(cls, config: DijkConfig, source: str = "") -> StageResources:
        key_ring = KeyRing.from_config(config, source) if config.auth.api_key is not None else None
        storage = limiter = None
        if uses_rate_limits(config):
            storage = open_storage(config.storage.url, timeout_s=config.storage.timeout_s)
            limiter = open_limiter(config.storage.url, storage, config.storage.timeout_s)
        identity = IdentityResources.from_config(config, source)
        return cls(
            key_ring=key_ring,
            storage=storage,
            limiter=limiter,
            in_flight=InFlight(),
            identity=identity,
        )


def build_default_stages(config: DijkConfig, resources: StageResources) -> list[Stage]:
    """Stages for requests that match no route (they still get a log phase)."""
    return []


def build_route_stages(
    config: DijkConfig, route: RouteConfig, resources: StageResources
) -> list[Stage]:
    stages: list[Stage] = [ClientLimitsStage(config.limits)]
    if needs_network_stage(config.network, route):
        stages.append(NetworkStage(config.network, route))
    if route.auth:
        stages.extend(identity_stages(config, route, resources))
        stages.append(ScopeStage(route))
    stages.extend(protection_stages(config, route, resources))
    for stage in stages:
        stage.on_error = route.on_error
    return stages


def identity_stages(
    config: DijkConfig, route: RouteConfig, resources: StageResources
) -> list[Stage]:
    """One stage per accepted method, then authn_required (see its module for the design)."""
    identity = resources.identity
    assert identity is not None
    revocations = identity.revocations
    stages: list[Stage] = []
    challenges: list[tuple[str, str]] = []
    bearer = ("WWW-Authenticate", 'Bearer realm="dijk"')
    if "mtls" in route.auth:
        assert identity.certificates is not None
        stages.append(MtlsStage(identity.certificates, revocations))
        challenges.append(MTLS_CHALLENGE)
    if "api_key" in route.auth:
        assert config.auth.api_key is not None
        assert resources.key_ring is not None
        stages.append(ApiKeyStage(config.auth.api_key, resources.key_ring, revocations))
        challenges.append(api_key_challenge(config.auth.api_key))
    if "jwt" in route.auth:
        assert identity.jwt is not None
        opaque_elsewhere = "introspection" in route.auth
        stages.append(JwtStage(identity.jwt, revocations, opaque_tokens_elsewhere=opaque_elsewhere))
        challenges.append(bearer)
    if "introspection" in route.auth:
        assert identity.introspection is not None
        jwts_elsewhere = "jwt" in route.auth
        stages.append(
            IntrospectionStage(identity.introspection, revocations, jwts_elsewhere=jwts_elsewhere)
        )
        challenges.append(bearer)
    stages.append(AuthnRequiredStage(challenges))
    return stages


def uses_rate_limits(config: DijkConfig) -> bool:
    return any(route.rate_limit or route.login_guard for route in config.routes) or any(
        consumer.rate_limit for consumer in config.consumers
    )


def protection_stages(
    config: DijkConfig, route: RouteConfig, resources: StageResources
) -> list[Stage]:
    """Load shedding, rate limits, login guard and concurrency caps (issue 5)."""
    stages: list[Stage] = []
    overload = config.overload
    if overload.max_in_flight or overload.max_event_loop_lag_s:
        stages.append(LoadShedStage(overload))
    settings = config.ratelimit
    limiter = resources.limiter
    if limiter is not None:
        prefix = settings.key_prefix
        rules = [compile_rule(rule, prefix, f"r:{route.name}") for rule in route.rate_limit]
        early = [rule for rule in rules if not needs_identity(rule.key)]
        late = [rule for rule in rules if needs_identity(rule.key)]
        own: dict[str, tuple[CompiledRule, ...]] = {}
        if route.auth:
            own = {
                consumer.name: tuple(
                    compile_rule(rule, prefix, f"c:{consumer.name}") for rule in consumer.rate_limit
                )
                for consumer in config.consumers
                if consumer.rate_limit
            }
        interval = settings.error_log_interval_s
        action = settings.on_storage_error
        if early:
            errors = StorageErrorPolicy(action, interval, PreAuthRateLimitStage.name)
            stages.append(PreAuthRateLimitStage(early, limiter, errors))
        if late or own:
            errors = StorageErrorPolicy(action, interval, RateLimitStage.name)
            stages.append(RateLimitStage(late, limiter, errors, own))
        if route.login_guard is not None:
            errors = StorageErrorPolicy(action, interval, LoginGuardStage.name)
            stages.append(LoginGuardStage(route.login_guard, route.name, prefix, limiter, errors))
    caps = {
        consumer.name: consumer.max_concurrent_requests
        for consumer in config.consumers
        if consumer.max_concurrent_requests is not None
    }
    if route.auth and (caps or overload.max_concurrent_per_consumer):
        in_flight = resources.in_flight if resources.in_flight is not None else InFlight()
        stages.append(ConcurrencyStage(caps, overload.max_concurrent_per_consumer, in_flight))
    return stages
