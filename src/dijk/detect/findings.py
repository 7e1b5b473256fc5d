"""Public value types of the attack detector: requests in, findings and verdicts out.

Everything here is a frozen dataclass so that a verdict can be handed to the audit log,
the metrics and the denial without anyone being able to change it on the way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dijk.detect.normalise import parse_urlencoded

# Severity scores follow the OWASP CRS anomaly-scoring convention so that thresholds
# mean the same thing to people who know CRS: one critical finding reaches the default
# threshold of 5 on its own; lesser findings need company.
CRITICAL = 5
ERROR = 4
WARNING = 3
NOTICE = 2

SNIPPET_MAX = 64


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that fired on one value.

    ``snippet`` is short (at most 64 characters), escaped (only printable ASCII, anything
    else as ``\\xNN``/``\\uNNNN``) and truncated: it is safe to log and never the whole
    payload.
    """

    rule_id: str
    category: str
    severity: int
    paranoia: int
    location: str
    field: str
    transform: str
    snippet: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The detector's answer for one request: what fired, the anomaly score, the decision."""

    findings: tuple[Finding, ...]
    score: int
    blocked: bool
    categories: frozenset[str]

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Distinct rule ids in the order they were found (for the audit record)."""
        return tuple(dict.fromkeys(finding.rule_id for finding in self.findings))

    @property
    def primary_category(self) -> str | None:
        """The category with the highest summed severity, for the ``waf.<category>`` code."""
        if not self.findings:
            return None
        totals: dict[str, int] = {}
        for finding in self.findings:
            totals[finding.category] = totals.get(finding.category, 0) + finding.severity
        return max(sorted(totals), key=lambda category: totals[category])


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Do not report ``rules`` or ``categories`` (everything when both are empty) for one
    field, or for every field (``field`` None).

    ``field`` is a field path as reported in findings: ``$.description`` for a JSON body
    field (array indices may be written ``[*]``), a query or form parameter name, or a
    header name. ``location`` optionally narrows the exclusion to one location
    (``query``, ``json``, ``header``...).
    """

    field: str | None
    categories: frozenset[str] = frozenset()
    location: str | None = None
    rules: frozenset[str] = frozenset()

    def covers(self, rule_id: str, category: str) -> bool:
        """Whether this exclusion drops a finding of that rule and category (by location
        and field is the caller's part)."""
        if not self.categories and not self.rules:
            return True
        return rule_id in self.rules or category in self.categories


@dataclass(frozen=True, slots=True)
class GraphQLLimits:
    """Limits for GraphQL documents; exceeding one is a ``graphql_abuse`` finding."""

    max_depth: int = 10
    max_aliases: int = 15
    max_batch: int = 5
    allow_introspection: bool = False
    max_fields: int = 5_000
    max_duplicate_fields: int = 10
    max_directives: int = 10
    max_fragment_depth: int = 16
    max_page_size: int = 1_000


JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


@dataclass(frozen=True, slots=True)
class RequestParts:
    """The parts of an HTTP request the detector looks at, already split by the gateway.

    ``path`` is the raw path as sent (still percent-encoded); ``query`` holds the query
    pairs decoded once, as every HTTP framework does (``raw_query`` keeps the query string
    as sent, for replaying the request elsewhere); ``headers`` are (lower-case name,
    value) pairs. ``body`` is the raw body; when the gateway already parsed a JSON body
    it passes it as ``json_body`` (and ``has_json_body=True``) so it is not parsed twice.
    ``content_encoding`` (``gzip``, ``deflate``) makes the detector inflate the body
    (bounded, with a compression-ratio check) before inspecting it.
    ``graphql`` marks a GraphQL endpoint (also inferred from a path ending in
    ``/graphql`` or an ``application/graphql`` body). ``content_kinds`` maps body fields
    (``("json", "$.description")``, array indices as ``[*]``) to the kind of text their
    owner declared (:mod:`dijk.detect.content`).
    """

    method: str = "GET"
    path: str = "/"
    query: tuple[tuple[str, str], ...] = ()
    raw_query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = ""
    content_encoding: str = ""
    body: bytes = b""
    json_body: JsonValue = None
    has_json_body: bool = False
    graphql: bool = False
    content_kinds: Mapping[tuple[str, str], str] | None = None

    @classmethod
    def from_target(
        cls,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        graphql: bool = False,
    ) -> RequestParts:
        """Build request parts from a raw request-target (``/path?query``) as on the wire."""
        path, _, query_string = target.partition("?")
        query = tuple(parse_urlencoded(query_string.encode("utf-8", "surrogatepass")))
        lowered = tuple((name.lower(), value) for name, value in headers)
        content_type = next((value for name, value in lowered if name == "content-type"), "")
        encoding = next((value for name, value in lowered if name == "content-encoding"), "")
        return cls(
            method=method.upper(),
            path=path or "/",
            query=query,
            raw_query=query_string,
            headers=lowered,
            content_type=content_type,
            content_encoding=encoding,
            body=body,
            graphql=graphql,
        )
