"""Compile a configuration into the immutable state the data plane serves from.

Everything expensive happens here, once per load: the route table, each route's pipeline,
upstream pools, trusted proxy networks. A reload builds a complete new state and swaps it;
requests in flight finish on the state they started with.

Threads: on reload :func:`build_state` runs in a worker thread while the event loop keeps
serving from the old state (``GatewayServer.reload``; the first load, before the listeners
open, runs on the loop). So building must not touch the event loop: no
``asyncio.get_running_loop()``, no tasks, timers or connections (asyncio locks and events may
be created: since Python 3.10 they bind to a loop only when first waited on), and nothing
shared with the running state may be mutated in a way a concurrent request could see half
done. What needs the loop is opened by :meth:`GatewayState.start`, which the server awaits on
the loop before the swap.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dijk.config.loader import ConfigError, ConfigIssue
from dijk.config.models import DijkConfig, LimitsConfig, UpstreamConfig
from dijk.pipeline.pipeline import Pipeline
from dijk.proxy.balancer import Balancer, build_balancer
from dijk.proxy.headers import (
    CONNECTION_PROTECTED,
    TrustedProxies,
    request_dropped,
    response_dropped,
)
from dijk.proxy.health import HealthChecker
from dijk.proxy.upstream import UpstreamConnection, UpstreamPool
from dijk.routing.router import Router
from dijk.stages import StageResources, build_default_stages, build_route_stages
from dijk.stages.audit import AuditResources
from dijk.stages.network import NetworkPolicy, global_policy
from dijk.storage import StorageUnavailable


@dataclass(slots=True)
class UpstreamTarget:
    name: str
    config: UpstreamConfig
    balancer: Balancer
    authority: str

    @property
    def pool(self) -> UpstreamPool:
        """The first target's pool (the only one of the single-URL form)."""
        return self.balancer.pool

    def host_header(self, client_host: str) -> str:
        mode = self.config.host
        if mode == "upstream":
            return self.authority
        if mode == "preserve":
            return client_host or self.authority
        return mode


@dataclass(slots=True)
class RoutePlan:
    pipeline: Pipeline
    upstream: UpstreamTarget
    strip_prefix: str | None
    # Upstream response header names (lower case) that never reach the client: hop-by-hop,
    # Dijk's own, and the route's strip_response_headers (see headers.response_dropped).
    response_dropped: frozenset[str]
    # Request header names that never reach the upstream: hop-by-hop, Dijk's own, and the
    # route's strip_request_headers (see headers.request_dropped).
    request_dropped: frozenset[str]

    def pool_release(self, connection: UpstreamConnection) -> None:
        connection.pool.release(connection)  # to its own target's pool


@dataclass(slots=True)
class GatewayState:
    config: DijkConfig
    generation: int
    router: Router
    upstreams: dict[str, UpstreamTarget]
    default_pipeline: Pipeline
    trusted_proxies: TrustedProxies
    limits: LimitsConfig
    access_log: bool
    resources: StageResources
    source: str = ""
    pipelines: list[Pipeline] = field(default_factory=list)
    # Strict audit durability: the gateway commits a request's record before it releases
    # the response (see stages/audit.py); None in batched mode.
    release_gate: AuditResources | None = None
    # The global IP and country rules, for requests that match no route (None: no rules).
    global_network: NetworkPolicy | None = None
    # Field names a request's Connection header must not list (headers.connection_conflict):
    # the fixed end-to-end ones and the configured API key header.
    connection_protected: frozenset[str] = CONNECTION_PROTECTED
    health_checks: list[HealthChecker] = field(default_factory=list)

    async def start(self, previous: GatewayState | None = None) -> None:
        """Open what needs I/O before this state serves: the audit log (kept from
        ``previous`` when the store and chain did not change, so one chain has one writer).
        Always awaited on the event loop, after :func:`build_state`.

        Raises :class:`ConfigError` with a message for the operator.
        """
        for target in self.upstreams.values():
            if target.config.health_check is not None:
                checker = HealthChecker(target.balancer, target.config.health_check)
                self.health_checks.append(checker)
                checker.start()
        audit = self.resources.audit
        if audit is None:
            return
        try:
            await audit.start(previous.resources.audit if previous is not None else None)
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            raise ConfigError([ConfigIssue(self.source, None, "audit", message)]) from exc

    async def failing_dependencies(self) -> list[dict[str, str]]:
        """Fail-closed dependencies that are down now: while one is, this instance refuses
        the requests that need it, so ``/readyz`` says not ready and a load balancer
        routes around it. A dependency whose outage policy lets requests through
        (``on_storage_error: allow``, ``on_sink_error: spool``) never makes it unready.
        """
        failing: list[dict[str, str]] = []
        audit = self.resources.audit
        if audit is not None and audit.deny_when_down and not await audit.probe_store():
            failing.append(
                {
                    "dependency": "audit",
                    "reason": "audit.unavailable",
                    "detail": "the activity log's store is down and audit.on_sink_error is deny",
                }
            )
        limiter = self.resources.limiter
        if limiter is not None and self.config.ratelimit.on_storage_error == "deny":
            try:
                await limiter.ping()
            except StorageUnavailable as exc:
                failing.append(
                    {
                        "dependency": "ratelimit",
                        "reason": "ratelimit.storage_unavailable",
                        "detail": f"the rate-limit store does not answer ({exc});"
                        " ratelimit.on_storage_error is deny",
                    }
                )
        return failing

    async def close(self) -> None:
        for pipeline in self.pipelines:
            await pipeline.close()
        for checker in self.health_checks:
            await checker.close()
        for target in self.upstreams.values():
            target.balancer.close()
        if self.resources.audit is not None:
            await self.resources.audit.close()


