"""API discovery: how much of an API's real document traffic alone gives back.

For each real OpenAPI document of the corpus (``../shared/corpora/openapi``, or
``DIJK_CORPORA``), traffic is generated from the document's own schemas: ``--requests``
requests per operation, path and query parameters and JSON bodies drawn from their
schemas (types, formats, enums, bounds, required and optional properties), and a JSON
response drawn from the operation's first JSON response. The same traffic goes

- through Dijk's learner (``dijk.discovery``, default settings), whose OpenAPI draft is
  what ``dijk discover openapi`` writes, and
- as a HAR file through mitmproxy2swagger (installed by this script from PyPI into its own
  virtual environment, ``bench/.venv-mitmproxy2swagger``; never a Dijk dependency): once
  as it comes (its first pass writes every path as ``ignore:`` for a human to edit), and
  once with that editing done mechanically (every ``ignore:`` removed, its own
  ``{id}`` suggestions kept).

Scores, over all documents: **templates** — operations exercised whose exact method and
path template (parameter names aside) the recovered document has; **spurious** — recovered
operations the original does not have, as a share of all recovered; **field types** —
JSON body fields exercised (request and response, by path) whose recovered type equals
the type of the values sent. Then time per request and memory: the learner's cost at the
default sampling (median, µs) and its memory at 10,000 endpoints against the configured
bound (``tracemalloc``).

    .venv/bin/python -m bench.discovery                  # every document
    .venv/bin/python -m bench.discovery --limit 20       # a subset (first 20 by name)
    .venv/bin/python -m bench.discovery --no-peer        # Dijk only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import string
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._harness import format_table, machine_info, utc_timestamp, write_results  # noqa: E402
from dijk.discovery.inventory import Exchange, Learner, LearnerLimits  # noqa: E402
from dijk.discovery.openapi import build_document  # noqa: E402

PEER = "mitmproxy2swagger"
PEER_VERSION = "0.14.0"  # 0.15 needs Python 3.12
PEER_VENV = ROOT / "bench" / ".venv-mitmproxy2swagger"
HOST = "http://api.test"
METHODS = ("get", "put", "post", "delete", "patch")
PARAM = re.compile(r"\{[^{}/]*\}")
GOALS = {"templates": 95.0, "spurious": 2.0, "field_types": 90.0, "median_us": 10.0}


def corpus_dir() -> Path:
    override = os.environ.get("DIJK_CORPORA")
    base = Path(override) if override else (ROOT / ".." / "shared" / "corpora")
    return (base / "openapi").resolve()


# -- documents ---------------------------------------------------------------------------


class Resolver:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def __call__(self, value: Any, depth: int = 0) -> Any:
        while isinstance(value, dict) and isinstance(value.get("$ref"), str) and depth < 40:
            ref = value["$ref"]
            if not ref.startswith("#/"):
                return {}
            target: Any = self.root
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    return {}
                target = target[part]
            value = target
            depth += 1
        return value


@dataclass
class Operation:
    method: str
    template: str
    path_params: dict[str, Any]
    query_params: list[tuple[str, Any, bool]]
    request_schema: Any
    response: tuple[int, Any] | None


def _json_schema(content: Any, resolve: Resolver) -> Any:
    content = resolve(content)
    if not isinstance(content, dict):
        return None
    for media, entry in content.items():
        name = str(media).split(";")[0].strip().lower()
        if name == "application/json" or name.endswith("+json"):
            entry = resolve(entry)
            if isinstance(entry, dict) and isinstance(entry.get("schema"), dict):
                return entry["schema"]
    return None


def operations(root: dict[str, Any]) -> tuple[list[Operation], int]:
    resolve = Resolver(root)
    found: list[Operation] = []
    skipped = 0
    for template, raw_item in (root.get("paths") or {}).items():
        item = resolve(raw_item)
        if not isinstance(item, dict) or not isinstance(template, str):
            continue
        if not template.startswith("/") or any(ch in template for ch in "#? "):
            skipped += 1  # not a URL path (RPC-style pseudo paths)
            continue
        for method in METHODS:
            operation = resolve(item.get(method))
            if not isinstance(operation, dict):
                continue
            path_params: dict[str, Any] = {}
            query: list[tuple[str, Any, bool]] = []
            for raw in [*(item.get("parameters") or []), *(operation.get("parameters") or [])]:
                parameter = resolve(raw)
                if not isinstance(parameter, dict):
                    continue
                schema = resolve(parameter.get("schema")) or {"type": "string"}
                if parameter.get("in") == "path":
                    path_params[str(parameter.get("name"))] = schema
                elif parameter.get("in") == "query":
                    query.append(
                        (str(parameter.get("name")), schema, bool(parameter.get("required")))
                    )
            body = resolve(operation.get("requestBody"))
            request_schema = (
                _json_schema(body.get("content"), resolve) if isinstance(body, dict) else None
            )
            response = None
            for status, answer in sorted((operation.get("responses") or {}).items()):
                if not str(status).isdigit():
                    continue
                answer = resolve(answer)
                schema = (
                    _json_schema(answer.get("content"), resolve)
                    if isinstance(answer, dict)
                    else None
                )
                if schema is not None or response is None:
                    response = (int(status), schema)
                    if schema is not None and 200 <= int(status) < 300:
                        break
            found.append(
                Operation(method.upper(), template, path_params, query, request_schema, response)
            )
    return found, skipped


# -- values from schemas -----------------------------------------------------------------


class Generator:
    def __init__(self, resolve: Resolver, rng: random.Random) -> None:
        self.resolve = resolve
        self.rng = rng

    def value(self, schema: Any, depth: int = 0) -> Any:
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return "x"
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self.rng.choice(schema["enum"])
        for key in ("oneOf", "anyOf"):
            if schema.get(key):
                return self.value(schema[key][0], depth + 1)
        if schema.get("allOf"):
            merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
            for part in schema["allOf"]:
                part = self.resolve(part)
                if isinstance(part, dict):
                    merged["properties"].update(part.get("properties") or {})
                    merged["required"] += part.get("required") or []
                    if part.get("type") and part.get("type") != "object":
                        merged = dict(part)
                        break
            schema = merged
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((item for item in kind if item != "null"), "string")
        if kind is None:
            kind = (
                "object" if "properties" in schema else "array" if "items" in schema else "string"
            )
        if kind == "object":
            return self._object(schema, depth) if depth <= 8 else {}
        if kind == "array":
            items = schema.get("items") or {"type": "string"}
            count = self.rng.randint(1, 3) if depth <= 8 else 0
            return [self.value(items, depth + 1) for _ in range(count)]
        if kind == "integer":
            low = int(schema.get("minimum", 0))
            high = int(schema.get("maximum", low + 100_000))
            return self.rng.randint(low, max(low, high))
        if kind == "number":
            low = float(schema.get("minimum", 0))
            high = float(schema.get("maximum", low + 10_000))
            return round(self.rng.uniform(low, max(low, high)), 2) + 0.01
        if kind == "boolean":
            return self.rng.random() < 0.5
        return self.string(schema)

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        result: dict[str, Any] = {}
        for name, child in properties.items():
            if name in required or self.rng.random() < 0.7:
                result[name] = self.value(child, depth + 1)
        return result

    def string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        rng = self.rng
        if fmt == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if fmt == "date-time":
            moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8))
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if fmt == "date":
            return (datetime(2020, 1, 1) + timedelta(days=rng.randint(0, 2000))).strftime(
                "%Y-%m-%d"
            )
        if fmt == "email":
            return f"{self.word(6)}@{self.word(5)}.example"
        if fmt in ("uri", "url"):
            return f"https://{self.word(6)}.example/{self.word(4)}"
        if fmt == "ipv4":
            return ".".join(str(rng.randint(1, 254)) for _ in range(4))
        length = max(int(schema.get("minLength", 3)), 1)
        length = min(max(length, rng.randint(4, 14)), int(schema.get("maxLength", 40)) or 40)
        return self.word(length)

    def word(self, length: int) -> str:
        return "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(length))

    def path_value(self, schema: Any) -> str:
        value = self.value(schema)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            schema = self.resolve(schema)
            if isinstance(schema, dict) and not schema.get("enum") and not schema.get("format"):
                # An identifier as APIs write them: letters and digits, 8 to 12 of them.
                return "".join(
                    self.rng.choice(string.ascii_lowercase + string.digits)
                    for _ in range(self.rng.randint(8, 12))
                )
        return str(value)


# -- traffic -----------------------------------------------------------------------------


@dataclass
class Sent:
    operation: Operation
    path: str
    query: str
    request: Any
    response: Any


def traffic(
    root: dict[str, Any], ops: list[Operation], count: int, rng: random.Random
) -> list[Sent]:
    generate = Generator(Resolver(root), rng)
    sent: list[Sent] = []
    for operation in ops:
        for _ in range(count):
            params = operation.path_params
            path = PARAM.sub(
                lambda match, params=params: generate.path_value(  # type: ignore[misc]
                    params.get(match.group(0)[1:-1], {"type": "string"})
                ),
                operation.template,
            )
            pairs = []
            for name, schema, required in operation.query_params:
                if required or rng.random() < 0.5:
                    value = generate.value(schema)
                    if isinstance(value, list | dict):
                        continue
                    pairs.append(
                        f"{name}={str(value).lower() if isinstance(value, bool) else value}"
                    )
            request = (
                generate.value(operation.request_schema)
                if operation.request_schema is not None
                else None
            )
            response = None
            if operation.response is not None and operation.response[1] is not None:
                response = generate.value(operation.response[1])
            sent.append(Sent(operation, path, "&".join(pairs), request, response))
    rng.shuffle(sent)
    return sent


def exchanges(sent: list[Sent]) -> Iterator[Exchange]:
    for index, item in enumerate(sent):
        status = item.operation.response[0] if item.operation.response else 200
        yield Exchange(
            method=item.operation.method,
            path=item.path,
            query=item.query,
            time_us=1_796_000_000_000_000 + index,
            status=status,
            request_type="application/json" if item.request is not None else "",
            request_body=orjson.dumps(item.request) if item.request is not None else None,
            response_type="application/json" if item.response is not None else "",
            response_body=orjson.dumps(item.response) if item.response is not None else None,
        )


def har(sent: list[Sent]) -> dict[str, Any]:
    entries = []
    for index, item in enumerate(sent):
        url = HOST + item.path + (f"?{item.query}" if item.query else "")
        request: dict[str, Any] = {
            "method": item.operation.method,
            "url": url,
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": "Host", "value": "api.test"}],
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": -1,
        }
        if item.request is not None:
            text = json.dumps(item.request)
            request["postData"] = {"mimeType": "application/json", "text": text}
            request["headers"].append({"name": "Content-Type", "value": "application/json"})
        body = json.dumps(item.response) if item.response is not None else ""
        status = item.operation.response[0] if item.operation.response else 200
        entries.append(
            {
                "startedDateTime": f"2026-12-01T10:{index // 60 % 60:02d}:{index % 60:02d}.000Z",
                "time": 1,
                "request": request,
                "response": {
                    "status": status,
                    "statusText": "OK",
                    "httpVersion": "HTTP/1.1",
                    "headers": [{"name": "Content-Type", "value": "application/json"}],
                    "cookies": [],
                    "content": {"size": len(body), "mimeType": "application/json", "text": body},
                    "redirectURL": "",
                    "headersSize": -1,
                    "bodySize": len(body),
                },
                "cache": {},
                "timings": {"send": 0, "wait": 1, "receive": 0},
            }
        )
    return {
        "log": {"version": "1.2", "creator": {"name": "bench", "version": "1"}, "entries": entries}
    }


# -- scoring -----------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def fields(value: Any, path: str, into: dict[str, set[str]], depth: int = 0) -> None:
    """Field path → JSON types of the values sent there (object and array members)."""
    if depth > 10:
        return
    if isinstance(value, dict):
        for key, child in value.items():
            where = f"{path}.{key}"
            into.setdefault(where, set()).add(_json_type(child))
            fields(child, where, into, depth + 1)
    elif isinstance(value, list):
        for child in value:
            fields(child, f"{path}[]", into, depth + 1)


def schema_types(
    schema: Any, path: str, into: dict[str, set[str]], resolve: Resolver, depth: int = 0
) -> None:
    schema = resolve(schema)
    if not isinstance(schema, dict) or depth > 10:
        return
    for key, child in (schema.get("properties") or {}).items():
        where = f"{path}.{key}"
        child = resolve(child)
        kind = child.get("type") if isinstance(child, dict) else None
        kinds = set(kind if isinstance(kind, list) else [kind] if kind else [])
        if not kinds and isinstance(child, dict):
            if "properties" in child:
                kinds = {"object"}
            elif "items" in child:
                kinds = {"array"}
        into[where] = kinds - {"null"}
        schema_types(child, where, into, resolve, depth + 1)
    if schema.get("items") is not None:
        schema_types(schema["items"], f"{path}[]", into, resolve, depth + 1)


def enum_literals(operation: Operation, most: int = 64) -> list[str]:
    """The operation's path with its enum-restricted parameters written out."""
    forms = [operation.template]
    for name, schema in operation.path_params.items():
        values = schema.get("enum") if isinstance(schema, dict) else None
        marker = "{" + name + "}"
        if not values or not any(marker in form for form in forms):
            continue
        forms = [form.replace(marker, str(value)) for form in forms for value in values][:most]
    return [normalise(form) for form in forms if form != operation.template]


