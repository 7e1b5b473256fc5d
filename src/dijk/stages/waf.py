"""Attack detection (priority 3000): the route's ``waf:`` settings over ``dijk.detect``.

The stage is a thin adapter. Everything that decides lives in the pure detector
(:mod:`dijk.detect.engine`); this module only turns a request context into
:class:`~dijk.detect.findings.RequestParts`, a verdict into a decision, and findings into
audit entries.

* **Two phases, one score.** Path, query and headers are inspected in ``request_headers``
  (a request can be refused before its body is read); the body, when the stage asked for
  it, in ``request_body``. The anomaly score is the request's: body findings are scored
  together with the header findings, so two warnings in different parts add up.
* **Every body the upstream could parse.** ``wants_request_body`` asks for every body:
  a label does not stop an upstream from parsing JSON sent as ``image/png``, so the
  detector inspects whatever reads as JSON, XML, a form or text, whatever the label says.
  A route may let opaque types (images, video, PDFs...) stream uninspected with
  ``opaque_bodies: stream``. A body in a content coding the detector cannot decode is
  refused (415 ``waf.unsupported_encoding``) unless the route says
  ``unknown_encoding: inspect``.
* **Compiled once.** Detectors are shared per configuration through :class:`DetectorCache`
  (one per distinct paranoia/threshold/exclusions/GraphQL limits); the Hyperscan database
  behind them is compiled once per process. Nothing is compiled per request.
* **Stateless.** The verdict depends on the request alone; nothing is remembered between
  requests (that is the abuse detector's job).
* **OpenAPI-aware.** When the OpenAPI stage (priority 4000, before this one in both
  phases) validated the request against the route's document, it leaves the set of
  fields whose schema constrains them to an integer, number, boolean, plain enum value,
  ``uuid``, ``date`` or ``date-time`` (``ctx.annotations["openapi.constrained_fields"]``:
  ``(location, field)`` pairs such as ``("json", "$.amount")``,
  ``("json", "$.items[*].id")`` or ``("query", "limit")``; see
  :mod:`dijk.openapi.constrained`), and findings on those fields are dropped: a value that
  conformed to such a schema cannot carry a payload. It publishes the set only for the
  parts of a request that conformed; free-text fields always get the full check, and
  ``limits`` findings (the detector could not see everything) are never dropped.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import structlog

from dijk.config.models import WafConfig, WafExclusion
from dijk.detect.archives import MAX_RATIO, MIN_BOMB_BYTES
from dijk.detect.engine import (
    Detector,
    compiled_patterns,
    decodable_encoding,
    escape_for_log,
    excluded,
    patterns_compiled,
    patterns_fingerprint,
    rescore,
    wildcard_indices,
)
from dijk.detect.findings import Exclusion, Finding, GraphQLLimits, RequestParts, Verdict
from dijk.detect.normalise import parse_urlencoded
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

log = structlog.get_logger("dijk.waf")

#: Annotation key the OpenAPI stage fills (see the module docstring).
OPENAPI_CONSTRAINED_FIELDS = "openapi.constrained_fields"
#: Annotation key the OpenAPI stage fills with the kinds of text body fields declare.
OPENAPI_CONTENT_KINDS = "openapi.content_kinds"
#: Header-phase findings kept for scoring the body phase of the same request.
_HEAD_FINDINGS = "waf.head_findings"
#: Most findings one request adds to ``ctx.findings`` (the audit record stays small).
MAX_RECORDED_FINDINGS = 32
_MAX_FIELD_CHARS = 128

# Bodies the detector cannot read: they stream to the upstream uninspected. (Octet
# streams are read: they are where archives, and so archive bombs, arrive.)
_OPAQUE_PREFIXES = ("image/", "audio/", "video/", "font/", "model/")
_OPAQUE_TYPES = frozenset(
    {
        "application/pdf",
        "application/x-tar",
        "application/protobuf",
        "application/x-protobuf",
        "application/grpc",
        "application/vnd.ms-excel",
        "application/msword",
    }
)

_LABELS = {
    "sqli": "SQL injection",
    "xss": "cross-site scripting",
    "cmdi": "command injection",
    "path_traversal": "path traversal",
    "ssrf": "server-side request forgery",
    "nosql": "NoSQL injection",
    "ldap": "LDAP injection",
    "ssti": "template injection",
    "log4shell": "a Log4j JNDI lookup (Log4Shell)",
    "prototype_pollution": "prototype pollution",
    "xxe": "an XML external entity (XXE)",
    "graphql_abuse": "a GraphQL query over the allowed limits",
    "code_injection": "code injection",
    "crlf": "header injection (CR/LF)",
    "upload": "a dangerous upload",
    "scanner": "a vulnerability scanner",
    "limits": "content the detector cannot inspect fully",
}

DetectorKey = tuple[int, int, tuple[Exclusion, ...], GraphQLLimits]


def detector_key(config: WafConfig) -> DetectorKey:
    exclusions = tuple(_exclusion(rule) for rule in config.exclude if not rule.consumers)
    limits = GraphQLLimits(**config.graphql.model_dump())
    return (config.paranoia, config.threshold, exclusions, limits)


def content_kinds(declared: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """``waf.content`` as (location, field) keys: ``$...`` paths are JSON fields, other
    names form and multipart fields."""
    kinds: dict[tuple[str, str], str] = {}
    for field, kind in declared.items():
        if field.startswith("$"):
            kinds[("json", field)] = kind
        else:
            kinds[("form", field)] = kind
            kinds[("multipart", field)] = kind
    return kinds


def _exclusion(rule: WafExclusion) -> Exclusion:
    return Exclusion(rule.field, frozenset(rule.categories), rule.location, frozenset(rule.rules))


def pattern_cache_dir() -> Path:
    """Where the compiled Hyperscan database is kept between runs: ``DIJK_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/dijk``, else ``~/.cache/dijk``."""
    override = os.environ.get("DIJK_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dijk"


def load_patterns(cache_dir: Path | None) -> None:
    """Build the process's pattern database, from the on-disk cache when possible.

    Compiling the rules takes seconds of CPU; loading the serialized database takes
    milliseconds. The file name carries a digest of the patterns, flags and Hyperscan
    version, and Hyperscan verifies the file's CRC and platform on load, so a stale or
    damaged file is recompiled over, never used. Cache failures only cost time.
    """
    if patterns_compiled() or cache_dir is None:
        compiled_patterns()
        return
    path = cache_dir / f"hyperscan-{patterns_fingerprint()}.db"
    try:
        serialized: bytes | None = path.read_bytes()
    except OSError:
        serialized = None
    patterns = compiled_patterns(serialized)
    if patterns.loaded:
        return
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(patterns.serialize())
        temporary.chmod(0o600)
        temporary.replace(path)
        _prune(cache_dir)
    except OSError as exc:
        log.info("waf_pattern_cache_not_written", path=str(path), error=type(exc).__name__)


def _prune(cache_dir: Path, keep: int = 3) -> None:
    """Keep the newest few databases (other Dijk versions may share the directory)."""
    files = sorted(
        cache_dir.glob("hyperscan-*.db"), key=lambda file: file.stat().st_mtime, reverse=True
    )
    for old in files[keep:]:
        old.unlink(missing_ok=True)


class DetectorCache:
    """One :class:`Detector` per distinct detection setting, shared by the routes of one
    configuration (built when the configuration loads, never per request)."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._detectors: dict[DetectorKey, Detector] = {}
        self._cache_dir = cache_dir if cache_dir is not None else pattern_cache_dir()

    def __len__(self) -> int:
        return len(self._detectors)

    def get(self, config: WafConfig) -> Detector:
        key = detector_key(config)
        detector = self._detectors.get(key)
        if detector is None:
            load_patterns(self._cache_dir)
            paranoia, threshold, exclusions, limits = key
            detector = Detector(paranoia, threshold, exclusions, graphql_limits=limits)
            self._detectors[key] = detector
        return detector


