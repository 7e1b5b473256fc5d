"""PII detection benchmark: precision/recall per category and the cost per response.

    .venv/bin/python bench/pii.py              # everything (about half a minute)
    .venv/bin/python bench/pii.py --quick      # smaller set, fewer timing runs

Prints, and writes to ``bench/results/pii-latest.json``:

1. Precision and recall per category on the labelled evaluation set of
   ``dijk.detect.pii_evalset`` (generated in code, deterministic for ``--seed``: valid
   values and look-alikes such as IBANs with a wrong check digit, 9-digit numbers
   failing the 11-proof, order and invoice numbers, timestamps, versions, UUIDs).
   A finding counts only with its exact span.
2. The median cost of scanning a typical ~2 KB JSON response (a Polder Bank list of
   customers with name, e-mail, phone, IBAN, BSN, date of birth, postcode), of masking
   it, and of both, over many runs. ``scan_json_cold`` forgets everything first (the
   detector remembers short values it has seen and library validations); the other
   rows repeat one document, as an API serving the same customers does.
3. The worst cost per character on adversarial text (crafted to make the scanners work
   hardest), to show the linear-time bound has a small constant; one text is random
   (card-like groups of random digits), so no memo or library cache can help. And the
   cost per byte of adversarial JSON documents (many distinct short values, each a
   separate scan), the shape a hostile upstream would choose; the detector forgets
   everything before each, so every validation the budget allows runs.
4. With ``--gateway`` (needs nginx and wrk, installed with apt-get if missing): requests/s
   of ``dijk serve`` in front of an nginx upstream that returns that response, with the
   route's ``privacy:`` off, recording only, masking, and hashing, beside nginx answering
   directly (the ceiling), in interleaved wrk rounds (bench/_harness.py conventions:
   median and min-max, target and load pinned to different CPUs when possible, the
   gateway's CPU time per request, which survives a noisy machine better than req/s).

Peer, measured in the same run on the same samples: a **pattern-only baseline**, the kind
of regular expressions DLP rule sets and log scrubbers commonly use (no checksums, no
field context; listed in ``BASELINE_PATTERNS``). It is a reference point for what
validation buys, not a product. Microsoft Presidio, the obvious open-source peer, needs
spaCy models that cannot be installed here; its hook would sit next to ``baseline``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from dijk.detect.masking import Masker, Strategy  # noqa: E402
from dijk.detect.pii import Category, PiiDetector  # noqa: E402
from dijk.detect.pii_evalset import Sample, Score, evaluate, generate_samples  # noqa: E402

RESULTS = REPO / "bench" / "results" / "pii-latest.json"

BASELINE_PATTERNS: dict[Category, re.Pattern[str]] = {
    Category.EMAIL: re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+\w"),
    Category.PHONE: re.compile(r"(?:\+31|0031|0)[ -]?[1-9](?:[ -]?\d){7,8}\b"),
    Category.IBAN: re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
    Category.BSN: re.compile(r"\b\d{9}\b"),
    Category.CARD: re.compile(r"\b\d{4}(?:[ -]?\d{4}){2}[ -]?\d{3,7}\b"),
    Category.IP: re.compile(
        r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9a-fA-F]{1,4}:){2,7}:?[0-9a-fA-F]{1,4}\b"
    ),
    Category.DATE_OF_BIRTH: re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{2}[-/.]\d{2}[-/.]\d{4}\b"),
    Category.POSTCODE: re.compile(r"\b[1-9]\d{3} ?[A-Z]{2}\b"),
    Category.SECRET: re.compile(
        r"eyJ[\w-]+\.[\w-]+\.[\w-]*|AKIA[0-9A-Z]{16}|gh[pousr]_\w{36}|xox[bpars]-[\w-]+"
        r"|sk_live_\w+|AIza[\w-]{35}|glpat-[\w-]{20}"
        r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
    ),
}


def baseline_scores(samples: Iterable[Sample]) -> dict[Category, Score]:
    """The pattern-only baseline, scored exactly like the detector (exact spans)."""
    scores = {category: Score() for category in Category}
    for sample in samples:
        found = Counter(
            (category, match.group())
            for category, pattern in BASELINE_PATTERNS.items()
            for match in pattern.finditer(sample.text)
        )
        expected = Counter(sample.expected)
        for (category, _), count in (found & expected).items():
            scores[category].true_positives += count
        for (category, _), count in (found - expected).items():
            scores[category].false_positives += count
        for (category, _), count in (expected - found).items():
            scores[category].false_negatives += count
    return scores


def polder_bank_response(target_bytes: int = 2048) -> list[dict[str, Any]]:
    """A `GET /api/v1/accounts`-style list of customers of about `target_bytes`."""
    customers = _customers()
    response: list[dict[str, Any]] = []
    for customer in customers:
        if len(json.dumps([*response, customer]).encode()) > target_bytes:
            break
        response.append(customer)
    return response


def _customers() -> list[dict[str, Any]]:
    try:
        from dijk.demo.data import generate_customers
    except ImportError:  # the demo data module is not there: same shape, made here
        return [
            {
                "id": index,
                "name": f"Klant {index}",
                "email": f"klant{index}@example.nl",
                "phone": f"+316{12345670 + index}",
                "iban": "NL91ABNA0417164300",
                "bsn": "111222333",
                "balance": "1234.56",
                "date_of_birth": "1985-03-14",
                "postcode": "1012 AB",
            }
            for index in range(1, 40)
        ]
    return [dict(customer.to_public_dict()) for customer in generate_customers(40)]


def median_microseconds(function: Callable[[], object], runs: int) -> dict[str, float]:
    """Wall-clock median/min/max and CPU-time median over `runs` calls, after warm-up.

    CPU time (`time.process_time`) is given too because on a shared machine the wall
    clock also counts time the process waited for a core.
    """
    for _ in range(min(20, runs)):
        function()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        function()
        cpu.append((time.process_time() - cpu_start) * 1e6)
        wall.append((time.perf_counter() - wall_start) * 1e6)
    return {
        "median": round(statistics.median(wall), 1),
        "min": round(min(wall), 1),
        "max": round(max(wall), 1),
        "cpu_median": round(statistics.median(cpu), 1),
    }


def _random_card_groups(size: int) -> str:
    """`4xxx 4xxx ...`: every group starts a Visa-length candidate, none repeats."""
    rng = random.Random(5)
    groups = (f"4{rng.randrange(1000):03d}" for _ in range(size // 5 + 1))
    return " ".join(groups)[:size]


ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "digit groups `0 0 0`": lambda size: ("0 " * size)[:size],
    "parenthesised zeros": lambda size: ("(0)" * size)[:size],
    "IBAN starts `NL91 `": lambda size: ("NL91 " * size)[:size],
    "grouped IBANs": lambda size: ("NL91 ABNA 0417 1643 00 " * size)[:size],
    "at signs `a@a@`": lambda size: ("a@" * size)[:size],
    "dotted digits `1.1.`": lambda size: ("1." * size)[:size],
    "card groups": lambda size: ("4111 " * size)[:size],
    "phone-like groups": lambda size: ("01 23 45 67 89 " * size)[:size],
    "jwt prefixes": lambda size: ("eyJ." * size)[:size],
    "hex and colons": lambda size: ("a:b:" * size)[:size],
    "card groups, random digits": _random_card_groups,
}


def _distinct_phones(size: int) -> list[str]:
    rng = random.Random(6)
    return [f"06 {rng.randrange(10**8):08d}" for _ in range(size // 14)]


def _keys_with_digits(size: int) -> dict[str, int]:
    rng = random.Random(7)
    return {f"k{rng.randrange(10**8):08d}": 1 for _ in range(size // 16)}


ADVERSARIAL_JSON: dict[str, Callable[[int], Any]] = {
    "distinct phone-like strings": _distinct_phones,
    "distinct keys with digits": _keys_with_digits,
}


def adversarial_json_costs(detector: PiiDetector, size: int) -> dict[str, float]:
    """CPU nanoseconds per byte of JSON for documents of about `size` bytes, each scanned
    by a detector that has forgotten everything (no memo, no library cache)."""
    costs: dict[str, float] = {}
    for name, make in ADVERSARIAL_JSON.items():
        document = make(size)
        length = len(json.dumps(document))
        seconds = []
        for _ in range(2):
            detector.forget()
            start = time.process_time()
            detector.scan_json(document)
            seconds.append(time.process_time() - start)
        costs[name] = min(seconds) / length * 1e9
    return costs


def adversarial_costs(detector: PiiDetector, size: int) -> dict[str, float]:
    """CPU nanoseconds per character on each adversarial text of `size` characters."""
    costs: dict[str, float] = {}
    for name, make in ADVERSARIAL.items():
        text = make(size)
        best = min(_cpu_seconds(detector, text) for _ in range(2))
        costs[name] = best / len(text) * 1e9
    return costs


def _cpu_seconds(detector: PiiDetector, text: str) -> float:
    start = time.process_time()
    detector.scan_text(text)
    return time.process_time() - start


# --- gateway requests/s with privacy off, recording, masking, hashing ----------------------

HOST = "127.0.0.1"
GATEWAY_PATH = "/api/v1/accounts"
GATEWAY_MODES: dict[str, str | None] = {
    "nginx direct (ceiling)": None,
    "gateway, privacy off": "",
    "gateway, record only": "privacy: {}",
    "gateway, mask": "privacy: {mask_response: true}",
    "gateway, hash": "privacy: {mask_response: true, strategy: hash}",
}


def _nginx_argv(nginx: str, state: Path, port: int, body_file: Path) -> list[str]:
    state.mkdir(parents=True, exist_ok=True)
    conf = state / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process on;
worker_processes 1;
pid {state}/nginx.pid;
error_log {state}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {state}/client_body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {{
        listen {HOST}:{port} backlog=4096;
        location = {GATEWAY_PATH} {{
            default_type application/json;
            alias {body_file};
        }}
    }}
}}
"""
    )
    return [nginx, "-p", str(state), "-e", str(state / "error.log"), "-c", str(conf)]


