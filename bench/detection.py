"""Detection-quality benchmark: true and false positive rates on public corpora.

Runs the shared corpora through ``dijk.detect`` and prints TPR (attacks blocked) and FPR
(benign requests blocked) per source, category, placement and paranoia level, plus the
median cost of inspecting a 1 KB JSON body. Writes everything as JSON to
``bench/results/detection-latest.json``.

    .venv/bin/python bench/detection.py            # everything
    .venv/bin/python bench/detection.py --quick    # every 7th payload of the big lists

Corpora are read from ``../shared/corpora`` next to the repository (or ``DIJK_CORPORA``);
see its README for sources and licences. Nothing from them is copied into the project.

Samples are split deterministically (CRC32 of the payload) into a tuning part and a
held-out part (one in five); rules were tuned looking at the tuning part only, and the
held-out numbers are reported separately. The unit tests assert on the held-out part.

Peer comparison: ModSecurity v3 + OWASP CRS at PL1/PL2 belongs in the ``peers`` hook
(``run_peer``); until it is wired the ``crs_pl1``/``crs_pl2`` columns print ``n/a``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

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
        yield Sample("crs", category, record["expect"], "crs-test", payload, request)


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


# -- running ------------------------------------------------------------------------------


def verdicts(detector: Detector, sample: Sample) -> tuple[dict[int, bool], tuple[Finding, ...]]:
    verdict = detector.inspect(sample.request)
    blocked = {
        level: rescore(verdict.findings, level, THRESHOLD).blocked for level in PARANOIA_LEVELS
    }
    return blocked, verdict.findings


def run_peer(samples: list[Sample]) -> dict[str, dict[int, bool]] | None:
    """Hook for the side-by-side column: ModSecurity v3 + OWASP CRS at PL1 and PL2.

    Should return, per sample index (as a string), {1: blocked_at_pl1, 2: blocked_at_pl2}.
    Not wired yet: returns None and the table prints n/a.
    """
    del samples
    return None


@dataclass(slots=True)
class Tally:
    total: int = 0
    held_out_total: int = 0
    blocked: dict[int, int] | None = None
    held_out_blocked: dict[int, int] | None = None

    def add(self, sample: Sample, blocked: dict[int, bool]) -> None:
        if self.blocked is None:
            self.blocked = dict.fromkeys(PARANOIA_LEVELS, 0)
            self.held_out_blocked = dict.fromkeys(PARANOIA_LEVELS, 0)
        assert self.held_out_blocked is not None
        self.total += 1
        if sample.held_out:
            self.held_out_total += 1
        for level, value in blocked.items():
            if value:
                self.blocked[level] += 1
                if sample.held_out:
                    self.held_out_blocked[level] += 1

    def rate(self, level: int, held: bool = False) -> float | None:
        total = self.held_out_total if held else self.total
        counts = self.held_out_blocked if held else self.blocked
        if not total or counts is None:
            return None
        return counts[level] / total

    def as_json(self) -> dict[str, object]:
        return {
            "n": self.total,
            "n_held_out": self.held_out_total,
            "rate": {str(level): self.rate(level) for level in PARANOIA_LEVELS},
            "rate_held_out": {str(level): self.rate(level, True) for level in PARANOIA_LEVELS},
            "crs_pl1": None,
            "crs_pl2": None,
        }


API_CATEGORIES = (
    "sqli",
    "xss",
    "cmdi",
    "path_traversal",
    "ssrf",
    "nosql",
    "ldap",
    "ssti",
    "xxe",
    "graphql_abuse",
    "crlf",
    "mixed",
)


def trivial(payload: str) -> bool:
    """Fuzzing fragments such as ``'``, ``||`` or ``*`` that are not attacks on their own."""
    stripped = payload.strip()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="subsample the largest lists")
    parser.add_argument("--misses", type=Path, help="write missed attacks and false alarms here")
    parser.add_argument(
        "--output", type=Path, default=REPO / "bench" / "results" / "detection-latest.json"
    )
    args = parser.parse_args(argv)
    root = corpora_dir()
    if not root.is_dir():
        print(f"corpora not found at {root} (set DIJK_CORPORA)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    build_start = time.perf_counter()
    detector = Detector(paranoia=4, threshold=THRESHOLD)
    build_seconds = time.perf_counter() - build_start
    loaders: list[Callable[[], Iterator[Sample]]] = [
        lambda: load_crs(root),
        lambda: load_gotestwaf(root),
        lambda: load_payloads(root, args.quick),
        lambda: load_libinjection(root),
        lambda: load_openapi_text(root),
    ]
    samples = [sample for loader in loaders for sample in loader()]
    tallies: dict[tuple[str, ...], Tally] = {}
    misses: list[dict[str, object]] = []

    def tally(*key: str) -> Tally:
        return tallies.setdefault(key, Tally())

    errors = 0
    for sample in samples:
        try:
            blocked, findings = verdicts(detector, sample)
        except Exception as error:  # a crash is a bug: count it and keep going
            errors += 1
            print(f"ERROR {sample.source} {sample.payload[:60]!r}: {error!r}", file=sys.stderr)
            continue
        web = sample.category in (
            "protocol",
            "java",
            "php",
            "scanner",
            "session_fixation",
            "generic",
        )
        group = "benign" if sample.expect == "benign" else ("web" if web else "api")
        tally(group, "all").add(sample, blocked)
        tally(group, sample.source).add(sample, blocked)
        tally(group, sample.source, sample.category).add(sample, blocked)
        tally(group, "by-category", sample.category).add(sample, blocked)
        tally(group, "by-placement", sample.placement.split("/")[0]).add(sample, blocked)
        if (
            group == "api"
            and sample.source == "payloadsallthethings"
            and not trivial(sample.payload)
        ):
            tally(group, "payloadsallthethings-nontrivial").add(sample, blocked)
        wrong = (sample.expect == "attack") != blocked[1]
        if args.misses and wrong and not sample.held_out:
            misses.append(
                {
                    "source": sample.source,
                    "category": sample.category,
                    "expect": sample.expect,
                    "placement": sample.placement,
                    "payload": sample.payload[:300],
                    "findings": [f"{f.rule_id}@{f.location}:{f.transform}" for f in findings],
                }
            )
    peer = run_peer(samples)
    latency = measure_latency(Detector(paranoia=1, threshold=THRESHOLD))
    elapsed = time.perf_counter() - started

    print(
        f"Dijk detection benchmark — {len(samples)} requests, threshold {THRESHOLD}, corpora {root}"
    )
    print(
        "TPR = attacks blocked, FPR = benign blocked; % at paranoia 1..4; "
        "held-out = 1-in-5 split never looked at while tuning; CRS = ModSecurity+CRS peer"
    )
    header = (
        f"{'group / source / category':58} {'n':>6} "
        + " ".join(f"{'PL' + str(level):>6}" for level in PARANOIA_LEVELS)
        + f" {'heldPL1':>7} {'CRS1':>6} {'CRS2':>6}"
    )
    print(header)
    print("-" * len(header))
    for key in sorted(tallies, key=lambda k: (["api", "web", "benign"].index(k[0]), k[1:])):
        entry = tallies[key]
        label = " / ".join(key)
        rates = " ".join(fmt(entry.rate(level)) for level in PARANOIA_LEVELS)
        print(
            f"{label[:58]:58} {entry.total:6d} {rates} {fmt(entry.rate(1, True)):>7} "
            f"{'n/a' if peer is None else '?':>6} {'n/a' if peer is None else '?':>6}"
        )
    print(f"\nlatency (paranoia 1, ~1 KB JSON bodies): {latency}")
    print(f"detector build {build_seconds:.2f} s; run {elapsed:.1f} s; errors {errors}")
    result = {
        "generated_by": "bench/detection.py",
        "quick": args.quick,
        "threshold": THRESHOLD,
        "samples": len(samples),
        "errors": errors,
        "build_seconds": round(build_seconds, 2),
        "latency": latency,
        "peer": None if peer is None else "modsecurity-crs",
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


if __name__ == "__main__":
    raise SystemExit(main())
