"""Decision service benchmark: what asking Dijk costs a proxy that forwards by itself.

Four targets in front of the same fixed upstream (nginx answering 200 "ok"), each measured
by one wrk run with the same API key header and path, one after the other:

- ``nginx``: nginx reverse proxy, 1 worker (the ceiling);
- ``nginx_dijk``: nginx + ``auth_request`` to Dijk's decision listener (the shipped
  ``deploy/nginx/dijk-auth-request.conf``), Dijk with API key + rate limit + WAF (PL1);
- ``dijk_inline``: the same Dijk configuration as the proxy itself;
- ``nginx_crs``: nginx + ModSecurity v3 + OWASP CRS (PL1), as in ``bench/detection.py``.

Every target is one process of one worker (nginx ``worker_processes 1``; Dijk is one event
loop). Requests per CPU-second divide the requests by the CPU time the target's processes
used (nginx + Dijk for ``nginx_dijk``), so that a shared machine's idle cores do not flatter
anyone. Audit log off for Dijk (measured in ``bench/audit.py``).

    .venv/bin/python bench/decision.py                 # 10 s per target
    .venv/bin/python bench/decision.py --duration 2    # smoke run
    .venv/bin/python bench/decision.py --no-crs        # without ModSecurity (no apt-get)

Results: a table on stdout and ``bench/results/decision-<UTC stamp>.json``
(+ ``decision-latest.json``). nginx, wrk and the ModSecurity peer are Debian packages,
installed with apt-get when missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from bench._harness import (  # noqa: E402
    Pinning,
    Service,
    ServiceGroup,
    ensure_tool,
    format_table,
    free_port,
    machine_info,
    nginx_argv,
    parse_wrk,
    sigterm_as_interrupt,
    tool_version,
    utc_timestamp,
    wait_until_serving,
    write_results,
)

HOST = "127.0.0.1"
API_KEY = "bench-decision-key-0123456789abcdef"
PATH = "/api/items?q=hello&page=2"
EXAMPLE = REPO / "deploy" / "nginx" / "dijk-auth-request.conf"
RESULTS = REPO / "bench" / "results"

TARGETS = {
    "nginx": "nginx reverse proxy, 1 worker",
    "nginx_dijk": "nginx + auth_request to Dijk (API key + rate limit + WAF PL1)",
    "dijk_inline": "Dijk inline, same configuration",
    "nginx_crs": "nginx + ModSecurity v3 + OWASP CRS PL1, 1 worker",
}


def dijk_config(ports: dict[str, int]) -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        listen: {{address: {HOST}, port: {ports["dijk"]}}}
        admin: {{address: {HOST}, port: {ports["dijk_admin"]}}}
        audit: {{enabled: false}}
        upstreams:
          fixed: {{url: "http://{HOST}:{ports["backend"]}"}}
        consumers:
          - name: bench
            api_keys: [{{env: BENCH_DECISION_KEY}}]
            scopes: [items:read]
        auth:
          api_key: {{header: X-API-Key}}
        decision:
          listen: {{address: {HOST}, port: {ports["decision"]}}}
        routes:
          - name: items
            match: {{path_prefix: /}}
            upstream: fixed
            auth: [api_key]
            hide_credentials: true
            scopes: [items:read]
            rate_limit: [{{key: consumer, limit: 1000000000, per_s: 60}}]
            waf: {{mode: block, paranoia: 1}}
        """
    )


def nginx_http(ports: dict[str, int], crs_rules: Path | None) -> str:
    """The backend, the plain proxy, the auth_request proxy (the shipped example on bench
    ports) and, with ``crs_rules``, the ModSecurity proxy: one nginx.conf, one worker."""
    example = (
        EXAMPLE.read_text()
        .replace("127.0.0.1:8181", f"{HOST}:{ports['decision']}")
        .replace("127.0.0.1:8081", f"{HOST}:{ports['backend']}")
        .replace("listen 127.0.0.1:8000", f"listen {HOST}:{ports['nginx_dijk']}")
        .replace("keepalive 32;", "keepalive 64;")
    )
    crs = (
        f"""
        server {{
            listen {HOST}:{ports["nginx_crs"]};
            modsecurity on;
            modsecurity_rules_file {crs_rules};
            location / {{ proxy_pass http://backend; }}
        }}
        """
        if crs_rules is not None
        else ""
    )
    return f"""
        upstream backend {{ server {HOST}:{ports["backend"]}; keepalive 64; }}
        server {{
            listen {HOST}:{ports["backend"]};
            location / {{ return 200 "ok\\n"; }}
        }}
        server {{
            listen {HOST}:{ports["nginx"]};
            location / {{
                proxy_http_version 1.1;
                proxy_set_header Connection "";
                proxy_pass http://backend;
            }}
        }}
        {crs}
        {textwrap.indent(example, "        ")}
        """


