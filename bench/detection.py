"""Detection-quality benchmark: Dijk beside ModSecurity v3 + OWASP CRS, same requests.

Runs the shared corpora (CRS regression tests, gotestwaf, PayloadsAllTheThings placed into
query strings, JSON bodies at several depths, headers and GraphQL variables, libinjection
data, and benign text from real OpenAPI documents) through ``dijk.detect`` and, in the same
run, replays the very same requests over HTTP to nginx with ModSecurity v3 and the OWASP
Core Rule Set at paranoia levels 1 and 2 (anomaly scoring, blocking mode). Prints TPR
(attacks blocked) and FPR (benign requests blocked) side by side per category and source,
plus the median cost of inspecting a 1 KB JSON body (and what CRS adds per request), and
writes everything as JSON to ``bench/results/detection-latest.json``.

    make bench-detection                             # the default, bounded run
    .venv/bin/python bench/detection.py --sample 200 # requests per source and category
    .venv/bin/python bench/detection.py --full       # every request of every corpus
    .venv/bin/python bench/detection.py --no-peer    # Dijk only (no nginx, no apt-get)
    .venv/bin/python bench/detection.py --only-hard-benign  # the hard benign corpus alone

Beside the shared corpora, a hard benign corpus is built from this machine's own
documentation (``bench/detection_benign.py``: manual pages, Debian docs, Python package
READMEs, Dutch messages in ticket, wiki, comment, snippet and CMS fields) and measured
twice: as undeclared free text and with the fields' content kinds declared.

The peer needs Debian's ``libnginx-mod-http-modsecurity`` (ModSecurity 3.0.9) and
``modsecurity-crs`` (CRS 3.3.4) with nginx; the script installs them with apt-get when
they are missing. nginx runs from a temporary directory on loopback ports, with the
engine settings in ``bench/modsecurity/``; a request counts as blocked by CRS when the
answer is 403. The replay adds what every client sends (``Host: localhost``, ``Accept``,
a ``User-Agent``) where the request has none, so that CRS's protocol rules judge the
payload, not a bare request.

Corpora are read from ``../shared/corpora`` next to the repository (or ``DIJK_CORPORA``);
see its README for sources and licences. Nothing from them is copied into the project.

Samples are split deterministically (CRC32 of the payload) into a tuning part and a
held-out part (one in five); rules were tuned looking at the tuning part only, and the
held-out numbers are reported separately. The unit tests assert on the held-out part.
The default run takes a deterministic sample per source and category (the requests with
the smallest CRC32), the same for Dijk and CRS.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from bench._harness import (  # noqa: E402
    Service,
    ServiceGroup,
    ensure_tool,
    free_port,
    machine_info,
    sigterm_as_interrupt,
    tool_version,
    utc_timestamp,
)
from bench.detection_benign import hard_benign  # noqa: E402
from dijk.detect.engine import Detector, rescore  # noqa: E402
from dijk.detect.findings import Finding, RequestParts  # noqa: E402

PARANOIA_LEVELS = (1, 2, 3, 4)
THRESHOLD = 5
HELD_OUT_MODULUS = 5


def corpora_dir() -> Path:
    override = os.environ.get("DIJK_CORPORA")
    if override:
        return Path(override)
    return (REPO / ".." / "shared" / "corpora").resolve()


def held_out(text: str) -> bool:
    """Deterministic one-in-five split on the payload text."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % HELD_OUT_MODULUS == 0


@dataclass(frozen=True, slots=True)
class Sample:
    source: str
    category: str
    expect: str  # "attack" | "benign"
    placement: str
    payload: str
    request: RequestParts
    rule_id: int = 0  # CRS regression tests: the rule the test was written for

    @property
    def held_out(self) -> bool:
        return held_out(self.payload)


# -- placing a bare payload into realistic API requests ---------------------------------


def _json_nested(payload: str, depth: int) -> bytes:
    value: object = {"comment": payload, "id": 17}
    for level in range(depth - 1):
        value = {"data": value, "page": level} if level % 2 == 0 else {"items": [value]}
    return json.dumps({"request": value, "version": 2}).encode()


def place(payload: str, placement: str) -> RequestParts:
    """Put ``payload`` where an API client would: query, JSON at depth, header, GraphQL..."""
    if placement == "query":
        return RequestParts.from_target("GET", "/api/v1/search?" + urlencode({"q": payload}))
    if placement == "path":
        return RequestParts.from_target("GET", "/api/v1/accounts/" + quote(payload, safe=""))
    if placement.startswith("json"):
        depth = int(placement[4:] or "1")
        body = _json_nested(payload, depth) if depth > 1 else json.dumps({"name": payload}).encode()
        return RequestParts.from_target(
            "POST", "/api/v1/accounts", [("Content-Type", "application/json")], body
        )
    if placement == "header":
        return RequestParts.from_target("GET", "/api/v1/status", [("X-Client-Note", payload)])
    if placement == "user-agent":
        return RequestParts.from_target("GET", "/api/v1/status", [("User-Agent", payload)])
    if placement == "form":
        body = urlencode({"comment": payload}).encode()
        return RequestParts.from_target(
            "POST",
            "/api/v1/accounts",
            [("Content-Type", "application/x-www-form-urlencoded")],
            body,
        )
    if placement == "multipart":
        boundary = "dijkbench0123456789"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="comment"\r\n\r\n'
            f"{payload}\r\n--{boundary}--\r\n"
        ).encode("utf-8", "surrogatepass")
        return RequestParts.from_target(
            "POST",
            "/api/v1/upload",
            [("Content-Type", f"multipart/form-data; boundary={boundary}")],
            body,
        )
    if placement == "graphql":
        body = json.dumps(
            {
                "query": "query Search($q: String!) { search(q: $q) { id name } }",
                "variables": {"q": payload},
            }
        ).encode()
        return RequestParts.from_target(
            "POST", "/graphql", [("Content-Type", "application/json")], body
        )
    if placement == "xml":
        body = payload.encode("utf-8", "surrogatepass")
        return RequestParts.from_target(
            "POST", "/api/v1/import", [("Content-Type", "application/xml")], body
        )
    if placement == "soap":
        escaped = payload.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        body = (
            '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">'
            f"<soap:Body><Search><q>{escaped}</q></Search></soap:Body></soap:Envelope>"
        ).encode()
        return RequestParts.from_target(
            "POST", "/soap", [("Content-Type", "application/soap+xml")], body
        )
    raise ValueError(placement)


