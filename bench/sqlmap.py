"""sqlmap through the gateway: which of its payloads reach the upstream?

Starts the demo bank upstream with a request log (every request that reaches it, one
JSON line each), the gateway in front of it with the demo configuration, and runs sqlmap
(PyPI ``sqlmap``, pinned, installed into its own virtual environment under
``~/.cache/dijk-bench``; never a dependency of Dijk) with several tamper-script sets
against four injection points:

* the query parameter ``q`` of ``GET /api/v1/search``;
* the JSON field ``subject`` of ``POST /api/v1/tickets``;
* the GraphQL variable ``q`` of ``POST /graphql``;
* a request header (``X-Request-Note``) on ``GET /api/v1/search``.

The upstream's own log is the ground truth: a payload counts as passed when the upstream
received it. Probes that are not attacks by themselves (a lone quote or bracket after the
value, a bare number or word) are not counted, but listed. Each run is bounded (level,
risk, techniques and a wall-clock limit per run), so the whole script takes a few
minutes.

    .venv/bin/python bench/sqlmap.py                     # the default, bounded run
    .venv/bin/python bench/sqlmap.py --seconds 20 --tampers none
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from bench._harness import free_port, utc_timestamp  # noqa: E402

SQLMAP = "1.10.10"
VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dijk-bench" / "sqlmap"
DIJK = [str(REPO / ".venv" / "bin" / "dijk")]
TAMPER_SETS = {
    "none": "",
    "comments": "space2comment,randomcase,between",
    "encodings": "charencode,equaltolike,space2plus",
    "mysql": "versionedmorekeywords,space2mysqldash,apostrophenullencode",
}
BASE_VALUE = "kees"
NOTE_HEADER = "X-Request-Note"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    scope: str  # read | write
    argv: tuple[str, ...]  # sqlmap's target arguments
    headers: tuple[str, ...] = ()


def points(base: str) -> list[Point]:
    search = f"{base}/api/v1/search?q={BASE_VALUE}"
    return [
        Point("query q", "read", ("-u", search.replace(BASE_VALUE, BASE_VALUE + "*"))),
        Point(
            "json subject",
            "write",
            (
                "-u",
                f"{base}/api/v1/tickets",
                "--data",
                json.dumps({"subject": BASE_VALUE + "*", "description": "printer"}),
            ),
            ("Content-Type: application/json",),
        ),
        Point(
            "graphql variable",
            "read",
            (
                "-u",
                f"{base}/graphql",
                "--data",
                json.dumps(
                    {
                        "query": "query S($q: String!) { search(q: $q) { id } }",
                        "variables": {"q": BASE_VALUE + "*"},
                    }
                ),
            ),
            ("Content-Type: application/json",),
        ),
        Point("header", "read", ("-u", search), (f"{NOTE_HEADER}: {BASE_VALUE}*",)),
    ]


# -- the demo upstream with a request log -------------------------------------------------


def serve_recording_upstream(port: int, log: Path, data_dir: Path) -> None:
    """Run the demo bank upstream, appending every request it receives to ``log``."""
    from aiohttp import web

    from dijk.demo.upstream import create_app

    app = create_app(data_dir)

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        entry = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "note": request.headers.get(NOTE_HEADER),
            "body": body.decode("utf-8", "replace")[:8000],
        }
        with log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(record)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- sqlmap ------------------------------------------------------------------------------


def ensure_sqlmap() -> Path:
    script = VENV / "bin" / "sqlmap"
    if script.exists():
        done = subprocess.run(
            [str(VENV / "bin" / "pip"), "show", "sqlmap"], capture_output=True, text=True
        )
        if f"Version: {SQLMAP}" in done.stdout:
            return script
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", f"sqlmap=={SQLMAP}"], check=True)
    return script


def run_sqlmap(
    sqlmap: Path, point: Point, key: str, tampers: str, workdir: Path, seconds: float
) -> int:
    """Run sqlmap on one injection point; the number of requests it sent."""
    slug = re.sub(r"\W+", "-", point.name)
    traffic = workdir / f"traffic-{slug}-{tampers or 'none'}.txt"
    argv = [
        str(sqlmap),
        *point.argv,
        "--headers",
        "\n".join([*point.headers, f"X-API-Key: {key}"]),
        # sqlmap's own User-Agent is refused as a scanner before any payload is read;
        # an attacker sends a browser's, so the payloads are what gets judged here.
        "--user-agent",
        USER_AGENT,
        "--batch",
        "--level=3",
        "--risk=1",
        "--technique=BEUST",
        "--time-sec=1",
        "--timeout=5",
        "--retries=0",
        "--flush-session",
        "--disable-coloring",
        f"--output-dir={workdir / 'sqlmap'}",
        "-t",
        str(traffic),
    ]
    if tampers:
        argv.append(f"--tamper={tampers}")
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=seconds,
            check=False,
        )
    if not traffic.exists():
        return 0
    return traffic.read_text(encoding="utf-8", errors="replace").count("HTTP request [#")


# -- reading the upstream's log ------------------------------------------------------------

_CLASSES = (
    ("time-based", re.compile(r"(?i)sleep|benchmark|waitfor|pg_sleep|dbms_pipe|randomblob")),
    ("union", re.compile(r"(?i)union")),
    (
        "error-based",
        re.compile(
            r"(?i)extractvalue|updatexml|convert\s*\(|cast\s*\(|exp\s*\(|floor\s*\(|gtid_|"
            r"json_keys|xmltype|ctxsys|utl_inaddr|geometrycollection|procedure\s+analyse"
        ),
    ),
    ("stacked", re.compile(r";\s*(?i:select|declare|waitfor|begin|exec)")),
    (
        "boolean",
        re.compile(r"(?i)\b(?:and|or|rlike|like|elt|make_set|iif|case\s+when|xor)\b|&&|\|\|"),
    ),
)


def payload_class(value: str) -> str:
    for name, pattern in _CLASSES:
        if pattern.search(value):
            return name
    return "other"


_CALL_OR_COMMENT = re.compile(r"[A-Za-z_]{2,}\s*\(|--|#|/\*")


def probe(value: str) -> bool:
    """Not an attack by itself: sqlmap's heuristic probes (the value with quotes,
    brackets and random letters around it, ``kees(.'.),)``, ``kees'LRoIcj<'">)lJw``), a
    bare number or word: no SQL keyword, function call or comment."""
    rest = re.sub(BASE_VALUE, "", value, flags=re.IGNORECASE)  # randomcase: KeEs(
    return payload_class(rest) == "other" and not _CALL_OR_COMMENT.search(rest)


def injected(entry: dict[str, Any]) -> tuple[str, str] | None:
    """(injection point, value) of one logged upstream request."""
    if entry["path"] == "/api/v1/search":
        if entry.get("note") is not None:
            return "header", entry["note"]
        return "query q", entry["query"].get("q", "")
    try:
        body = json.loads(entry["body"])
    except ValueError:
        return None
    if entry["path"] == "/api/v1/tickets" and isinstance(body, dict):
        return "json subject", str(body.get("subject", ""))
    if entry["path"] == "/graphql" and isinstance(body, dict):
        variables = body.get("variables")
        if isinstance(variables, dict):
            return "graphql variable", str(variables.get("q", ""))
    return None


def read_log(log: Path) -> dict[str, dict[str, list[str]]]:
    """Per injection point: passed payloads and probes (deduplicated, in order), and the
    requests that carried the original value (proof that the point reaches the upstream)."""
    found: dict[str, dict[str, list[str]]] = {}
    if not log.exists():
        return found
    for line in log.read_text(encoding="utf-8").splitlines():
        hit = injected(json.loads(line))
        if hit is None:
            continue
        point, value = hit
        bucket = found.setdefault(point, {"payloads": [], "probes": [], "original": []})
        if value == BASE_VALUE:
            bucket["original"].append(value)
            continue
        kind = "probes" if probe(value) else "payloads"
        if value not in bucket[kind]:
            bucket[kind].append(value)
    return found


# -- the run -----------------------------------------------------------------------------


def demo_config(port: int, upstream_port: int, admin_port: int, state: Path) -> Path:
    text = (REPO / "src" / "dijk" / "demo" / "config.yaml").read_text(encoding="utf-8")
    text = text.replace("http://127.0.0.1:8081", f"http://127.0.0.1:{upstream_port}")
    text = text.replace("port: 8080", f"port: {port}").replace("port: 9090", f"port: {admin_port}")
    text = text.replace("sqlite:///./.dijk/audit.db", f"sqlite:///{state / 'audit.db'}")
    path = state / "dijk.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def wait_for(port: int, timeout_s: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="wall clock per sqlmap run")
    parser.add_argument(
        "--tampers", default=",".join(TAMPER_SETS), help="tamper sets: " + ", ".join(TAMPER_SETS)
    )
    parser.add_argument(
        "--output", type=Path, default=REPO / "bench" / "results" / "sqlmap-latest.json"
    )
    parser.add_argument("--record-upstream", nargs=3, metavar=("PORT", "LOG", "DATA"))
    args = parser.parse_args(argv)
    if args.record_upstream:
        port, log, data = args.record_upstream
        serve_recording_upstream(int(port), Path(log), Path(data))
        return 0
    sqlmap = ensure_sqlmap()
    moment, _ = utc_timestamp()
    sent: Counter[str] = Counter()
    found: dict[str, dict[str, list[str]]] = {}
    # A fresh gateway and upstream per injection point: the gateway's abuse defences
    # remember a client that sent thousands of attacks, and the next point would only
    # measure that.
    for point_index in range(len(points(""))):
        with tempfile.TemporaryDirectory(prefix="dijk-sqlmap-") as temp:
            found.update(run_point(sqlmap, point_index, Path(temp), args, sent))
    report(found, sent, args, moment)
    return 0


def run_point(
    sqlmap: Path, point_index: int, state: Path, args: argparse.Namespace, sent: Counter[str]
) -> dict[str, dict[str, list[str]]]:
    """Run every tamper set against one injection point behind a new gateway."""
    log = state / "upstream.jsonl"
    upstream_port, port, admin_port = free_port(), free_port(), free_port()
    keys = {"read": "dk_read_" + secrets.token_urlsafe(16)}
    keys["write"] = "dk_write_" + secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "DIJK_DEMO_KEY_READ": keys["read"],
        "DIJK_DEMO_KEY_WRITE": keys["write"],
        "DIJK_ADMIN_TOKEN": secrets.token_urlsafe(24),
    }
    upstream = subprocess.Popen(
        [sys.executable, __file__, "--record-upstream", str(upstream_port), str(log), str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with (state / "gateway.log").open("w") as gateway_log:
        gateway = subprocess.Popen(
            [*DIJK, "serve", "-c", str(demo_config(port, upstream_port, admin_port, state))],
            stdout=subprocess.DEVNULL,
            stderr=gateway_log,
            env=env,
            cwd=state,
        )
        point = points(f"http://127.0.0.1:{port}")[point_index]
        try:
            wait_for(upstream_port)
            wait_for(port)
            for name in args.tampers.split(","):
                count = run_sqlmap(
                    sqlmap, point, keys[point.scope], TAMPER_SETS[name], state, args.seconds
                )
                sent[point.name] += count
                print(f"{point.name:17} tampers={name:10} requests={count}", file=sys.stderr)
        finally:
            for process in (gateway, upstream):
                process.terminate()
                process.wait(10)
    return read_log(log)


def report(
    found: dict[str, dict[str, list[str]]],
    sent: Counter[str],
    args: argparse.Namespace,
    moment: str,
) -> None:
    print(f"\nsqlmap {SQLMAP} through Dijk (demo, PL1), {args.seconds:g} s per run, "
          f"tamper sets {args.tampers}\n")  # fmt: skip
    print(
        f"{'injection point':17} {'sent':>6} {'original':>8} {'passed':>7} {'probes':>7}"
        "  passed by class"
    )
    result: dict[str, Any] = {"time": moment, "sqlmap": SQLMAP, "points": {}}
    for point in ("query q", "json subject", "graphql variable", "header"):
        bucket = found.get(point, {"payloads": [], "probes": [], "original": []})
        classes = Counter(payload_class(value) for value in bucket["payloads"])
        print(
            f"{point:17} {sent[point]:6d} {len(bucket['original']):8d} "
            f"{len(bucket['payloads']):7d} {len(bucket['probes']):7d}  {dict(classes)}"
        )
        result["points"][point] = {
            "sent": sent[point],
            "original_value_requests": len(bucket["original"]),
            "passed": bucket["payloads"],
            "probes": bucket["probes"],
            "classes": dict(classes),
        }
    for point, bucket in found.items():
        for value in bucket["payloads"][:40]:
            print(f"  passed  {point:17} {payload_class(value):12} {value[:150]!r}")
        for value in bucket["probes"][:10]:
            print(f"  probe   {point:17} {value[:150]!r}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
