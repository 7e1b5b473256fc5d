"""Live fuzzing of a running demo gateway: generated and mutated HTTP/1.1 against the contract.

    .venv/bin/python -m bench.fuzz_live                       # 10**6 requests, at most 1 h
    .venv/bin/python -m bench.fuzz_live --count 3000 --max-seconds 60 --seed 7
    options: --concurrency N  --json PATH  --seed N

Starts ``dijk demo`` (as a user would, on free loopback ports) with its upstream writing one
JSON line per request it receives (``DIJK_DEMO_UPSTREAM_LOG``), then sends requests built
from a small grammar of HTTP/1.1: valid requests to every demo route with random JSON, XML,
GraphQL, multipart and form bodies, smuggling-shaped framing (CL+TE, duplicate or signed
Content-Length, obfuscated Transfer-Encoding, bare LF, obs-fold, pipelined second
requests), oversized and malformed request lines, headers and chunks; a share of them is
then mutated byte by byte. Every request goes on its own connection (one in ten carries
two to four pipelined requests), which the client half-closes once it has written
everything.

A run passes when:

* the gateway is alive at the end (0 crashes) and answered every complete request;
* every response is inside the contract: an answer the gateway gave itself (its request id
  absent from the upstream's log) is ``application/problem+json`` with a known ``area.what``
  reason, the status and request id of the headers; no 5xx except the documented 501
  (``http.transfer_encoding_unsupported``), 502, 503, 504 and 505;
* nothing refused was forwarded: no request id that the gateway answered with a refusal
  appears in the upstream's log, and every request the upstream received belongs to a
  response the client read (a smuggled request would not);
* the gateway's RSS at the end is within 5 % of its RSS after the warm-up (the first 10 %).

Known reasons are collected from the source: every ``area.what`` string literal of
``src/dijk`` in the areas the request path answers with, and ``waf.<category>`` for each
category the WAF stage names.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import socket
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.demo import DemoProcess, start_demo  # noqa: E402

# Areas of the reason codes the gateway's request path can answer with.
AREAS = frozenset(
    {
        "auth",
        "authz",
        "http",
        "audit",
        "openapi",
        "limits",
        "route",
        "upstream",
        "ratelimit",
        "gateway",
        "overload",
        "json",
        "net",
        "waf",
    }
)
# 5xx the contract documents (README, "What the gateway guarantees").
DOCUMENTED_5XX = {
    501: {"http.transfer_encoding_unsupported"},
    502: None,
    503: None,
    504: None,
    505: {"http.version_not_supported"},
}
_CODE = re.compile(r"^([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*$")
PROBLEM = "application/problem+json"
READ_TIMEOUT_S = 15.0


def known_reasons(src: Path = ROOT / "src" / "dijk") -> frozenset[str]:
    """Every ``area.what`` literal of the source in AREAS, and ``waf.<category>``."""
    found: set[str] = set()
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = _CODE.match(node.value)
                if match and match.group(1) in AREAS:
                    found.add(node.value)
            if (
                isinstance(node, ast.Assign)
                and path.name == "waf.py"
                and any(isinstance(t, ast.Name) and t.id == "_LABELS" for t in node.targets)
                and isinstance(node.value, ast.Dict)
            ):
                for key in node.value.keys:
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        found.add(f"waf.{key.value}")
    return frozenset(found)


# --------------------------------------------------------------------------- grammar


@dataclass
class Case:
    kind: str
    data: bytes
    complete: bool  # a well-framed request the gateway must answer
    # The method of each request in data, in order (a HEAD answer has no body).
    methods: tuple[str, ...] = ()

    def heads(self) -> tuple[bool, ...]:
        methods = self.methods or (self.data.split(b" ", 1)[0].decode("latin-1"),)
        return tuple(method == "HEAD" for method in methods)


class Grammar:
    ROUTES = (
        ("GET", "/api/v1/status", None),
        ("POST", "/api/v1/login", "json"),
        ("GET", "/api/v1/accounts", None),
        ("POST", "/api/v1/accounts", "json"),
        ("GET", "/api/v1/accounts/{id}", None),
        ("GET", "/api/v0/accounts/{id}", None),
        ("GET", "/api/v1/search", None),
        ("POST", "/api/v1/tickets", "json"),
        ("POST", "/graphql", "graphql"),
        ("GET", "/api/v1/openapi.yaml", None),
        ("POST", "/api/v1/tickets", "multipart"),
        ("POST", "/api/v1/accounts", "xml"),
        ("POST", "/api/v1/login", "form"),
    )
    ATOMS = (
        "' OR 1=1--",
        "<script>alert(1)</script>",
        "../../etc/passwd",
        "${jndi:ldap://127.0.0.1/a}",
        "{{7*7}}",
        "; cat /etc/passwd",
        "http://169.254.169.254/",
        '{"$ne": null}',
        "\u0000",
        "\r\nX-Injected: 1",
        "%00",
        "%2e%2e%2f",
        "é",
        "😀",
        "",
        "a" * 300,
        "__proto__",
        "1e309",
    )

    def __init__(self, rng: random.Random, read_key: str, write_key: str) -> None:
        self.rng = rng
        self.keys = (read_key, write_key, write_key, "wrong-key", "")

    def text(self) -> str:
        rng = self.rng
        if rng.random() < 0.4:
            return rng.choice(self.ATOMS)
        alphabet = "abcXYZ0129 _-./%'\"<>{}[]\\$&;=\t"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))

    def json_value(self, depth: int = 0) -> object:
        rng = self.rng
        roll = rng.random()
        if depth > 4 or roll < 0.4:
            return rng.choice(
                [self.text(), rng.randint(-(10**20), 10**20), rng.random(), True, None]
            )
        if roll < 0.7:
            return {self.text(): self.json_value(depth + 1) for _ in range(rng.randint(0, 5))}
        return [self.json_value(depth + 1) for _ in range(rng.randint(0, 5))]

    def json_body(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            depth = rng.randint(20, 80)
            return b"[" * depth + b"]" * depth
        if roll < 0.15:
            return b'{"a": "' + b"x" * rng.randint(1, 200_000) + b'"}'
        if roll < 0.2:
            return json.dumps(self.json_value()).encode()[: rng.randint(0, 50)]
        if roll < 0.35:
            return json.dumps(
                {"username": self.text(), "password": self.text(), "subject": self.text()}
            ).encode()
        return json.dumps(self.json_value(), ensure_ascii=rng.random() < 0.5).encode()

    def xml_body(self) -> bytes:
        rng = self.rng
        parts = [
            '<?xml version="1.0"?><a>' + self.text() + "</a>",
            '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
            "<a>" * rng.randint(1, 200),
            '<?xml version="1.0" encoding="' + self.text() + '"?><a/>',
        ]
        return rng.choice(parts).encode("utf-8", "surrogatepass")

    def graphql_body(self) -> bytes:
        rng = self.rng
        depth = rng.randint(1, 30)
        query = "{" + "accounts {" * depth + " id " + "}" * depth + "}"
        choices = [
            {"query": query},
            {"query": '{ account(id: "' + self.text() + '") { name } }'},
            {"query": "{ " + "a: __typename " * rng.randint(1, 500) + "}"},
            {"query": self.text(), "variables": self.json_value()},
        ]
        return json.dumps(rng.choice(choices)).encode()

    def multipart_body(self, boundary: str) -> bytes:
        rng = self.rng
        parts = []
        for _ in range(rng.randint(0, 4)):
            name = self.text().replace('"', "")
            filename = rng.choice(
                ["", '; filename="a.php"', '; filename="../x"', '; filename="a.txt"']
            )
            part_type = rng.choice(["text/plain", "application/json", "application/x-php"])
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n'
                f"Content-Type: {part_type}\r\n\r\n{self.text()}\r\n"
            )
        closing = rng.choice([f"--{boundary}--\r\n", "", f"--{boundary}"])
        return "".join(parts).encode("utf-8", "surrogatepass") + closing.encode()

    def body(self, kind: str | None) -> tuple[bytes, str]:
        rng = self.rng
        if kind is None:
            return b"", ""
        if kind == "json":
            return self.json_body(), "application/json"
        if kind == "graphql":
            return self.graphql_body(), "application/json"
        if kind == "xml":
            return self.xml_body(), rng.choice(["application/xml", "text/xml"])
        if kind == "form":
            return (
                ("username=" + self.text() + "&password=" + self.text()).encode(
                    "utf-8", "surrogatepass"
                ),
                "application/x-www-form-urlencoded",
            )
        boundary = "b" + str(rng.randint(0, 10**9))
        return self.multipart_body(boundary), f"multipart/form-data; boundary={boundary}"

    def path(self, template: str) -> str:
        rng = self.rng
        path = template.replace(
            "{id}", rng.choice(["1", "42", "0", "-1", "abc", "1%2f2", "99999999999999999999"])
        )
        roll = rng.random()
        if roll < 0.1:
            path = rng.choice(["/", "/nope", "/api/v2/x", "/readyz", "/healthz", "//api/v1/status"])
        elif roll < 0.2:
            path += rng.choice(
                ["/..", "/../admin", "%2f..", "/./", "\\x", "%00", "%2e%2e/", ";a=b"]
            )
        elif roll < 0.25:
            path = "/" + "a/" * rng.randint(100, 5000)
        if rng.random() < 0.4:
            raw = rng.random() < 0.1  # mostly encoded, as clients send it; raw is malformed
            query = "&".join(
                f"{rng.choice(['q', 'limit', 'offset', 'id', 'x', 'q[]'])}="
                + (self.text() if raw else urllib.parse.quote(self.text(), safe=""))
                for _ in range(rng.randint(1, 4))
            )
            path += "?" + query.replace(" ", "%20").replace("\r", "").replace("\n", "")
        return path

    def case(self) -> Case:
        """One request; one in ten times two to four pipelined on one keep-alive connection
        (all but the last without ``Connection: close``), so that a request refused in the
        middle of a connection is checked too."""
        if self.rng.random() >= 0.1:
            return self.single()
        parts = [self.single() for _ in range(self.rng.randint(2, 4))]
        data = b"".join(part.data.replace(b"Connection: close\r\n", b"", 1) for part in parts[:-1])
        methods = tuple(part.data.split(b" ", 1)[0].decode("latin-1") for part in parts)
        return Case("pipelined", data + parts[-1].data, parts[0].complete, methods)

    def single(self) -> Case:
        rng = self.rng
        method, template, kind = rng.choice(self.ROUTES)
        if rng.random() < 0.05:
            method = rng.choice(
                ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "FOO", "get"]
            )
        path = self.path(template)
        body, content_type = self.body(kind if method != "GET" or rng.random() < 0.1 else None)
        version = "HTTP/1.1"
        if rng.random() < 0.02:
            version = rng.choice(["HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "http/1.1", ""])
        headers: list[tuple[str, str]] = [
            ("Host", rng.choice(["127.0.0.1", "localhost:8080", "bank"]))
        ]
        key = rng.choice(self.keys)
        if key:
            headers.append(("X-API-Key", key))
        if content_type:
            headers.append(("Content-Type", content_type))
        headers.append(("Connection", "close"))
        kind_name = "valid"
        framing = rng.random()
        complete = True
        if framing < 0.55:
            if body or method == "POST":
                headers.append(("Content-Length", str(len(body))))
            payload = body
        elif framing < 0.65:
            headers.append(("Transfer-Encoding", "chunked"))
            payload = self.chunked(body)
        else:
            kind_name = "smuggling"
            headers, payload, complete = self.smuggling(headers, body)
        if rng.random() < 0.15:
            kind_name = "headers"
            headers, complete = self.odd_headers(headers, complete)
        head = f"{method} {path} {version}".rstrip() + "\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
        data = head.encode("utf-8", "surrogatepass") + payload
        if rng.random() < 0.25:
            kind_name = "mutated"
            data = self.mutate(data)
            complete = False
        return Case(kind_name, data, complete)

    def chunked(self, body: bytes) -> bytes:
        rng = self.rng
        out = b""
        i = 0
        while i < len(body):
            n = rng.randint(1, max(1, len(body) - i))
            out += f"{n:x}".encode() + b"\r\n" + body[i : i + n] + b"\r\n"
            i += n
        return out + b"0\r\n\r\n"

    def smuggling(
        self, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[list[tuple[str, str]], bytes, bool]:
        rng = self.rng
        second = b"GET /api/v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        chunked = self.chunked(body)
        variant = rng.randint(0, 11)
        if variant == 0:  # CL.TE
            return (
                [*headers, ("Content-Length", str(len(chunked))), ("Transfer-Encoding", "chunked")],
                chunked + second,
                True,
            )
        if variant == 1:  # TE.CL
            return (
                [*headers, ("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
                chunked + second,
                True,
            )
        if variant == 2:  # duplicate Content-Length
            return (
                [
                    *headers,
                    ("Content-Length", str(len(body))),
                    ("Content-Length", str(len(body) + 5)),
                ],
                body + second,
                True,
            )
        if variant == 3:  # obfuscated TE
            te = rng.choice(
                [
                    "chunked ",
                    " chunked",
                    "xchunked",
                    "chunked, identity",
                    "Chunked",
                    "chunk",
                    "chunked\x0b",
                ]
            )
            return [*headers, ("Transfer-Encoding", te)], chunked, True
        if variant == 4:  # signed / odd Content-Length
            cl = rng.choice(["+5", "-1", "0x10", " 5", "5 ", "1_0", "99999999999999999999", ""])
            return [*headers, ("Content-Length", cl)], body, True
        if variant == 5:  # pipelined second request after a normal one
            headers = [h for h in headers if h[0] != "Connection"]
            return [*headers, ("Content-Length", str(len(body)))], body + second, True
        if variant == 6:  # chunk size overflow / extensions
            size = rng.choice(["fffffffffffffffffff", "1;a=" + "b" * 20000, "-1", "0x5", " 5"])
            return (
                [*headers, ("Transfer-Encoding", "chunked")],
                f"{size}\r\nhello\r\n0\r\n\r\n".encode(),
                True,
            )
        if variant == 7:  # trailers
            return (
                [*headers, ("Transfer-Encoding", "chunked")],
                b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
                True,
            )
        if variant == 8:  # Connection naming an end-to-end field
            return (
                [
                    *headers,
                    (
                        "Connection",
                        rng.choice(
                            ["content-type", "x-api-key", "host", "keep-alive, content-length"]
                        ),
                    ),
                    ("Content-Length", str(len(body))),
                ],
                body,
                True,
            )
        if variant == 9:  # truncated body
            return [*headers, ("Content-Length", str(len(body) + 10))], body, False
        if variant == 10:  # method overrides and URL rewrites
            return (
                [
                    *headers,
                    ("X-HTTP-Method-Override", "DELETE"),
                    ("X-Original-URL", "/admin"),
                    ("Content-Length", str(len(body))),
                ],
                body,
                True,
            )
        # 11: Transfer-Encoding with HTTP/1.0-style extra coding
        return [*headers, ("Transfer-Encoding", "gzip, chunked")], chunked, True

    def odd_headers(
        self, headers: list[tuple[str, str]], complete: bool
    ) -> tuple[list[tuple[str, str]], bool]:
        rng = self.rng
        variant = rng.randint(0, 7)
        if variant == 0:
            headers.append(("X-Big", "a" * rng.randint(10_000, 40_000)))
        elif variant == 1:
            headers.extend(("X-N" + str(i), "1") for i in range(rng.randint(50, 300)))
        elif variant == 2:
            headers.append(("X-Fold", "a\r\n b"))
        elif variant == 3:
            headers.append(("Bad Name", "1"))
        elif variant == 4:
            headers.append(("X-Ctl", "a\x00b"))
        elif variant == 5:
            headers = [h for h in headers if h[0] != "Host"]
        elif variant == 6:
            headers.append(("Host", "evil"))
        else:
            headers.append(("X-Forwarded-For", self.text()))
        return headers, complete

    def mutate(self, data: bytes) -> bytes:
        rng = self.rng
        buf = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            if not buf:
                break
            op = rng.randint(0, 4)
            i = rng.randrange(len(buf))
            if op == 0:
                buf[i] = rng.randrange(256)
            elif op == 1:
                del buf[i : i + rng.randint(1, 16)]
            elif op == 2:
                buf[i:i] = rng.choice(
                    [b"\r\n", b"\n", b"\r", b" ", b"\x00", b":", b"0\r\n\r\n", b"%"]
                )
            elif op == 3:
                j = rng.randrange(len(buf))
                buf[i:i] = buf[j : j + rng.randint(1, 64)]
            else:
                buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        return bytes(buf)


# --------------------------------------------------------------------------- client


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_responses(raw: bytes, heads: tuple[bool, ...] = ()) -> tuple[list[Response], bytes]:
    """The complete responses at the start of raw, and what is left over (``heads[i]``:
    the i-th answers a HEAD request, so it has no body)."""
    out: list[Response] = []
    while raw:
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            break
        lines = raw[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            break
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        rest = raw[end + 4 :]
        status = int(parts[1])
        head = len(out) < len(heads) and heads[len(out)]
        if head or status in (204, 304) or status < 200:
            out.append(Response(status, headers, b""))
            raw = rest
            continue
        if "content-length" in headers and headers["content-length"].isdigit():
            n = int(headers["content-length"])
            if len(rest) < n:
                break
            body, raw = rest[:n], rest[n:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            pos = 0
            while True:
                eol = rest.find(b"\r\n", pos)
                if eol < 0:
                    return out, raw
                size = int(rest[pos:eol].split(b";")[0] or b"0", 16)
                if size == 0:
                    trailer_end = rest.find(b"\r\n", eol + 2)
                    if trailer_end < 0:
                        return out, raw
                    raw = rest[trailer_end + 2 :]
                    break
                body += rest[eol + 2 : eol + 2 + size]
                pos = eol + 2 + size + 2
        else:
            body, raw = rest, b""
        out.append(Response(int(parts[1]), headers, body))
    return out, raw


_REQUEST_ID = re.compile(rb"(?im)^x-request-id:[ \t]*([0-9a-f]{8,64})[ \t]*\r?$")


def send(port: int, data: bytes, heads: tuple[bool, ...] = ()) -> tuple[list[Response], str]:
    """Send on a fresh connection, half-close, read to EOF: (responses, failure)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S)
    except OSError as exc:
        return [], f"connect: {exc.__class__.__name__}"
    chunks: list[bytes] = []
    failure = ""
    with sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the gateway may answer and close before reading everything
        deadline = time.monotonic() + READ_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            else:
                failure = "timeout"
        except TimeoutError:
            failure = "timeout"
        except OSError:
            pass  # reset after the answer: what was read counts
    heads = heads or (data.startswith(b"HEAD "),)
    raw = b"".join(chunks)
    responses, rest = parse_responses(raw, heads)
    if rest:
        # What could not be parsed (a HEAD answer where the client counted none, after a
        # mutation made more requests than it knew of) still names its request ids.
        responses.extend(
            Response(0, {"x-request-id": found.decode()}, b"")
            for found in _REQUEST_ID.findall(rest)
        )
    return responses, failure


