"""The detector: request parts in, verdict out.

A :class:`Detector` is built once per configuration (paranoia level, threshold,
exclusions): the Hyperscan database is compiled then, never per request. ``inspect`` is
pure and reentrant: per-request state lives on the stack, Hyperscan scratch space is per
thread, and libinjection keeps its state in the caller's buffers.

Per request:
1. the request is flattened into leaves (``leaves.py``, ``xml_body.py``, ``graphql_body.py``);
2. all leaves are scanned in one Hyperscan pass; the same pass tells which leaves carry
   an encoding worth undoing and which need libinjection or URL parsing;
3. the decoded variants of those leaves are scanned in a second pass;
4. libinjection and the SSRF URL parser run on the values the gates selected;
5. findings above the paranoia level or excluded by field are dropped, and the anomaly
   score (one severity per rule id) is compared with the threshold.
"""

from __future__ import annotations

import codecs
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache

import orjson

from dijk.detect import libinjection_native
from dijk.detect.archives import archive_kind, inflate
from dijk.detect.content import (
    CODE,
    CODE_CATEGORIES,
    HTML,
    HTML_IGNORED,
    MARKDOWN,
    PROSE,
    PROSE_DEMOTED_RULES,
    prose_without_breakout,
    split_markdown,
)
from dijk.detect.findings import (
    NOTICE,
    SNIPPET_MAX,
    Exclusion,
    Finding,
    GraphQLLimits,
    JsonValue,
    RequestParts,
    Verdict,
)
from dijk.detect.graphql_body import (
    add_graphql_body,
    add_graphql_query_string,
    looks_like_graphql,
)
from dijk.detect.json_fast import FAST_FIELD, SLOW_JSON_PATTERN, matched_strings, scan_buffer
from dijk.detect.leaves import (
    Collector,
    Leaf,
    add_headers,
    add_multipart,
    add_pairs,
    add_path,
    check_archive,
    field_path,
    is_graphql_request,
    media_type,
    parse_form,
    walk_json,
)
from dijk.detect.normalise import PLUS_JOINED_WORDS, decode_utf8_lenient, variants
from dijk.detect.patterns import PatternSet, fingerprint
from dijk.detect.rules import (
    RULES,
    RULES_BY_ID,
    STRONG_SQLI_TOKENS,
    WEAK_SQLI_FINGERPRINTS,
    Rule,
)
from dijk.detect.ssrf import find_url_issues
from dijk.detect.xml_body import add_xml

# Pattern ids above the rule indices: gates that select values for further work.
_GATE_DECODE = 100_000
_GATE_SQLI = 100_001
_GATE_XSS = 100_002
_GATE_URL = 100_003
# Not a gate for values: marks JSON the fast path cannot represent (see json_fast.py).
_GATE_SLOW_JSON = 100_004

# The decode gate picks values with something to undo. Its base64 branch wants a letter or
# digit first: base64 that starts with '+', '/', '-' or '_' decodes to a first byte of
# 0xF8 or more, which is never UTF-8, so such a value can never decode to readable text.
_GATES: tuple[tuple[int, str], ...] = (
    (
        _GATE_DECODE,
        r"%[0-9a-f]{2}|%u[0-9a-f]{4}|\\([xu][0-9a-f{]|[nrt0'\"])|&[#a-z]|[\x80-\xff]|/\*|\$\{|"
        # IIS digits (%c1%pc), hex-spelled dots (0x2e), quotes, $ and \ splitting shell words.
        r"%[g-z][0-9a-z]|%[0-9a-z][g-z]|0x(2e|2f|5c)|[a-z]\$[a-z@*{0-9]|[a-z]\\[a-z]|"
        r"[a-z]['\"][a-z0-9]{0,32}['\"]|['\"][a-z0-9]{0,32}['\"][a-z]|"
        r"[\t\n\r\x0b\x0c]|[\x01-\x08\x0e-\x1f\x7f]|"
        # SQL words joined by '+' (what plus_spaces undoes).
        r"\+(" + "|".join(PLUS_JOINED_WORDS) + r")\+|"
        r"{B}\s*[a-z0-9][a-z0-9+/_-]{11,}=*\s*{E}|{B}\s*(bearer\s+)?eyj",
    ),
    (
        _GATE_SQLI,
        r"{B}[^'\"`;#()=\x00]*['\"`;#()=]|--|\b(union|select|xor|having|order\s+by|group\s+by|"
        r"sleep|benchmark|waitfor|exec|execute|declare|insert|update|delete|drop|procedure)\b",
    ),
    (_GATE_XSS, r"{B}[^<>\"'`=\x00]*[<>\"'`=]|script\s*:"),
    (_GATE_URL, r"://"),
    (_GATE_SLOW_JSON, SLOW_JSON_PATTERN),
)