def normalise(template: str) -> str:
    return PARAM.sub("{}", template.rstrip("/") or "/")


@dataclass
class Score:
    exercised: int = 0
    correct: int = 0
    recovered: int = 0
    spurious: int = 0
    field_total: int = 0
    field_right: int = 0
    documents: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    per_document: list[float] = field(default_factory=list)  # field types right, %

    def add_document(
        self, original: list[Operation], sent: list[Sent], document: dict[str, Any] | None
    ) -> None:
        self.documents += 1
        total, right = self.field_total, self.field_right
        try:
            self._add_document(original, sent, document)
        finally:
            if self.field_total > total:
                self.per_document.append(
                    100.0 * (self.field_right - right) / (self.field_total - total)
                )

    def _add_document(
        self, original: list[Operation], sent: list[Sent], document: dict[str, Any] | None
    ) -> None:
        expected = {(op.method, normalise(op.template)) for op in original}
        exercised = {(item.operation.method, normalise(item.operation.template)) for item in sent}
        self.exercised += len(exercised)
        if document is None:
            return
        resolve = Resolver(document)
        # A path parameter the document restricts to an enum ({format} in JSON, XML) is
        # served by literal paths: those count as the operation, not as spurious.
        variants = {
            (op.method, literal): (op.method, normalise(op.template))
            for op in original
            for literal in enum_literals(op)
        }
        recovered: dict[tuple[str, str], list[dict[str, Any]]] = {}
        spurious = 0
        for template, item in (document.get("paths") or {}).items():
            for method, operation in (item or {}).items():
                if method in METHODS and isinstance(operation, dict):
                    key = (method.upper(), normalise(str(template)))
                    self.recovered += 1
                    if key not in expected and key not in variants:
                        spurious += 1
                    recovered.setdefault(variants.get(key, key), []).append(operation)
        self.spurious += spurious
        self.correct += len(exercised & set(recovered))
        sent_fields: dict[tuple[str, str], dict[str, set[str]]] = {}
        for item in sent:
            key = (item.operation.method, normalise(item.operation.template))
            table = sent_fields.setdefault(key, {})
            if item.request is not None:
                fields(item.request, "request", table)
            if item.response is not None:
                fields(item.response, "response", table)
        for key, table in sent_fields.items():
            found: dict[str, set[str]] = {}
            for operation in recovered.get(key, []):
                body = resolve(operation.get("requestBody")) or {}
                schema = (
                    _json_schema(body.get("content"), resolve) if isinstance(body, dict) else None
                )
                schema_types(schema, "request", found, resolve)
                for answer in (operation.get("responses") or {}).values():
                    answer = resolve(answer)
                    if isinstance(answer, dict):
                        schema_types(
                            _json_schema(answer.get("content"), resolve), "response", found, resolve
                        )
            for where, kinds in table.items():
                self.field_total += 1
                wanted = kinds - {"null"}
                if {"integer", "number"} <= wanted:  # JSON Schema's number holds integers
                    wanted -= {"integer"}
                got = found.get(where, set())
                if wanted == got:
                    self.field_right += 1

    def row(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "operations_exercised": self.exercised,
            "templates_correct": self.correct,
            "templates_pct": pct(self.correct, self.exercised),
            "operations_recovered": self.recovered,
            "spurious": self.spurious,
            "spurious_pct": pct(self.spurious, self.recovered),
            "fields": self.field_total,
            "fields_right": self.field_right,
            "field_types_pct": pct(self.field_right, self.field_total),
            "field_types_median_document_pct": round(statistics.median(self.per_document), 1)
            if self.per_document
            else 0.0,
            "seconds": round(self.seconds, 2),
            "failures": self.failures[:20],
        }


def pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


# -- Dijk and the peer -------------------------------------------------------------------


def dijk_document(
    sent: list[Sent], limits: LearnerLimits | None = None
) -> tuple[dict[str, Any], float]:
    learner = Learner(limits)
    items = list(exchanges(sent))
    started = time.perf_counter()
    for exchange in items:
        learner.observe(exchange)
    document = build_document(learner.snapshot())
    return document, time.perf_counter() - started


def peer_command() -> list[str]:
    binary = PEER_VENV / "bin" / "mitmproxy2swagger"
    if not binary.exists():
        print(f"installing {PEER}=={PEER_VERSION} into {PEER_VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(PEER_VENV / "bin" / "pip"), "install", "--quiet", f"{PEER}=={PEER_VERSION}"],
            check=True,
        )
    return [str(binary)]


def peer_documents(
    command: list[str], sent: list[Sent], work: Path
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, float, str]:
    """(as it comes, after the editing pass, seconds, error) of mitmproxy2swagger."""
    capture = work / "capture.har"
    output = work / "out.yaml"
    capture.write_text(json.dumps(har(sent)))
    output.unlink(missing_ok=True)
    argv = [*command, "-i", str(capture), "-o", str(output), "-p", HOST, "-f", "har"]
    started = time.perf_counter()
    first = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if first.returncode != 0 or not output.exists():
        return None, None, time.perf_counter() - started, first.stderr[-300:]
    raw = yaml.safe_load(output.read_text()) or {}
    text = output.read_text().replace("- ignore:", "- ")
    output.write_text(text)
    second = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.perf_counter() - started
    if second.returncode != 0:
        return raw, None, elapsed, second.stderr[-300:]
    edited = yaml.safe_load(output.read_text()) or {}
    return raw, edited, elapsed, ""


