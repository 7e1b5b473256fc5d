"""The fuzz targets: one function per parser that takes arbitrary bytes.

Each target states what must hold for *every* input, beyond "does not crash": a parser may
refuse an input only with its documented error type, and what it accepts must satisfy
its contract (the normaliser is idempotent, the router only matches what a route's
definition says, the HTTP server never hands the handler an ambiguous request, an audit
record survives its encoding...). An ``AssertionError`` or any other exception is a
finding: atheris stops and writes the input as a crash file.

Inputs are split with ``atheris.FuzzedDataProvider``-free helpers (plain slicing), so the
targets also run without atheris: the hypothesis fallback and the smoke test call them
directly with seeds.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from dijk.audit.chain import ChainSealer, record_hash
from dijk.audit.record import AuditRecord, Finding, canonical_bytes, sanitise_record
from dijk.audit.spool import _line, _parse
from dijk.auth.jwt import MALFORMED, b64url_decode, parse_compact
from dijk.config import ConfigError, load_config_text
from dijk.config.models import RouteConfig
from dijk.detect.engine import Detector
from dijk.detect.findings import RequestParts
from dijk.detect.json_limits import JsonLimits, JsonLimitScanner, check_json_limits
from dijk.detect.normalise import variants
from dijk.proxy.http1 import HttpProtocol, ProtocolFault, Request, ResponseWriter, ServerLimits
from dijk.routing.normalise import PathError, normalise_path
from dijk.routing.router import Router

SeedSource = Callable[[], Iterator[bytes]]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    one_input: Callable[[bytes], None]
    seeds: SeedSource
    description: str
    # Work done once before fuzzing (a compiled pattern database), not on the first input.
    prepare: Callable[[], object] | None = None


# --------------------------------------------------------------------------- HTTP/1.1


class _Transport(asyncio.Transport):
    """Collects what the server writes; closing is remembered, nothing goes anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Nothing is ever buffered here: every write is taken at once."""

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write_eof(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True


class _EchoHandler:
    """Reads the whole body and answers 200; checks each request it is handed."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def handle(self, request: Request, response: ResponseWriter) -> None:
        _check_request(request)
        self.requests.append(request)
        body = await request.body.read_all(1 << 20)
        response.send(200, [("content-type", "text/plain")], body[:64])

    def protocol_error(
        self, fault: ProtocolFault, request: Request | None, client_ip: str = ""
    ) -> tuple[list[tuple[str, str]], bytes]:
        assert 400 <= fault.status <= 599, fault
        assert fault.reason.count(".") >= 1, fault.reason
        body = json.dumps({"status": fault.status, "reason": fault.reason}).encode()
        return [("content-type", "application/problem+json")], body


def _check_request(request: Request) -> None:
    """What the server promises about every request it hands to the gateway."""
    names = [name for name, _ in request.headers]
    assert names.count("host") <= 1, "two Host headers reached the handler"
    if request.http_version == "1.1":
        assert names.count("host") == 1, "HTTP/1.1 request without Host reached the handler"
    assert request.method != "CONNECT"
    assert not (request.chunked and request.content_length is not None), "CL and TE"
    if request.chunked:
        assert request.http_version == "1.1", "Transfer-Encoding on HTTP/1.0"
    assert all(name == name.lower() for name in names)


_LOOP: asyncio.AbstractEventLoop | None = None
_LIMITS = ServerLimits(max_header_bytes=4096, max_headers=32, header_timeout_s=5)


def _loop() -> asyncio.AbstractEventLoop:
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
        asyncio.set_event_loop(_LOOP)
    return _LOOP


def http1_request(data: bytes) -> None:
    """Feed bytes to the server protocol in 1-3 pieces, then EOF; run it to quiescence."""
    if not data:
        return
    cuts = sorted({b % (len(data) + 1) for b in data[:2]})
    pieces, start = [], 1
    for cut in [*cuts, len(data)]:
        if cut > start:
            pieces.append(data[start:cut])
            start = cut
    handler = _EchoHandler()
    loop = _loop()

    async def run() -> bytes:
        transport = _Transport()
        protocol = HttpProtocol(handler, _LIMITS)  # type: ignore[arg-type]
        protocol.connection_made(transport)
        for piece in pieces:
            if transport.closed:
                break
            protocol.data_received(piece)
            for _ in range(3):
                await asyncio.sleep(0)
        if not transport.closed:
            protocol.eof_received()
        for _ in range(10):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        for _ in range(3):
            await asyncio.sleep(0)
        return bytes(transport.written)

    written = loop.run_until_complete(run())
    for task in asyncio.all_tasks(loop):
        task.cancel()
    if written:
        assert written.startswith(b"HTTP/1.1 "), written[:40]
        for head in written.split(b"HTTP/1.1 ")[1:]:
            status = head[:3]
            assert status.isdigit(), head[:40]
            if status in (b"400", b"408", b"413", b"417", b"431", b"501"):
                assert b"application/problem+json" in head, head[:200]