def build_state(config: DijkConfig, generation: int, source: str = "") -> GatewayState:
    """Compile ``config``; raises :class:`ConfigError` with issues a user can act on.

    Runs in a worker thread on reload (see the module docstring): no event loop here.
    """
    issues: list[ConfigIssue] = []
    try:
        router = Router(config.routes)
    except ValueError as exc:
        raise ConfigError([ConfigIssue(source, None, "routes", str(exc))]) from None
    upstreams: dict[str, UpstreamTarget] = {}
    for name, upstream in config.upstreams.items():
        # The Host sent with `host: upstream`: the first target's (or the TLS server name).
        parts = urlsplit(upstream.target_list[0].url)
        authority = upstream.tls.server_name or parts.netloc.rsplit("@", 1)[-1]
        try:
            balancer = build_balancer(name, upstream)
        except (OSError, ssl.SSLError) as exc:
            message = f"cannot load the TLS files: {exc.strerror or exc}"
            issue = ConfigIssue(source, None, f"upstreams.{name}.tls", message)
            raise ConfigError([issue]) from None
        upstreams[name] = UpstreamTarget(name, upstream, balancer, authority)
    resources = StageResources.from_config(config, source)
    default_pipeline = Pipeline(build_default_stages(config, resources))
    pipelines = [default_pipeline]
    for index, compiled in enumerate(router.routes):
        try:
            stages = build_route_stages(config, compiled.config, resources)
            pipeline = Pipeline(stages)
        except ValueError as exc:
            issues.append(ConfigIssue(source, None, f"routes[{index}]", str(exc)))
            continue
        pipelines.append(pipeline)
        strip = compiled.config.strip_response_headers
        strip_request = compiled.config.strip_request_headers
        compiled.plan = RoutePlan(
            pipeline,
            upstreams[compiled.config.upstream],
            compiled.config.strip_prefix,
            response_dropped(config.strip_response_headers if strip is None else strip),
            request_dropped(
                config.strip_request_headers if strip_request is None else strip_request
            ),
        )
    if issues:
        raise ConfigError(issues)
    return GatewayState(
        config=config,
        generation=generation,
        router=router,
        upstreams=upstreams,
        default_pipeline=default_pipeline,
        trusted_proxies=TrustedProxies(config.trusted_proxies),
        limits=config.limits,
        access_log=config.logging.access_log,
        resources=resources,
        source=source,
        pipelines=pipelines,
        release_gate=resources.audit
        if resources.audit is not None and resources.audit.strict
        else None,
        global_network=global_policy(config.network),
        connection_protected=CONNECTION_PROTECTED
        | (
            {config.auth.api_key.header.lower()} if config.auth.api_key is not None else frozenset()
        ),
    )