_STRONG_SQLI_MIN = 3
# Headers whose URL is the page the client is on (a browser app on localhost or an
# intranet host sends one with every call), not a URL the server will fetch: a loopback or
# private host there is no SSRF. Dangerous schemes, metadata and obfuscated addresses,
# which no browser page has, still count.
_PAGE_HEADERS = frozenset({"referer", "origin"})
_PAGE_HOST_KINDS = frozenset({"loopback", "private", "link_local"})
# OAuth/OIDC redirect URIs name where the browser goes next, and native apps must use a
# loopback one (RFC 8252 §7.3): http://127.0.0.1:53682/callback is no SSRF either.
_REDIRECT_LOCATIONS = frozenset({"query", "form", "json"})
_REDIRECT_NAMES = frozenset(
    {
        "redirect_uri",
        "redirect_uris",
        "post_logout_redirect_uri",
        "post_logout_redirect_uris",
        "initiate_login_uri",
    }
)


def redirect_field(field: str) -> bool:
    """Whether a field path names an OAuth/OIDC redirect URI (``redirect_uri``,
    ``$.redirect_uris[0]``, ``$.client.post_logout_redirect_uri``)."""
    name = field.rsplit(".", 1)[-1]
    bracket = name.find("[")
    if bracket > 0:
        name = name[:bracket]
    return name in _REDIRECT_NAMES


# What phone numbers are written with. Such a value has no keyword, quote or comment, so
# the most it can do inside SQL is arithmetic: libinjection's "1)o1)" for "+2253)-7)" is
# kept as a weak finding, not a block ("1--" has a comment and stays strong).
_PHONE_CHARACTERS = dict.fromkeys(map(ord, "0123456789 +-()./"))


def phone_like(text: str) -> bool:
    """True for values made only of digits, spaces and ``+ - ( ) . /`` with no ``--``."""
    return not text.translate(_PHONE_CHARACTERS) and "--" not in text


_JSON_TYPES = ("application/json", "text/json")
_XML_TYPES = ("application/xml", "text/xml", "application/soap+xml")
_BINARY_PREFIXES = ("image/", "audio/", "video/", "font/")
_BINARY_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-tar",
        "application/protobuf",
        "application/x-protobuf",
        "application/grpc",
    }
)


@lru_cache(maxsize=1)
def pattern_sources() -> tuple[tuple[int, str], ...]:
    """Every pattern rule (by its index in ``RULES``) and gate, as compiled."""
    patterns = [(index, rule.pattern) for index, rule in enumerate(RULES) if rule.pattern]
    return (*patterns, *_GATES)


def patterns_fingerprint() -> str:
    """Key of the compiled database: changes whenever a pattern, a flag or Hyperscan does."""
    return fingerprint(pattern_sources())


_COMPILED: list[PatternSet] = []
_COMPILE_LOCK = threading.Lock()


def compiled_patterns(serialized: bytes | None = None) -> PatternSet:
    """The Hyperscan database of all pattern rules and gates, built once per process (it
    does not depend on the configuration, which only filters the results).

    Compiling takes seconds; ``serialized`` (an earlier :meth:`PatternSet.serialize` of the
    same :func:`patterns_fingerprint`) is loaded instead when given and valid.
    """
    with _COMPILE_LOCK:
        if not _COMPILED:
            _COMPILED.append(PatternSet(pattern_sources(), serialized))
        return _COMPILED[0]


def patterns_compiled() -> bool:
    return bool(_COMPILED)


_CLEAN = Verdict(findings=(), score=0, blocked=False, categories=frozenset())


