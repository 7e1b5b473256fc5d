"""Where to look: every value of a request, with its location and field path.

A request becomes a flat list of :class:`Leaf` values: path segments, query names and
values, selected headers and cookies, and every string leaf (and object key) of the
parsed body: JSON with ``$.a.b[0]`` paths, form fields, multipart names, file names and
text content, XML text and attributes, GraphQL arguments and variables.

Some findings come from the structure itself rather than from text (a ``$ne`` key, a
``__proto__`` key, a DOCTYPE, a file named ``shell.php``); those are collected as
:class:`StructuralHit` values on the way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dijk.detect.archives import INFLATE_BUDGET, archive_kind, inspect_archive
from dijk.detect.findings import JsonValue, RequestParts
from dijk.detect.normalise import decode_utf8_lenient, parse_urlencoded, percent_decode_once

MAX_LEAVES = 20_000
MAX_DEPTH = 64
MAX_VALUE_CHARS = 1 << 20

# Headers whose values reach application code; x-* headers are added by prefix.
INSPECTED_HEADERS = frozenset(
    {
        "user-agent",
        "referer",
        "x-forwarded-for",
        "x-forwarded-host",
        "forwarded",
        "origin",
        "x-real-ip",
        "true-client-ip",
        "via",
        "from",
        "accept-language",
        "content-disposition",
    }
)
# Credentials are verified by the authentication stages and must never end up in a
# finding snippet.
CREDENTIAL_MARKERS = ("key", "token", "secret", "password", "signature", "auth", "session")

NOSQL_OPERATORS = frozenset(
    {
        "$ne",
        "$eq",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$in",
        "$nin",
        "$regex",
        "$where",
        "$exists",
        "$or",
        "$and",
        "$nor",
        "$not",
        "$expr",
        "$elemmatch",
        "$all",
        "$size",
        "$type",
        "$mod",
        "$text",
        "$function",
        "$accumulator",
        "$jsonschema",
        "$options",
        "$lookup",
        "$merge",
        "$out",
        "$search",
        "$comment",
        "$slice",
        "$where_",
        # Update operators: a client that can send them rewrites fields the API never
        # meant to expose ({"$set": {"role": "admin"}}, {"$rename": ...}).
        "$set",
        "$unset",
        "$setoninsert",
        "$rename",
        "$inc",
        "$mul",
        "$min",
        "$max",
        "$currentdate",
        "$push",
        "$pushall",
        "$pull",
        "$pullall",
        "$pop",
        "$addtoset",
        "$bit",
        "$each",
        "$position",
        "$replaceroot",
        "$replacewith",
        "$unionwith",
        "$graphlookup",
        "$facet",
        "$project",
        "$addfields",
    }
)

EXECUTABLE_EXTENSIONS = frozenset(
    {
        "php",
        "php3",
        "php4",
        "php5",
        "php7",
        "phtml",
        "phar",
        "pht",
        "phps",
        "inc",
        "jsp",
        "jspx",
        "jspf",
        "jsw",
        "jsv",
        "asp",
        "aspx",
        "asa",
        "asax",
        "ascx",
        "ashx",
        "asmx",
        "cer",
        "cfm",
        "cfml",
        "cgi",
        "pl",
        "py",
        "rb",
        "sh",
        "bash",
        "exe",
        "dll",
        "bat",
        "cmd",
        "com",
        "ps1",
        "vbs",
        "vbe",
        "wsf",
        "hta",
        "scr",
        "msi",
        "war",
        "htaccess",
        "shtml",
        "jar",
        "svgz",
    }
)
_SCRIPT_MAGIC = (b"<?php", b"<?=", b"<%", b"#!", b"MZ", b"\x7fELF", b"<script", b"<jsp:")


@dataclass(frozen=True, slots=True)
class Leaf:
    """One value to inspect. Names (keys, parameter names) have ``_name`` locations."""

    location: str
    field: str
    value: str


@dataclass(frozen=True, slots=True)
class StructuralHit:
    """A rule that fired on the shape of the request rather than on a text pattern."""

    rule_id: str
    location: str
    field: str
    evidence: str
    transform: str = "none"


# A field path is kept as a string, or for JSON leaves as (parent path, key or index) so
# that the string is only built when a finding needs it.
FieldRef = str | tuple[str, str | int]


def field_path(reference: FieldRef) -> str:
    """The printable field path (``$.items[0].name``) of a field reference."""
    if isinstance(reference, str):
        return reference
    parent, key = reference
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return json_key_path(parent, key)


class Collector:
    """Accumulates leaves (as parallel lists, cheap to fill) and structural hits."""

    __slots__ = ("fields", "hits", "inflate_budget", "locations", "overflow", "values")

    def __init__(self) -> None:
        self.locations: list[str] = []
        self.fields: list[FieldRef] = []
        self.values: list[str] = []
        self.hits: list[StructuralHit] = []
        self.overflow = False
        # Bytes that archive checks may still inflate for this request (all parts together).
        self.inflate_budget = INFLATE_BUDGET

    def __len__(self) -> int:
        return len(self.values)

    def leaf(self, index: int) -> Leaf:
        return Leaf(self.locations[index], field_path(self.fields[index]), self.values[index])

    def add(self, location: str, reference: FieldRef, value: str) -> None:
        if not value:
            return
        if len(self.values) >= MAX_LEAVES:
            self._overflowed(location, reference)
            return
        if len(value) > MAX_VALUE_CHARS:
            value = value[:MAX_VALUE_CHARS]
        self.locations.append(location)
        self.fields.append(reference)
        self.values.append(value)

    def _overflowed(self, location: str, reference: FieldRef) -> None:
        if not self.overflow:
            self.overflow = True
            self.hit("limits-too-many-values", location, field_path(reference), "")

    def hit(self, rule_id: str, location: str, field: str, evidence: str) -> None:
        self.hits.append(StructuralHit(rule_id, location, field, evidence))


def json_key_path(parent: str, key: str) -> str:
    if key.isidentifier():
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key)}]"


def check_key(collector: Collector, location: str, reference: FieldRef, key: str) -> None:
    """Structural checks on an object key or parameter name."""
    if key[:1] == "$" and key.lower() in NOSQL_OPERATORS:
        collector.hit("nosql-operator-key", location, field_path(reference), key)
    elif "__proto__" in key or (key == "prototype" and "constructor" in field_path(reference)):
        collector.hit("prototype-pollution-key", location, field_path(reference), key)


def walk_json(collector: Collector, value: JsonValue, location: str, root: str = "$") -> None:
    """Every string leaf and unusual key of a JSON value, iteratively.

    This is the hot path for API traffic: strings are appended to the collector's lists
    directly and paths are kept as (parent, key) until a finding needs them.
    """
    if isinstance(value, str):
        collector.add(location, root, value)
        return
    locations = collector.locations
    fields = collector.fields
    values = collector.values
    name_location = location + "_name"
    stack: list[tuple[dict[str, JsonValue] | list[JsonValue], str, int]] = []
    if isinstance(value, dict | list):
        stack.append((value, root, 0))
    budget = MAX_LEAVES - len(values)
    while stack:
        container, path, depth = stack.pop()
        if depth >= MAX_DEPTH:
            collector.hit("limits-too-deep", location, path, "")
            continue
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, item in items:
            if (
                (isinstance(key, str) and not key.isidentifier())
                or key == "prototype"
                or (isinstance(key, str) and "__proto__" in key)
            ):
                assert isinstance(key, str)
                check_key(collector, location, (path, key), key)
                locations.append(name_location)
                fields.append((path, key))
                values.append(key)
                budget -= 1
            if isinstance(item, str):
                if item:
                    locations.append(location)
                    fields.append((path, key))
                    values.append(item if len(item) <= MAX_VALUE_CHARS else item[:MAX_VALUE_CHARS])
                    budget -= 1
            elif isinstance(item, dict | list):
                stack.append((item, field_path((path, key)), depth + 1))
            if budget <= 0:
                del locations[MAX_LEAVES:], fields[MAX_LEAVES:], values[MAX_LEAVES:]
                collector._overflowed(location, (path, key))
                return


def _plain_key(key: str) -> bool:
    """Keys made of letters, digits, ``_`` and ``-`` cannot carry a payload."""
    return key.isidentifier() or (len(key) < 64 and key.replace("_", "").replace("-", "").isalnum())


def add_pairs(
    collector: Collector, pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...], location: str
) -> None:
    """Query, form or cookie pairs: names and values."""
    for name, value in pairs:
        check_key(collector, location, name, name)
        if not _plain_key(name):
            collector.add(location + "_name", name, name)
        collector.add(location, name, value)


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """``application/x-www-form-urlencoded`` pairs, decoded once."""
    return parse_urlencoded(body)


def parse_cookies(header: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for chunk in header.split(";"):
        name, _, value = chunk.strip().partition("=")
        if name or value:
            pairs.append((name.strip(), value.strip().strip('"')))
    return pairs


def _header_param(header: str, wanted: str) -> str | None:
    """A parameter of a structured header (``name="x"; filename="y"``), without regexes."""
    for piece in header.split(";")[1:]:
        key, equals, value = piece.strip().partition("=")
        if equals and key.strip().lower() == wanted:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def add_multipart(collector: Collector, body: bytes, content_type: str) -> None:
    """Multipart parts: names, file names, and text content; uploads get their own checks."""
    boundary = _header_param(content_type, "boundary")
    if not boundary:
        collector.add("multipart", "(body)", decode_utf8_lenient(body))
        return
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    for index, raw_part in enumerate(body.split(delimiter)[1:]):
        if raw_part.startswith(b"--"):
            break
        part = raw_part[2:] if raw_part.startswith(b"\r\n") else raw_part.lstrip(b"\n")
        head, separator, content = part.partition(b"\r\n\r\n")
        if not separator:
            head, separator, content = part.partition(b"\n\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        headers: dict[str, str] = {}
        for line in decode_utf8_lenient(head).replace("\r\n", "\n").split("\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _header_param(disposition, "name") or f"part{index}"
        filename = _header_param(disposition, "filename")
        part_type = media_type(headers.get("content-type", "text/plain"))
        check_key(collector, "multipart", name, name)
        if not _plain_key(name):
            collector.add("multipart_name", name, name)
        for header_name in ("content-type", "content-disposition"):
            if header_name in headers and not headers[header_name].isascii():
                collector.add("multipart_header", f"{name}.{header_name}", headers[header_name])
        if filename is not None:
            collector.add("filename", name, filename)
            check_upload(collector, name, filename, part_type, content)
            if _looks_like_xml(content):
                # An SVG (or any XML) upload, whatever type it claims: image libraries
                # and converters parse it, DOCTYPE and entities included.
                from dijk.detect.xml_body import add_xml  # here: xml_body imports this module

                add_xml(collector, content, "multipart")
            elif not _is_text_type(part_type):
                continue
        collector.add("multipart", name, decode_utf8_lenient(content))


_XML_STARTS = (b"<?xml", b"<svg", b"<!doctype")


def _looks_like_xml(content: bytes) -> bool:
    """XML by its first bytes (an XML declaration, an SVG root, a DOCTYPE that is not
    HTML's)."""
    start = content[:256].removeprefix(b"\xef\xbb\xbf").lstrip()[:16].lower()
    return start.startswith(_XML_STARTS) and not start.startswith(b"<!doctype html")


def _is_text_type(part_type: str) -> bool:
    return (
        part_type.startswith("text/")
        or part_type
        in ("application/json", "application/xml", "application/x-www-form-urlencoded", "")
        or part_type.endswith(("+json", "+xml"))
    )


def check_upload(
    collector: Collector, name: str, filename: str, part_type: str, content: bytes
) -> None:
    """Executable extensions (also hidden as ``a.php.jpg`` or ``a.php%00.jpg``) and script
    content in files that claim to be something else."""
    cleaned = filename.replace("\x00", ".").strip().rstrip(". ").lower()
    base = cleaned.replace("\\", "/").rsplit("/", 1)[-1]
    extensions = [piece.strip() for piece in base.split(".")[1:]]
    if any(extension in EXECUTABLE_EXTENSIONS for extension in extensions) or base in (
        ".htaccess",
        ".user.ini",
        "web.config",
    ):
        collector.hit("upload-executable-extension", "filename", name, filename)
    head = content[:512].lstrip()
    claimed_script = part_type in ("text/x-php", "application/x-httpd-php", "application/x-sh")
    if not claimed_script and any(head.startswith(magic) for magic in _SCRIPT_MAGIC):
        collector.hit("upload-content-mismatch", "multipart", name, head[:40].decode("latin-1"))
    elif b"<?php" in content[:65536] and part_type.startswith(("image/", "application/pdf")):
        collector.hit("upload-content-mismatch", "multipart", name, "<?php")
    check_archive(collector, "multipart", name, content)


def check_archive(collector: Collector, location: str, name: str, content: bytes) -> None:
    """Archive bombs by compression ratio, within the request's inflation budget."""
    if archive_kind(content) is None or collector.inflate_budget <= 0:
        return
    report = inspect_archive(content, collector.inflate_budget)
    if report is None:
        return
    collector.inflate_budget -= report.inflated
    if report.bomb:
        collector.hit("upload-archive-bomb", location, name, f"{report.kind}: {report.bomb}")


def add_path(collector: Collector, path: str) -> None:
    """The decoded path as a whole (traversal spans segments) and each segment."""
    decoded = percent_decode_once(path.replace("+", "%2B"))
    collector.add("path", "path", decoded)
    segments = [segment for segment in path.split("/") if segment]
    if len(segments) > 1:
        for index, segment in enumerate(segments):
            text = percent_decode_once(segment.replace("+", "%2B"))
            # Long plain segments too: they may be base64 (an id rarely is 12+ letters).
            if not _plain_key(text) or len(text) >= 12:
                collector.add("path", f"path[{index}]", text)


_LOOKUP_ONLY = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-charset",
        "cache-control",
        "pragma",
        "te",
        "upgrade-insecure-requests",
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
        "if-range",
        "range",
        "keep-alive",
        "sec-fetch-mode",
        "sec-fetch-site",
        "sec-fetch-dest",
        "sec-fetch-user",
        "sec-ch-ua",
        "sec-ch-ua-mobile",
        "sec-ch-ua-platform",
        "dnt",
        "priority",
        "expect",
        "content-type",
    }
)
# Framing and routing headers the server has already parsed and checked.
_NOT_INSPECTED = frozenset(
    {"host", "content-length", "connection", "proxy-connection", "transfer-encoding"}
)


