"""OpenAPI positive security: compile time, validation cost per request, gateway req/s.

Three parts, one run:

1. **Compile time** for the largest documents of the OpenAPI corpus (and the demo's):
   reading and bundling, the openapi-spec-validator check, and compiling the validators
   (request side only, and with ``response: strip``). Goal: compiling a 1 MB document
   in under 2 s.
2. **Validation cost per request**, in process: a 1 KB JSON body through the stage's
   request phases (operation look-up, parameters, content type, body), and the body
   check alone, beside a peer measured in the same run - the ``jsonschema`` library
   (pure Python) validating the same body against the same schema. Goal: <= 20 us median.
3. **Gateway req/s** with validation off, on (enforce) and on with ``response: strip``:
   one ``dijk serve`` with three routes in front of the same fixed-response nginx, for a
   GET with a query parameter and a POST with the 1 KB JSON body (wrk, loopback).

Prints tables and writes ``bench/results/openapi-<UTC stamp>.json`` and
``openapi-latest.json``.

    .venv/bin/python -m bench.openapi             # 3 rounds of 5 s per case
    .venv/bin/python -m bench.openapi --quick     # smoke run: 1 round of 2 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/openapi.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench._harness import (
    RESULTS_DIR,
    ROOT,
    Pinning,
    Service,
    ServiceGroup,
    Spread,
    WrkResult,
    ensure_tool,
    format_table,
    free_port,
    loopback_url,
    machine_info,
    parse_wrk,
    sigterm_as_interrupt,
    utc_timestamp,
    wait_until_serving,
    write_results,
)
from bench.proxy import BODY, HOST, PATH, _nginx_argv, _nginx_upstream_http

CORPUS = ROOT.parent / "shared" / "corpora" / "openapi"
LARGEST = 7
COMPILE_GOAL_S = 2.0
VALIDATION_GOAL_US = 20.0

SPEC = textwrap.dedent(
    """\
    openapi: 3.0.3
    info: {title: bench, version: "1"}
    paths:
      /bench:
        get:
          parameters:
            - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 500}}
          responses:
            "200":
              description: ok
              content:
                application/json:
                  schema:
                    type: object
                    properties: {status: {type: string}}
        post:
          requestBody:
            required: true
            content:
              application/json:
                schema: {$ref: "#/components/schemas/Order"}
          responses:
            "200":
              description: ok
              content:
                application/json:
                  schema:
                    type: object
                    properties: {status: {type: string}}
    components:
      schemas:
        Address:
          type: object
          required: [street, city, postcode, country]
          properties:
            street: {type: string, maxLength: 100}
            city: {type: string, maxLength: 60}
            postcode: {type: string, pattern: "^[0-9]{4} ?[A-Z]{2}$"}
            country: {type: string, enum: [NL, BE, DE, FR]}
        Line:
          type: object
          required: [sku, quantity, price]
          properties:
            sku: {type: string, pattern: "^[A-Z]{3}-[0-9]{5}$"}
            quantity: {type: integer, minimum: 1, maximum: 1000}
            price: {type: number, minimum: 0}
            note: {type: string, maxLength: 200, nullable: true}
        Order:
          type: object
          required: [customer, email, lines, shipping]
          properties:
            id: {type: integer, readOnly: true}
            customer: {type: string, minLength: 1, maxLength: 100}
            email: {type: string, format: email}
            phone: {type: string, maxLength: 20}
            reference: {type: string, maxLength: 40}
            placed: {type: string, format: date-time}
            gift: {type: boolean}
            shipping: {$ref: "#/components/schemas/Address"}
            billing: {$ref: "#/components/schemas/Address"}
            lines:
              type: array
              minItems: 1
              maxItems: 50
              items: {$ref: "#/components/schemas/Line"}
            tags: {type: array, items: {type: string, maxLength: 20}}
    """
)


def order_body() -> bytes:
    address = {"street": "Keizersgracht 123", "city": "Amsterdam", "postcode": "1015 CJ"}
    lines = [
        {"sku": f"ABC-{10000 + i}", "quantity": i + 1, "price": 9.95 + i, "note": "fragile item"}
        for i in range(5)
    ]
    body = {
        "customer": "Anne de Vries",
        "email": "anne.devries@example.nl",
        "phone": "+31612345678",
        "reference": "PO-2024-000123",
        "placed": "2024-05-01T12:30:00Z",
        "gift": False,
        "shipping": {**address, "country": "NL"},
        "billing": {**address, "country": "NL"},
        "lines": lines,
        "tags": ["priority", "weekend", "wrap", "repeat-customer"],
    }
    return orjson.dumps(body)


# ---- part 1: compile time --------------------------------------------------------------------


def compile_times(quick: bool) -> list[dict[str, Any]]:
    from dijk.openapi.compiler import compile_document
    from dijk.openapi.document import check_document, read_document, resolve_location

    index = CORPUS / "index.jsonl"
    documents: list[tuple[str, Path, int]] = []
    if index.is_file():
        entries = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
        entries.sort(key=lambda entry: entry["bytes"], reverse=True)
        for entry in entries[: 2 if quick else LARGEST]:
            documents.append((entry["name"], CORPUS / entry["file"], entry["bytes"]))
    else:
        print(f"  (corpus not found at {CORPUS}: only the demo document)")
    demo = Path(resolve_location("package:dijk.demo/openapi.yaml", "."))
    documents.append(("dijk demo (Polder Bank)", demo, demo.stat().st_size))
    results = []
    for name, path, size in documents:
        started = time.perf_counter()
        document = read_document(str(path))
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        try:
            check_document(document)
            check = "valid"
        except Exception as error:  # the corpus has documents that break the OpenAPI schema
            check = f"invalid: {str(error).splitlines()[0][:60]}"
        check_s = time.perf_counter() - started
        timings = {}
        operations = 0
        for mode in ("off", "strip"):
            started = time.perf_counter()
            spec = compile_document(
                document, close_objects=True, response_mode=mode, base_path=None
            )  # type: ignore[arg-type]
            timings[mode] = time.perf_counter() - started
            operations = spec.operation_count
        record = {
            "document": name,
            "bytes": size,
            "operations": operations,
            "read_s": read_s,
            "spec_check_s": check_s,
            "spec_check": check,
            "compile_requests_s": timings["off"],
            "compile_with_responses_s": timings["strip"],
        }
        results.append(record)
        print(
            f"  {name:<32} {size / 1e6:5.2f} MB  read {read_s:5.2f} s  check {check_s:6.2f} s"
            f"  compile {timings['off']:5.2f} s (+responses {timings['strip']:5.2f} s)",
            flush=True,
        )
    return results


# ---- part 2: validation cost ---------------------------------------------------------------


async def _per_call_us(call: Callable[[], Awaitable[Any]], iterations: int, rounds: int) -> Spread:
    for _ in range(min(500, iterations)):
        await call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(iterations):
            await call()
        samples.append((time.perf_counter() - started) / iterations * 1e6)
    spread = Spread.of(samples)
    assert spread is not None
    return spread


async def validation_cost(temp: Path, quick: bool) -> dict[str, Any]:
    import jsonschema

    from dijk.config.models import OpenApiConfig
    from dijk.openapi import load_spec
    from dijk.openapi.request import check_body
    from dijk.pipeline.context import RequestContext
    from dijk.stages.openapi import OpenApiStage

    path = temp / "bench.openapi.yaml"
    path.write_text(SPEC)
    spec = load_spec(str(path))
    stage = OpenApiStage(spec, OpenApiConfig(spec=str(path)))
    body = order_body()
    operation = spec.items[0].operations["POST"]
    assert operation.bodies is not None
    declared = operation.bodies[0]
    headers = [("content-type", "application/json"), ("host", "bench")]

    def context(method: str, query: str, raw: bytes | None) -> RequestContext:
        ctx = RequestContext(
            request_id="b",
            method=method,
            path="/bench",
            query=query,
            headers=headers,
            client_ip="127.0.0.1",
            client_port=1,
            scheme="http",
            http_version="1.1",
            content_length=len(raw) if raw is not None else None,
        )
        ctx.body = raw
        return ctx

    async def full_post() -> None:
        ctx = context("POST", "", body)
        assert await stage.request_headers(ctx) is None
        assert await stage.request_body(ctx) is None

    async def full_get() -> None:
        assert await stage.request_headers(context("GET", "limit=10", None)) is None

    async def body_only() -> None:
        assert check_body(declared, "application/json", body) is None

    async def parse_only() -> None:
        orjson.loads(body)

    # The peer: the reference Python implementation on the same (compiled) schema.
    schema = {"$ref": "#/components/schemas/Order", **yaml_components(SPEC)}
    peer = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())

    async def peer_body() -> None:
        assert peer.is_valid(orjson.loads(body))

    rounds = 3 if quick else 7
    scale = 4 if quick else 1
    cases: dict[str, tuple[Callable[[], Awaitable[Any]], int]] = {
        "orjson parse only (floor)": (parse_only, 20_000),
        "dijk: body check (parse + schema)": (body_only, 20_000),
        "dijk: POST through the stage": (full_post, 20_000),
        "dijk: GET ?limit= through the stage": (full_get, 20_000),
        "peer: jsonschema (Python) body": (peer_body, 2_000),
    }
    results: dict[str, Any] = {"body_bytes": len(body)}
    for name, (call, iterations) in cases.items():
        spread = await _per_call_us(call, iterations // scale, rounds)
        results[name] = vars(spread) | {"relative": spread.relative}
        print(f"  {name:<38} {spread.median:9.2f} us/request", flush=True)
    return results


def yaml_components(text: str) -> dict[str, Any]:
    import yaml

    document = yaml.safe_load(text)
    return {"components": document["components"]}


# ---- part 3: gateway req/s -----------------------------------------------------------------

ROUTES = {
    "off": "no OpenAPI stage",
    "on": "openapi: enforce",
    "strip": "openapi: enforce, response: strip",
}
CASES = ("get", "post")


def _gateway_config(temp: Path, port: int, admin: int, upstream: int) -> Path:
    (temp / "bench.openapi.yaml").write_text(SPEC)
    routes = ""
    for name in ROUTES:
        openapi = ""
        if name == "on":
            openapi = ", openapi: {spec: ./bench.openapi.yaml, base_path: /on}"
        elif name == "strip":
            openapi = ", openapi: {spec: ./bench.openapi.yaml, base_path: /strip, response: strip}"
        # quoted: a bare `on`/`off` is a YAML boolean
        routes += f'  - {{name: "{name}", match: {{path_prefix: /{name}}}, upstream: fixed, '
        routes += f"strip_prefix: /{name}{openapi}}}\n"
    config = temp / "dijk.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            listen: {{address: {HOST}, port: {port}}}
            admin: {{address: {HOST}, port: {admin}}}
            upstreams:
              fixed: {{url: "http://{HOST}:{upstream}"}}
            routes:
            """
        )
        + routes
    )
    return config