class Detector:
    """Attack detection for one configuration; build once, call :meth:`inspect` per request."""

    def __init__(
        self,
        paranoia: int = 1,
        threshold: int = 5,
        exclusions: Sequence[Exclusion] = (),
        *,
        graphql_limits: GraphQLLimits | None = None,
        json_fast_path: bool = True,
    ) -> None:
        if not 1 <= paranoia <= 4:
            raise ValueError(f"paranoia must be between 1 and 4, not {paranoia}")
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, not {threshold}")
        self.paranoia = paranoia
        self.threshold = threshold
        self.exclusions = tuple(exclusions)
        self.graphql_limits = graphql_limits or GraphQLLimits()
        # Off only to check the fast path against the walk (tests, benchmark).
        self.json_fast_path = json_fast_path
        self._patterns = compiled_patterns()
        self._active = frozenset(rule.rule_id for rule in RULES if rule.paranoia <= paranoia)
        self._exclusion_index = exclusion_index(self.exclusions)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules active at this paranoia level."""
        return tuple(rule for rule in RULES if rule.rule_id in self._active)

    def inspect(self, request: RequestParts) -> Verdict:
        """Inspect one request. Pure: the verdict depends on the request alone."""
        return self._inspect(request, head=True, body=True)

    def inspect_head(self, request: RequestParts) -> Verdict:
        """Inspect what arrives before the body: path, query, headers (and a GraphQL
        document sent in the query string)."""
        return self._inspect(request, head=True, body=False)

    def inspect_body(self, request: RequestParts, prior: Sequence[Finding] = ()) -> Verdict:
        """Inspect the body alone; the verdict is scored together with ``prior`` (the
        findings of :meth:`inspect_head` on the same request), so that the anomaly score
        is the request's, whichever phase its parts arrived in."""
        verdict = self._inspect(request, head=False, body=True)
        if not prior:
            return verdict
        return rescore((*prior, *verdict.findings), self.paranoia, self.threshold)

    def _inspect(self, request: RequestParts, *, head: bool, body: bool) -> Verdict:
        collector = Collector()
        if head:
            self._collect_head(request, collector)
        fast = body and self._collect_body(request, collector, fast=self.json_fast_path)
        verdict = self._evaluate(collector)
        if fast and any(finding.field == FAST_FIELD for finding in verdict.findings):
            # A JSON string found on the fast path fired a rule: inspect the body again
            # on the slow path, which knows every string's field path.
            collector = Collector()
            if head:
                self._collect_head(request, collector)
            self._collect_body(request, collector, fast=False)
            verdict = self._evaluate(collector)
        if body and request.content_kinds and verdict.findings:
            verdict = self._by_content(verdict, collector, request.content_kinds)
        if body and any(finding.rule_id in PROSE_DEMOTED_RULES for finding in verdict.findings):
            verdict = self._demote_in_prose(verdict, collector, request.content_kinds or {})
        return verdict

    def _demote_in_prose(
        self, verdict: Verdict, collector: Collector, kinds: Mapping[tuple[str, str], str]
    ) -> Verdict:
        """Findings of rules that documentation trips (:data:`PROSE_DEMOTED_RULES`) on
        body values that read as prose and do not break out of their context count as
        notices. Fields declared as code or HTML keep what :meth:`_by_content` gave them; for
        markdown the prose outside its code blocks is what must read as prose."""
        fired: dict[tuple[str, str], str] = {}
        for finding in verdict.findings:
            key = (finding.location, finding.field)
            if finding.rule_id not in PROSE_DEMOTED_RULES or key[0] not in _TEXT_LOCATIONS:
                continue
            kind = kinds.get(key) or kinds.get((key[0], wildcard_indices(key[1]))) or PROSE
            if kind in (PROSE, MARKDOWN):
                fired[key] = kind
        if not fired:
            return verdict
        prose: set[tuple[str, str]] = set()
        for index, location in enumerate(collector.locations):
            if location not in _TEXT_LOCATIONS:
                continue
            key = (location, field_path(collector.fields[index]))
            declared = fired.get(key)
            if declared is None:
                continue
            value = collector.values[index]
            if declared == MARKDOWN:
                value = split_markdown(value)[0]  # its code blocks were judged apart
            if prose_without_breakout(key[1], value):
                prose.add(key)
        if not prose:
            return verdict
        findings = [
            replace(finding, severity=NOTICE)
            if finding.rule_id in PROSE_DEMOTED_RULES
            and (finding.location, finding.field) in prose
            and finding.severity > NOTICE
            else finding
            for finding in verdict.findings
        ]
        return rescore(findings, self.paranoia, self.threshold)

    def _by_content(
        self, verdict: Verdict, collector: Collector, kinds: Mapping[tuple[str, str], str]
    ) -> Verdict:
        """Findings on fields whose owner declared their kind of text, redone with the
        checks that kind gets (:mod:`dijk.detect.content`). Only fields that fired are
        looked at, so ordinary requests pay nothing."""
        affected: dict[tuple[str, str], str] = {}
        for finding in verdict.findings:
            key = (finding.location, finding.field)
            kind = kinds.get(key) or kinds.get((finding.location, wildcard_indices(finding.field)))
            if kind is not None and kind != PROSE:
                affected[key] = kind
        if not affected:
            return verdict
        kept = [
            finding
            for finding in verdict.findings
            if finding.category == "limits" or (finding.location, finding.field) not in affected
        ]
        locations = {location for location, _ in affected}
        for index, location in enumerate(collector.locations):
            if location not in locations:
                continue
            field = field_path(collector.fields[index])
            kind = affected.get((location, field))
            if kind is None:
                continue
            before = [
                finding
                for finding in verdict.findings
                if (finding.location, finding.field) == (location, field)
                and finding.category != "limits"
            ]
            kept.extend(
                self._findings_for_kind(kind, location, field, collector.values[index], before)
            )
        return rescore(kept, self.paranoia, self.threshold)

    def _findings_for_kind(
        self, kind: str, location: str, field: str, value: str, before: list[Finding]
    ) -> list[Finding]:
        if kind == CODE:
            return [finding for finding in before if finding.category in CODE_CATEGORIES]
        if kind == HTML:
            return [finding for finding in before if finding.category not in HTML_IGNORED]
        prose, code = split_markdown(value)
        if not code:
            return before
        found = list(self.inspect_values([(location, field, prose)]).findings)
        code_findings = self.inspect_values([(location, field, code)]).findings
        found.extend(finding for finding in code_findings if finding.category in CODE_CATEGORIES)
        return found

    def inspect_values(self, values: Iterable[tuple[str, str, str]]) -> Verdict:
        """Inspect already-extracted (location, field path, value) leaves."""
        collector = Collector()
        for location, path, value in values:
            collector.add(location, path, value)
        return self._evaluate(collector)

    # -- where to look ------------------------------------------------------------------

    def _collect_head(self, request: RequestParts, collector: Collector) -> None:
        add_path(collector, request.path)
        query = request.query
        if is_graphql_request(request):
            query = tuple(pair for pair in query if pair[0] not in ("query", "variables"))
            add_graphql_query_string(collector, request.query, self.graphql_limits)
        add_pairs(collector, query, "query")
        add_headers(collector, request.headers)

    def _collect_body(self, request: RequestParts, collector: Collector, *, fast: bool) -> bool:
        """Collect the body's values; True when a JSON body went the fast path
        (:mod:`dijk.detect.json_fast`) and its strings carry no field paths."""
        if request.content_encoding and request.body:
            request = decode_content(request, collector)
        body, has_body = self._json_body(request, collector)
        graphql = is_graphql_request(request) or (has_body and looks_like_graphql(body))
        if graphql and add_graphql_body(collector, request, body, has_body, self.graphql_limits):
            return False
        if has_body:
            buffer = scan_buffer(body) if fast else None
            if buffer is None:
                walk_json(collector, body, "json")
                return False
            matches = self._patterns.scan_buffer(buffer)
            if any(pattern == _GATE_SLOW_JSON for pattern, _ in matches):
                walk_json(collector, body, "json")
                return False
            for location, text in matched_strings(buffer, [end for _, end in matches]):
                collector.add(location, FAST_FIELD, text)
            return True
        if not request.body:
            return False
        kind = media_type(request.content_type)
        if kind == "application/x-www-form-urlencoded":
            add_pairs(collector, parse_form(request.body), "form")
        elif kind.startswith("multipart/"):
            add_multipart(collector, request.body, request.content_type)
        elif kind in _XML_TYPES or kind.endswith("+xml"):
            add_xml(collector, request.body)
        elif archive_kind(request.body) is not None:
            check_archive(collector, "body", "(body)", request.body)
        else:
            # Text, or a type that promises bytes nobody parses (an image, an octet
            # stream): the upstream may parse it whatever the label says, so anything
            # that reads as text is inspected as what it looks like.
            binary_label = kind.startswith(_BINARY_PREFIXES) or kind in _BINARY_TYPES
            if binary_label and not looks_textual(request.body):
                return False
            text = decode_utf8_lenient(request.body)
            collector.add("body", "(body)", text)
            stripped = text.lstrip()
            if stripped.startswith("<"):
                add_xml(collector, request.body, "body")
            elif (not kind or binary_label) and "=" in text:
                add_pairs(collector, parse_form(request.body), "form")
        return False

    def _json_body(self, request: RequestParts, collector: Collector) -> tuple[JsonValue, bool]:
        if request.has_json_body:
            return request.json_body, True
        kind = media_type(request.content_type)
        declared = kind in _JSON_TYPES or kind.endswith("+json")
        if not declared and (not request.body or not _sniffs_json(request.body, kind)):
            return None, False
        if not declared:
            # Not labelled JSON but shaped like it: JSON only if it parses as JSON.
            try:
                return orjson.loads(request.body), True
            except orjson.JSONDecodeError:
                return None, False
        if not request.body:
            return None, False
        try:
            return orjson.loads(request.body), True
        except orjson.JSONDecodeError:
            pass  # not strict RFC 8259 (NaN, huge integers, UTF-16...): ask the json module
        try:
            parsed: JsonValue = json.loads(request.body)
        except RecursionError:
            collector.hit("limits-too-deep", "json", "$", "")
            collector.add("body", "(body)", decode_utf8_lenient(request.body))
            return None, False
        except ValueError:
            collector.add("body", "(body)", decode_utf8_lenient(request.body))
            return None, False
        return parsed, True

    # -- matching ---------------------------------------------------------------------

    def _evaluate(self, collector: Collector) -> Verdict:
        values = collector.values
        # Segment i < len(values) is leaf i as sent; decoded variants are appended after.
        texts = [value.replace("\x00", "") if "\x00" in value else value for value in values]
        matches = self._patterns.scan_with_offsets(texts)
        if not matches and not collector.hits:
            return _CLEAN  # what almost every request gets: no per-value work at all
        owners = list(range(len(values)))
        transforms = [
            "none" if text is value else "nul" for text, value in zip(texts, values, strict=True)
        ]
        decode = sorted({segment for pattern, segment, _ in matches if pattern == _GATE_DECODE})
        if decode:
            offset = len(texts)
            extra_texts: list[str] = []
            for index in decode:
                for transform, text in variants(values[index])[1:]:
                    extra_texts.append(text)
                    owners.append(index)
                    transforms.append(transform)
            if extra_texts:
                more = self._patterns.scan_with_offsets(extra_texts)
                matches.extend((pattern, segment + offset, end) for pattern, segment, end in more)
                texts.extend(extra_texts)
        found: dict[tuple[str, str, str], Finding] = {}
        for pattern, segment, end in matches:
            if pattern in (_GATE_DECODE, _GATE_SLOW_JSON):
                continue
            leaf = collector.leaf(owners[segment])
            if pattern > _GATE_DECODE:
                self._gate(pattern, transforms[segment], texts[segment], leaf, found)
            else:
                self._record(RULES[pattern], leaf, transforms[segment], texts[segment], end, found)
        for hit in collector.hits:
            rule = RULES_BY_ID[hit.rule_id]
            leaf = Leaf(hit.location, hit.field, hit.evidence)
            self._record(rule, leaf, hit.transform, hit.evidence, len(hit.evidence), found)
        return self._verdict(found)

    def _gate(
        self,
        gate: int,
        transform: str,
        text: str,
        leaf: Leaf,
        found: dict[tuple[str, str, str], Finding],
    ) -> None:
        if gate == _GATE_SQLI:
            fingerprint = libinjection_native.sqli_fingerprint(text.encode("utf-8", "replace"))
            if fingerprint is not None:
                weak = (
                    fingerprint.lower() in WEAK_SQLI_FINGERPRINTS
                    or len(fingerprint) < _STRONG_SQLI_MIN
                    or STRONG_SQLI_TOKENS.isdisjoint(fingerprint)
                    or phone_like(text)
                )
                rule_id = "sqli-libinjection-weak" if weak else "sqli-libinjection"
                self._record(RULES_BY_ID[rule_id], leaf, transform, text, None, found)
        elif gate == _GATE_XSS:
            if libinjection_native.is_xss(text.encode("utf-8", "replace")):
                rule = RULES_BY_ID["xss-libinjection"]
                self._record(rule, leaf, transform, text, None, found)
        elif gate == _GATE_URL:
            page = (leaf.location == "header" and leaf.field in _PAGE_HEADERS) or (
                leaf.location in _REDIRECT_LOCATIONS and redirect_field(leaf.field)
            )
            for issue in find_url_issues(text):
                if page and issue.kind in _PAGE_HOST_KINDS:
                    continue
                if issue.kind.startswith("scheme_"):
                    rule_id = "ssrf-dangerous-scheme"
                elif issue.kind == "obfuscated_ip":
                    rule_id = "ssrf-obfuscated-ip"
                elif issue.kind == "private":
                    rule_id = "ssrf-private-host"
                else:
                    rule_id = "ssrf-internal-host"
                self._record(RULES_BY_ID[rule_id], leaf, transform, issue.url, None, found)

    def _record(
        self,
        rule: Rule,
        leaf: Leaf,
        transform: str,
        text: str,
        end: int | None,
        found: dict[tuple[str, str, str], Finding],
    ) -> None:
        if rule.rule_id not in self._active:
            return
        if rule.locations is not None and leaf.location not in rule.locations:
            return
        if rule.ignored_transforms and not rule.ignored_transforms.isdisjoint(transform.split("+")):
            return
        key = (rule.rule_id, leaf.location, leaf.field)
        if key in found or self._excluded(rule, leaf):
            return
        found[key] = Finding(
            rule_id=rule.rule_id,
            category=rule.category,
            severity=rule.severity,
            paranoia=rule.paranoia,
            location=leaf.location,
            field=leaf.field,
            transform=transform,
            snippet=make_snippet(text, end),
        )

    def _excluded(self, rule: Rule, leaf: Leaf) -> bool:
        if not self._exclusion_index or leaf.field == FAST_FIELD:
            return False
        return excluded(
            self._exclusion_index, rule.rule_id, rule.category, leaf.location, leaf.field
        )

    def _verdict(self, found: dict[tuple[str, str, str], Finding]) -> Verdict:
        return rescore(tuple(found.values()), self.paranoia, self.threshold)


