"""Privacy (priority 1000): personal data found in traffic, masked in responses, mapped.

On a route with ``privacy: {...}``:

- **requests**: JSON bodies and query parameters are scanned (``detect/pii``); what is
  found is recorded, never changed.
- **responses**: the body is asked for only when the response is JSON (or has no content
  type, so an unlabelled JSON body cannot slip past), bounded by
  ``limits.max_response_buffer_bytes``. With ``mask_response`` it is masked per the
  route's strategy and field rules (``detect/masking``) and re-serialised, so the JSON
  stays valid and the writer sends the new Content-Length. Validators of the old bytes
  (ETag, Content-MD5, digests) are dropped. To see every byte the stage asks the upstream
  for an uncompressed, whole response (``Accept-Encoding: identity``, no ``Range``); a
  gzip or deflate body is still decoded (bounded) and one it cannot read is refused with
  502 ``privacy.unreadable_response`` rather than forwarded unmasked.
- ``ctx.annotations["pii_categories"]``: the sorted categories seen in the request and the
  response, for the audit record.
- **log phase**: one :class:`~dijk.privacy.datamap.Observation` (categories by field path
  template, consumer, pseudonymous client and data subjects, no raw value) goes to the
  data map recorder, which aggregates in memory and writes periodically.

Nothing here logs a body, unless ``privacy.debug_log_bodies`` is on: then bodies are
logged at debug level with every category masked, and cut at 4 KiB.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl

import orjson
import structlog

from dijk.config.models import RouteConfig
from dijk.detect.masking import Masker, Strategy
from dijk.detect.pii_model import Category, PiiMatch
from dijk.detect.pii_paths import PathNode, found, resolve_node, resolve_path
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage
from dijk.privacy.datamap import Observation
from dijk.privacy.endpoint import endpoint_template
from dijk.privacy.resources import PrivacyResources
from dijk.privacy.settings import RoutePrivacy

__all__ = ["PrivacyStage"]

log = structlog.get_logger("dijk.privacy")

_STATE: Final = "privacy"
PII_ANNOTATION: Final = "pii_categories"
# Request headers that would let the upstream send something we cannot mask whole.
_NEGOTIATION: Final = frozenset({"accept-encoding", "range", "if-range"})
# Response headers that describe the upstream's bytes, which masking changes.
_VALIDATORS: Final = frozenset(
    {"etag", "content-md5", "digest", "content-digest", "repr-digest", "content-encoding"}
)
# Categories that identify a person: their pseudonyms count data subjects. (A secret is
# a credential, an IP address a device: counted as values, not as people.)
_SUBJECT_CATEGORIES: Final = frozenset(
    {
        Category.EMAIL,
        Category.PHONE,
        Category.IBAN,
        Category.BSN,
        Category.CARD,
        Category.DATE_OF_BIRTH,
    }
)
# Per match the stage reads categories as their value strings: `Category.value` is a
# Python-level property (two calls), the member's `_value_` attribute the same string.
_SUBJECT_VALUES: Final = frozenset(category.value for category in _SUBJECT_CATEGORIES)
_MAX_SUBJECTS_PER_RESPONSE: Final = 10_000
_LONG_DIGITS: Final = re.compile(rb"[0-9]{19}")
_DEBUG_BODY_CHARS: Final = 4096
_QUERY_NAME_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
)


@dataclass(slots=True)
class _Seen:
    """What the stage found in one request (annotation ``privacy``); no raw values."""

    request: dict[tuple[str, str], int] = field(default_factory=dict)
    response: dict[tuple[str, str], int] = field(default_factory=dict)
    categories: set[str] = field(default_factory=set)
    masked: frozenset[str] = frozenset()
    subjects: dict[str, set[str]] = field(default_factory=dict)
    response_scanned: bool = False


class PrivacyStage(Stage):
    name: ClassVar[str] = "privacy"
    priority: ClassVar[int] = 1000
    phases: ClassVar[frozenset[Phase]] = frozenset(
        {Phase.REQUEST_HEADERS, Phase.REQUEST_BODY, Phase.RESPONSE_BODY, Phase.LOG}
    )

    def __init__(
        self,
        route: RouteConfig,
        policy: RoutePrivacy,
        resources: PrivacyResources,
        max_response_bytes: int,
    ) -> None:
        self._route = route.name
        self._policy = policy
        self._resources = resources
        self._detector = resources.detector
        self._max_response = max_response_bytes
        self._masks = policy.mask_response
        self._mask_categories = frozenset(
            Category(category) for category in (policy.categories or list(Category))
        )
        self._mask_values = frozenset(category.value for category in self._mask_categories)
        self._has_field_rules = bool(policy.fields)
        self._uses_hash = policy.strategy == "hash" or "hash" in policy.fields.values()
        self._masker: Masker | None = None if self._uses_hash else self._build_masker(None)
        self._scope_categories = {
            scope: frozenset(category.value for category in categories)
            for scope, categories in policy.scope_categories.items()
        }
        resources.retain()

    def _build_masker(self, key: bytes | None) -> Masker:
        return Masker(
            strategy=Strategy(self._policy.strategy),
            fields={pattern: Strategy(rule) for pattern, rule in self._policy.fields.items()},
            categories=self._mask_categories,
            key=key,
            region=self._resources.settings.region,
        )

    # -- request ---------------------------------------------------------------------------

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        if self._resources.needs_keys and self._resources.keys is None:
            keys = await self._resources.ensure_keys()
            if self._masker is None:
                self._masker = self._build_masker(keys.pseudonym_key)
        seen = _Seen()
        ctx.annotations[_STATE] = seen
        if self._masks:
            ctx.headers = [(name, value) for name, value in ctx.headers if name not in _NEGOTIATION]
            ctx.headers.append(("accept-encoding", "identity"))
        if ctx.query and self._policy.scan_requests:
            self._scan_query(ctx.query, seen)
            self._annotate(ctx, seen)
        return None

    def _scan_query(self, query: str, seen: _Seen) -> None:
        for name, value in parse_qsl(query, keep_blank_values=False)[:256]:
            if not value:
                continue
            safe = name if 0 < len(name) <= 64 and set(name) <= _QUERY_NAME_CHARS else "*"
            label = f"query.{safe}"
            for match in self._detector.scan_text(value, label, field=name[:64]):
                key = (label, match.category.value)
                seen.request[key] = seen.request.get(key, 0) + 1
                seen.categories.add(match.category.value)

    def wants_request_body(self, ctx: RequestContext) -> bool:
        if not self._policy.scan_requests:
            return False
        return _is_json(ctx.content_type or ctx.header("content-type") or "")

    async def request_body(self, ctx: RequestContext) -> Decision | None:
        seen = _state(ctx)
        body = ctx.inspected_body
        if not body or seen is None:
            return None
        document, is_json = None, False
        if not _LONG_DIGITS.search(body):
            document, is_json = ctx.json_body()  # parsed once, shared with OpenAPI and WAF
        if not is_json:
            document, is_json = _parse(body)
        if not is_json:
            return None  # malformed JSON is client_limits' business
        matches = self._detector.scan_json(document)
        _count(matches, seen.request, seen.categories)
        self._annotate(ctx, seen)
        if self._resources.debug_masker is not None:
            self._debug_body(ctx, "request", document, matches)
        return None

    # -- response --------------------------------------------------------------------------

    def wants_response_body(self, ctx: RequestContext) -> bool:
        status = ctx.response_status
        if ctx.method == "HEAD" or status < 200 or status in (204, 304):
            return False
        content_type = _first(ctx.response_headers, "content-type")
        if content_type is None:
            return self._masks  # unlabelled: could be JSON; look rather than leak
        if not _is_json(content_type):
            return False
        if not self._masks:
            # Only recording: never turn an oversized response into a 502 for that.
            length = _first(ctx.response_headers, "content-length")
            if length is not None and length.isdigit() and int(length) > self._max_response:
                return False
        return True

    async def response_body(self, ctx: RequestContext) -> Decision | None:
        seen = _state(ctx)
        if seen is None:
            return None
        body = ctx.response_body or b""
        encoding = (_first(ctx.response_headers, "content-encoding") or "").strip().lower()
        decoded = body
        if encoding and encoding != "identity":
            inflated = _inflate(body, encoding, self._max_response)
            if inflated is None:
                return self._unreadable() if self._masks else None
            decoded = inflated
        if not decoded.strip():
            return None
        unlabelled = _first(ctx.response_headers, "content-type") is None
        document, is_json = _parse(decoded)
        if unlabelled and not is_json:
            return None  # not JSON after all: out of scope (like any non-JSON body)
        text: str | None = None
        if is_json:
            matches = self._detector.scan_json(document)
        else:
            try:
                text = decoded.decode("utf-8")
            except UnicodeDecodeError:
                return self._unreadable() if self._masks else None
            matches = self._detector.scan_text(text)
        seen.response_scanned = True
        _count(matches, seen.response, seen.categories)
        self._collect_subjects(document if is_json else text, matches, seen, is_json)
        self._annotate(ctx, seen)
        if self._resources.debug_masker is not None:
            self._debug_body(ctx, "response", document if is_json else text, matches)
        if self._masks:
            self._mask(ctx, seen, document, text, matches)
        return None

    def _mask(
        self,
        ctx: RequestContext,
        seen: _Seen,
        document: Any,
        text: str | None,
        matches: list[PiiMatch],
    ) -> None:
        """Replace the body (and drop what described the old bytes, incl. its encoding)."""
        masker = self._masker
        assert masker is not None
        values = self._mask_values
        masked = {category for match in matches if (category := match.category._value_) in values}
        if not masked and not (self._has_field_rules and text is None):
            return
        if text is None:
            new_body = _dumps(masker.mask_json(document, matches))
        else:
            new_body = masker.mask_text(text, matches).encode("utf-8")
        seen.masked = frozenset(masked)
        ctx.response_body = new_body
        ctx.response_headers = [
            (name, value) for name, value in ctx.response_headers if name not in _VALIDATORS
        ]

    def _unreadable(self) -> Decision:
        return Decision.deny(
            502,
            "privacy.unreadable_response",
            "The upstream response could not be inspected for personal data "
            "(unsupported encoding), so it was not forwarded.",
        )

    def _collect_subjects(
        self, document: Any, matches: list[PiiMatch], seen: _Seen, is_json: bool
    ) -> None:
        hasher = self._resources.hasher
        if hasher is None or self._resources.recorder is None:
            return
        budget = _MAX_SUBJECTS_PER_RESPONSE
        cache: dict[str, Any] = {}
        # the detector's nodes lead to the values without parsing paths (the containers
        # found on the way are kept: siblings cost one look-up)
        containers: dict[PathNode, object] = {}
        for match in matches:
            category: str = match.category._value_
            if category not in _SUBJECT_VALUES:
                continue
            if budget <= 0:
                break
            if is_json:
                if match.location is not None:
                    value, last = resolve_node(document, match.location, containers)
                else:
                    if match.path not in cache:
                        cache[match.path] = resolve_path(document, match.path)
                    value, last = cache[match.path]
                source = last if match.in_key else value
                if not found(value) and not match.in_key:
                    continue
            else:
                source = document
            if isinstance(source, int) and not isinstance(source, bool):
                source = str(source)
            if not isinstance(source, str):
                continue
            piece = source[match.start : match.end]
            if not piece:
                continue
            budget -= 1
            seen.subjects.setdefault(category, set()).add(hasher.subject(piece, match.category))

    def _annotate(self, ctx: RequestContext, seen: _Seen) -> None:
        if seen.categories:
            ctx.annotations[PII_ANNOTATION] = sorted(seen.categories)

    def _debug_body(
        self, ctx: RequestContext, direction: str, document: Any, matches: list[PiiMatch]
    ) -> None:
        masker = self._resources.debug_masker
        assert masker is not None
        if isinstance(document, str):
            shown = masker.mask_text(document, matches)
        else:
            shown = _dumps(masker.mask_json(document, matches)).decode("utf-8", "replace")
        log.debug(
            "privacy_body",
            request_id=ctx.request_id,
            route=self._route,
            direction=direction,
            body_masked=shown[:_DEBUG_BODY_CHARS],
        )

    # -- log -------------------------------------------------------------------------------

    async def log(self, ctx: RequestContext) -> None:
        seen = _state(ctx)
        recorder = self._resources.recorder
        if seen is None or recorder is None or not (seen.request or seen.response):
            return
        identity = ctx.identity
        scopes = tuple(sorted(identity.scopes)) if identity is not None else ()
        client = client_net = ""
        hasher = self._resources.hasher
        if hasher is not None and ctx.client_ip:
            client, client_net = hasher.client(ctx.client_ip)
        route = ctx.route
        endpoint = endpoint_template(
            route.kind if route is not None else "exact",
            route.template if route is not None else ctx.path,
            ctx.path,
            ctx.annotations.get("path_template") or _operation_template(ctx),
        )
        response_categories = {category for _, category in seen.response}
        recorder.record(
            Observation(
                time_us=time.time_ns() // 1000,
                method=ctx.method,
                endpoint=endpoint,
                route=self._route,
                consumer=identity.consumer if identity is not None else "",
                auth_method=identity.method if identity is not None else "",
                scopes=scopes,
                client=client,
                client_net=client_net,
                reason=ctx.reason,
                request=seen.request,
                response=seen.response,
                masked=seen.masked,
                unneeded=self._unneeded(scopes, response_categories, identity is not None),
                subjects=seen.subjects,
                exposed=seen.response_scanned and ctx.decision is None,
            )
        )

    def _unneeded(
        self, scopes: tuple[str, ...], categories: set[str], identified: bool
    ) -> frozenset[str]:
        if not self._scope_categories or not identified or not categories:
            return frozenset()
        needed: set[str] = set()
        for scope in scopes:
            needed |= self._scope_categories.get(scope, frozenset())
        return frozenset(categories - needed)

    async def close(self) -> None:
        await self._resources.release()


# -- helpers -------------------------------------------------------------------------------


def _state(ctx: RequestContext) -> _Seen | None:
    seen = ctx.annotations.get(_STATE)
    return seen if isinstance(seen, _Seen) else None


def _operation_template(ctx: RequestContext) -> str | None:
    """The contract's path template, from the OpenAPI stage's ``"GET /a/{id}"`` label."""
    label = ctx.annotations.get("openapi_operation")
    if isinstance(label, str):
        _, _, template = label.partition(" ")
        if template.startswith("/"):
            return template
    return None


def _count(
    matches: list[PiiMatch], fields: dict[tuple[str, str], int], categories: set[str]
) -> None:
    for match in matches:
        category: str = match.category._value_  # (see `_SUBJECT_VALUES`)
        key = (match.path_template, category)
        fields[key] = fields.get(key, 0) + 1
        categories.add(category)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _parse(body: bytes) -> tuple[Any, bool]:
    """(document, True) for JSON, (None, False) otherwise.

    orjson, unless the body has a run of 19+ digits: orjson reads integers beyond 64 bits
    as floats (1.2345678901234568e+29), which re-serialising would silently change, so
    those bodies (and what orjson refuses: NaN) go to the standard library, which keeps
    them exact.
    """
    if not _LONG_DIGITS.search(body):
        try:
            return orjson.loads(body), True
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(body), True
    except (ValueError, RecursionError):
        return None, False


def _dumps(document: Any) -> bytes:
    try:
        return orjson.dumps(document)
    except TypeError:  # an integer beyond 64 bits, or NaN, parsed by the fallback
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _inflate(body: bytes, encoding: str, limit: int) -> bytes | None:
    """gzip/deflate decoded up to ``limit`` bytes; None if unsupported, corrupt or larger."""
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        return None
    try:
        decompressor = zlib.decompressobj(wbits)
        result = decompressor.decompress(body, limit + 1)
    except zlib.error:
        if encoding != "deflate":
            return None
        try:  # some servers send raw deflate without the zlib header
            decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
            result = decompressor.decompress(body, limit + 1)
        except zlib.error:
            return None
    if len(result) > limit or decompressor.unconsumed_tail:
        return None
    return result
