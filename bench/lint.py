"""``dijk lint`` beside Spectral + the OWASP ruleset, on the same real OpenAPI documents.

Both tools lint each corpus document (``../shared/corpora/openapi/specs``; ``DIJK_CORPORA``
overrides the corpora folder); the script prints, side by side:

- **findings per rule family**: each Spectral OWASP rule and each Dijk rule is mapped to a
  family (``FAMILIES``); findings and documents flagged per family, per tool;
- **agreement**: per family, the share of documents where both tools agree that the family
  is present or absent;
- **time and memory**: Dijk as one ``dijk lint`` process over all documents (how CI runs
  it); Spectral as one process per document (how it was measured before: one document per
  ``spectral lint``), each with its peak RSS. Spectral's node start-up is measured on a
  one-path document and reported so it can be subtracted.

Spectral 6.16.3 and ``@stoplight/spectral-owasp-ruleset`` 2.0.1 are installed with npm into
``.dijk/bench/spectral`` (ignored by git) on first use; node and npm come from Debian's
``nodejs``/``npm`` packages (installed with apt-get if missing). Writes
``bench/results/lint-<stamp>.json`` and ``lint-latest.json``.

    .venv/bin/python -m bench.lint                 # all documents (Spectral: ~6.5 min)
    .venv/bin/python -m bench.lint --specs 10      # an evenly spaced sample of 10
    .venv/bin/python -m bench.lint --no-spectral   # Dijk only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/lint.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import (
    RESULTS_DIR,
    ROOT,
    ensure_tool,
    format_table,
    machine_info,
    utc_timestamp,
    write_results,
)

CORPORA = Path(os.environ.get("DIJK_CORPORA", ROOT.parent / "shared" / "corpora"))
SPECS_DIR = CORPORA / "openapi" / "specs"
CACHE = ROOT / ".dijk" / "bench" / "spectral"
SPECTRAL_CLI = "@stoplight/spectral-cli@6.16.3"
OWASP_RULESET = "@stoplight/spectral-owasp-ruleset@2.0.1"
SPECTRAL_TIMEOUT_S = 900

#: family -> (Spectral OWASP rules, Dijk rules). A rule in no family is listed as "other".
FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "read without security": (("api2:2023-read-restricted",), ("read-without-security",)),
    "write without security": (("api2:2023-write-restricted",), ("write-without-security",)),
    "credentials in URL": (
        ("api2:2023-no-api-keys-in-url", "api2:2023-no-credentials-in-url"),
        ("credential-in-query",),
    ),
    "weak HTTP auth": (
        ("api2:2023-no-http-basic", "api2:2023-auth-insecure-schemes"),
        ("weak-http-auth",),
    ),
    "OAuth implicit/password": ((), ("oauth-implicit-flow", "oauth-password-flow")),
    "token lifetime / refresh": (
        ("api2:2023-short-lived-access-tokens",),
        ("oauth-no-refresh-url",),
    ),
    "numeric ids": (("api1:2023-no-numeric-ids",), ("numeric-object-id",)),
    "ids without authorization": ((), ("object-id-without-authorization",)),
    "open objects": (
        (
            "api3:2023-no-additionalProperties",
            "api3:2023-constrained-additionalProperties",
            "api3:2023-no-unevaluatedProperties",
            "api3:2023-constrained-unevaluatedProperties",
        ),
        ("object-open", "object-map-unbounded"),
    ),
    "string limits": (
        ("api4:2023-string-limit", "api4:2023-string-restricted"),
        ("string-unbounded",),
    ),
    "array limits": (("api4:2023-array-limit",), ("array-unbounded",)),
    "number limits": (
        ("api4:2023-integer-limit", "api4:2023-integer-limit-legacy", "api4:2023-integer-format"),
        ("number-unbounded",),
    ),
    "rate-limit headers": (("api4:2023-rate-limit",), ("rate-limit-headers-missing",)),
    "429 response": (("api4:2023-rate-limit-responses-429",), ("response-429-missing",)),
    "Retry-After": (("api4:2023-rate-limit-retry-after",), ("retry-after-missing",)),
    "admin security": (("api5:2023-admin-security-unique",), ("admin-security-not-distinct",)),
    "URL parameters (SSRF)": (("api7:2023-concerning-url-parameter",), ("url-parameter",)),
    "plain-HTTP servers": (
        ("api8:2023-no-scheme-http", "api8:2023-no-server-http"),
        ("server-not-https",),
    ),
    "401 response": (("api8:2023-define-error-responses-401",), ("response-401-missing",)),
    "400/422 response": (("api8:2023-define-error-validation",), ("response-400-missing",)),
    "declined: CORS header": (("api8:2023-define-cors-origin",), ()),
    "declined: 500 response": (("api8:2023-define-error-responses-500",), ()),
    "declined: JWT text": (("api2:2023-jwt-best-practices",), ()),
    "declined: server x-internal": (("api9:2023-inventory-access",), ()),
    "declined: server environment": (("api9:2023-inventory-environment",), ()),
}
_SPECTRAL_FAMILY = {rule: family for family, (rules, _) in FAMILIES.items() for rule in rules}
_DIJK_FAMILY = {rule: family for family, (_, rules) in FAMILIES.items() for rule in rules}


def spectral_family(code: str) -> str:
    return _SPECTRAL_FAMILY.get(code.removeprefix("owasp:"), "other (Spectral)")


def dijk_family(rule: str) -> str:
    return _DIJK_FAMILY.get(rule, f"Dijk only: {rule}")


def install_spectral() -> Path:
    """The spectral binary in the cache, installed (pinned) with npm on first use."""
    binary = CACHE / "node_modules" / ".bin" / "spectral"
    ruleset = CACHE / ".spectral.yaml"
    if not binary.exists():
        ensure_tool("node", "nodejs")
        npm = ensure_tool("npm", "npm")
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "package.json").write_text('{"private": true}\n')
        print(f"installing {SPECTRAL_CLI} and {OWASP_RULESET} into {CACHE}", flush=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                SPECTRAL_CLI,
                OWASP_RULESET,
            ],
            cwd=CACHE,
            check=True,
        )
    ruleset.write_text('extends: ["@stoplight/spectral-owasp-ruleset"]\n')
    return binary


def run_measured(
    argv: list[str], timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``argv``; stdout (a file, so nothing blocks), seconds, peak RSS, exit code."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        deadline = started + timeout
        status = None
        usage = None
        while status is None:
            pid, status_code, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                status = status_code
                break
            if time.perf_counter() > deadline:
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "seconds": elapsed,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3) if usage else None,
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1) if usage else None,
            "exit": process.returncode,
            "timed_out": elapsed > timeout,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace")[-2000:],
        }


def run_dijk(specs: list[Path]) -> dict[str, Any]:
    argv = [sys.executable, "-m", "dijk", "lint", "--format", "json", "--fail-on", "none"]
    result = run_measured([*argv, *map(str, specs)], timeout=3600)
    data = json.loads(result["stdout"])
    per_spec: dict[str, Counter[str]] = defaultdict(Counter)
    for finding in data["findings"]:
        per_spec[finding["location"]["file"]][finding["rule_id"]] += 1
    return {
        "seconds": result["seconds"],
        "cpu_s": result["cpu_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "errors": data["errors"],
        "per_spec": {str(spec): dict(per_spec.get(str(spec), {})) for spec in specs},
    }


def run_spectral(binary: Path, specs: list[Path]) -> dict[str, Any]:
    env = {**os.environ, "NODE_OPTIONS": "--max-old-space-size=8192"}
    ruleset = str(CACHE / ".spectral.yaml")
    argv = [str(binary), "lint", "--ruleset", ruleset, "--format", "json", "--quiet"]
    per_spec: dict[str, dict[str, int]] = {}
    runs: dict[str, dict[str, Any]] = {}
    for position, spec in enumerate(specs, 1):
        result = run_measured([*argv, str(spec)], SPECTRAL_TIMEOUT_S, env)
        counts: Counter[str] = Counter()
        failure = None
        try:
            for item in json.loads(result["stdout"] or "[]"):
                counts[str(item.get("code"))] += 1
        except json.JSONDecodeError:
            failure = (result["stderr"] or result["stdout"])[-300:]
        if result["timed_out"]:
            failure = f"timed out after {SPECTRAL_TIMEOUT_S} s"
        per_spec[str(spec)] = dict(counts)
        runs[str(spec)] = {
            "seconds": round(result["seconds"], 3),
            "cpu_s": result["cpu_s"],
            "peak_rss_mb": result["peak_rss_mb"],
            "failure": failure,
        }
        print(
            f"  spectral {position}/{len(specs)} {spec.name}: {result['seconds']:.1f} s, "
            f"{sum(counts.values())} findings",
            flush=True,
        )
    return {"per_spec": per_spec, "runs": runs}


def spectral_startup(binary: Path) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {}}, handle)
    try:
        env = {**os.environ, "NODE_OPTIONS": "--max-old-space-size=8192"}
        argv = [str(binary), "lint", "--ruleset", str(CACHE / ".spectral.yaml"), "--quiet"]
        return min(run_measured([*argv, handle.name], 120, env)["seconds"] for _ in range(3))
    finally:
        os.unlink(handle.name)


def spectral_sarif_check(binary: Path, spec: Path) -> str:
    """Does Spectral's own SARIF output work with this ruleset? (one document)."""
    env = {**os.environ, "NODE_OPTIONS": "--max-old-space-size=8192"}
    argv = [str(binary), "lint", "--ruleset", str(CACHE / ".spectral.yaml"), "-f", "sarif"]
    result = run_measured([*argv, str(spec)], 300, env)
    try:
        json.loads(result["stdout"])
    except json.JSONDecodeError:
        last = (result["stderr"].strip().splitlines() or ["no output"])[-1]
        return f"failed (exit {result['exit']}): {last[:160]}"
    return "ok"


