"""Authentication cost: per-request cost of each method, and gateway req/s with each.

Two parts, one run:

1. **Per-request cost** (in process, µs per call, median of rounds): the API key stage
   (digest look-up + revocation check), JWT RS256 and ES256 *cold* (cache off: parse,
   key look-up, signature, claims) and *cached* (a hot token: hash + look-up), and
   introspection *cached* (against a local authorization server, answer cached).
2. **Gateway req/s**: one ``dijk serve`` process with one route per method beside a route
   with the empty pipeline, all forwarding to the same fixed-response nginx upstream; wrk
   drives each route in turn (order rotated every round), with the credential in a header.
   The JWT and introspection routes see one hot token, as a real client reusing its token.

Prints tables and writes ``bench/results/auth-<UTC stamp>.json`` and ``auth-latest.json``.

    .venv/bin/python -m bench.auth              # 3 rounds of 5 s per route
    .venv/bin/python -m bench.auth --quick      # smoke run: 1 round of 2 s
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/auth.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jwt as pyjwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

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

ISSUER = "https://idp.bench.test"
AUDIENCE = "bench-api"
API_KEY = "bench_" + "7d1f0c9b4a2e8f6d3c5b"
OPAQUE = "opaque-bench-token-" + "0123456789abcdef"
CLIENT_SECRET = "bench-client-secret"

# ---- tokens and keys ------------------------------------------------------------------------


class Keys:
    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True)
        ec_jwk = ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True)
        rsa_jwk.update(kid="rsa", alg="RS256", use="sig")
        ec_jwk.update(kid="ec", alg="ES256", use="sig")
        return {"keys": [rsa_jwk, ec_jwk]}

    def token(self, alg: str, lifetime_s: int = 3000) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "bench",
            "iat": now,
            "exp": now + lifetime_s,
            "scope": "bench:read",
            "jti": uuid.uuid4().hex,
        }
        key, kid = (self.ec, "ec") if alg == "ES256" else (self.rsa, "rsa")
        return pyjwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


# ---- a local authorization server (introspection) -------------------------------------------


class AuthorizationServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.calls = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def _introspect(self, request: web.Request) -> web.Response:
        self.calls += 1
        form = await request.post()
        active = form.get("token") == OPAQUE
        now = int(time.time())
        answer: dict[str, Any] = {"active": active}
        if active:
            answer |= {"client_id": "bench", "scope": "bench:read", "exp": now + 3600}
        return web.json_response(answer)

    def start(self) -> AuthorizationServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/introspect", self._introspect)
            runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, HOST, self.port).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/introspect"


# ---- part 1: per-request cost in process ----------------------------------------------------


def _context(headers: list[tuple[str, str]]) -> Any:
    from dijk.pipeline.context import RequestContext

    return RequestContext(
        request_id="b",
        method="GET",
        path=PATH,
        query="",
        headers=headers,
        client_ip="127.0.0.1",
        client_port=1,
        scheme="http",
        http_version="1.1",
    )


async def _per_call_us(call: Callable[[], Awaitable[Any]], iterations: int, rounds: int) -> Spread:
    for _ in range(min(200, iterations)):
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


async def micro(keys: Keys, server: AuthorizationServer, quick: bool) -> dict[str, Any]:
    from dijk.auth.introspection import Introspector
    from dijk.auth.jwks import JwksSource, parse_jwks
    from dijk.auth.jwt import JwtRules, JwtVerifier
    from dijk.auth.revocation import RevocationList
    from dijk.config.models import ApiKeyAuthConfig, IntrospectionAuthConfig
    from dijk.stages.authn_api_key import ApiKeyStage, KeyOwner, KeyRing
    from dijk.stages.authn_introspection import IntrospectionStage
    from dijk.stages.authn_jwt import JwtStage

    rounds = 3 if quick else 7
    revocations = RevocationList.from_url("memory://bench")
    digest = hashlib.sha256(API_KEY.encode()).digest()
    ring = KeyRing({digest: KeyOwner("bench", frozenset(), frozenset(), digest)})
    key_stage = ApiKeyStage(ApiKeyAuthConfig(), ring, revocations)
    key_headers = [("x-api-key", API_KEY)]

    algorithms = ["RS256", "ES256"]
    rules = JwtRules(
        issuer=ISSUER,
        audiences=frozenset({AUDIENCE}),
        algorithms=frozenset(algorithms),
        max_lifetime_s=3600,
        leeway_s=30,
        max_token_bytes=8192,
    )

    def jwt_stage(cache_size: int) -> JwtStage:
        source = JwksSource(algorithms, keys=parse_jwks(keys.jwks(), algorithms))
        return JwtStage(JwtVerifier(rules, source, cache_size=cache_size), revocations)

    introspector = Introspector(
        IntrospectionAuthConfig(
            url=server.url, client_id="bench", client_secret_env="UNUSED_IN_BENCH"
        ),
        CLIENT_SECRET,
    )
    introspection = IntrospectionStage(introspector, revocations)

    def run(stage: Any, headers: list[tuple[str, str]]) -> Callable[[], Awaitable[Any]]:
        async def call() -> None:
            decision = await stage.request_headers(_context(headers))
            assert decision is None, decision

        return call

    async def baseline() -> None:
        _context(key_headers)

    cases: dict[str, tuple[Callable[[], Awaitable[Any]], int]] = {
        "context only (baseline)": (baseline, 20_000),
        "api_key": (run(key_stage, key_headers), 20_000),
    }
    for alg in algorithms:
        bearer = [("authorization", "Bearer " + keys.token(alg))]
        cases[f"jwt {alg} cold"] = (run(jwt_stage(0), bearer), 500 if quick else 2000)
        cases[f"jwt {alg} cached"] = (run(jwt_stage(10_000), bearer), 20_000)
    cases["introspection cached"] = (
        run(introspection, [("authorization", "Bearer " + OPAQUE)]),
        20_000,
    )
    results: dict[str, Any] = {}
    for name, (call, iterations) in cases.items():
        spread = await _per_call_us(call, iterations // (4 if quick else 1), rounds)
        results[name] = vars(spread) | {"relative": spread.relative}
        print(f"  {name:<26} {spread.median:8.2f} us/request", flush=True)
    await introspection.close()
    return results


# ---- part 2: gateway req/s ------------------------------------------------------------------

ROUTES = {
    "empty": ("empty pipeline (no auth)", None),
    "api_key": ("API key", "key"),
    "jwt_rs256": ("JWT RS256, hot token", "rs256"),
    "jwt_es256": ("JWT ES256, hot token", "es256"),
    "introspection": ("introspection, cached answer", "opaque"),
}


def _gateway_config(temp: Path, port: int, admin: int, upstream: int, server: str) -> Path:
    jwks = temp / "jwks.json"
    config = temp / "dijk.yaml"
    key_digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    routes = ""
    for name, (_, method) in ROUTES.items():
        auth = {
            None: "[]",
            "key": "[api_key]",
            "rs256": "[jwt]",
            "es256": "[jwt]",
            "opaque": "[introspection]",
        }[method]
        routes += f"  - {{name: {name}, match: {{path_prefix: /{name}}}, upstream: fixed, "
        routes += f"auth: {auth}, strip_prefix: /{name}}}\n"
    config.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            listen: {{address: {HOST}, port: {port}}}
            admin: {{address: {HOST}, port: {admin}}}
            upstreams:
              fixed: {{url: "http://{HOST}:{upstream}"}}
            consumers:
              - {{name: bench, api_keys: [{{sha256: "{key_digest}"}}]}}
            auth:
              api_key: {{header: X-API-Key}}
              jwt: {{jwks_file: "{jwks}", issuer: "{ISSUER}", audience: {AUDIENCE},
                    algorithms: [RS256, ES256]}}
              introspection: {{url: "{server}", client_id: bench,
                              client_secret_env: BENCH_INTROSPECTION_SECRET, cache_ttl_s: 3600}}
            routes:
            """
        )
        + routes
    )
    return config


