"""Route table compiled at load: exact paths, templates, then prefixes.

Matching is done on the normalised path only (see :mod:`dijk.routing.normalise`), so what
is matched is exactly what is forwarded.

Precedence: an exact path beats a template, a template beats a prefix; among templates the
one with more literal segments wins (earlier in the file on a tie); among prefixes the
longest wins. If routes match the path but none allows the method, the answer is 405 with
``Allow`` listing the methods that would have matched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dijk.config.models import RouteConfig

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(slots=True)
class CompiledRoute:
    """A route ready for matching; ``plan`` holds what the gateway built for it."""

    name: str
    config: RouteConfig
    methods: frozenset[str] | None
    kind: str
    order: int
    template: str = ""
    plan: Any = field(default=None, repr=False)

    def allows(self, method: str) -> bool:
        if self.methods is None:
            return True
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)

    def allowed_methods(self) -> frozenset[str]:
        """What ``Allow`` lists for this route: its methods, plus HEAD wherever GET is."""
        methods = self.methods or frozenset()
        return methods | {"HEAD"} if "GET" in methods else methods


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: CompiledRoute | None
    params: dict[str, str]
    allowed: frozenset[str] = frozenset()


_NO_MATCH = RouteMatch(None, {})


@dataclass(slots=True)
class _Template:
    route: CompiledRoute
    segments: tuple[str | None, ...]
    names: tuple[str, ...]
    literals: int


class Router:
    """Immutable route table; :meth:`match` does only look-ups and one split."""

    def __init__(self, routes: Sequence[RouteConfig]) -> None:
        self.routes: list[CompiledRoute] = []
        self._exact: dict[str, list[CompiledRoute]] = {}
        self._templates: dict[int, list[_Template]] = {}
        self._prefixes: list[tuple[str, CompiledRoute]] = []
        for order, config in enumerate(routes):
            self._add(order, config)
        for templates in self._templates.values():
            templates.sort(key=lambda t: (-t.literals, t.route.order))
        self._prefixes.sort(key=lambda item: (-len(item[0]), item[1].order))

    def _add(self, order: int, config: RouteConfig) -> None:
        match = config.match
        methods = frozenset(match.methods) if match.methods is not None else None
        if match.path is not None:
            route = CompiledRoute(config.name, config, methods, "exact", order, match.path)
            self._exact.setdefault(match.path, []).append(route)
        elif match.path_template is not None:
            route = CompiledRoute(
                config.name, config, methods, "template", order, match.path_template
            )
            self._templates.setdefault(_count(match.path_template), []).append(
                _compile_template(route, match.path_template)
            )
        else:
            prefix = match.path_prefix or "/"
            if len(prefix) > 1:
                prefix = prefix.rstrip("/")
            route = CompiledRoute(config.name, config, methods, "prefix", order, prefix)
            self._prefixes.append((prefix, route))
        self.routes.append(route)

    def match(self, method: str, path: str) -> RouteMatch:
        allowed: set[str] = set()
        for route in self._exact.get(path, ()):
            if route.allows(method):
                return RouteMatch(route, {})
            allowed |= route.allowed_methods()
        templates = self._templates.get(_count(path))
        if templates:
            segments = path.split("/")
            for template in templates:
                params = _match_template(template, segments)
                if params is None:
                    continue
                if template.route.allows(method):
                    return RouteMatch(template.route, params)
                allowed |= template.route.allowed_methods()
        for prefix, route in self._prefixes:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                if route.allows(method):
                    return RouteMatch(route, {})
                allowed |= route.allowed_methods()
        if allowed:
            return RouteMatch(None, {}, frozenset(allowed))
        return _NO_MATCH


def _count(path: str) -> int:
    return path.count("/")


def _compile_template(route: CompiledRoute, template: str) -> _Template:
    segments: list[str | None] = []
    names: list[str] = []
    for segment in template.split("/"):
        found = _PARAM.match(segment)
        if found:
            if found.group(1) in names:
                raise ValueError(f"route {route.name!r}: parameter {found.group(1)!r} repeats")
            segments.append(None)
            names.append(found.group(1))
        elif "{" in segment or "}" in segment:
            raise ValueError(
                f"route {route.name!r}: a template segment must be a literal or one {{name}}"
            )
        else:
            segments.append(segment)
    literals = sum(1 for segment in segments if segment)
    return _Template(route, tuple(segments), tuple(names), literals)


def _match_template(template: _Template, segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    names = iter(template.names)
    for expected, actual in zip(template.segments, segments, strict=True):
        if expected is None:
            if not actual:
                return None
            params[next(names)] = actual
        elif expected != actual:
            return None
    return params