# Body locations whose values are free text a client wrote.
_TEXT_LOCATIONS = frozenset({"json", "form", "multipart", "graphql"})

_INFLATABLE = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


# Media types whose bodies are parsed by their own rules, never sniffed as JSON.
_STRUCTURED_TYPES = frozenset({"application/x-www-form-urlencoded", "application/graphql"})
_JSON_START = frozenset(b"{[")
_WHITESPACE = b" \t\r\n"
_UTF8_BOM = b"\xef\xbb\xbf"
_TEXT_SAMPLE = 4096
# Control bytes that text (JSON, XML, forms, prose) does not contain.
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, *range(0x0E, 0x20), 0x7F])


def _sniffs_json(body: bytes, kind: str) -> bool:
    """A body not labelled JSON that starts like a JSON object or array."""
    if kind in _STRUCTURED_TYPES or kind.startswith("multipart/"):
        return False
    if kind in _XML_TYPES or kind.endswith("+xml"):
        return False
    start = body[:64].removeprefix(_UTF8_BOM).lstrip(_WHITESPACE)[:1]
    return bool(start) and start[0] in _JSON_START


def looks_textual(body: bytes) -> bool:
    """True when a body's first bytes read as UTF-8 text (what a JSON, XML or form parser
    would accept), False for images, archives and other binary content."""
    sample = body[:_TEXT_SAMPLE]
    if b"\x00" in sample:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return controls * 64 <= len(sample)