def run_wrk_with_header(
    wrk: str,
    url: str,
    header: str | None,
    *,
    duration_s: float,
    connections: int,
    pinning: Pinning,
) -> WrkResult:
    """The harness's wrk run, plus one request header (the credential)."""
    argv = [wrk, "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--latency"]
    if header is not None:
        argv += ["-H", header]
    done = subprocess.run(
        pinning.load([*argv, url]),
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def gateway_rounds(
    keys: Keys, server: AuthorizationServer, settings: argparse.Namespace, temp: Path
) -> dict[str, Any]:
    nginx = ensure_tool("nginx", "nginx")
    wrk = ensure_tool("wrk", "wrk")
    pinning = Pinning.choose(not settings.no_pin)
    headers = {
        "empty": None,
        "api_key": f"X-API-Key: {API_KEY}",
        "jwt_rs256": f"Authorization: Bearer {keys.token('RS256')}",
        "jwt_es256": f"Authorization: Bearer {keys.token('ES256')}",
        "introspection": f"Authorization: Bearer {OPAQUE}",
    }
    (temp / "jwks.json").write_text(json.dumps(keys.jwks()))
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
        config = _gateway_config(temp, port, admin, upstream_port, server.url)
        executable = ROOT / ".venv" / "bin" / "dijk"
        dijk = str(executable) if executable.exists() else shutil.which("dijk") or "dijk"
        env = dict(os.environ, BENCH_INTROSPECTION_SECRET=CLIENT_SECRET)
        gateway = services.start(
            Service(
                "dijk",
                pinning.target([dijk, "serve", "-c", str(config)]),
                temp / "dijk.log",
                cwd=temp,
                env=env,
            )
        )
        if problem := wait_until_serving(gateway, HOST, port, f"/empty{PATH}", BODY):
            raise SystemExit(f"dijk did not start: {problem}\n" + "\n".join(gateway.log_tail()))
        names = list(ROUTES)
        for number in range(settings.repeat):
            shift = number % len(names)
            order = names[shift:] + names[:shift]
            results: dict[str, Any] = {}
            for name in order:
                url = loopback_url(HOST, port, f"/{name}{PATH}")
                run_wrk_with_header(
                    wrk,
                    url,
                    headers[name],
                    duration_s=settings.warmup,
                    connections=settings.connections,
                    pinning=pinning,
                )
                cpu_before = gateway.cpu_seconds()
                result = run_wrk_with_header(
                    wrk,
                    url,
                    headers[name],
                    duration_s=settings.duration,
                    connections=settings.connections,
                    pinning=pinning,
                )
                cpu_after = gateway.cpu_seconds()
                record = result.to_json()
                if cpu_before is not None and cpu_after is not None and result.requests:
                    record["cpu_us_per_request"] = (cpu_after - cpu_before) / result.requests * 1e6
                results[name] = record
                flag = f"  ({result.errors} errors)" if result.errors else ""
                print(
                    f"  round {number + 1}/{settings.repeat}: {name:<14}"
                    f" {result.requests_per_s:>10,.0f} req/s{flag}",
                    flush=True,
                )
            rounds.append({"round": number + 1, "order": order, **results})
    return {"pinning": pinning.reason, "rounds": rounds}


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, (description, _) in ROUTES.items():
        measured = [r[name] for r in rounds if name in r]
        rps = Spread.of([m["requests_per_s"] for m in measured])
        ratios = [
            r[name]["requests_per_s"] / r["empty"]["requests_per_s"]
            for r in rounds
            if name in r and r.get("empty", {}).get("requests_per_s")
        ]
        cpu = [m["cpu_us_per_request"] for m in measured if m.get("cpu_us_per_request")]
        summary[name] = {
            "description": description,
            "requests_per_s": None if rps is None else vars(rps),
            "ratio_to_empty": statistics.median(ratios) if ratios else None,
            "cpu_us_per_request": statistics.median(cpu) if cpu else None,
            "p50_ms": statistics.median([m["p50_ms"] for m in measured if m["p50_ms"]] or [0]),
            "p99_ms": statistics.median([m["p99_ms"] for m in measured if m["p99_ms"]] or [0]),
            "errors": sum(m["errors"] for m in measured),
        }
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=1.0, help="wrk seconds before each run")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over all routes")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    parser.add_argument("--micro-only", action="store_true", help="skip the gateway part")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    settings = parser.parse_args(argv)
    if settings.quick:
        settings.repeat, settings.duration = 1, 2.0
    started_at, stamp = utc_timestamp()
    keys = Keys()
    server = AuthorizationServer().start()
    temp = Path(tempfile.mkdtemp(prefix="dijk-bench-auth-"))
    try:
        with sigterm_as_interrupt():
            print("per-request cost, in process (median of rounds):", flush=True)
            costs = asyncio.run(micro(keys, server, settings.quick))
            gateway: dict[str, Any] = {}
            if not settings.micro_only:
                print("\ngateway requests/s (wrk, loopback):", flush=True)
                gateway = gateway_rounds(keys, server, settings, temp)
    except KeyboardInterrupt:
        print("\ninterrupted: every started process was stopped", file=sys.stderr)
        return 130
    finally:
        server.stop()
        shutil.rmtree(temp, ignore_errors=True)

    rows = [
        [name, f"{value['median']:.2f}", f"{value['minimum']:.2f}-{value['maximum']:.2f}"]
        for name, value in costs.items()
    ]
    print("\n" + format_table(["method", "us/request", "min-max"], rows, right={1, 2}))
    summary: dict[str, Any] = {}
    if gateway:
        summary = summarise(gateway["rounds"])
        rows = []
        for name, entry in summary.items():
            rps = entry["requests_per_s"]
            rows.append(
                [
                    name,
                    "-" if rps is None else f"{rps['median']:,.0f}",
                    "-" if rps is None else f"{rps['minimum']:,.0f}-{rps['maximum']:,.0f}",
                    "-" if entry["ratio_to_empty"] is None else f"{entry['ratio_to_empty']:.2f}",
                    "-"
                    if entry["cpu_us_per_request"] is None
                    else f"{entry['cpu_us_per_request']:.1f}",
                    f"{entry['p99_ms']:.2f}",
                    str(entry["errors"]),
                ]
            )
        headers = ["route", "req/s", "min-max", "vs empty", "CPU us/req", "p99 ms", "errors"]
        print("\n" + format_table(headers, rows, right={1, 2, 3, 4, 5, 6}))
        print(f"\n{gateway['pinning']}; introspection server calls: {server.calls}")
    data = {
        "benchmark": "auth",
        "started_at": started_at,
        "machine": machine_info({}, ["dijk", "PyJWT", "cryptography", "aiohttp"]),
        "per_request_us": costs,
        "gateway": summary,
        "gateway_rounds": gateway.get("rounds", []),
    }
    for path in write_results(settings.results_dir, "auth", stamp, data):
        print(f"wrote {path}")
    errors = sum(entry["errors"] for entry in summary.values())
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