def _has_lookup(value: str) -> bool:
    """A ``${`` lookup, also percent-encoded (``%24%7B``, ``$%7B``)."""
    if "$" in value and "{" in value:
        return True
    if "%" not in value:
        return False
    lowered = value.lower()
    return "%24%7b" in lowered or "$%7b" in lowered or "%24{" in lowered


def add_headers(collector: Collector, headers: tuple[tuple[str, str], ...]) -> None:
    for name, value in headers:
        if name == "cookie":
            add_pairs(collector, parse_cookies(value), "cookie")
        elif name == "authorization":
            scheme, _, credentials = value.partition(" ")
            if scheme.lower() == "bearer" and credentials.startswith("eyJ"):
                collector.add("jwt", "authorization", credentials)
        elif name in INSPECTED_HEADERS:
            collector.add("header", name, value)
        elif any(marker in name for marker in CREDENTIAL_MARKERS) or name in _NOT_INSPECTED:
            continue
        elif name in _LOOKUP_ONLY:
            # Standard headers of fixed grammar: read for what is dangerous wherever a
            # value is logged (a Log4j lookup), not for every attack's syntax.
            if _has_lookup(value):
                collector.add("header", name, value)
        else:
            # x-* and any other custom header reach the application too.
            collector.add("header", name, value)


def is_graphql_request(request: RequestParts) -> bool:
    if request.graphql:
        return True
    if media_type(request.content_type) == "application/graphql":
        return True
    return request.path.rstrip("/").rsplit("/", 1)[-1].lower() == "graphql"
