"""The learner: endpoints (method + path template) and what their traffic looked like.

Pure and bounded. :class:`Learner` takes one :class:`Exchange` per request (from the
gateway's discovery stage, or from an imported HAR file or access log) and keeps, per
endpoint, a plain dictionary (:data:`Endpoint`) that is also its stored form:

``method``, ``template`` (``{}`` for parameters), ``route`` (the gateway route, ``""`` when
no route matched: such requests are kept as their template only), ``count``, ``first_us``,
``last_us``, ``status`` (count per status code), ``request_types`` and ``response_types``
(media types), ``query`` (parameter name → value shape), ``auth`` (count per method seen:
``api_key``, ``jwt``, ``bearer``, ``basic``, ``cookie``, ``none``...), ``pii`` (count per
category the privacy stage found), ``params`` (kind counts per path parameter position),
``request`` and ``responses`` (body shapes, see :mod:`dijk.discovery.shapes`),
``undeclared`` (requests the route's OpenAPI document did not declare), ``unrouted``
(requests that matched no route: answered 404 by the gateway), ``samples``.

**Sampled**: the first ``sample_first`` requests of an endpoint have their bodies and
parameters learnt, then one in ``sample_every``; the others only add to counters.
**Bounded**: each endpoint is estimated in bytes (:func:`endpoint_bytes`) and shapes stop
growing at ``max_endpoint_bytes``; past ``max_endpoints`` or ``max_total_bytes`` the least
recently seen endpoints are evicted (and counted in ``evicted``). No value from traffic is
kept (the only exception, enum codes, is explained in ``shapes``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from dijk.discovery import shapes
from dijk.discovery.paths import PARAM, PathTree, classify, fold_templates, split_path

__all__ = [
    "Endpoint",
    "Exchange",
    "Learner",
    "LearnerLimits",
    "endpoint_bytes",
    "fold_endpoints",
    "merge_endpoint",
    "new_endpoint",
]

Endpoint = dict[str, Any]

# Estimated bytes (CPython 3.12, measured by bench/discovery.py with tracemalloc).
_ENDPOINT_BYTES: Final = 2700
_ENTRY_BYTES: Final = 110
_PLACE_BYTES: Final = 520
_NODE_BYTES: Final = 420

_MAX_QUERY_NAMES: Final = 64
_MAX_COUNTED: Final = 32  # distinct status codes, media types, auth methods, categories
_QUERY_NAME: Final = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,64}")
_MEDIA: Final = re.compile(r"[a-z0-9.+-]{1,40}/[a-z0-9.+*-]{1,80}")
_NUMBER: Final = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")


@dataclass(slots=True)
class Exchange:
    """One request and its answer, as the learner sees it (bodies only when sampled)."""

    method: str
    path: str
    time_us: int
    status: int = 0
    query: str = ""
    request_type: str = ""
    response_type: str = ""
    request_body: bytes | None = None
    response_body: bytes | None = None
    auth: str = ""
    pii: tuple[str, ...] = ()
    route: str = ""
    matched: bool = True
    # A template known for this request (the route's OpenAPI operation); None: learn it.
    template: str | None = None
    # False when the route's OpenAPI document does not declare the operation.
    declared: bool | None = None


@dataclass(slots=True)
class LearnerLimits:
    max_endpoints: int = 5000
    max_endpoint_bytes: int = 256 * 1024
    max_total_bytes: int = 64 * 1024 * 1024
    max_tree_nodes: int = 20_000
    ambiguous_limit: int = 4
    sample_first: int = 20
    sample_every: int = 50
    max_body_bytes: int = 256 * 1024


def new_endpoint(method: str, template: str, route: str, now: int) -> Endpoint:
    return {
        "method": method,
        "template": template,
        "route": route,
        "count": 0,
        "first_us": now,
        "last_us": now,
        "status": {},
        "request_types": {},
        "response_types": {},
        "query": {},
        "auth": {},
        "pii": {},
        "params": {},
        "request": None,
        "responses": {},
        "undeclared": 0,
        "unrouted": 0,
        "samples": 0,
    }


def _bump(counts: dict[str, int], key: str, amount: int = 1) -> None:
    if key in counts:
        counts[key] += amount
    elif len(counts) < _MAX_COUNTED:
        counts[key] = amount


def media_type(header: str) -> str:
    """``application/json; charset=utf-8`` → ``application/json`` ("" when not a media type)."""
    value = header.split(";", 1)[0].strip().lower()
    return value if _MEDIA.fullmatch(value) else ""


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _entries(endpoint: Endpoint) -> int:
    return (
        len(endpoint["status"])
        + len(endpoint["request_types"])
        + len(endpoint["auth"])
        + len(endpoint["pii"])
        + len(endpoint["params"])
        + sum(len(types) + 1 for types in endpoint["response_types"].values())
    )


def endpoint_bytes(endpoint: Endpoint) -> int:
    """Estimated memory of one endpoint (what the limits count); walks its shapes."""
    places = sum(shapes.shape_size(shape) for shape in endpoint["query"].values())
    if endpoint["request"] is not None:
        places += shapes.shape_size(endpoint["request"])
    places += sum(shapes.shape_size(shape) for shape in endpoint["responses"].values())
    return _ENDPOINT_BYTES + _entries(endpoint) * _ENTRY_BYTES + places * _PLACE_BYTES


class Learner:
    """Endpoints learnt from exchanges (see the module docstring). Not thread-safe."""

    def __init__(self, limits: LearnerLimits | None = None) -> None:
        self.limits = limits or LearnerLimits()
        self.tree = PathTree(
            max_nodes=self.limits.max_tree_nodes, ambiguous_limit=self.limits.ambiguous_limit
        )
        self._endpoints: OrderedDict[tuple[str, str], Endpoint] = OrderedDict()
        self._sizes: dict[tuple[str, str], int] = {}
        # Requests seen per endpoint since it was created here (sampling), kept across take().
        self._seen: dict[tuple[str, str], int] = {}
        self.total_bytes = 0
        self.evicted = 0
        self.requests = 0

    # -- the request path ------------------------------------------------------------------

    def key(self, method: str, path: str, template: str | None = None) -> tuple[str, str]:
        """The endpoint a request belongs to (learns the path's shape)."""
        if template is None:
            template = self.tree.template(path)
        return method, template

    def wants_sample(self, key: tuple[str, str]) -> bool:
        """Whether the next request of this endpoint should have its details learnt."""
        seen = self._seen.get(key, 0)
        limits = self.limits
        return seen < limits.sample_first or seen % limits.sample_every == 0

    def observe(self, exchange: Exchange) -> None:
        """Learn from one exchange (the importers' way; the stage splits key and record)."""
        key = self.key(exchange.method, exchange.path, exchange.template)
        self.record(key, exchange, sampled=self.wants_sample(key))

    def record(self, key: tuple[str, str], exchange: Exchange, *, sampled: bool) -> None:
        self.requests += 1
        self._seen[key] = self._seen.get(key, 0) + 1
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = new_endpoint(key[0], key[1], exchange.route, exchange.time_us)
            self._endpoints[key] = endpoint
            self._sizes[key] = size = endpoint_bytes(endpoint)
            self.total_bytes += size
            if len(self._seen) > 4 * self.limits.max_endpoints:
                self._seen = {k: self._seen.get(k, 0) for k in self._endpoints}
        else:
            self._endpoints.move_to_end(key)
        endpoint["count"] += 1
        if exchange.time_us > endpoint["last_us"]:
            endpoint["last_us"] = exchange.time_us
        if exchange.time_us < endpoint["first_us"]:
            endpoint["first_us"] = exchange.time_us
        if exchange.status:
            _bump(endpoint["status"], str(exchange.status))
        _bump(endpoint["auth"], exchange.auth or "none")
        for category in exchange.pii:
            _bump(endpoint["pii"], category)
        if exchange.declared is False:
            endpoint["undeclared"] += 1
        if not exchange.matched:
            endpoint["unrouted"] += 1
        if exchange.route and not endpoint["route"]:
            endpoint["route"] = exchange.route
        if sampled:
            self._details(key, endpoint, exchange)
        if self.memory_bytes > self.limits.max_total_bytes or (
            len(self._endpoints) > self.limits.max_endpoints
        ):
            self._evict()

    def _details(self, key: tuple[str, str], endpoint: Endpoint, exchange: Exchange) -> None:
        endpoint["samples"] += 1
        before = self._sizes[key]
        entries = _entries(endpoint)
        room = max(0, self.limits.max_endpoint_bytes - before) // _PLACE_BYTES
        budget = shapes.ShapeBudget(room)
        request_type = media_type(exchange.request_type)
        if request_type:
            _bump(endpoint["request_types"], request_type)
        response_type = media_type(exchange.response_type)
        if response_type and exchange.status:
            types = endpoint["response_types"].setdefault(str(exchange.status), {})
            _bump(types, response_type)
        if exchange.query:
            self._query(endpoint, exchange.query, budget)
        if exchange.template is None and PARAM in key[1]:
            self._params(endpoint, key[1], exchange.path)
        body = _json(exchange.request_body, request_type, self.limits.max_body_bytes)
        if body is not _NOTHING and budget.places > 0:
            endpoint["request"] = shapes.learn(endpoint["request"], body, budget)
        body = _json(exchange.response_body, response_type, self.limits.max_body_bytes)
        if body is not _NOTHING and exchange.status and budget.places > 0:
            status = str(exchange.status)
            responses = endpoint["responses"]
            if status in responses or len(responses) < _MAX_COUNTED:
                responses[status] = shapes.learn(responses.get(status), body, budget)
        # Counted as learnt (no walk of the shapes on the request path).
        grown = (room - budget.places) * _PLACE_BYTES + (
            _entries(endpoint) - entries
        ) * _ENTRY_BYTES
        self._sizes[key] = before + grown
        self.total_bytes += grown

    def _query(self, endpoint: Endpoint, query: str, budget: shapes.ShapeBudget) -> None:
        parameters: dict[str, Any] = endpoint["query"]
        for pair in query.split("&")[:_MAX_QUERY_NAMES]:
            name, _, value = pair.partition("=")
            if not _QUERY_NAME.fullmatch(name):
                continue
            existing = parameters.get(name)
            if existing is None and (len(parameters) >= _MAX_QUERY_NAMES or budget.places <= 0):
                continue
            parameters[name] = shapes.learn(existing, _query_value(value), budget, name)

    def _params(self, endpoint: Endpoint, template: str, path: str) -> None:
        raw = split_path(path)
        parts = template.split("/")[1:]
        if len(raw) != len(parts):
            return
        kinds: dict[str, dict[str, int]] = endpoint["params"]
        for index, part in enumerate(parts):
            if part.startswith(PARAM):
                segment = raw[index]
                if len(part) > len(PARAM):  # {}.json: the stem
                    segment = segment[: len(segment) - (len(part) - len(PARAM))]
                _bump(kinds.setdefault(str(index), {}), classify(segment))

    def _evict(self) -> None:
        limits = self.limits
        while self._endpoints and (
            self.memory_bytes > limits.max_total_bytes
            or len(self._endpoints) > limits.max_endpoints
        ):
            key, _ = self._endpoints.popitem(last=False)
            self.total_bytes -= self._sizes.pop(key)
            self.evicted += 1  # its sampling count stays: it is not learnt from scratch

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._endpoints)

    @property
    def memory_bytes(self) -> int:
        """Estimated memory of the endpoints and the path tree (what the bound counts)."""
        return self.total_bytes + self.tree.nodes * _NODE_BYTES

    @property
    def seen_endpoints(self) -> int:
        """Endpoints this learner has seen (also those already taken by a flush)."""
        return len(self._seen)

    def endpoints(self) -> Iterator[Endpoint]:
        return iter(list(self._endpoints.values()))

    def take(self) -> list[Endpoint]:
        """The endpoints learnt since the last take (to be written), forgetting their stats.

        Sampling counters and the path tree are kept: they are what makes the next requests
        cheap and their templates stable.
        """
        taken = self._resolved()
        self._endpoints = OrderedDict()
        self._sizes = {}
        self.total_bytes = 0
        return taken

    def restore(self, endpoints: Iterable[Endpoint]) -> None:
        """Put back endpoints a failed write returned, merged with what came since."""
        for endpoint in endpoints:
            key = (endpoint["method"], endpoint["template"])
            existing = self._endpoints.get(key)
            if existing is None:
                self._endpoints[key] = endpoint
                self._endpoints.move_to_end(key, last=False)  # oldest: evicted first
            else:
                merge_endpoint(existing, endpoint)
            self.total_bytes -= self._sizes.get(key, 0)
            self._sizes[key] = endpoint_bytes(self._endpoints[key])
            self.total_bytes += self._sizes[key]
        self._evict()

    def snapshot(self) -> list[Endpoint]:
        """Every endpoint, with templates as the tree now sees them, merged accordingly."""
        return fold_endpoints(self._resolved(), self.limits.ambiguous_limit)

    def _resolved(self) -> list[Endpoint]:
        """Copies of the endpoints under their templates as the tree now sees them."""
        merged: dict[tuple[str, str], Endpoint] = {}
        for endpoint in self._endpoints.values():
            template = self.tree.resolve(endpoint["template"])
            key = (endpoint["method"], template)
            copy = orjson.loads(orjson.dumps(endpoint))
            copy["template"] = template
            if key in merged:
                merge_endpoint(merged[key], copy)
            else:
                merged[key] = copy
        return list(merged.values())