def _http_seeds() -> Iterator[bytes]:
    yield b"\x05\x09GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    yield b"\x10\x30POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    yield (
        b"\x20\x40POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    yield b"\x00\x00GET / HTTP/1.0\r\n\r\n"
    try:
        from tests.e2e.test_smuggling import AMBIGUOUS
    except ImportError:  # the smuggling suite is not installed with the package
        return
    for index, raw in enumerate(AMBIGUOUS.values()):
        yield bytes([index % 256, (index * 7) % 256]) + raw


# --------------------------------------------------------------------------- path + router

_ROUTES = [
    RouteConfig.model_validate(route)
    for route in (
        {"name": "exact", "match": {"path": "/health"}, "upstream": "u"},
        {"name": "accounts", "match": {"path_template": "/accounts/{id}/tx/{tx}"}, "upstream": "u"},
        {"name": "public", "match": {"path_prefix": "/public"}, "upstream": "u"},
        {
            "name": "admin",
            "match": {"path_prefix": "/admin", "methods": ["POST"]},
            "upstream": "u",
        },
        {"name": "root", "match": {"path_prefix": "/api/v1"}, "upstream": "u"},
    )
]
ROUTER = Router(_ROUTES)


def route_satisfied(route: Any, path: str) -> bool:
    """Does ``path`` literally meet ``route``'s definition (no decoding, no guessing)?"""
    template = route.template
    if route.kind == "exact":
        return path == template
    if route.kind == "prefix":
        return template == "/" or path == template or path.startswith(template + "/")
    expected = template.split("/")
    actual = path.split("/")
    if len(expected) != len(actual):
        return False
    return all(
        (e.startswith("{") and bool(a)) or e == a for e, a in zip(expected, actual, strict=True)
    )


def path_and_router(data: bytes) -> None:
    options = data[:1]
    raw = data[1:]
    merge = not (options and options[0] & 1)
    encoded_slash = bool(options and options[0] & 2)
    try:
        normal = normalise_path(raw, merge_slashes=merge, allow_encoded_slash=encoded_slash)
    except PathError as exc:
        assert exc.reason.startswith("http."), exc.reason
        return
    again = normalise_path(normal, merge_slashes=merge, allow_encoded_slash=encoded_slash)
    assert again == normal, (raw, normal, again)
    assert normal.startswith("/")
    assert "/../" not in normal + "/"
    assert "/./" not in normal + "/"
    for method in ("GET", "POST"):
        found = ROUTER.match(method, normal)
        if found.route is not None:
            assert route_satisfied(found.route, normal), (found.route.name, normal)


def _path_seeds() -> Iterator[bytes]:
    for path in (
        b"/health",
        b"/accounts/1/tx/2",
        b"/public/../admin",
        b"/public/%2e%2e/admin",
        b"/public/%2E%2E%2Fadmin",
        b"//api//v1/./x",
        b"/api/v1/..;/admin",
        b"/a/b/%252e%252e/c",
        b"/public/%c0%ae%c0%ae/x",
    ):
        yield b"\x00" + path
        yield b"\x03" + path


# --------------------------------------------------------------------------- JSON limits


def json_limits(data: bytes) -> None:
    if not data:
        return
    depth = data[0] % 40
    body = data[1:]
    limits = JsonLimits(max_depth=depth, max_array_length=1 << 30, max_string_length=1 << 30)
    whole = check_json_limits(body, limits)
    # Verdicts and offsets do not depend on how the body was split into chunks.
    scanner = JsonLimitScanner(limits)
    step = 1 + (data[0] % 7)
    split = None
    for start in range(0, len(body), step):
        split = scanner.feed(body[start : start + step])
        if split is not None:
            break
    if split is None:
        split = scanner.finish()
    assert whole == split, (whole, split)
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return
    if whole is not None:
        # The scanner never calls a document json.loads accepts malformed.
        assert whole.reason != "json.malformed" or _python_only_json(body), whole
        if whole.reason == "json.too_deep":
            assert _depth(parsed) > depth
    elif not _python_only_json(body):
        assert _depth(parsed) <= depth


def _python_only_json(body: bytes) -> bool:
    """Python's json accepts what RFC 8259 does not (NaN, Infinity, lone surrogates)."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    return False


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level) for child in children)
    return deepest


def _json_seeds() -> Iterator[bytes]:
    yield b'\x05{"a": [1, 2, {"b": "c\\u00e9"}], "d": null}'
    yield b"\x02[[[[[]]]]]"
    yield b'\x10"\\ud800\\udc00"'
    yield b'\x08{"k":"v","k":1, "x": [true,false,1e5,-0.5]}'
    yield b"\x01 [1,,2]"


# --------------------------------------------------------------------------- detector

DETECTOR: Detector | None = None


def _detector() -> Detector:
    global DETECTOR
    if DETECTOR is None:
        DETECTOR = Detector(paranoia=4)
    return DETECTOR


_BODY_KINDS = (
    ("application/json", False),
    ("application/xml", False),
    ("application/graphql", True),
    ("application/json", True),  # a GraphQL JSON envelope
    ("multipart/form-data; boundary=XyZ", False),
    ("application/x-www-form-urlencoded", False),
    ("text/plain", False),
)


def detector_body(data: bytes) -> None:
    if not data:
        return
    content_type, graphql = _BODY_KINDS[data[0] % len(_BODY_KINDS)]
    body = data[1:]
    request = RequestParts(
        method="POST",
        path="/graphql" if graphql else "/api/things",
        content_type=content_type,
        headers=(("content-type", content_type),),
        body=body,
        graphql=graphql,
    )
    verdict = _detector().inspect(request)
    assert verdict.score >= 0
    for finding in verdict.findings:
        assert len(finding.snippet) <= 64
    text = body[:512].decode("utf-8", "replace")
    for _, value in variants(text):
        assert isinstance(value, str)


def _detector_seeds() -> Iterator[bytes]:
    yield b'\x00{"q": "1 union select password from users", "n": {"x": ["<script>"]}}'
    yield b"\x01<?xml version='1.0'?><a><b x='1'>../../etc/passwd</b></a>"
    yield b'\x02{ user(id: "1 OR 1=1") { name friends { name } } }'
    yield b'\x03{"query": "query Q($v: String) { a(b: $v) }", "variables": {"v": "${jndi:x}"}}'
    yield (
        b'\x04--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.php"\r\n'
        b"Content-Type: text/plain\r\n\r\n<?php system($_GET['c']); ?>\r\n--XyZ--\r\n"
    )
    yield b"\x05a=1&b=%27%20or%201%3D1--&c=%u003cscript%u003e"
    try:
        from tests.conftest import CORPORA
    except ImportError:
        return
    crs = CORPORA / "crs-tests" / "crs_tests.jsonl"
    if not crs.is_file():
        return
    kinds = {"json": 0, "xml": 1, "graphql": 2, "multipart": 4, "x-www-form": 5}
    taken = 0
    with crs.open(encoding="utf-8") as lines:
        for line in lines:
            case = json.loads(line)
            body = case.get("body")
            if not body or taken >= 120:
                continue
            content_type = str((case.get("headers") or {}).get("Content-Type", "")).lower()
            kind = next((code for key, code in kinds.items() if key in content_type), 6)
            taken += 1
            yield bytes([kind]) + body.encode("utf-8", "replace")


# --------------------------------------------------------------------------- config

_CONFIG_HEAD = "version: 1\nupstreams: {u: {url: 'http://127.0.0.1:9'}}\n"


def config_loader(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        config = load_config_text(text, "fuzz.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml"), message[:200]
        assert "Traceback" not in message
        return
    assert config.version == 1


def _config_seeds() -> Iterator[bytes]:
    yield (_CONFIG_HEAD + "routes: [{name: a, match: {path_prefix: /}, upstream: u}]\n").encode()
    yield (
        _CONFIG_HEAD
        + "routes:\n  - name: a\n    match: {path_template: '/x/{id}'}\n    upstream: u\n"
        + "    rate_limit: [{key: ip, limit: 3, per_s: 60}]\n"
        + "audit: {url: 'sqlite:///./a.db', durability: strict}\n"
    ).encode()
    yield b"a: &x [*x]\n"
    yield b"version: 1\nroutes: !!python/object:os.system {}\n"
    demo = Path(__file__).resolve().parent.parent / "src" / "dijk" / "demo"
    for path in sorted(demo.glob("*.yaml")):
        yield path.read_bytes()


# --------------------------------------------------------------------------- JWT


def jwt_parser(data: bytes) -> None:
    token = data.decode("latin-1")
    parsed = parse_compact(token)
    if parsed is MALFORMED:
        return
    assert not isinstance(parsed, type(MALFORMED))
    header, payload, signing_input, _ = parsed
    assert isinstance(header, dict)
    encoded_header, encoded_payload, encoded_signature = token.split(".")
    assert signing_input == f"{encoded_header}.{encoded_payload}".encode("ascii")
    # Strict base64url: the decoded bytes have exactly one spelling.
    assert base64.urlsafe_b64encode(payload).rstrip(b"=").decode() == encoded_payload
    assert b64url_decode(encoded_signature) is not None


def _jwt_seeds() -> Iterator[bytes]:
    def segment(value: bytes) -> bytes:
        return base64.urlsafe_b64encode(value).rstrip(b"=")

    header = segment(b'{"alg":"RS256","kid":"k1","typ":"JWT"}')
    payload = segment(b'{"sub":"alice","exp":1700000000,"scope":"read write"}')
    yield header + b"." + payload + b"." + segment(b"\x01" * 64)
    yield segment(b'{"alg":"none"}') + b"." + payload + b"."
    yield segment(b'{"alg":"HS256","alg":"none"}') + b"." + payload + b".AA"
    try:
        from tests.conftest import CORPORA
    except ImportError:
        return
    jose = CORPORA / "jose" / "json_web_signature_test.json"
    if jose.is_file():
        for word in jose.read_text(errors="replace").split('"'):
            if word.count(".") == 2 and len(word) < 4096:
                yield word.encode()


# --------------------------------------------------------------------------- audit codec

_KEY = b"fuzz-hmac-key-0123456789abcdef01"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _text(data: bytes, start: int, size: int) -> str:
    return data[start : start + size].decode("utf-8", "surrogatepass" if start % 2 else "replace")


def audit_codec(data: bytes) -> None:
    if len(data) < 8:
        return
    micros = int.from_bytes(data[:6], "big")
    record = AuditRecord(
        time=_EPOCH + timedelta(microseconds=micros),
        request_id=_text(data, 6, 20),
        method=_text(data, 26, 8) or "GET",
        status=100 + data[6] % 500,
        decision=("allow", "deny", "monitor", "abort")[data[7] % 4],
        route=_text(data, 34, 10) or None,
        reason=_text(data, 44, 12) or None,
        client_ip=_text(data, 56, 16) or None,
        findings=tuple(
            Finding(rule_id=_text(data, 72 + 8 * i, 4), field=_text(data, 76 + 8 * i, 4))
            for i in range(data[5] % 4)
        ),
        bytes_in=int.from_bytes(data[1:5], "big"),
        pii_categories=tuple(filter(None, (_text(data, 100, 6), _text(data, 106, 6)))),
    )
    clean = sanitise_record(record)
    encoded = canonical_bytes(clean, "c")
    body = orjson.loads(encoded)
    assert body["time_us"] == micros
    assert list(body) == sorted(body), "canonical keys must be sorted"
    sealed = ChainSealer(_KEY, "c").seal(clean)
    back = _parse(_line(sealed))
    assert back == sealed, "a spooled record must read back as it was written"
    assert record_hash(_KEY, back.prev_hash, back.record, "c") == sealed.hash


def _audit_seeds() -> Iterator[bytes]:
    yield bytes(range(128))
    yield b"\x00\x01\x02\x03\x04\x05\x06\x07req-1\x00\xed\xa0\x80GET /x" + b"\xff" * 64
    yield b"\x10" * 120


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("http1", http1_request, _http_seeds, "HTTP/1.1 request parser and framing"),
        Target("path_router", path_and_router, _path_seeds, "path normaliser and router"),
        Target("json_limits", json_limits, _json_seeds, "streaming JSON limits scanner"),
        Target(
            "detector_body",
            detector_body,
            _detector_seeds,
            "detector: JSON/XML/GraphQL/multipart/form extractors and normalisers",
            prepare=lambda: _detector(),
        ),
        Target("config", config_loader, _config_seeds, "configuration loader"),
        Target("jwt", jwt_parser, _jwt_seeds, "JWT compact parser"),
        Target("audit_codec", audit_codec, _audit_seeds, "audit record codec and spool line"),
    )
}

__all__ = ["TARGETS", "Target", "route_satisfied"]