# --------------------------------------------------------------------------- checks


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Outcome:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    violations: list[dict[str, object]] = field(default_factory=list)
    refused_ids: set[str] = field(default_factory=set)
    answered_ids: set[str] = field(default_factory=set)
    gateway_answers: list[tuple[str, Response, Case]] = field(default_factory=list)
    no_answer: int = 0
    unparsed: int = 0

    def violation(self, what: str, case: Case, **extra: object) -> None:
        if len(self.violations) < 200:
            self.violations.append(
                {
                    "what": what,
                    "kind": case.kind,
                    "request": case.data[:600].decode("latin-1"),
                    **extra,
                }
            )


def record(outcome: Outcome, case: Case, responses: list[Response], failure: str) -> None:
    outcome.sent += 1
    outcome.kinds[case.kind] += 1
    if not responses:
        if case.complete:
            outcome.no_answer += 1
            outcome.violation("no answer to a complete request", case, failure=failure)
        return
    for response in responses:
        if response.status == 0:  # only its request id was found (see send)
            outcome.answered_ids.add(response.headers["x-request-id"])
            outcome.unparsed += 1
            continue
        outcome.statuses[response.status] += 1
        request_id = response.headers.get("x-request-id", "")
        if not request_id:
            outcome.violation("response without X-Request-Id", case, status=response.status)
            continue
        outcome.answered_ids.add(request_id)
        if response.status >= 400:
            outcome.gateway_answers.append((request_id, response, case))