def _gateway_yaml(port: int, admin_port: int, upstream_port: int, privacy: str) -> str:
    route_privacy = f"\n    {privacy}" if privacy else ""
    return f"""version: 1
listen: {{address: {HOST}, port: {port}}}
admin: {{address: {HOST}, port: {admin_port}}}
audit: {{enabled: false, url: "sqlite:///./audit.db"}}
upstreams:
  bank: {{url: "http://{HOST}:{upstream_port}"}}
routes:
  - name: accounts
    match: {{path: {GATEWAY_PATH}}}
    upstream: bank{route_privacy}
"""


def _wait_for_json(service: Any, port: int, timeout_s: float = 30.0) -> str | None:
    """Poll until GET answers 200 with a JSON body (masked bodies differ per mode)."""
    import http.client

    deadline = time.monotonic() + timeout_s
    problem = "never answered"
    while time.monotonic() < deadline:
        if service.exit_code is not None:
            return f"exited with code {service.exit_code}: {service.log_tail(1)}"
        connection = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            connection.request("GET", GATEWAY_PATH)
            response = connection.getresponse()
            data = response.read()
            if response.status == 200:
                json.loads(data)
                return None
            problem = f"answered {response.status}"
        except (OSError, ValueError, http.client.HTTPException) as error:
            problem = repr(error)
        finally:
            connection.close()
        time.sleep(0.2)
    return problem