BARE_PLACEMENTS = ("query", "json1", "json3", "json6", "header", "graphql")


# -- corpora ------------------------------------------------------------------------------

CRS_CATEGORY = {
    "sqli": "sqli",
    "xss": "xss",
    "cmdi": "cmdi",
    "path_traversal": "path_traversal",
    "rfi": "ssrf",
    "generic": "generic",
    "java": "java",
    "php": "php",
    "protocol": "protocol",
    "protocol_attack": "protocol",
    "multipart": "protocol",
    "method": "protocol",
    "scanner": "scanner",
    "session_fixation": "session_fixation",
}


def load_crs(root: Path) -> Iterator[Sample]:
    path = root / "crs-tests" / "crs_tests.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        category = CRS_CATEGORY.get(record["category"])
        if category is None:  # response-side and blocking-evaluation tests
            continue
        headers = [(str(name), str(value)) for name, value in (record.get("headers") or {}).items()]
        body = record.get("body")
        raw_body = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else b""
        if raw_body and not any(name.lower() == "content-type" for name, _ in headers):
            # go-ftw and ModSecurity treat a body without a type as a form.
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        request = RequestParts.from_target(record["method"], record["uri"], headers, raw_body)
        payload = f"{record['method']} {record['uri']} {body or ''} {headers}"
        yield Sample(
            "crs", category, record["expect"], "crs-test", payload, request, int(record["rule_id"])
        )


GOTESTWAF_CATEGORY = {
    "sql-injection": "sqli",
    "xss-scripting": "xss",
    "ldap-injection": "ldap",
    "nosql-injection": "nosql",
    "path-traversal": "path_traversal",
    "rce-urlparam": "cmdi",
    "rce-urlpath": "cmdi",
    "rce": "cmdi",
    "shell-injection": "cmdi",
    "ss-include": "cmdi",
    "sst-injection": "ssti",
    "xml-injection": "xxe",
    "crlf": "crlf",
    "mail-injection": "crlf",
    "graphql": "graphql_abuse",
    "graphql-post": "graphql_abuse",
    "grpc": "mixed",
    "non-crud": "mixed",
    "rest": "mixed",
    "soap": "mixed",
    "community-lfi": "path_traversal",
    "community-lfi-multipart": "path_traversal",
    "community-rce": "cmdi",
    "community-rce-rawrequests": "cmdi",
    "community-sqli": "sqli",
    "community-xss": "xss",
    "community-xxe": "xxe",
    "community-user-agent": "scanner",
}

GOTESTWAF_PLACEMENT = {
    "URLParam": "query",
    "URLPath": "path",
    "JSONRequest": "json1",
    "Header": "header",
    "UserAgent": "user-agent",
    "HTMLForm": "form",
    "HTMLMultipartForm": "multipart",
    "XMLBody": "xml",
    "SOAPBody": "soap",
    "gRPC": "json1",
}


def _encode(payload: str, encoder: str) -> str:
    if encoder == "Base64Flat":
        return base64.b64encode(payload.encode("utf-8", "surrogatepass")).decode()
    if encoder == "URL":
        return quote(payload, safe="")
    return payload


CRS_RULES = Path("/usr/share/modsecurity-crs/rules")