# -- cost and memory ---------------------------------------------------------------------


def learner_cost(samples: list[Sent]) -> dict[str, float]:
    """Median µs per request through the learner at the default sampling, after warm-up."""
    items = list(exchanges(samples))
    learner = Learner()
    for exchange in items * 20:  # past every endpoint's first (all sampled) requests
        learner.observe(exchange)
    timings = []
    for exchange in items * 3:
        started = time.perf_counter_ns()
        key = learner.key(exchange.method, exchange.path, None)
        learner.record(key, exchange, sampled=learner.wants_sample(key))
        timings.append(time.perf_counter_ns() - started)
    every = Learner(LearnerLimits(sample_first=1 << 40, sample_every=1))
    whole = []
    for exchange in items:
        started = time.perf_counter_ns()
        every.observe(exchange)
        whole.append(time.perf_counter_ns() - started)
    return {
        "median_us": round(statistics.median(timings) / 1000, 2),
        "p99_us": round(sorted(timings)[int(len(timings) * 0.99)] / 1000, 2),
        "median_us_every_request_sampled": round(statistics.median(whole) / 1000, 2),
    }


def memory_at(endpoints: int, rng: random.Random) -> dict[str, Any]:
    limits = LearnerLimits(max_endpoints=endpoints)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    learner = Learner(limits)
    for index in range(endpoints):
        # Distinct endpoints by construction (the template is given, as the OpenAPI stage
        # gives it): this measures memory, not templating.
        template = f"/api/resource{index}/items/{{}}"
        body = {f"field{j}": rng.choice([1, "x", 2.5, True, None]) for j in range(12)}
        body["items"] = [{"id": 1, "name": "a"}]
        learner.observe(
            Exchange(
                "GET",
                f"/api/resource{index}/items/{index + 1000}",
                index,
                200,
                query="page=1&sort=asc",
                response_type="application/json",
                response_body=orjson.dumps(body),
                template=template,
            )
        )
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {
        "endpoints": len(learner),
        "evicted": learner.evicted,
        "measured_mib": round(used / 1024 / 1024, 2),
        "estimated_mib": round(learner.memory_bytes / 1024 / 1024, 2),
        "bound_mib": limits.max_total_bytes // (1024 * 1024),
    }