def check_contract(outcome: Outcome, forwarded: set[str], reasons: frozenset[str]) -> None:
    """Responses the gateway gave itself (not forwarded) must be problem documents."""
    for request_id, response, case in outcome.gateway_answers:
        if request_id in forwarded:
            if response.status >= 500 and response.status not in DOCUMENTED_5XX:
                outcome.violation("upstream 5xx passed through", case, status=response.status)
            continue
        outcome.refused_ids.add(request_id)
        content_type = response.headers.get("content-type", "")
        if any(case.heads()) and not response.body:
            # A HEAD answer has no body (RFC 9110): only its type can be checked.
            if not content_type.startswith(PROBLEM):
                outcome.violation("HEAD refusal is not problem+json", case, status=response.status)
            continue
        try:
            document = json.loads(response.body)
        except ValueError:
            document = None
        if not content_type.startswith(PROBLEM) or not isinstance(document, dict):
            outcome.violation(
                "refusal is not problem+json",
                case,
                status=response.status,
                body=response.body[:300].decode("latin-1"),
            )
            continue
        reason = str(document.get("reason"))
        outcome.reasons[reason] += 1
        if reason not in reasons:
            outcome.violation("unknown reason", case, status=response.status, reason=reason)
        if document.get("status") != response.status or document.get("request_id") != request_id:
            outcome.violation(
                "problem document disagrees with its response", case, status=response.status
            )
        allowed = DOCUMENTED_5XX.get(response.status, set())
        if response.status >= 500 and (
            response.status not in DOCUMENTED_5XX or (allowed and reason not in allowed)
        ):
            outcome.violation("undocumented 5xx", case, status=response.status, reason=reason)