def crs_rule_levels(rules: Path = CRS_RULES) -> dict[int, int]:
    """Rule id -> paranoia level, read from the installed CRS rule files (Debian's 3.3.4).

    The regression tests come from a newer CRS; a test whose rule is not in the installed
    release is reported as "newer rule". Our own trusted files, so plain ``re`` is fine.
    """
    levels: dict[int, int] = {}
    if not rules.is_dir():
        return levels
    for path in sorted(rules.glob("REQUEST-9*.conf")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for chunk in re.split(r"\n\s*Sec(?:Rule|Action)\b", text):
            rule_id = re.search(r"\bid:(\d+)", chunk)
            level = re.search(r"paranoia-level/(\d)", chunk)
            if rule_id and level:
                levels.setdefault(int(rule_id.group(1)), int(level.group(1)))
    return levels


def crs_level_label(levels: dict[int, int], rule_id: int) -> str:
    level = levels.get(rule_id)
    if level is None:
        return "newer rule"
    return "PL1 rule" if level == 1 else "PL2+ rule"


def load_gotestwaf(root: Path) -> Iterator[Sample]:
    base = root / "gotestwaf" / "testcases"
    for path in sorted(base.glob("*/*.yml")):
        # Go's YAML accepts "\'" in double-quoted strings; PyYAML does not.
        spec = yaml.safe_load(path.read_text(encoding="utf-8").replace("\\'", "'"))
        name = path.stem
        benign = path.parent.name == "false-pos"
        if name.startswith("community-") and name[10:11].isdigit():
            category = "cmdi" if name.endswith("rce") else name.rsplit("-", 1)[1]
        else:
            category = "benign" if benign else GOTESTWAF_CATEGORY.get(name, "mixed")
        placeholders = spec.get("placeholder") or []
        encoders = spec.get("encoder") or ["Plain"]
        for payload in spec.get("payload") or []:
            payload = str(payload)
            for placeholder in placeholders:
                yield from _gotestwaf_requests(
                    name, category, benign, payload, placeholder, encoders
                )


def _gotestwaf_requests(
    name: str, category: str, benign: bool, payload: str, placeholder: object, encoders: list[str]
) -> Iterator[Sample]:
    expect = "benign" if benign else "attack"
    source = "gotestwaf-falsepos" if benign else "gotestwaf"
    if isinstance(placeholder, dict):
        kind, settings = next(iter(placeholder.items()))
        settings = settings or {}
        if kind == "GraphQL":
            if settings.get("method") == "GET":
                query = json.loads(payload)["query"]
                request = RequestParts.from_target("GET", "/graphql?" + urlencode({"query": query}))
            else:
                request = RequestParts.from_target(
                    "POST", "/graphql", [("Content-Type", "application/json")], payload.encode()
                )
            yield Sample(source, category, expect, "graphql", payload, request)
        elif kind == "RawRequest":
            body = str(settings.get("body", "")).replace("{{payload}}", payload)
            headers = [(str(k), str(v)) for k, v in (settings.get("headers") or {}).items()]
            headers = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
            if "\n" in body and "multipart" in str(headers).lower():
                body = body.replace("\r\n", "\n").replace("\n", "\r\n")
            request = RequestParts.from_target(
                str(settings.get("method", "POST")),
                str(settings.get("path", "/")),
                headers,
                body.encode("utf-8", "surrogatepass"),
            )
            yield Sample(source, category, expect, "raw", payload, request)
        return
    placement = GOTESTWAF_PLACEMENT.get(str(placeholder))
    if placement is None:
        return
    for encoder in encoders:
        encoded = _encode(payload, encoder)
        if placement == "path":
            request = RequestParts.from_target(
                "GET", "/api/v1/accounts/" + quote(encoded, safe="%")
            )
        elif placement == "query" and encoder == "URL":
            request = RequestParts.from_target("GET", "/api/v1/search?q=" + encoded)
        elif placement in ("xml",):
            request = place(payload, "xml")
        else:
            request = place(encoded, placement)
        yield Sample(source, category, expect, f"{placement}/{encoder.lower()}", payload, request)


PAYLOADS_CATEGORY = {
    "Command-Injection": "cmdi",
    "Directory-Traversal": "path_traversal",
    "LDAP-Injection": "ldap",
    "NoSQL-Injection": "nosql",
    "SQL-Injection": "sqli",
    "Server-Side-Template-Injection": "ssti",
    "XSS-Injection": "xss",
    "XXE-Injection": "xxe",
}


def load_payloads(root: Path, quick: bool) -> Iterator[Sample]:
    base = root / "payloads" / "PayloadsAllTheThings"
    for folder, category in PAYLOADS_CATEGORY.items():
        seen: set[str] = set()
        for path in sorted((base / folder).iterdir()):
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            if quick and len(lines) > 2000:
                lines = lines[::7]
            for line in lines:
                payload = line.strip("\r\n")
                if not payload.strip() or payload.startswith("#") or payload in seen:
                    continue
                seen.add(payload)
                payload = payload.replace("{FILE}", "app/config.yml")
                placements = ("xml", "json1") if category == "xxe" else BARE_PLACEMENTS
                for placement in placements:
                    yield Sample(
                        "payloadsallthethings",
                        category,
                        "attack",
                        placement,
                        payload,
                        place(payload, placement),
                    )


def load_libinjection(root: Path) -> Iterator[Sample]:
    base = root / "libinjection" / "data"
    for path in sorted(base.glob("*.txt")):
        name = path.stem
        if name.startswith("sqli-"):
            category, expect = "sqli", "attack"
        elif name.startswith("xss-"):
            category, expect = "xss", "attack"
        elif name == "false_positives":
            category, expect = "benign", "benign"
        else:
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            # The files hold URL-encoded user input, as it would appear in a query string.
            request = RequestParts.from_target(
                "GET", "/api/v1/search?q=" + line.replace("&", "%26").replace("#", "%23")
            )
            source = "libinjection-falsepos" if expect == "benign" else "libinjection"
            yield Sample(source, category, expect, "query", line, request)


def load_openapi_text(root: Path) -> Iterator[Sample]:
    """Benign API text: example values and descriptions from 150 real OpenAPI documents."""
    base = root / "openapi" / "specs"
    examples: list[str] = []
    descriptions: list[str] = []
    for path in sorted(base.rglob("*")):
        if path.suffix not in (".json", ".yaml", ".yml") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError):
            continue
        _collect_text(document, examples, descriptions, None)
    rng = random.Random(7)
    for kind, values in (("openapi-examples", examples), ("openapi-descriptions", descriptions)):
        unique = sorted(set(values))
        rng.shuffle(unique)
        for value in unique[:4000]:
            placement = "json1" if len(value) > 200 else rng.choice(("query", "json1", "json3"))
            yield Sample(kind, "benign", "benign", placement, value, place(value, placement))


def _collect_text(
    node: object, examples: list[str], descriptions: list[str], key: str | None
) -> None:
    stack: list[tuple[object, str | None, bool]] = [(node, key, False)]
    while stack:
        current, current_key, in_example = stack.pop()
        if isinstance(current, dict):
            for child_key, child in current.items():
                child_key = str(child_key)
                stack.append(
                    (
                        child,
                        child_key,
                        in_example
                        or child_key in ("example", "examples", "x-example", "default", "enum"),
                    )
                )
        elif isinstance(current, list):
            for child in current:
                stack.append((child, current_key, in_example))
        elif isinstance(current, str) and current.strip():
            if in_example and len(current) <= 2000:
                examples.append(current)
            elif current_key in ("description", "summary", "title") and len(current) <= 2000:
                descriptions.append(current)


def load_hard_benign(count: int) -> Iterator[Sample]:
    """The hard benign corpus (:mod:`bench.detection_benign`): documentation, manual pages,
    READMEs and Dutch text in ticket, wiki, comment, snippet and CMS fields; each request
    twice, once as undeclared free text and once with its fields' content kinds declared
    (as the route's ``waf.content`` would)."""
    for request in hard_benign(count):
        body = request.text.encode()
        parts = RequestParts.from_target(
            "POST", request.path, [("Content-Type", "application/json")], body
        )
        kinds = {("json", path): kind for path, kind in request.kinds.items()}
        for source, sent in (
            (HARD_BENIGN, parts),
            (HARD_BENIGN_DECLARED, replace(parts, content_kinds=kinds)),
        ):
            yield Sample(source, request.source, "benign", request.shape, request.text, sent)


