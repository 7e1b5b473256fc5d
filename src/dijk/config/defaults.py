"""``route_defaults`` and ``route_groups``: route settings written once.

Applied to the loaded data before validation, so a merged route is validated (and
compiled) exactly like one written out in full. Precedence, key by key at the top level of
a route: the route's own key, then its ``route_group``'s, then ``route_defaults``. A key is
replaced whole (``waf: {mode: monitor}`` on a route does not inherit the default's
``paranoia``): what a route gets is what one of the three places says, never a mix. A
route turns a default off by setting the key to ``null``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from dijk.config.loader import Path

# Keys that identify a route: never shared.
_OWN_KEYS = frozenset({"name", "match", "route_group"})


def expand_routes(
    data: dict[str, Any], route_fields: frozenset[str], origins: dict[tuple[int, str], Path]
) -> list[tuple[Path, str]]:
    """Merge defaults and groups into ``data["routes"]`` in place; problems as (path, text).

    ``origins`` gets, for each merged ``(route index, key)``, where the value was written
    (so that an invalid shared value is reported where it is, not at every route).
    """
    problems = list(_check_shared(data, route_fields))
    if problems:
        return problems
    defaults = data.get("route_defaults") or {}
    groups = data.get("route_groups") or {}
    routes = data.get("routes")
    if not isinstance(routes, list) or not (defaults or groups):
        return []
    for index, route in enumerate(routes):
        if not isinstance(route, dict):
            continue  # the model reports it
        group_name = route.get("route_group")
        group: dict[str, Any] = {}
        if group_name is not None:
            if not isinstance(group_name, str) or group_name not in groups:
                known = ", ".join(sorted(groups)) or "none defined"
                problems.append(
                    (
                        ("routes", index, "route_group"),
                        f"route group {group_name!r} is not defined (known: {known})",
                    )
                )
                continue
            group = groups[group_name]
        sources: list[tuple[Path, dict[str, Any]]] = [
            (("route_groups", group_name or ""), group),
            (("route_defaults",), defaults),
        ]
        for where, source in sources:
            for key, value in source.items():
                if key not in route:
                    route[key] = copy.deepcopy(value)
                    origins[(index, key)] = (*where, key)
    return problems


def _check_shared(data: dict[str, Any], route_fields: frozenset[str]) -> Iterator[tuple[Path, str]]:
    defaults = data.get("route_defaults")
    groups = data.get("route_groups")
    places: list[tuple[Path, Any]] = []
    if isinstance(defaults, dict):
        places.append((("route_defaults",), defaults))
    if isinstance(groups, dict):
        places += [(("route_groups", name), group) for name, group in groups.items()]
    for path, settings in places:
        if not isinstance(settings, dict):
            continue  # the model reports it
        for key in settings:
            if key in _OWN_KEYS:
                yield (*path, key), f"{key!r} belongs to each route, it cannot be shared"
            elif key not in route_fields:
                yield (*path, key), f"unknown route setting {key!r}"