def wait_ready(service: Service, admin_port: int, timeout_s: float = 60) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.exit_code is not None:
            raise SystemExit(f"dijk exited: {service.log_tail(3)}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{admin_port}/readyz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("dijk was not ready in time")


def run_wrk(wrk: str, port: int, duration: int, connections: int, pinning: Pinning) -> Any:
    import subprocess

    argv = pinning.load(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"X-API-Key: {API_KEY}",
            f"http://{HOST}:{port}{PATH}",
        ]
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()[:200]}")
    return parse_wrk(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per target")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-crs", action="store_true", help="skip nginx + ModSecurity + CRS")
    parser.add_argument("--no-pin", action="store_true", help="do not pin CPUs")
    args = parser.parse_args(argv)

    nginx = ensure_tool("nginx", "nginx")
    wrk = ensure_tool("wrk", "wrk")
    crs_rules: Path | None = None
    pinning = Pinning.choose(not args.no_pin)
    names = [name for name in TARGETS if not (args.no_crs and name == "nginx_crs")]
    ports = {
        name: free_port()
        for name in ("backend", "nginx", "nginx_dijk", "nginx_crs", "dijk", "dijk_admin")
    }
    ports["decision"] = free_port()
    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="dijk-bench-decision-") as temp_name,
        sigterm_as_interrupt(),
        ServiceGroup() as group,
    ):
        temp = Path(temp_name)
        load_module = ""
        if not args.no_crs:
            from bench.detection import MODSECURITY_MODULE, ensure_peer, peer_config

            ensure_peer()
            crs_state = temp / "crs"
            crs_state.mkdir()
            crs_rules = peer_config(crs_state, 1)
            load_module = f"load_module {MODSECURITY_MODULE};\n"
        nginx_cmd = nginx_argv(nginx, temp / "nginx", nginx_http(ports, crs_rules))
        if load_module:
            conf = Path(nginx_cmd[-1])
            conf.write_text(load_module + conf.read_text())
        config = temp / "dijk.yaml"
        config.write_text(dijk_config(ports))
        dijk_bin = REPO / ".venv" / "bin" / "dijk"
        env = {
            "BENCH_DECISION_KEY": API_KEY,
            "PATH": "/usr/bin:/bin",
            "HOME": str(temp),
        }
        proxy = group.start(Service("nginx", pinning.target(nginx_cmd), temp / "nginx.log"))
        dijk = group.start(
            Service(
                "dijk",
                pinning.target([str(dijk_bin), "serve", "-c", str(config)]),
                temp / "dijk.log",
                env=env,
            )
        )
        problem = wait_until_serving(proxy, HOST, ports["nginx"], "/", b"ok\n", 30)
        if problem is not None:
            raise SystemExit(f"nginx: {problem}")
        wait_ready(dijk, ports["dijk_admin"])
        for name in names:
            port = ports["dijk" if name == "dijk_inline" else name]
            before = (proxy.cpu_seconds() or 0.0, dijk.cpu_seconds() or 0.0)
            result = run_wrk(wrk, port, args.duration, args.connections, pinning)
            after = (proxy.cpu_seconds() or 0.0, dijk.cpu_seconds() or 0.0)
            used_nginx, used_dijk = after[0] - before[0], after[1] - before[1]
            # The nginx process also serves the backend (not counted apart); the Dijk process
            # is idle while nginx alone is measured.
            cpu = {
                "nginx": used_nginx,
                "nginx_dijk": used_nginx + used_dijk,
                "dijk_inline": used_dijk,
                "nginx_crs": used_nginx,
            }[name]
            results[name] = {
                "description": TARGETS[name],
                **result.to_json(),
                "cpu_seconds": round(cpu, 3),
                "requests_per_cpu_s": round(result.requests / cpu, 1) if cpu > 0 else None,
            }
            print(f"{name}: {result.requests_per_s:.0f} req/s", flush=True)
    print_table(results)
    stamp_iso, stamp = utc_timestamp()
    data = {
        "benchmark": "decision",
        "time": stamp_iso,
        "parameters": {
            "duration_s": args.duration,
            "connections": args.connections,
            "threads": 1,
            "path": PATH,
            "pinning": pinning.reason,
        },
        "machine": machine_info(
            {"nginx": [nginx, "-v"], "wrk": [wrk, "-v"]}, ["nginx-light", "nginx"]
        ),
        "tools": {"nginx": tool_version([nginx, "-v"]), "wrk": tool_version([wrk, "-v"])},
        "results": results,
        "derived": derived(results),
    }
    for path in write_results(RESULTS, "decision", stamp, data):
        print(f"wrote {path.relative_to(REPO)}")
    return 0


def derived(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    plain, asked = results.get("nginx"), results.get("nginx_dijk")
    if not plain or not asked:
        return {}
    ratio = None
    if plain.get("requests_per_cpu_s") and asked.get("requests_per_cpu_s"):
        ratio = round(asked["requests_per_cpu_s"] / plain["requests_per_cpu_s"], 3)
    added = None
    if plain.get("p99_ms") is not None and asked.get("p99_ms") is not None:
        added = round(asked["p99_ms"] - plain["p99_ms"], 3)
    return {"nginx_dijk_per_cpu_vs_nginx": ratio, "p99_added_by_decision_ms": added}


def print_table(results: dict[str, dict[str, Any]]) -> None:
    rows = []
    for name, result in results.items():
        rows.append(
            [
                name,
                f"{result['requests_per_s']:.0f}",
                f"{result['requests_per_cpu_s'] or 0:.0f}",
                f"{result['p50_ms']:.2f}" if result["p50_ms"] is not None else "-",
                f"{result['p99_ms']:.2f}" if result["p99_ms"] is not None else "-",
                str(result["errors"]),
                result["description"],
            ]
        )
    print(
        format_table(
            ["target", "req/s", "req/CPU-s", "p50 ms", "p99 ms", "errors", "what"],
            rows,
            {1, 2, 3, 4, 5},
        )
    )
    extra = derived(results)
    if extra:
        print(
            f"nginx + Dijk per CPU-second vs nginx plain: {extra['nginx_dijk_per_cpu_vs_nginx']}; "
            f"p99 added by the decision: {extra['p99_added_by_decision_ms']} ms"
        )


if __name__ == "__main__":
    sys.exit(main())