# -- running ------------------------------------------------------------------------------


# Benign sources that are plain API traffic (CRS's benign regression tests are not: they
# only promise that one particular rule stays quiet).
BENIGN_API_SOURCES = (
    "gotestwaf-falsepos",
    "libinjection-falsepos",
    "openapi-examples",
    "openapi-descriptions",
)
HARD_BENIGN = "hard-benign"
HARD_BENIGN_DECLARED = "hard-benign-declared"
HARD_BENIGN_SOURCES = (HARD_BENIGN, HARD_BENIGN_DECLARED)
WEB_CATEGORIES = frozenset({"protocol", "java", "php", "scanner", "session_fixation", "generic"})


def group_of(sample: Sample) -> str:
    """``benign``; ``web`` for CRS's classic web-server families; ``api`` for the rest."""
    if sample.expect == "benign":
        return "benign"
    return "web" if sample.category in WEB_CATEGORIES else "api"


def select(
    samples: list[Sample], per_stratum: int | None, benign_per_stratum: int | None = None
) -> list[Sample]:
    """A deterministic sample: per (source, category, expectation) the ``per_stratum``
    requests (``benign_per_stratum`` for benign ones) with the smallest CRC32 of payload
    and placement (all when None)."""
    if per_stratum is None:
        return samples
    benign_limit = benign_per_stratum if benign_per_stratum is not None else per_stratum
    strata: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    for index, sample in enumerate(samples):
        key = zlib.crc32(f"{sample.placement}\x00{sample.payload}".encode("utf-8", "replace"))
        strata.setdefault((sample.source, sample.category, sample.expect), []).append((key, index))
    chosen: list[int] = []
    for (_, _, expect), entries in strata.items():
        entries.sort()
        limit = benign_limit if expect == "benign" else per_stratum
        chosen.extend(index for _, index in entries[:limit])
    return [samples[index] for index in sorted(chosen)]


def verdicts(detector: Detector, sample: Sample) -> tuple[dict[int, bool], tuple[Finding, ...]]:
    verdict = detector.inspect(sample.request)
    blocked = {
        level: rescore(verdict.findings, level, THRESHOLD).blocked for level in PARANOIA_LEVELS
    }
    return blocked, verdict.findings


# -- the peer: ModSecurity v3 + OWASP CRS behind nginx -------------------------------------