def run_wrk_case(
    wrk: str, url: str, script: Path | None, settings: argparse.Namespace, pinning: Pinning
) -> WrkResult:
    """The harness's wrk run, with a Lua script for the POST body."""
    argv = [wrk, "-t1", f"-c{settings.connections}", f"-d{settings.duration:g}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    done = subprocess.run(
        pinning.load([*argv, url]),
        capture_output=True,
        text=True,
        timeout=settings.duration + 30,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def gateway_rounds(settings: argparse.Namespace, temp: Path) -> dict[str, Any]:
    nginx = ensure_tool("nginx", "nginx")
    wrk = ensure_tool("wrk", "wrk")
    pinning = Pinning.choose(not settings.no_pin)
    script = temp / "post.lua"
    body = order_body().decode()
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    rounds: list[dict[str, Any]] = []
    with ServiceGroup() as services:
        upstream_port = free_port()
        upstream = services.start(
            Service(
                "upstream",
                pinning.load(
                    _nginx_argv(nginx, temp, "upstream", _nginx_upstream_http(upstream_port))
                ),
                temp / "upstream.log",
            )
        )
        if problem := wait_until_serving(upstream, HOST, upstream_port, PATH, BODY):
            raise SystemExit(f"upstream nginx did not start: {problem}")
        port, admin = free_port(), free_port()
        config = _gateway_config(temp, port, admin, upstream_port)
        executable = ROOT / ".venv" / "bin" / "dijk"
        dijk = str(executable) if executable.exists() else shutil.which("dijk") or "dijk"
        gateway = services.start(
            Service(
                "dijk",
                pinning.target([dijk, "serve", "-c", str(config)]),
                temp / "dijk.log",
                cwd=temp,
            )
        )
        if problem := wait_until_serving(gateway, HOST, port, f"/on{PATH}?limit=10", BODY):
            raise SystemExit(f"dijk did not start: {problem}\n" + "\n".join(gateway.log_tail()))
        keys = [(route, case) for case in CASES for route in ROUTES]
        for number in range(settings.repeat):
            shift = number % len(keys)
            order = keys[shift:] + keys[:shift]
            results: dict[str, Any] = {}
            for route, case in order:
                query = "?limit=10" if case == "get" else ""
                url = loopback_url(HOST, port, f"/{route}{PATH}{query}")
                lua = script if case == "post" else None
                warm = argparse.Namespace(**{**vars(settings), "duration": settings.warmup})
                run_wrk_case(wrk, url, lua, warm, pinning)
                cpu_before = gateway.cpu_seconds()
                result = run_wrk_case(wrk, url, lua, settings, pinning)
                cpu_after = gateway.cpu_seconds()
                record = result.to_json()
                if cpu_before is not None and cpu_after is not None and result.requests:
                    record["cpu_us_per_request"] = (cpu_after - cpu_before) / result.requests * 1e6
                results[f"{route}/{case}"] = record
                flag = f"  ({result.errors} errors)" if result.errors else ""
                print(
                    f"  round {number + 1}/{settings.repeat}: {route:<6} {case:<5}"
                    f" {result.requests_per_s:>10,.0f} req/s{flag}",
                    flush=True,
                )
            rounds.append({"round": number + 1, **results})
    return {"pinning": pinning.reason, "rounds": rounds}


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for case in CASES:
        for route, description in ROUTES.items():
            key = f"{route}/{case}"
            measured = [r[key] for r in rounds if key in r]
            rps = Spread.of([m["requests_per_s"] for m in measured])
            ratios = [
                r[key]["requests_per_s"] / r[f"off/{case}"]["requests_per_s"]
                for r in rounds
                if key in r and r.get(f"off/{case}", {}).get("requests_per_s")
            ]
            cpu = [m["cpu_us_per_request"] for m in measured if m.get("cpu_us_per_request")]
            summary[key] = {
                "description": f"{description}, {case.upper()}",
                "requests_per_s": None if rps is None else vars(rps),
                "ratio_to_off": statistics.median(ratios) if ratios else None,
                "cpu_us_per_request": statistics.median(cpu) if cpu else None,
                "p99_ms": statistics.median([m["p99_ms"] for m in measured if m["p99_ms"]] or [0]),
                "errors": sum(m["errors"] for m in measured),
            }
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.openapi", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=1.0, help="wrk seconds before each run")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over all cases")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    parser.add_argument("--no-gateway", action="store_true", help="skip the gateway part")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    settings = parser.parse_args(argv)
    if settings.quick:
        settings.repeat, settings.duration = 1, 2.0
    started_at, stamp = utc_timestamp()
    temp = Path(tempfile.mkdtemp(prefix="dijk-bench-openapi-"))
    try:
        with sigterm_as_interrupt():
            print("compile time (largest corpus documents):", flush=True)
            compiled = compile_times(settings.quick)
            print("\nvalidation cost per request, in process (median of rounds):", flush=True)
            costs = asyncio.run(validation_cost(temp, settings.quick))
            gateway: dict[str, Any] = {}
            if not settings.no_gateway:
                print("\ngateway requests/s (wrk, loopback):", flush=True)
                gateway = gateway_rounds(settings, temp)
    except KeyboardInterrupt:
        print("\ninterrupted: every started process was stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(temp, ignore_errors=True)

    rows = [
        [
            entry["document"],
            f"{entry['bytes'] / 1e6:.2f}",
            str(entry["operations"]),
            f"{entry['read_s']:.2f}",
            f"{entry['spec_check_s']:.2f}",
            f"{entry['compile_requests_s']:.2f}",
            f"{entry['compile_with_responses_s']:.2f}",
        ]
        for entry in compiled
    ]
    headers = ["document", "MB", "ops", "read s", "check s", "compile s", "+responses s"]
    print("\n" + format_table(headers, rows, right={1, 2, 3, 4, 5, 6}))
    # The goal is stated for a 1 MB document: the corpus documents of 0.75-1.5 MB.
    megabyte = [entry for entry in compiled if 750_000 <= entry["bytes"] <= 1_500_000]
    compile_ok = all(entry["compile_with_responses_s"] < COMPILE_GOAL_S for entry in megabyte)
    verdict = "met" if compile_ok else "MISSED"
    print(f"goal: compile a 1 MB document in < {COMPILE_GOAL_S:g} s: {verdict}")

    rows = [
        [name, f"{value['median']:.2f}", f"{value['minimum']:.2f}-{value['maximum']:.2f}"]
        for name, value in costs.items()
        if isinstance(value, dict)
    ]
    print("\n" + format_table(["case (1 KB JSON body)", "us/request", "min-max"], rows, {1, 2}))
    body_us = costs["dijk: POST through the stage"]["median"]
    print(
        f"goal: <= {VALIDATION_GOAL_US:g} us median per 1 KB JSON request: "
        f"{'met' if body_us <= VALIDATION_GOAL_US else 'MISSED'} ({body_us:.1f} us)"
    )
    summary: dict[str, Any] = {}
    if gateway:
        summary = summarise(gateway["rounds"])
        rows = []
        for key, entry in summary.items():
            rps = entry["requests_per_s"]
            rows.append(
                [
                    key,
                    "-" if rps is None else f"{rps['median']:,.0f}",
                    "-" if rps is None else f"{rps['minimum']:,.0f}-{rps['maximum']:,.0f}",
                    "-" if entry["ratio_to_off"] is None else f"{entry['ratio_to_off']:.2f}",
                    "-"
                    if entry["cpu_us_per_request"] is None
                    else f"{entry['cpu_us_per_request']:.1f}",
                    f"{entry['p99_ms']:.2f}",
                    str(entry["errors"]),
                ]
            )
        headers = ["route/case", "req/s", "min-max", "vs off", "CPU us/req", "p99 ms", "errors"]
        print("\n" + format_table(headers, rows, right={1, 2, 3, 4, 5, 6}))
        print(f"\n{gateway['pinning']}")
    data = {
        "benchmark": "openapi",
        "started_at": started_at,
        "machine": machine_info(
            {}, ["dijk", "jsonschema-rs", "openapi-spec-validator", "jsonschema"]
        ),
        "compile": compiled,
        "compile_goal_met": compile_ok,
        "per_request_us": costs,
        "gateway": summary,
        "gateway_rounds": gateway.get("rounds", []),
    }
    for path in write_results(settings.results_dir, "openapi", stamp, data):
        print(f"wrote {path}")
    errors = sum(entry["errors"] for entry in summary.values())
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