def content_codings(content_encoding: str) -> list[str]:
    """The codings of a ``Content-Encoding`` value, in the order they were applied."""
    codings = [coding.strip().lower() for coding in content_encoding.split(",")]
    return [coding for coding in codings if coding and coding != "identity"]


def decodable_encoding(content_encoding: str) -> bool:
    """True when the detector can undo every coding of a ``Content-Encoding`` value."""
    return all(coding in _INFLATABLE for coding in content_codings(content_encoding))


def decode_content(request: RequestParts, collector: Collector) -> RequestParts:
    """The request with its body inflated (``Content-Encoding: gzip/deflate``, also
    stacked, every gzip member), bounded.

    A body that inflates by more than the bomb ratio, or past the inflation budget, is a
    finding; what was inflated is still inspected. A coding we cannot undo is reported
    and the body is inspected as sent.
    """
    codings = content_codings(request.content_encoding)
    if not codings:
        return request
    unknown = [coding for coding in codings if coding not in _INFLATABLE]
    if unknown:
        collector.hit("limits-unknown-encoding", "body", "(content-encoding)", unknown[0][:32])
        return request
    body = request.body
    for coding in reversed(codings):
        report = inflate(body, _INFLATABLE[coding], collector.inflate_budget)
        collector.inflate_budget -= report.inflated
        if report.bomb:
            collector.hit("upload-archive-bomb", "body", "(content-encoding)", report.bomb)
        elif report.truncated:
            collector.hit("limits-inflated-too-large", "body", "(content-encoding)", "")
        if not report.expanded:
            break
        body = report.expanded
    if body is request.body:
        return request
    return replace(request, body=body, content_encoding="")


