"""Stages: one module per stage; this module only says which stages a route gets.

Order is never decided here: each stage carries its numeric priority and the pipeline
sorts by it. Adding a capability means one module plus one line below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dijk.abuse.resources import AbuseResources
from dijk.auth.resources import IdentityResources
from dijk.config.models import DijkConfig, RouteConfig
from dijk.discovery.db import open_discovery_db
from dijk.discovery.recorder import DiscoveryRecorder
from dijk.openapi import CompiledSpec
from dijk.pipeline.stage import Stage
from dijk.privacy.resources import PrivacyResources
from dijk.ratelimit.backend import Limiter, open_limiter
from dijk.ratelimit.errors import StorageErrorPolicy
from dijk.ratelimit.policy import CompiledRule, compile_rule, needs_identity
from dijk.stages.abuse import abuse_stages, default_abuse_stages, open_abuse
from dijk.stages.audit import AuditGuardStage, AuditResources, AuditStage
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
from dijk.stages.discovery import DiscoveryStage, UnmatchedDiscoveryStage
from dijk.stages.load_shed import LoadShedStage
from dijk.stages.login_guard import LoginGuardStage
from dijk.stages.network import NetworkStage, needs_network_stage
from dijk.stages.openapi import OpenApiResponseStage, OpenApiStage, load_route_specs
from dijk.stages.privacy import PrivacyStage
from dijk.stages.ratelimit import PreAuthRateLimitStage, RateLimitStage
from dijk.stages.tracing import TracingStage
from dijk.stages.waf import DetectorCache, WafStage
from dijk.storage import Storage
from dijk.tracing import Tracer


@dataclass(slots=True)
class StageResources:
    """Things built once per configuration and shared by the stages of every route."""

    key_ring: KeyRing | None
    # Shared state behind storage.url, opened when rate limits are configured (no
    # connection until first use): the rate limiter's Redis handle (None for memory://),
    # closed by the limiter when its last stage closes.
    storage: Storage | None = None
    limiter: Limiter | None = None
    in_flight: InFlight | None = None
    # JWT verifier, introspection client, certificate ring, revocation list.
    identity: IdentityResources | None = None
    # The audit log: opened by GatewayState.start, shared across reloads.
    audit: AuditResources | None = None
    # Attack detectors, one per distinct waf setting, shared by the routes.
    detectors: DetectorCache = field(default_factory=DetectorCache)
    # PII detector, data map recorder, pseudonym keys: routes with `privacy:`.
    privacy: PrivacyResources | None = None
    # Compiled OpenAPI documents by route name: routes with `openapi:`.
    openapi: dict[str, CompiledSpec] = field(default_factory=dict)
    # Behaviour and abuse detection: store, incident mirror, lists (routes with `abuse:`).
    abuse: AbuseResources | None = None
    # The endpoint inventory learnt from traffic: routes with `discovery:`.
    discovery: DiscoveryRecorder | None = None
    # OpenTelemetry exporter (tracing.enabled): shut down when its last stage closes.
    tracer: Tracer | None = None

    @classmethod
    def from_config(cls, config: DijkConfig, source: str = "") -> StageResources:
        key_ring = KeyRing.from_config(config, source) if config.auth.api_key is not None else None
        storage = limiter = None
        if uses_rate_limits(config):
            limiter = open_limiter(
                config.storage.url, config.storage.timeout_s, config.ratelimit.max_connections
            )
            storage = limiter.storage
        identity = IdentityResources.from_config(config, source)
        audit = AuditResources.from_config(config.audit, config.alerts)
        return cls(
            key_ring=key_ring,
            storage=storage,
            limiter=limiter,
            in_flight=InFlight(),
            identity=identity,
            audit=audit,
            privacy=PrivacyResources(config, source)
            if any(route.privacy is not None for route in config.routes)
            else None,
            openapi=load_route_specs(config, source),
            abuse=open_abuse(config, source, audit),
            discovery=discovery_recorder(config),
            tracer=Tracer(config.tracing) if config.tracing.enabled else None,
        )


def discovery_recorder(config: DijkConfig) -> DiscoveryRecorder | None:
    """One inventory per configuration, when a route has discovery on (no I/O here)."""
    if not any(route.discovery is not None for route in config.routes):
        return None
    settings = config.discovery
    url, prefix = config.audit.url, settings.table_prefix
    places = settings.max_endpoint_kib * 2  # shapes in the database: about 512 bytes a place
    return DiscoveryRecorder(settings, lambda: open_discovery_db(url, prefix, places))


def build_default_stages(config: DijkConfig, resources: StageResources) -> list[Stage]:
    """Stages for requests that match no route (they still get a log phase)."""
    stages = [*default_abuse_stages(config, resources), *audit_stages(resources, guard=False)]
    if resources.discovery is not None and config.discovery.unmatched:
        stages.append(UnmatchedDiscoveryStage(resources.discovery))
    return stages


def audit_stages(resources: StageResources, *, guard: bool = True) -> list[Stage]:
    """The audit log stage; with ``on_sink_error: deny`` it also refuses while it is down."""
    audit = resources.audit
    if audit is None:
        return []
    if guard and audit.deny_when_down:
        return [AuditGuardStage(audit)]
    return [AuditStage(audit)]


def build_route_stages(
    config: DijkConfig, route: RouteConfig, resources: StageResources
) -> list[Stage]:
    stages: list[Stage] = [ClientLimitsStage(config.limits)]
    if resources.tracer is not None:
        stages.append(TracingStage(resources.tracer))
    if needs_network_stage(config.network, route):
        stages.append(NetworkStage(config.network, route))
    if route.auth:
        stages.extend(identity_stages(config, route, resources))
        stages.append(ScopeStage(route))
    stages.extend(protection_stages(config, route, resources))
    stages.extend(audit_stages(resources))
    stages.extend(abuse_stages(config, route, resources.abuse))
    if route.waf is not None and route.waf.mode != "off":
        stages.append(WafStage(route.waf, resources.detectors.get(route.waf)))
    if route.openapi is not None and route.name in resources.openapi:
        stages.append(OpenApiStage(resources.openapi[route.name], route.openapi))
        if route.openapi.response != "off":
            stages.append(OpenApiResponseStage(route.openapi))
    if route.privacy is not None and resources.privacy is not None:
        limit = config.limits.max_response_buffer_bytes
        stages.append(PrivacyStage(route, route.privacy, resources.privacy, limit))
    if route.discovery is not None and resources.discovery is not None:
        stages.append(DiscoveryStage(route, route.discovery, resources.discovery))
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
    """Load shedding, rate limits, login guard and concurrency caps."""
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
