"""Discovery configuration: the top-level ``discovery:`` section and a route's ``discovery:``.

Embedded by the configuration package (``DijkConfig.discovery``, ``RouteConfig.discovery``);
imports nothing from the gateway.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dijk.privacy.settings import check_table_prefix

__all__ = ["DiscoverySettings", "RouteDiscovery"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RouteDiscovery(_Model):
    bodies: bool = Field(
        default=True,
        description="Learn the shapes of JSON request and response bodies (sampled; only "
        "bodies with a Content-Length up to discovery.max_body_bytes are looked at, never "
        "buffered otherwise). false: methods, paths, parameters and status codes only.",
    )


class DiscoverySettings(_Model):
    unmatched: bool = Field(
        default=True,
        description="Also record requests that match no route (method and path template "
        "only; they were answered 404), when a route has discovery on.",
    )
    sample_first: int = Field(
        default=20,
        ge=0,
        le=100_000,
        description="Requests of a new endpoint whose parameters and bodies are all learnt.",
    )
    sample_every: int = Field(
        default=50,
        ge=1,
        le=1_000_000,
        description="After the first ones, the details of one request in this many are "
        "learnt; the others only add to counters (status codes, authentication, times).",
    )
    max_body_bytes: int = Field(
        default=262_144,
        ge=1024,
        le=16_777_216,
        description="Largest body (request or response) whose shape is learnt; larger or "
        "unsized bodies are never buffered for discovery.",
    )
    max_endpoints: int = Field(
        default=5000,
        ge=10,
        le=1_000_000,
        description="Most endpoints held in memory; past it the least recently seen is "
        "evicted (counted in dijk_discovery_evicted_total; already flushed data stays in "
        "the database).",
    )
    max_endpoint_kib: int = Field(
        default=256,
        ge=4,
        le=16_384,
        description="Memory one endpoint may take (estimated); its shapes stop growing there.",
    )
    max_memory_mib: int = Field(
        default=64,
        ge=1,
        le=65_536,
        description="Memory all endpoints together may take (estimated); least recently "
        "seen endpoints are evicted past it.",
    )
    max_path_nodes: int = Field(
        default=20_000,
        ge=100,
        le=10_000_000,
        description="Places in paths remembered to tell identifiers from names; past it, "
        "unknown segments are written as parameters.",
    )
    ambiguous_limit: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="Distinct slug-like segments (my-first-post, AB12CD) seen at one place "
        "before that place becomes a parameter.",
    )
    flush_interval_s: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="The inventory is merged into the audit database (audit.url) this "
        "often and on shutdown, never per request; every gateway adds to one inventory.",
    )
    table_prefix: str = Field(
        default="dijk_",
        description="Prefix of the inventory tables (<prefix>discovery, <prefix>discovery_meta).",
    )

    @field_validator("table_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_table_prefix(value)