MODSECURITY_MODULE = Path("/usr/lib/nginx/modules/ngx_http_modsecurity_module.so")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
CRS_SETUP = Path("/etc/modsecurity/crs/crs-setup.conf")
UNICODE_MAP = Path("/etc/nginx/unicode.mapping")
TEMPLATES = REPO / "bench" / "modsecurity"
PEER_LEVELS = (1, 2)
PEER_PACKAGES = {
    MODSECURITY_MODULE: "libnginx-mod-http-modsecurity",
    CRS_RULES: "modsecurity-crs",
}
REPLAY_CONCURRENCY = 8
REPLAY_TIMEOUT_S = 30.0
CLIENT_HEADERS = (
    ("accept", "application/json"),
    ("user-agent", "PolderBankApp/2.3 (Android 14; dijk detection benchmark)"),
)
_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ensure_peer() -> str:
    """nginx's path; installs nginx, the ModSecurity module and CRS with apt-get if missing."""
    nginx = ensure_tool("nginx", "nginx")
    missing = [package for path, package in PEER_PACKAGES.items() if not path.exists()]
    if missing:
        print(f"installing the peer: {' '.join(missing)}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
    for path in PEER_PACKAGES:
        if not path.exists():
            raise SystemExit(f"the peer is not installed: {path} is missing")
    return nginx


def peer_versions() -> dict[str, str]:
    """Package versions of the peer, from dpkg (what the table's CRS columns measured)."""
    versions: dict[str, str] = {}
    for package in ("libmodsecurity3", "modsecurity-crs", "libnginx-mod-http-modsecurity"):
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        versions[package] = done.stdout.strip() if done.returncode == 0 else "unknown"
    return versions


def peer_config(state: Path, level: int) -> Path:
    """Write ModSecurity's engine settings and CRS at ``level``; the rules file to load."""
    engine = (TEMPLATES / "modsecurity.conf").read_text(encoding="utf-8")
    engine = engine.replace("@TMP@", str(state))
    if UNICODE_MAP.exists():
        engine = engine.replace("@UNICODE_MAP@", str(UNICODE_MAP))
    else:
        engine = "\n".join(line for line in engine.splitlines() if "@UNICODE_MAP@" not in line)
    paranoia = (TEMPLATES / "crs-paranoia.conf").read_text(encoding="utf-8")
    (state / "modsecurity.conf").write_text(engine, encoding="utf-8")
    (state / "crs-paranoia.conf").write_text(paranoia.replace("@PL@", str(level)))
    rules = state / "rules.conf"
    rules.write_text(
        f"Include {state / 'modsecurity.conf'}\n"
        f"Include {CRS_SETUP}\n"
        f"Include {state / 'crs-paranoia.conf'}\n"
        f"Include {CRS_RULES}/*.conf\n",
        encoding="utf-8",
    )
    return rules


def nginx_config(state: Path, ports: dict[str, int], rules: Path) -> str:
    """nginx with ModSecurity on ``ports['crs']``, without on ``ports['plain']``; both
    proxy to a fixed 200 answer on ``ports['backend']``."""
    return f"""load_module {MODSECURITY_MODULE};
daemon off;
master_process on;
worker_processes 2;
pid {state}/nginx.pid;
error_log {state}/error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {state}/client_body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    client_max_body_size 16m;
    client_body_buffer_size 2m;
    large_client_header_buffers 8 64k;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{ports["backend"]};
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{ports["crs"]};
        modsecurity on;
        modsecurity_rules_file {rules};
        location / {{ proxy_pass http://127.0.0.1:{ports["backend"]}; }}
    }}
    server {{
        listen 127.0.0.1:{ports["plain"]};
        location / {{ proxy_pass http://127.0.0.1:{ports["backend"]}; }}
    }}
}}
"""


def _clean_header(value: str) -> bytes:
    """A header value as bytes on the wire: CR, LF and NUL cannot travel in a header."""
    for char in "\r\n\x00":
        value = value.replace(char, " ")
    return value.encode("utf-8", "replace")


def wire(request: RequestParts, keep_alive: bool = False) -> bytes:
    """The HTTP/1.1 request (as bytes) that carries exactly what Dijk inspected."""
    path = quote(request.path, safe="/%:@!$&'()*+,;=-._~") or "/"
    if request.raw_query:
        target = path + "?" + quote(request.raw_query, safe="/%:@!$&'()*+,;=-._~?")
    elif request.query:
        target = path + "?" + urlencode(request.query, quote_via=quote)
    else:
        target = path
    present = {name.lower() for name, _ in request.headers}
    lines = [f"{request.method} {target} HTTP/1.1".encode("latin-1", "replace"), b"host: localhost"]
    for name, value in CLIENT_HEADERS:
        if name not in present:
            lines.append(f"{name}: {value}".encode())
    for name, value in request.headers:
        if name.lower() in _HOP_HEADERS or not name or not _TOKEN.issuperset(name):
            continue
        lines.append(name.encode("latin-1") + b": " + _clean_header(value))
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(b"content-length: %d" % len(request.body))
    lines.append(b"connection: keep-alive" if keep_alive else b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + request.body


async def _send(port: int, data: bytes) -> int:
    """Status code of one request on a fresh connection (0 when none came back)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), REPLAY_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        return 0
    try:
        try:
            writer.write(data)
            await writer.drain()
        except OSError:
            pass  # an early answer (phase 1 denial) may close before the body is sent
        line = await asyncio.wait_for(reader.readline(), REPLAY_TIMEOUT_S)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return 0
    finally:
        writer.close()
    parts = line.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return 0


async def replay(port: int, payloads: list[bytes], label: str) -> list[int]:
    """Send every request (``REPLAY_CONCURRENCY`` at a time); their status codes."""
    gate = asyncio.Semaphore(REPLAY_CONCURRENCY)
    done = 0
    started = time.monotonic()

    async def one(data: bytes) -> int:
        nonlocal done
        async with gate:
            status = await _send(port, data)
        done += 1
        if done % 2000 == 0:
            rate = done / (time.monotonic() - started)
            print(f"  {label}: {done}/{len(payloads)} ({rate:.0f}/s)", file=sys.stderr, flush=True)
        return status

    return list(await asyncio.gather(*(one(data) for data in payloads)))


def round_trip_us(port: int, payloads: list[bytes], rounds: int) -> float:
    """Median microseconds per request over one keep-alive connection."""
    times: list[float] = []
    with socket.create_connection(("127.0.0.1", port), timeout=REPLAY_TIMEOUT_S) as sock:
        stream = sock.makefile("rb")
        for index in range(rounds):
            started = time.perf_counter_ns()
            sock.sendall(payloads[index % len(payloads)])
            length = 0
            status_line = stream.readline()
            while True:
                line = stream.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            stream.read(length)
            times.append((time.perf_counter_ns() - started) / 1000)
            if not status_line.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"latency request answered {status_line!r}")
    return statistics.median(times)


@dataclass(slots=True)
class PeerResult:
    blocked: dict[int, list[bool]]
    statuses: dict[int, dict[str, int]]
    versions: dict[str, str]
    seconds: float
    latency: dict[str, float] = field(default_factory=dict)


def run_peer(samples: list[Sample], latency_payloads: list[bytes]) -> PeerResult:
    """The same requests through nginx + ModSecurity v3 + CRS at each level of PEER_LEVELS.

    Returns, per level, whether each sample was blocked (answered 403), the status codes
    seen, and the round-trip cost CRS adds to a ~1 KB JSON request at PL1 (median with
    ModSecurity minus median without, same nginx, same connection handling).
    """
    nginx = ensure_peer()
    started = time.monotonic()
    payloads = [wire(sample.request) for sample in samples]
    blocked: dict[int, list[bool]] = {}
    statuses: dict[int, dict[str, int]] = {}
    latency: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="dijk-bench-crs-") as temp, ServiceGroup() as group:
        for level in PEER_LEVELS:
            state = Path(temp) / f"pl{level}"
            state.mkdir()
            rules = peer_config(state, level)
            ports = {"backend": free_port(), "crs": free_port(), "plain": free_port()}
            conf = state / "nginx.conf"
            conf.write_text(nginx_config(state, ports, rules), encoding="utf-8")
            argv = [nginx, "-p", str(state), "-e", str(state / "error.log"), "-c", str(conf)]
            check = subprocess.run([*argv, "-t"], capture_output=True, text=True, check=False)
            if check.returncode != 0:
                raise SystemExit(f"nginx + ModSecurity configuration failed:\n{check.stderr}")
            service = group.start(Service(f"crs-pl{level}", argv, state / "nginx.log"))
            _wait_for_port(service, ports["plain"])
            print(f"CRS PL{level}: replaying {len(payloads)} requests", file=sys.stderr)
            codes = asyncio.run(replay(ports["crs"], payloads, f"CRS PL{level}"))
            blocked[level] = [code == 403 for code in codes]
            counts: dict[str, int] = {}
            for code in codes:
                counts[str(code)] = counts.get(str(code), 0) + 1
            statuses[level] = counts
            if level == 1 and latency_payloads:
                keep = [
                    wire(
                        RequestParts.from_target(
                            "POST",
                            "/api/v1/accounts",
                            [("Content-Type", "application/json")],
                            body,
                        ),
                        keep_alive=True,
                    )
                    for body in latency_payloads
                ]
                with_crs = round_trip_us(ports["crs"], keep, 300)
                without = round_trip_us(ports["plain"], keep, 300)
                latency = {
                    "nginx_modsecurity_crs_pl1_median_us": round(with_crs, 1),
                    "nginx_alone_median_us": round(without, 1),
                    "crs_pl1_added_median_us": round(with_crs - without, 1),
                }
            group.stop(service)
    return PeerResult(blocked, statuses, peer_versions(), time.monotonic() - started, latency)


def _wait_for_port(service: Service, port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.exit_code is not None:
            raise SystemExit(f"nginx exited: {' '.join(service.log_tail(5))}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nginx + ModSecurity not listening after {timeout_s:g} s")


# -- tallies and tables -----------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    total: int = 0
    held_out_total: int = 0
    blocked: dict[int, int] = field(default_factory=lambda: dict.fromkeys(PARANOIA_LEVELS, 0))
    held_out_blocked: dict[int, int] = field(
        default_factory=lambda: dict.fromkeys(PARANOIA_LEVELS, 0)
    )
    peer_total: int = 0
    peer_blocked: dict[int, int] = field(default_factory=lambda: dict.fromkeys(PEER_LEVELS, 0))

    def add(self, sample: Sample, blocked: dict[int, bool], peer: dict[int, bool] | None) -> None:
        self.total += 1
        if sample.held_out:
            self.held_out_total += 1
        for level, value in blocked.items():
            if value:
                self.blocked[level] += 1
                if sample.held_out:
                    self.held_out_blocked[level] += 1
        if peer is not None:
            self.peer_total += 1
            for level, value in peer.items():
                self.peer_blocked[level] += int(value)

    def rate(self, level: int, held: bool = False) -> float | None:
        total = self.held_out_total if held else self.total
        counts = self.held_out_blocked if held else self.blocked
        return counts[level] / total if total else None

    def peer_rate(self, level: int) -> float | None:
        return self.peer_blocked[level] / self.peer_total if self.peer_total else None

    def as_json(self) -> dict[str, object]:
        return {
            "n": self.total,
            "n_held_out": self.held_out_total,
            "rate": {str(level): self.rate(level) for level in PARANOIA_LEVELS},
            "rate_held_out": {str(level): self.rate(level, True) for level in PARANOIA_LEVELS},
            **{f"crs_pl{level}": self.peer_rate(level) for level in PEER_LEVELS},
        }


def trivial(payload: str) -> bool:
    """Fuzzing fragments such as ``'``, ``||``, ``*`` or ``%28`` that are not attacks on
    their own: under 4 characters, or no letter or digit, once URL-decoded. The test does
    not look at the detector; the tables report rates with and without fragments."""
    stripped = unquote(payload).strip()
    return len(stripped) < 4 or not any(char.isalnum() for char in stripped)


FIRST_NAMES = ("Anna", "Bram", "Chloé", "Daan", "Siobhan")
LAST_NAMES = ("de Vries", "Jansen", "O'Neill", "Bakker")


def latency_bodies(count: int) -> list[bytes]:
    """Benign ~1 KB JSON bodies shaped like API traffic (nested objects, text, numbers)."""
    rng = random.Random(42)
    words = [
        "account",
        "transfer",
        "payment",
        "invoice",
        "customer",
        "address",
        "street",
        "city",
        "amount",
        "note",
        "monthly",
        "rent",
        "groceries",
        "salary",
        "savings",
        "holiday",
        "gift",
        "refund",
        "order",
        "delivery",
        "Amsterdam",
        "Rotterdam",
        "Utrecht",
        "de",
        "van",
        "het",
        "een",
        "is",
        "voor",
        "met",
    ]
    bodies: list[bytes] = []
    while len(bodies) < count:
        body: dict[str, object] = {
            "id": rng.randrange(10**9),
            "customer": {
                "name": rng.choice(FIRST_NAMES) + " " + rng.choice(LAST_NAMES),
                "email": f"user{rng.randrange(10**6)}@example.nl",
                "phone": f"+31 6 {rng.randrange(10**7, 10**8)}",
                "address": {
                    "street": f"{rng.choice(words).title()}straat {rng.randrange(1, 300)}",
                    "city": rng.choice(["Amsterdam", "Delft", "Utrecht"]),
                    "zip": "1234 AB",
                },
            },
            "items": [
                {
                    "sku": f"SKU-{rng.randrange(10**5)}",
                    "qty": rng.randrange(1, 9),
                    "price": round(rng.random() * 100, 2),
                    "label": " ".join(rng.choices(words, k=3)),
                }
                for _ in range(rng.randrange(3, 6))
            ],
            "note": " ".join(rng.choices(words, k=rng.randrange(8, 20))),
            "created": "2025-11-25T12:00:00Z",
            "tags": rng.sample(words, 4),
            "active": True,
        }
        raw = json.dumps(body, ensure_ascii=False).encode()
        while len(raw) < 1000:
            body["note"] = str(body["note"]) + " " + rng.choice(words)
            raw = json.dumps(body, ensure_ascii=False).encode()
        bodies.append(raw[:1100] if len(raw) <= 1100 else raw)
    return bodies


def measure_latency(detector: Detector, runs: int = 3000) -> dict[str, float]:
    bodies = latency_bodies(200)
    parsed = [json.loads(body) for body in bodies]
    raw_times: list[float] = []
    parsed_times: list[float] = []
    for index in range(runs):
        body = bodies[index % len(bodies)]
        request = RequestParts(
            method="POST", path="/api/v1/accounts", content_type="application/json", body=body
        )
        start = time.perf_counter_ns()
        detector.inspect(request)
        raw_times.append((time.perf_counter_ns() - start) / 1000)
        request = RequestParts(
            method="POST",
            path="/api/v1/accounts",
            content_type="application/json",
            body=body,
            json_body=parsed[index % len(parsed)],
            has_json_body=True,
        )
        start = time.perf_counter_ns()
        detector.inspect(request)
        parsed_times.append((time.perf_counter_ns() - start) / 1000)
    mean_size = statistics.mean(len(body) for body in bodies)
    # Machine-speed reference measured in the same run: json.loads of the same bodies.
    # On a loaded or slow machine both numbers grow together; the ratio travels better.
    loads_times: list[float] = []
    for index in range(runs):
        body = bodies[index % len(bodies)]
        start = time.perf_counter_ns()
        json.loads(body)
        loads_times.append((time.perf_counter_ns() - start) / 1000)
    reference = statistics.median(loads_times)
    return {
        "reference_json_loads_median_us": round(reference, 2),
        "inspect_to_json_loads_ratio": round(statistics.median(raw_times) / reference, 1),
        "body_bytes_mean": round(mean_size, 1),
        "median_us_raw_body": round(statistics.median(raw_times), 2),
        "p99_us_raw_body": round(sorted(raw_times)[int(len(raw_times) * 0.99)], 2),
        "median_us_preparsed": round(statistics.median(parsed_times), 2),
        "median_us_per_kb_raw": round(statistics.median(raw_times) * 1024 / mean_size, 2),
    }


def fmt(rate: float | None) -> str:
    return "   n/a" if rate is None else f"{rate * 100:6.2f}"


SIDE_BY_SIDE_HEADER = ("", "n", "Dijk PL1", "Dijk PL2", "CRS PL1", "CRS PL2")


def side_by_side(tallies: dict[tuple[str, ...], Tally]) -> list[tuple[str, ...]]:
    """Rows of the summary table: attacks (TPR) per category, benign (FPR) per source."""
    rows: list[tuple[str, ...]] = []

    def row(label: str, key: tuple[str, ...]) -> None:
        entry = tallies.get(key)
        if entry is None or not entry.total:
            return
        rows.append(
            (
                label,
                str(entry.total),
                fmt(entry.rate(1)).strip(),
                fmt(entry.rate(2)).strip(),
                fmt(entry.peer_rate(1)).strip(),
                fmt(entry.peer_rate(2)).strip(),
            )
        )

    rows.append(("API attacks blocked (TPR %)", "", "", "", "", ""))
    categories = sorted(key[2] for key in tallies if key[:2] == ("api", "by-category"))
    for category in categories:
        row(f"  {category}", ("api", "by-category", category))
    row("  all API attacks", ("api", "all"))
    row("  excluding fragments like * ( %28", ("api", "without-fragments"))
    for label in ("PL1 rule", "PL2+ rule", "newer rule"):
        row(f"    CRS tests of a {label}", ("api", "crs-by-rule-level", label))
    rows.append(("Web-server attacks (CRS families)", "", "", "", "", ""))
    row("  protocol, php, java, generic...", ("web", "all"))
    rows.append(("Benign API requests blocked (FPR %)", "", "", "", "", ""))
    for source in BENIGN_API_SOURCES:
        row(f"  {source}", ("benign", source))
    row("  all benign API requests", ("benign", "api-traffic"))
    rows.append(("Hard benign: docs, man pages, READMEs, Dutch (FPR %)", "", "", "", "", ""))
    row("  undeclared free text", ("benign", HARD_BENIGN))
    row("  fields declared prose/markdown/code/html", ("benign", HARD_BENIGN_DECLARED))
    rows.append(("CRS 'must not match' tests blocked (%)", "", "", "", "", ""))
    row("  crs (another rule may rightly fire)", ("benign", "crs"))
    return rows


def format_rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(widths[index]) for index, cell in enumerate(row) if index]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def markdown_rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        label = row[0].strip()
        cells = [f"**{label}**" if not row[1] else label, *row[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sample",
        type=int,
        default=250,
        help="requests per source and category (default 250; the same ones for every engine)",
    )
    parser.add_argument(
        "--benign-sample",
        type=int,
        default=1000,
        help="benign requests per source and category (default 1000)",
    )
    parser.add_argument(
        "--hard-benign",
        type=int,
        default=2000,
        help="requests of the hard benign corpus built from this machine's text (default 2000)",
    )
    parser.add_argument(
        "--only-hard-benign",
        action="store_true",
        help="run the hard benign corpus alone (no public corpora needed)",
    )
    parser.add_argument("--full", action="store_true", help="every request of every corpus")
    parser.add_argument("--no-peer", action="store_true", help="Dijk only: skip ModSecurity+CRS")
    parser.add_argument("--misses", type=Path, help="write missed attacks and false alarms here")
    parser.add_argument(
        "--output", type=Path, default=REPO / "bench" / "results" / "detection-latest.json"
    )
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = parser.parse_args(argv)
    root = corpora_dir()
    if not root.is_dir() and not args.only_hard_benign:
        print(f"corpora not found at {root} (set DIJK_CORPORA)", file=sys.stderr)
        return 2
    with sigterm_as_interrupt():
        return run(args, root)


def run(args: argparse.Namespace, root: Path) -> int:
    started = time.perf_counter()
    moment, _ = utc_timestamp()
    info = machine_info({"nginx": ["nginx", "-v"]}, ["hyperscan", "libinjection-python"])
    build_start = time.perf_counter()
    detector = Detector(paranoia=4, threshold=THRESHOLD)
    build_seconds = time.perf_counter() - build_start
    loaders: list[Callable[[], Iterator[Sample]]] = [
        lambda: load_crs(root),
        lambda: load_gotestwaf(root),
        lambda: load_payloads(root, quick=False),
        lambda: load_libinjection(root),
        lambda: load_openapi_text(root),
    ]
    if args.only_hard_benign:
        loaders = []
    every = [sample for loader in loaders for sample in loader()]
    samples = select(every, None if args.full else args.sample, args.benign_sample)
    # The hard benign corpus is sized by its own option, never sampled per category.
    hard = list(load_hard_benign(args.hard_benign)) if args.hard_benign > 0 else []
    every += hard
    samples += hard
    scope = (
        "all"
        if args.full
        else f"at most {args.sample} attacks, {args.benign_sample} benign per source and category"
    )
    print(f"{len(samples)} of {len(every)} requests ({scope})", file=sys.stderr)
    dijk_start = time.perf_counter()
    results: list[tuple[dict[int, bool], tuple[Finding, ...]] | None] = []
    errors = 0
    for sample in samples:
        try:
            results.append(verdicts(detector, sample))
        except Exception as error:  # a crash is a bug: count it and keep going
            errors += 1
            results.append(None)
            print(f"ERROR {sample.source} {sample.payload[:60]!r}: {error!r}", file=sys.stderr)
    dijk_seconds = time.perf_counter() - dijk_start
    latency = measure_latency(Detector(paranoia=1, threshold=THRESHOLD))
    peer: PeerResult | None = None
    if not args.no_peer:
        peer = run_peer(samples, latency_bodies(50))
        latency.update(peer.latency)

    tallies: dict[tuple[str, ...], Tally] = {}
    misses: list[dict[str, object]] = []
    rule_levels = crs_rule_levels()

    def tally(*key: str) -> Tally:
        return tallies.setdefault(key, Tally())

    for index, (sample, result) in enumerate(zip(samples, results, strict=True)):
        if result is None:
            continue
        blocked, findings = result
        crs = None if peer is None else {level: peer.blocked[level][index] for level in PEER_LEVELS}
        group = group_of(sample)
        for key in (
            (group, "all"),
            (group, sample.source),
            (group, sample.source, sample.category),
            (group, "by-category", sample.category),
            (group, "by-placement", sample.placement.split("/")[0]),
        ):
            tally(*key).add(sample, blocked, crs)
        if sample.source == "crs" and group == "api" and rule_levels:
            label = crs_level_label(rule_levels, sample.rule_id)
            tally(group, "crs-by-rule-level", label).add(sample, blocked, crs)
        if group == "benign" and sample.source in BENIGN_API_SOURCES:
            tally(group, "api-traffic").add(sample, blocked, crs)
        fragment = sample.source != "crs" and trivial(sample.payload)
        if group == "api" and not fragment:
            tally(group, "without-fragments").add(sample, blocked, crs)
            if sample.source == "payloadsallthethings":
                tally(group, "payloadsallthethings-nontrivial").add(sample, blocked, crs)
        wrong = (sample.expect == "attack") != blocked[1]
        if args.misses and wrong and not sample.held_out:
            misses.append(
                {
                    "source": sample.source,
                    "category": sample.category,
                    "expect": sample.expect,
                    "placement": sample.placement,
                    "payload": sample.payload[:300]
                    if sample.source not in HARD_BENIGN_SOURCES
                    else sample.payload[:2000],
                    "findings": [f"{f.rule_id}@{f.location}:{f.transform}" for f in findings],
                    "crs_pl1": None if crs is None else crs[1],
                }
            )
    elapsed = time.perf_counter() - started
    rows = side_by_side(tallies)
    versions = peer.versions if peer is not None else {}
    print_report(args, samples, tallies, rows, latency, versions, root)
    print(
        f"detector build {build_seconds:.2f} s; Dijk {dijk_seconds:.1f} s; "
        f"CRS {0 if peer is None else peer.seconds:.1f} s; total {elapsed:.1f} s; errors {errors}"
    )
    result = {
        "generated_by": "bench/detection.py",
        "time": moment,
        "machine": info,
        "sample_per_source_and_category": None if args.full else args.sample,
        "benign_sample_per_source_and_category": None if args.full else args.benign_sample,
        "threshold": THRESHOLD,
        "samples": len(samples),
        "corpus_requests": len(every),
        "errors": errors,
        "build_seconds": round(build_seconds, 2),
        "dijk_seconds": round(dijk_seconds, 1),
        "latency": latency,
        "peer": None
        if peer is None
        else {
            "name": "nginx + ModSecurity v3 + OWASP CRS (anomaly scoring, blocking)",
            "versions": versions,
            "nginx": tool_version(["nginx", "-v"]),
            "levels": list(PEER_LEVELS),
            "statuses": {str(level): peer.statuses[level] for level in PEER_LEVELS},
            "seconds": round(peer.seconds, 1),
        },
        "table": {"header": list(SIDE_BY_SIDE_HEADER), "rows": [list(row) for row in rows]},
        "tallies": {" / ".join(key): entry.as_json() for key, entry in sorted(tallies.items())},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.misses:
        args.misses.write_text(
            "\n".join(json.dumps(miss, ensure_ascii=False) for miss in misses) + "\n",
            encoding="utf-8",
        )
    return 0 if errors == 0 else 1


def print_report(
    args: argparse.Namespace,
    samples: list[Sample],
    tallies: dict[tuple[str, ...], Tally],
    rows: list[tuple[str, ...]],
    latency: dict[str, float],
    versions: dict[str, str],
    root: Path,
) -> None:
    peer_name = (
        f"ModSecurity {versions.get('libmodsecurity3', '?')} + "
        f"OWASP CRS {versions.get('modsecurity-crs', '?')}"
        if versions
        else "no peer (--no-peer)"
    )
    print(
        f"\nDijk detection benchmark: {len(samples)} requests, threshold {THRESHOLD}, "
        f"corpora {root}\nDijk beside {peer_name}, the same requests"
    )
    print("\nTPR = attacks blocked, FPR = benign requests blocked, in % (PL = paranoia level)\n")
    print(format_rows(SIDE_BY_SIDE_HEADER, rows))
    if args.markdown:
        print("\n" + markdown_rows(SIDE_BY_SIDE_HEADER, rows))
    print("\nDetail: Dijk at paranoia 1..4, held-out = 1-in-5 split never looked at while tuning")
    header = (
        f"{'group / source / category':58} {'n':>6} "
        + " ".join(f"{'PL' + str(level):>6}" for level in PARANOIA_LEVELS)
        + f" {'heldPL1':>7} {'CRS1':>6} {'CRS2':>6}"
    )
    print(header)
    print("-" * len(header))
    order = ["api", "web", "benign"]
    for key in sorted(tallies, key=lambda k: (order.index(k[0]), k[1:])):
        entry = tallies[key]
        label = " / ".join(key)
        rates = " ".join(fmt(entry.rate(level)) for level in PARANOIA_LEVELS)
        print(
            f"{label[:58]:58} {entry.total:6d} {rates} {fmt(entry.rate(1, True)):>7} "
            f"{fmt(entry.peer_rate(1))} {fmt(entry.peer_rate(2))}"
        )
    print(f"\nlatency: {json.dumps(latency)}")


if __name__ == "__main__":
    raise SystemExit(main())