def read_upstream_log(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(
    count: int, max_seconds: float, seed: int, concurrency: int, data_dir: Path | None = None
) -> dict[str, object]:
    reasons = known_reasons()
    work = Path(tempfile.mkdtemp(prefix="dijk-fuzz-live-")) if data_dir is None else data_dir
    upstream_log = work / "upstream-received.jsonl"
    demo: DemoProcess = start_demo(
        work / ".dijk",
        extra_env={"DIJK_DEMO_UPSTREAM_LOG": str(upstream_log)},
        wait_for=None,
        timeout=60,
    )
    rng = random.Random(seed)
    grammar = Grammar(rng, demo.read_key, demo.write_key)
    outcome = Outcome()
    warm_rss = 0
    started = time.monotonic()
    rss_samples: list[tuple[int, int]] = []
    try:
        time.sleep(0.5)
        batch = max(concurrency * 4, 64)
        with ThreadPoolExecutor(concurrency) as pool:
            while outcome.sent < count and time.monotonic() - started < max_seconds:
                cases = [grammar.case() for _ in range(min(batch, count - outcome.sent))]
                for case, (responses, failure) in zip(
                    cases,
                    pool.map(lambda c: send(demo.port, c.data, c.heads()), cases),
                    strict=True,
                ):
                    record(outcome, case, responses, failure)
                if demo.process.poll() is not None:
                    break
                if not warm_rss and outcome.sent >= max(count // 10, 200):
                    warm_rss = rss_kib(demo.process.pid)
                if len(rss_samples) == 0 or outcome.sent - rss_samples[-1][0] >= max(
                    count // 20, 100
                ):
                    rss_samples.append((outcome.sent, rss_kib(demo.process.pid)))
        elapsed = time.monotonic() - started
        alive = demo.process.poll() is None
        end_rss = rss_kib(demo.process.pid) if alive else 0
        time.sleep(0.5)  # the upstream writes its line before answering; let the last ones land
        received = read_upstream_log(upstream_log)
    finally:
        exit_code = (
            demo.stop(timeout=30) if demo.process.poll() is None else demo.process.returncode
        )
    forwarded = {str(line["request_id"]) for line in received}
    check_contract(outcome, forwarded, reasons)
    refused_forwarded = sorted(outcome.refused_ids & forwarded)
    unanswered_forwarded = sorted(forwarded - outcome.answered_ids)
    growth = (end_rss - warm_rss) / warm_rss if warm_rss and end_rss else 0.0
    return {
        "requests": outcome.sent,
        "seconds": round(elapsed, 1),
        "rate": round(outcome.sent / elapsed, 1) if elapsed else 0,
        "alive": alive,
        "exit_code": exit_code,
        "kinds": dict(outcome.kinds),
        "statuses": dict(sorted(outcome.statuses.items())),
        "reasons": dict(outcome.reasons.most_common()),
        "forwarded": len(forwarded),
        "refused_but_forwarded": refused_forwarded[:20],
        "forwarded_without_answer": unanswered_forwarded[:20],
        "no_answer": outcome.no_answer,
        "unparsed_answers": outcome.unparsed,
        "violations": outcome.violations,
        "rss_warm_kib": warm_rss,
        "rss_end_kib": end_rss,
        "rss_growth": round(growth, 4),
        "rss_samples": rss_samples,
        "known_reasons": len(reasons),
        "seed": seed,
    }


def passed(result: dict[str, object], rss_margin: float = 0.05) -> bool:
    return bool(
        result["alive"]
        and not result["violations"]
        and not result["refused_but_forwarded"]
        and not result["forwarded_without_answer"]
        and float(str(result["rss_growth"])) <= rss_margin
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10**6)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "1")))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args.count, args.max_seconds, args.seed, args.concurrency)
    summary = {k: v for k, v in result.items() if k not in ("violations", "rss_samples")}
    print(json.dumps(summary, indent=2))
    for violation in result["violations"][:20]:  # type: ignore[index]
        print(json.dumps(violation))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = passed(result)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