def exclusion_index(exclusions: Iterable[Exclusion]) -> dict[str | None, list[Exclusion]]:
    """Exclusions by field (None: those for every field)."""
    index: dict[str | None, list[Exclusion]] = {}
    for exclusion in exclusions:
        index.setdefault(exclusion.field, []).append(exclusion)
    return index


def excluded(
    index: Mapping[str | None, list[Exclusion]],
    rule_id: str,
    category: str,
    location: str,
    field: str,
) -> bool:
    """Whether an exclusion of ``index`` drops a finding of that rule on that field."""
    candidates = [*index.get(field, ()), *index.get(None, ())]
    wildcard = wildcard_indices(field)
    if wildcard != field:
        candidates.extend(index.get(wildcard, ()))
    base_location = location.removesuffix("_name")
    return any(
        exclusion.covers(rule_id, category)
        and (exclusion.location is None or exclusion.location in (location, base_location))
        for exclusion in candidates
    )


def rescore(findings: Sequence[Finding], paranoia: int, threshold: int) -> Verdict:
    """The verdict for ``findings`` at a paranoia level and threshold.

    Each rule counts once per request (its highest severity), so one noisy rule firing on
    many fields cannot add up to a block on its own. Findings from rules above
    ``paranoia`` are dropped: a detector run at paranoia 4 can thus report what lower
    levels would have decided (as CRS's "executing paranoia level" does).
    """
    kept = tuple(finding for finding in findings if finding.paranoia <= paranoia)
    per_rule: dict[str, int] = {}
    for finding in kept:
        per_rule[finding.rule_id] = max(per_rule.get(finding.rule_id, 0), finding.severity)
    score = sum(per_rule.values())
    return Verdict(
        findings=kept,
        score=score,
        blocked=score >= threshold,
        categories=frozenset(finding.category for finding in kept),
    )


