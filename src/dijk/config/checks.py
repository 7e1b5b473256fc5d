"""Checks across the whole configuration, reported with the path they concern.

They run after the models validate, so that each problem can be pinned to the line of the
field at fault (a pydantic model validator could only point at the root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from dijk.config.models import DijkConfig

Path = tuple[str | int, ...]


def cross_check(config: DijkConfig) -> Iterator[tuple[Path, str]]:
    seen: dict[str, int] = {}
    for index, route in enumerate(config.routes):
        if route.name in seen:
            yield ("routes", index, "name"), f"duplicate route name {route.name!r}"
        seen.setdefault(route.name, index)
        if route.upstream not in config.upstreams:
            known = ", ".join(sorted(config.upstreams))
            yield (
                ("routes", index, "upstream"),
                f"upstream {route.upstream!r} is not defined (known: {known})",
            )
        if "api_key" in route.auth and config.auth.api_key is None:
            yield ("routes", index, "auth"), "uses api_key but auth.api_key is not configured"
        if route.scopes and not route.auth:
            yield ("routes", index, "scopes"), "scopes need at least one authentication method"
    consumers: set[str] = set()
    for index, consumer in enumerate(config.consumers):
        if consumer.name in consumers:
            yield ("consumers", index, "name"), f"duplicate consumer name {consumer.name!r}"
        consumers.add(consumer.name)
        for key_index, ref in enumerate(consumer.api_keys):
            if ref.env is not None and not os.environ.get(ref.env):
                yield (
                    ("consumers", index, "api_keys", key_index, "env"),
                    f"environment variable {ref.env} is not set",
                )
    if config.listen.port == config.admin.port and config.listen.address == config.admin.address:
        yield ("admin", "port"), "listen and admin must not use the same address and port"
