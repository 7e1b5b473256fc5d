"""Stages: one module per stage; this module only says which stages a route gets.

Order is never decided here: each stage carries its numeric priority and the pipeline
sorts by it (STYLE.md rule 2). Adding a capability means one module plus one line below.
"""

from __future__ import annotations

from dataclasses import dataclass

from dijk.config.models import DijkConfig, RouteConfig
from dijk.pipeline.stage import Stage
from dijk.stages.authn_api_key import ApiKeyStage, KeyRing
from dijk.stages.authz import ScopeStage
from dijk.stages.client_limits import ClientLimitsStage


@dataclass(slots=True)
class StageResources:
    """Things built once per configuration and shared by the stages of every route."""

    key_ring: KeyRing | None

    @classmethod
    def from_config(cls, config: DijkConfig, source: str = "") -> StageResources:
        key_ring = KeyRing.from_config(config, source) if config.auth.api_key is not None else None
        return cls(key_ring=key_ring)


def build_default_stages(config: DijkConfig, resources: StageResources) -> list[Stage]:
    """Stages for requests that match no route (they still get a log phase)."""
    return []


def build_route_stages(
    config: DijkConfig, route: RouteConfig, resources: StageResources
) -> list[Stage]:
    stages: list[Stage] = [ClientLimitsStage(config.limits)]
    if route.auth:
        methods: list[Stage] = []
        if "api_key" in route.auth:
            assert config.auth.api_key is not None
            assert resources.key_ring is not None
            methods.append(ApiKeyStage(config.auth.api_key, resources.key_ring))
        stages.extend(methods)
        stages.append(ScopeStage(route))
    for stage in stages:
        stage.on_error = route.on_error
    return stages