_NOTHING: Final = object()


def _json(body: bytes | None, media: str, limit: int) -> Any:
    if not body or len(body) > limit or (media and not is_json(media)):
        return _NOTHING
    if not media and body[:1] not in (b"{", b"["):
        return _NOTHING
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOTHING


def _query_value(text: str) -> Any:
    if _NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)
    if text in ("true", "false"):
        return text == "true"
    if "%" in text or "+" in text:
        from urllib.parse import unquote_plus

        return unquote_plus(text)
    return text


def _add(into: dict[str, int], other: Mapping[str, int]) -> None:
    for key, count in other.items():
        _bump(into, key, count)


def merge_endpoint(into: Endpoint, other: Endpoint, max_places: int = 1 << 30) -> Endpoint:
    """``into`` plus ``other`` (counts add, first/last widen, shapes merge)."""
    into["count"] += other.get("count", 0)
    into["first_us"] = min(into["first_us"], other.get("first_us", into["first_us"]))
    into["last_us"] = max(into["last_us"], other.get("last_us", into["last_us"]))
    into["route"] = into.get("route") or other.get("route", "")
    into["undeclared"] = into.get("undeclared", 0) + other.get("undeclared", 0)
    into["samples"] = into.get("samples", 0) + other.get("samples", 0)
    into["unrouted"] = into.get("unrouted", 0) + other.get("unrouted", 0)
    for name in ("status", "request_types", "auth", "pii"):
        _add(into.setdefault(name, {}), other.get(name, {}))
    for status, types in other.get("response_types", {}).items():
        _add(into.setdefault("response_types", {}).setdefault(status, {}), types)
    for position, kinds in other.get("params", {}).items():
        _add(into.setdefault("params", {}).setdefault(position, {}), kinds)
    query = into.setdefault("query", {})
    for name, shape in other.get("query", {}).items():
        if name in query or len(query) < _MAX_QUERY_NAMES:
            query[name] = shapes.merge(query.get(name), shape)
    into["request"] = shapes.merge(into.get("request"), other.get("request"), max_places)
    responses = into.setdefault("responses", {})
    for status, shape in other.get("responses", {}).items():
        responses[status] = shapes.merge(responses.get(status), shape, max_places)
    return into


def fold_endpoints(endpoints: Iterable[Endpoint], ambiguous_limit: int = 4) -> list[Endpoint]:
    """Endpoints with literal templates folded into parameters seen at the same place."""
    items = list(endpoints)
    canonical = fold_templates(
        (item["template"] for item in items), ambiguous_limit=ambiguous_limit
    )
    merged: dict[tuple[str, str], Endpoint] = {}
    for item in items:
        template: str = canonical.get(item["template"]) or item["template"]
        key = (item["method"], template)
        if key in merged:
            merge_endpoint(merged[key], item)
        else:
            item["template"] = template
            merged[key] = item
    return sorted(merged.values(), key=lambda item: (item["template"], item["method"]))