def by_family(per_spec: dict[str, dict[str, int]], family_of: Any) -> dict[str, dict[str, int]]:
    """family -> spec -> findings."""
    table: dict[str, dict[str, int]] = defaultdict(dict)
    for spec, counts in per_spec.items():
        for rule, count in counts.items():
            family = family_of(rule)
            table[family][spec] = table[family].get(spec, 0) + count
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=0, help="evenly spaced sample size (0: all)")
    parser.add_argument("--no-spectral", action="store_true", help="run Dijk only")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()

    specs = sorted(SPECS_DIR.glob("*.json")) + sorted(SPECS_DIR.glob("*.yaml"))
    if not specs:
        raise SystemExit(f"no OpenAPI documents in {SPECS_DIR} (set DIJK_CORPORA)")
    whole: dict[str, Any] | None = None
    if args.specs and args.specs < len(specs):
        # Dijk is cheap enough to time on every document even when Spectral gets a sample.
        whole = run_dijk(specs)
        print(
            f"dijk lint, all {len(specs)} documents: {whole['seconds']:.2f} s, "
            f"peak RSS {whole['peak_rss_mb']} MB, {len(whole['errors'])} unreadable",
            flush=True,
        )
        step = len(specs) / args.specs
        specs = [specs[int(index * step)] for index in range(args.specs)]
    print(f"{len(specs)} documents from {SPECS_DIR}", flush=True)

    dijk = run_dijk(specs)
    print(f"dijk lint: {dijk['seconds']:.2f} s, peak RSS {dijk['peak_rss_mb']} MB", flush=True)
    spectral: dict[str, Any] | None = None
    startup = None
    sarif = None
    if not args.no_spectral:
        binary = install_spectral()
        startup = spectral_startup(binary)
        sarif = spectral_sarif_check(binary, specs[0])
        spectral = run_spectral(binary, specs)

    dijk_families = by_family(dijk["per_spec"], dijk_family)
    spectral_families = by_family(spectral["per_spec"], spectral_family) if spectral else {}
    names = list(FAMILIES) + sorted((set(dijk_families) | set(spectral_families)) - set(FAMILIES))
    rows = []
    families_out = {}
    total = len(specs)
    for family in names:
        d = dijk_families.get(family, {})
        s = spectral_families.get(family, {})
        agree = sum(1 for spec in map(str, specs) if (spec in d) == (spec in s))
        entry = {
            "dijk_findings": sum(d.values()),
            "dijk_documents": len(d),
            "spectral_findings": sum(s.values()) if spectral else None,
            "spectral_documents": len(s) if spectral else None,
            "agreement": round(agree / total, 3) if spectral else None,
        }
        families_out[family] = entry
        rows.append(
            [
                family,
                str(entry["spectral_findings"]) if spectral else "-",
                str(entry["spectral_documents"]) if spectral else "-",
                str(entry["dijk_findings"]),
                str(entry["dijk_documents"]),
                f"{100 * agree / total:.0f} %" if spectral else "-",
            ]
        )
    headers = ["family", "Spectral", "docs", "Dijk", "docs", "agree"]
    print()
    print(format_table(headers, rows, right={1, 2, 3, 4, 5}))

    timing_rows = [
        [
            "dijk lint (one process)",
            f"{dijk['seconds']:.2f}",
            f"{dijk['cpu_s']:.2f}",
            f"{dijk['seconds'] / total:.3f}",
            f"{dijk['peak_rss_mb']}",
            str(sum(sum(c.values()) for c in dijk["per_spec"].values())),
            str(len(dijk["errors"])),
        ]
    ]
    summary: dict[str, Any] = {
        "dijk": {
            "seconds": round(dijk["seconds"], 3),
            "cpu_s": dijk["cpu_s"],
            "peak_rss_mb": dijk["peak_rss_mb"],
            "errors": dijk["errors"],
        }
    }
    if whole is not None:
        summary["dijk_all_documents"] = {
            "documents": len(whole["per_spec"]),
            "seconds": round(whole["seconds"], 3),
            "cpu_s": whole["cpu_s"],
            "peak_rss_mb": whole["peak_rss_mb"],
            "findings": sum(sum(c.values()) for c in whole["per_spec"].values()),
            "errors": whole["errors"],
        }
        timing_rows.append(
            [
                f"dijk lint, all {len(whole['per_spec'])} documents",
                f"{whole['seconds']:.2f}",
                f"{whole['cpu_s']:.2f}",
                f"{whole['seconds'] / len(whole['per_spec']):.3f}",
                f"{whole['peak_rss_mb']}",
                str(summary["dijk_all_documents"]["findings"]),
                str(len(whole["errors"])),
            ]
        )
    if spectral:
        runs = spectral["runs"]
        seconds = [run["seconds"] for run in runs.values()]
        largest = max(runs.items(), key=lambda item: Path(item[0]).stat().st_size)
        failures = {spec: run["failure"] for spec, run in runs.items() if run["failure"]}
        timing_rows.append(
            [
                "Spectral + OWASP (per document)",
                f"{sum(seconds):.2f}",
                f"{sum(run['cpu_s'] or 0 for run in runs.values()):.2f}",
                f"{statistics.mean(seconds):.3f}",
                f"{max(run['peak_rss_mb'] or 0 for run in runs.values())}",
                str(sum(sum(c.values()) for c in spectral["per_spec"].values())),
                str(len(failures)),
            ]
        )
        summary["spectral"] = {
            "seconds": round(sum(seconds), 3),
            "cpu_s": round(sum(run["cpu_s"] or 0 for run in runs.values()), 3),
            "median_s": round(statistics.median(seconds), 3),
            "startup_s": round(startup or 0, 3),
            "largest": {"spec": Path(largest[0]).name, **largest[1]},
            "failures": failures,
            "sarif_output": sarif,
        }
        summary["speedup"] = round(sum(seconds) / dijk["seconds"], 1)
        summary["speedup_cpu"] = round(summary["spectral"]["cpu_s"] / dijk["cpu_s"], 1)
    print()
    print(
        format_table(
            ["tool", "wall s", "CPU s", "wall s/doc", "peak RSS MB", "findings", "failed"],
            timing_rows,
            right={1, 2, 3, 4, 5, 6},
        )
    )
    if spectral:
        print(
            f"\nSpectral start-up (trivial document): {startup:.2f} s; speed-up "
            f"{summary['speedup']}x wall, {summary['speedup_cpu']}x CPU; "
            f"Spectral SARIF output: {sarif}"
        )
    iso, stamp = utc_timestamp()
    data = {
        "benchmark": "lint",
        "time": iso,
        "documents": [spec.name for spec in specs],
        "versions": {"spectral_cli": SPECTRAL_CLI, "owasp_ruleset": OWASP_RULESET},
        "machine": machine_info({"node": ["node", "--version"]}, ["dijk"]),
        "summary": summary,
        "families": families_out,
        "per_spec": {
            "dijk": {Path(k).name: v for k, v in dijk["per_spec"].items()},
            "spectral": {Path(k).name: v for k, v in spectral["per_spec"].items()}
            if spectral
            else None,
            "spectral_runs": {Path(k).name: v for k, v in spectral["runs"].items()}
            if spectral
            else None,
        },
    }
    for path in write_results(args.results_dir, "lint", stamp, data):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