def wildcard_indices(field_path: str) -> str:
    """``$.items[3].name`` -> ``$.items[*].name`` (linear, no regex)."""
    if "[" not in field_path:
        return field_path
    pieces: list[str] = []
    position = 0
    while True:
        open_at = field_path.find("[", position)
        if open_at < 0:
            pieces.append(field_path[position:])
            break
        close_at = field_path.find("]", open_at)
        if close_at < 0:
            pieces.append(field_path[position:])
            break
        inside = field_path[open_at + 1 : close_at]
        pieces.append(field_path[position:open_at])
        pieces.append("[*]" if inside.isdigit() else field_path[open_at : close_at + 1])
        position = close_at + 1
    return "".join(pieces)


def escape_for_log(text: str) -> str:
    """Printable ASCII stays; everything else (quotes and backslash too) is escaped."""
    out: list[str] = []
    for char in text:
        code = ord(char)
        if 0x20 <= code < 0x7F and char not in "\\\"'<>":
            out.append(char)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def make_snippet(text: str, end: int | None) -> str:
    """A short, escaped, truncated excerpt around the end of a match (at most 64 chars)."""
    if end is None:
        window = text[:48]
    else:
        encoded = text.encode("utf-8", "replace")
        end = max(0, min(end, len(encoded)))
        start = max(0, end - 40)
        window = encoded[start : end + 8].decode("utf-8", "replace")
    escaped = escape_for_log(window)
    if len(escaped) > SNIPPET_MAX:
        escaped = escaped[: SNIPPET_MAX - 3] + "..."
    return escaped