def run_gateway_bench(args: argparse.Namespace, body: bytes) -> dict[str, Any]:
    """Interleaved wrk rounds, one gateway per privacy mode plus nginx direct."""
    import tempfile

    sys.path.insert(0, str(REPO))
    from bench._harness import (
        Pinning,
        Service,
        ServiceGroup,
        Spread,
        ensure_tool,
        free_port,
        run_wrk,
    )

    nginx = ensure_tool("nginx", "nginx")
    wrk = ensure_tool("wrk", "wrk")
    pinning = Pinning.choose(not args.no_pin)
    executable = REPO / ".venv" / "bin" / "dijk"
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in GATEWAY_MODES}
    with (
        tempfile.TemporaryDirectory(prefix="dijk-bench-pii-") as directory,
        ServiceGroup() as group,
    ):
        temp = Path(directory)
        temp.chmod(0o755)  # nginx workers (user nobody when started as root) read the body
        body_file = temp / "accounts.json"
        body_file.write_bytes(body)
        body_file.chmod(0o644)
        upstream_port = free_port()
        nginx_argv = pinning.load(_nginx_argv(nginx, temp / "nginx", upstream_port, body_file))
        upstream = Service("nginx", nginx_argv, temp / "nginx.log")
        group.start(upstream)
        services: dict[str, Any] = {}
        ports: dict[str, int] = {}
        for index, (mode, privacy) in enumerate(GATEWAY_MODES.items()):
            if privacy is None:
                services[mode], ports[mode] = upstream, upstream_port
                continue
            folder = temp / f"gateway-{index}"
            folder.mkdir()
            port, admin_port = free_port(), free_port()
            config = folder / "dijk.yaml"
            config.write_text(_gateway_yaml(port, admin_port, upstream_port, privacy))
            service = Service(
                mode,
                pinning.target([str(executable), "serve", "-c", str(config)]),
                folder / "gateway.log",
                cwd=folder,
            )
            group.start(service)
            services[mode], ports[mode] = service, port
        for mode, service in services.items():
            problem = _wait_for_json(service, ports[mode])
            if problem is not None:
                raise SystemExit(f"{mode} is not serving: {problem}")
        for round_number in range(1, args.gateway_rounds + 1):
            for mode, service in services.items():
                url = f"http://{HOST}:{ports[mode]}{GATEWAY_PATH}"
                options = {"connections": args.connections, "threads": 1, "pinning": pinning}
                run_wrk(wrk, url, duration_s=1, **options)  # warm-up
                cpu_before = service.cpu_seconds()
                result = run_wrk(wrk, url, duration_s=args.gateway_duration, **options)
                cpu_after = service.cpu_seconds()
                row = result.to_json()
                if cpu_before is not None and cpu_after is not None and result.requests:
                    row["cpu_us_per_request"] = round(
                        (cpu_after - cpu_before) / result.requests * 1e6, 1
                    )
                runs[mode].append(row)
                print(
                    f"round {round_number}: {mode:<24} {result.requests_per_s:>9,.0f} req/s"
                    f"  p99 {result.p99_ms} ms  errors {result.errors}",
                    flush=True,
                )
    summary: dict[str, Any] = {}
    baseline = Spread.of([run["requests_per_s"] for run in runs["gateway, privacy off"]])
    for mode, mode_runs in runs.items():
        spread = Spread.of([run["requests_per_s"] for run in mode_runs])
        assert spread is not None
        cpu = [run["cpu_us_per_request"] for run in mode_runs if "cpu_us_per_request" in run]
        p99 = [run["p99_ms"] for run in mode_runs if run["p99_ms"] is not None]
        summary[mode] = {
            "requests_per_s_median": round(spread.median),
            "requests_per_s_min": round(spread.minimum),
            "requests_per_s_max": round(spread.maximum),
            "vs_privacy_off": round(spread.median / baseline.median - 1, 4) if baseline else None,
            "p99_ms_median": sorted(p99)[len(p99) // 2] if p99 else None,
            "cpu_us_per_request_median": sorted(cpu)[len(cpu) // 2] if cpu else None,
            "errors": sum(run["errors"] for run in mode_runs),
            "rounds": mode_runs,
        }
    return {
        "response_bytes": len(body),
        "pinning": pinning.reason,
        "connections": args.connections,
        "duration_s": args.gateway_duration,
        "modes": summary,
    }


def print_gateway_table(gateway: dict[str, Any]) -> None:
    print(f"\nGateway, GET {GATEWAY_PATH} ({gateway['response_bytes']} bytes of customers)")
    print(
        f"{'mode':<24} {'req/s':>8} {'min-max':>15} {'vs off':>8} {'p99 ms':>7} {'CPU us/req':>11}"
    )
    for mode, row in gateway["modes"].items():
        change = row["vs_privacy_off"]
        shown = "" if change is None or "off" in mode or "nginx" in mode else f"{change:+.1%}"
        spread = f"{row['requests_per_s_min']:,}-{row['requests_per_s_max']:,}"
        print(
            f"{mode:<24} {row['requests_per_s_median']:>8,} {spread:>15} {shown:>8}"
            f" {row['p99_ms_median']!s:>7} {row['cpu_us_per_request_median']!s:>11}"
        )
    print(f"wrk -c{gateway['connections']} -d{gateway['duration_s']}s; {gateway['pinning']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=60, help="evaluation set size")
    parser.add_argument("--runs", type=int, default=500, help="timed runs per latency")
    parser.add_argument("--quick", action="store_true", help="20 rounds, 100 runs")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--gateway", action="store_true", help="also measure gateway req/s")
    parser.add_argument("--gateway-rounds", type=int, default=3)
    parser.add_argument("--gateway-duration", type=int, default=5, help="wrk seconds per run")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c for the gateway")
    parser.add_argument("--no-pin", action="store_true", help="do not pin CPUs with taskset")
    args = parser.parse_args(argv)
    rounds, runs = (20, 100) if args.quick else (args.rounds, args.runs)

    detector = PiiDetector()
    samples = generate_samples(seed=args.seed, rounds=rounds)
    started = time.perf_counter()
    scores = evaluate(detector, samples)
    evaluation_seconds = time.perf_counter() - started
    baseline = baseline_scores(samples)

    load = os.getloadavg()[0]
    print(f"PII detection on {len(samples)} generated samples (seed {args.seed})")
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} (timings below suffer if high)")
    print(f"{'category':<15} {'dijk P':>7} {'dijk R':>7} {'tp':>5} {'fp':>4} {'fn':>4}"
          f" | {'regex P':>7} {'regex R':>7}")  # fmt: skip
    categories: dict[str, dict[str, Any]] = {}
    for category in Category:
        ours, theirs = scores[category], baseline[category]
        print(
            f"{category.value:<15} {ours.precision:7.3f} {ours.recall:7.3f}"
            f" {ours.true_positives:5d} {ours.false_positives:4d} {ours.false_negatives:4d}"
            f" | {theirs.precision:7.3f} {theirs.recall:7.3f}"
        )
        categories[category.value] = {
            "precision": round(ours.precision, 4),
            "recall": round(ours.recall, 4),
            "true_positives": ours.true_positives,
            "false_positives": ours.false_positives,
            "false_negatives": ours.false_negatives,
            "false_positive_notes": dict(ours.false_positive_notes),
            "false_negative_notes": dict(ours.false_negative_notes),
            "baseline_precision": round(theirs.precision, 4),
            "baseline_recall": round(theirs.recall, 4),
        }

    document = polder_bank_response()
    body = json.dumps(document)
    matches = detector.scan_json(document)
    masker = Masker(strategy=Strategy.MASK)
    hasher = Masker(strategy=Strategy.HASH, key=b"bench-key-0123456789abcdef")

    def cold_scan() -> object:
        detector.forget()  # a document never seen before: no memo, no validation cache
        return detector.scan_json(document)

    latency = {
        "scan_json_cold": median_microseconds(cold_scan, runs),
        "scan_json": median_microseconds(lambda: detector.scan_json(document), runs),
        "mask_json": median_microseconds(lambda: masker.mask_json(document, matches), runs),
        "scan_and_mask": median_microseconds(
            lambda: masker.mask_json(document, detector.scan_json(document)), runs
        ),
        "scan_and_hash": median_microseconds(
            lambda: hasher.mask_json(document, detector.scan_json(document)), runs
        ),
        "baseline_regex_on_body": median_microseconds(
            lambda: [p.findall(body) for p in BASELINE_PATTERNS.values()], runs
        ),
    }
    found = Counter(match.category.value for match in matches)
    print(
        f"\nTypical response: {len(body.encode())} bytes, {len(document)} customers,"
        f" {len(matches)} findings {dict(found)}"
    )
    header = f"{'operation':<24} {'median us':>10} {'min':>8} {'max':>9} {'cpu median':>11}"
    print(f"{header}  ({runs} runs)")
    for name, timing in latency.items():
        print(
            f"{name:<24} {timing['median']:10.1f} {timing['min']:8.1f} {timing['max']:9.1f}"
            f" {timing['cpu_median']:11.1f}"
        )

    size = 16_000 if args.quick else 64_000
    adversarial = adversarial_costs(detector, size)
    print(f"\nAdversarial text, {size} characters: CPU cost per character")
    for name, nanoseconds in adversarial.items():
        print(f"{name:<28} {nanoseconds / 1000:8.2f} us/char")
    adversarial_json = adversarial_json_costs(detector, size)
    print(f"\nAdversarial JSON, about {size} bytes, nothing remembered: CPU cost per byte")
    for name, nanoseconds in adversarial_json.items():
        print(f"{name:<28} {nanoseconds / 1000:8.2f} us/byte")

    result = {
        "benchmark": "pii",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "seed": args.seed,
        "samples": len(samples),
        "lookalikes": sum(1 for sample in samples if not sample.expected),
        "evaluation_seconds": round(evaluation_seconds, 3),
        "categories": categories,
        "baseline_patterns": {c.value: p.pattern for c, p in BASELINE_PATTERNS.items()},
        "typical_response": {
            "bytes": len(body.encode()),
            "customers": len(document),
            "findings": dict(found),
            "runs": runs,
            "microseconds": latency,
        },
        "adversarial_characters": size,
        "adversarial_ns_per_char": {name: round(value, 1) for name, value in adversarial.items()},
        "adversarial_json_ns_per_byte": {
            name: round(value, 1) for name, value in adversarial_json.items()
        },
    }
    if args.gateway:
        result["gateway"] = run_gateway_bench(args, body.encode())
        print_gateway_table(result["gateway"])
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