# -- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="first N documents (0: all)")
    parser.add_argument("--requests", type=int, default=6, help="requests per operation")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-peer", action="store_true", help=f"skip {PEER}")
    parser.add_argument(
        "--max-endpoint-kib",
        type=int,
        default=0,
        help="discovery.max_endpoint_kib for the learner (0: the default)",
    )
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    corpus = corpus_dir()
    index = corpus / "index.jsonl"
    if not index.exists():
        print(f"corpus not found at {corpus} (set DIJK_CORPORA)", file=sys.stderr)
        return 2
    entries = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
    entries.sort(key=lambda entry: entry["name"])
    if args.limit:
        entries = entries[: args.limit]
    rng = random.Random(args.seed)
    command = None if args.no_peer else peer_command()
    dijk, raw_peer, edited_peer = Score(), Score(), Score()
    cost_sample: list[Sent] = []
    skipped_paths = 0
    requests = 0
    with tempfile.TemporaryDirectory(prefix="dijk-discovery-") as temporary:
        work = Path(temporary)
        for number, entry in enumerate(entries, start=1):
            root = json.loads((corpus / entry["file"]).read_text())
            ops, skipped = operations(root)
            skipped_paths += skipped
            if not ops:
                continue
            sent = traffic(root, ops, args.requests, rng)
            requests += len(sent)
            if len(cost_sample) < 20_000:
                cost_sample.extend(sent[: 20_000 - len(cost_sample)])
            limits = LearnerLimits()
            if args.max_endpoint_kib:
                limits.max_endpoint_bytes = args.max_endpoint_kib * 1024
            document, seconds = dijk_document(sent, limits)
            dijk.seconds += seconds
            dijk.add_document(ops, sent, document)
            if command is not None:
                raw, edited, seconds, error = peer_documents(command, sent, work)
                raw_peer.seconds += seconds
                edited_peer.seconds += seconds
                if error:
                    raw_peer.failures.append(f"{entry['name']}: {error.strip()[-120:]}")
                raw_peer.add_document(ops, sent, raw)
                edited_peer.add_document(ops, sent, edited)
            print(f"[{number}/{len(entries)}] {entry['name']}: {len(ops)} operations", flush=True)
    cost = learner_cost(cost_sample)
    memory = memory_at(10_000, rng)
    rows = {"dijk": dijk.row()}
    if command is not None:
        rows[f"{PEER} (as it comes)"] = raw_peer.row()
        rows[f"{PEER} (ignore: lines removed)"] = edited_peer.row()
    headers = [
        "tool",
        "templates correct",
        "spurious",
        "field types right",
        "(median document)",
        "seconds",
    ]
    table = format_table(
        headers,
        [
            [
                name,
                f"{row['templates_pct']}%"
                f" ({row['templates_correct']}/{row['operations_exercised']})",
                f"{row['spurious_pct']}% ({row['spurious']}/{row['operations_recovered']})",
                f"{row['field_types_pct']}% ({row['fields_right']}/{row['fields']})",
                f"{row['field_types_median_document_pct']}%",
                f"{row['seconds']}",
            ]
            for name, row in rows.items()
        ],
        right={1, 2, 3, 4, 5},
    )
    print()
    print(
        f"{len(entries)} documents, {requests} requests ({args.requests} per operation),"
        f" {skipped_paths} non-URL paths skipped"
    )
    print(table)
    print()
    print(
        f"learner cost at default sampling: median {cost['median_us']} µs, p99 {cost['p99_us']} µs"
        f" (every request sampled: median {cost['median_us_every_request_sampled']} µs)"
    )
    print(
        f"memory after 10000 endpoints ({memory['endpoints']} kept, {memory['evicted']} evicted):"
        f" {memory['measured_mib']} MiB measured, {memory['estimated_mib']} MiB estimated,"
        f" bound {memory['bound_mib']} MiB"
    )
    when, stamp = utc_timestamp()
    data = {
        "time": when,
        "documents": len(entries),
        "requests": requests,
        "requests_per_operation": args.requests,
        "seed": args.seed,
        "max_endpoint_kib": args.max_endpoint_kib or LearnerLimits().max_endpoint_bytes // 1024,
        "goals": GOALS,
        "results": rows,
        "learner_cost": cost,
        "memory": memory,
        "machine": machine_info({}, ["orjson"]),
    }
    for path in write_results(args.results_dir, "discovery", stamp, data):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