def _bomb_ratio(expanded: int, compressed: int) -> bool:
    return expanded >= MIN_BOMB_BYTES and expanded >= MAX_RATIO * max(compressed, 1)


def _declares_json(content_type: str) -> bool:
    """A media type the detector reads as JSON without sniffing (what it parses itself)."""
    kind = media_type(content_type)
    return kind in ("application/json", "text/json") or kind.endswith("+json")


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def inspects_body(content_type: str) -> bool:
    """True for bodies the detector reads (everything but known opaque media types)."""
    kind = media_type(content_type)
    return not (kind.startswith(_OPAQUE_PREFIXES) or kind in _OPAQUE_TYPES)


def raw_path(ctx: RequestContext) -> str:
    """The path as the client sent it (still percent-encoded): what attackers wrote.

    ``ctx.path`` is normalised for routing; encoded payloads must be seen as sent.
    """
    target = ctx.raw_target
    if not target:
        return ctx.path
    if not target.startswith("/"):
        target = urlsplit(target).path or "/"
    return target.split("?", 1)[0] or "/"


def constrained_fields(ctx: RequestContext) -> Collection[tuple[str, str]]:
    value = ctx.annotations.get(OPENAPI_CONSTRAINED_FIELDS)
    if isinstance(value, frozenset | set | tuple | list):
        return value
    return ()


def drop_constrained(
    findings: Sequence[Finding], constrained: Collection[tuple[str, str]]
) -> tuple[Finding, ...]:
    """Findings outside fields that the OpenAPI stage found constrained (see the hook)."""
    if not constrained:
        return tuple(findings)
    kept: list[Finding] = []
    for finding in findings:
        if finding.category == "limits":
            # Not about the field's value: values past it went uninspected.
            kept.append(finding)
            continue
        location = finding.location.removesuffix("_name")
        field = finding.field
        if (location, field) in constrained or (location, wildcard_indices(field)) in constrained:
            continue
        kept.append(finding)
    return tuple(kept)


def audit_finding(finding: Finding) -> Finding:
    """The finding as it may be logged: the field path (which can hold attacker-chosen
    JSON keys) escaped and truncated like the snippet already is."""
    field = escape_for_log(finding.field)
    if len(field) > _MAX_FIELD_CHARS:
        field = field[: _MAX_FIELD_CHARS - 3] + "..."
    return finding if field == finding.field else replace(finding, field=field)


class WafStage(Stage):
    name: ClassVar[str] = "waf"
    priority: ClassVar[int] = 3000
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS, Phase.REQUEST_BODY})

    def __init__(self, config: WafConfig, detector: Detector) -> None:
        self._monitor = config.mode == "monitor"
        self._detector = detector
        self._stream_opaque = config.opaque_bodies == "stream"
        self._content = content_kinds(config.content)
        # Exclusions for some consumers only: applied here, the detector knows no callers.
        self._by_consumer: dict[str, dict[str | None, list[Exclusion]]] = {}
        for rule in config.exclude:
            for consumer in rule.consumers:
                self._by_consumer.setdefault(consumer, {}).setdefault(rule.field, []).append(
                    _exclusion(rule)
                )
        self._refuse_unknown_encoding = config.unknown_encoding == "refuse"

    def wants_request_body(self, ctx: RequestContext) -> bool:
        if ctx.content_length == 0:
            return False
        if not self._stream_opaque:
            return True
        return inspects_body(ctx.content_type or ctx.header("content-type") or "")

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        encoding = ctx.header("content-encoding")
        if encoding and self._refuse_unknown_encoding and not decodable_encoding(encoding):
            refusal = self._unsupported_encoding(ctx, encoding)
            if refusal is not None:
                if refusal.denies:
                    return refusal
                ctx.monitored.append(refusal)  # monitor: record, and inspect the rest
        parts = RequestParts(
            method=ctx.method,
            path=raw_path(ctx),
            # The query as bytes (the server keeps them byte for byte as latin-1).
            query=tuple(parse_urlencoded(ctx.query.encode("latin-1", "replace")))
            if ctx.query
            else (),
            raw_query=ctx.query,
            headers=tuple(ctx.headers),
            content_type=ctx.content_type or ctx.header("content-type") or "",
        )
        verdict = self._detector.inspect_head(parts)
        if not verdict.findings:
            return None
        verdict = self._filter(ctx, verdict)
        ctx.annotations[_HEAD_FINDINGS] = verdict.findings
        self._record(ctx, verdict.findings)
        return self._decide(verdict)

    async def request_body(self, ctx: RequestContext) -> Decision | None:
        if not ctx.body:
            return None
        body, encoding = ctx.body, ctx.header("content-encoding") or ""
        decoded = ctx.decoded_body
        if decoded is not None and not _bomb_ratio(len(decoded), len(body)):
            # Decoded once by the client limits stage; a body that inflated like a bomb
            # still goes to the detector as sent, so that it reports the ratio.
            body, encoding = decoded, ""
        parsed, has_json = None, False
        if not encoding and _declares_json(ctx.content_type or ctx.header("content-type") or ""):
            parsed, has_json = ctx.json_body()  # parsed once, shared with OpenAPI and privacy
        parts = RequestParts(
            method=ctx.method,
            path=ctx.path,
            content_type=ctx.content_type or ctx.header("content-type") or "",
            content_encoding=encoding,
            body=body,
            json_body=parsed,
            has_json_body=has_json,
            content_kinds=self._kinds(ctx),
        )
        body_verdict = self._detector.inspect_body(parts)
        if not body_verdict.findings:
            return None
        body_verdict = self._filter(ctx, body_verdict)
        self._record(ctx, body_verdict.findings)
        prior: tuple[Finding, ...] = ctx.annotations.get(_HEAD_FINDINGS, ())
        if prior:
            findings = (*prior, *body_verdict.findings)
            verdict = rescore(findings, self._detector.paranoia, self._detector.threshold)
        else:
            verdict = body_verdict
        return self._decide(verdict)

    def _kinds(self, ctx: RequestContext) -> Mapping[tuple[str, str], str] | None:
        """The route's declared kinds of text, with those of the OpenAPI document (for a
        body that conformed to it) on top."""
        declared = ctx.annotations.get(OPENAPI_CONTENT_KINDS)
        if not isinstance(declared, dict) or not declared:
            return self._content or None
        if not self._content:
            return declared
        return {**self._content, **declared}

    def _unsupported_encoding(self, ctx: RequestContext, encoding: str) -> Decision | None:
        """415 for a body the detector could not read (no body, nothing to read)."""
        if ctx.content_length is None and ctx.header("transfer-encoding") is None:
            return None
        if ctx.content_length == 0:
            return None
        shown = escape_for_log(encoding[:_MAX_FIELD_CHARS])
        detail = (
            f"The request body's Content-Encoding ({shown}) is not one the gateway can "
            "inspect; send it as gzip, deflate or uncompressed."
        )
        reason = "waf.unsupported_encoding"
        if self._monitor:
            return Decision.monitor(415, reason, detail)
        return Decision.deny(415, reason, detail)

    def _filter(self, ctx: RequestContext, verdict: Verdict) -> Verdict:
        constrained = constrained_fields(ctx)
        index = self._by_consumer.get(ctx.identity.consumer) if ctx.identity else None
        if not constrained and not index:
            return verdict
        kept = drop_constrained(verdict.findings, constrained)
        if index:
            kept = tuple(
                finding
                for finding in kept
                if not excluded(
                    index, finding.rule_id, finding.category, finding.location, finding.field
                )
            )
        return rescore(kept, self._detector.paranoia, self._detector.threshold)

    @staticmethod
    def _record(ctx: RequestContext, findings: Sequence[Finding]) -> None:
        room = MAX_RECORDED_FINDINGS - len(ctx.findings)
        if room > 0:
            ctx.findings.extend(audit_finding(finding) for finding in findings[:room])

    def _decide(self, verdict: Verdict) -> Decision | None:
        if not verdict.blocked:
            return None
        category = verdict.primary_category or "limits"
        blocking = [f for f in verdict.findings if f.category == category]
        rules = list(dict.fromkeys(f.rule_id for f in (blocking or verdict.findings)))
        others = [r for r in verdict.rule_ids if r not in rules]
        detail = (
            f"The request was refused because it looks like {_LABELS.get(category, category)} "
            f"(anomaly score {verdict.score}, threshold {self._detector.threshold})."
        )
        reason = f"waf.{category}"
        if self._monitor:
            return Decision.monitor(403, reason, detail, rules=rules + others, score=verdict.score)
        return Decision.deny(403, reason, detail, rules=rules + others, score=verdict.score)
