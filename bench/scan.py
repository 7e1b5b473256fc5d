"""dijk scan beside Schemathesis on the same targets: planted flaws found, requests, time.

    .venv/bin/python bench/scan.py                 # both targets, Schemathesis -n 30
    .venv/bin/python bench/scan.py --examples 10   # a quicker Schemathesis run

Targets, each started fresh for each tool (both tools write, and a scan changes state):

- ``dijk demo --vulnerable``, with the planted flaws of ``dijk/demo/vulnerable_truth.yaml``;
- ``dijk demo``: the safe demo behind the gateway (what each tool reports there is noise).

Schemathesis (pinned below) runs from its own virtual environment, ``bench/.venv-schemathesis``,
created on first use with pip; it is never a dependency of Dijk. It gets all its checks
(``--checks all``, every phase) and all three identities through a Web Fuzzing Commons auth
file with alice and bob as ``peers`` (its object-level authorisation check). dijk scan gets
the same identities and ``--allow-writes``.

A planted flaw counts for Schemathesis *as the vulnerability* when one of its checks that
names that kind of flaw (``ignored_auth`` for a missing credential, ``object_level_
authorization`` for BOLA, response schema conformance for a response that breaks the
document) failed on the flaw's operation; *only generically* when some other check failed
there (a 500, an undocumented status...); otherwise missed. Requests are the HAR entries
Schemathesis recorded and the count dijk scan prints. "Generic only" is generous: any other
failure on the flaw's operation counts, whether or not it has anything to do with the flaw.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._harness import format_table, free_port, machine_info, utc_timestamp, write_results  # noqa: E402
from dijk.demo.truth import PlantedFlaw, load_truth, missed_flaws  # noqa: E402

SCHEMATHESIS = "4.32.5"
VENV = ROOT / "bench" / ".venv-schemathesis"
DIJK = [sys.executable, "-m", "dijk"]
VULNERABLE_SPEC = ROOT / "src" / "dijk" / "demo" / "vulnerable_openapi.yaml"
SAFE_SPEC = ROOT / "src" / "dijk" / "demo" / "openapi.yaml"

# Schemathesis failure types that name the flaw for what it is, per truth rule.
SPECIFIC: dict[str, set[str]] = {
    "scan.auth.no_credential": {"IgnoredAuth"},
    "scan.bola.read": {"ObjectLevelAuthorizationViolation"},
    "scan.bola.write": {"ObjectLevelAuthorizationViolation"},
    "scan.schema.response": {"JsonSchemaError", "UndefinedStatusCode", "UndefinedContentType"},
}


def ensure_schemathesis() -> Path:
    st = VENV / "bin" / "st"
    if st.exists():
        done = subprocess.run([str(st), "--version"], capture_output=True, text=True, check=False)
        if SCHEMATHESIS in done.stdout:
            return st
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "-q", f"schemathesis=={SCHEMATHESIS}"], check=True
    )
    return st


class Target:
    """A fresh target process: the unsafe build, or the safe demo behind the gateway."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.identities: dict[str, tuple[str, str]] = {}
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Target:
        port = free_port()
        if self.kind == "vulnerable":
            argv = [*DIJK, "demo", "--vulnerable", "--port", str(port)]
            wanted = "Stop with Ctrl-C"
        else:
            argv = [
                *DIJK, "demo", "--port", str(port), "--upstream-port", str(free_port()),
                "--admin-port", str(free_port()), "--data-dir", str(self.workdir / "demo"),
            ]  # fmt: skip
            wanted = "Stop with Ctrl-C"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIJK_DEMO_KEY")}
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.strip()
            if line.startswith("DIJK_VULN_") and "Authorization:" in line:
                name, _, value = line.partition("=")
                header, _, credential = value.partition(":")
                self.identities[name.removeprefix("DIJK_VULN_").lower()] = (
                    header,
                    credential.strip(),
                )
            elif line.startswith("DIJK_DEMO_KEY_READ="):
                self.identities["reader"] = ("X-API-Key", line.split("=", 1)[1])
            elif line.startswith("DIJK_DEMO_KEY_WRITE="):
                self.identities["writer"] = ("X-API-Key", line.split("=", 1)[1])
            if line.startswith(wanted):
                break
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(20)

    @property
    def spec(self) -> Path:
        return VULNERABLE_SPEC if self.kind == "vulnerable" else SAFE_SPEC

    @property
    def peers(self) -> list[str]:
        return [name for name in self.identities if name != "admin"]


def run_dijk(target: Target, out: Path) -> dict[str, Any]:
    argv = [*DIJK, "scan", "--spec", str(target.spec), "--target", target.url, "--allow-writes"]
    for name, (header, value) in target.identities.items():
        argv.append(f"--auth={name}={header}:{value}")
    if "admin" in target.identities:
        argv += ["--admin", "admin"]
    argv += ["--no-progress", "--json", str(out)]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    sent = re.search(r"(\d+) requests sent", done.stdout)
    report = json.loads(out.read_text())
    return {
        "elapsed_s": round(elapsed, 1),
        "requests": int(sent.group(1)) if sent else None,
        "findings": report["findings"],
        "exit_code": done.returncode,
    }


def run_schemathesis(st: Path, target: Target, out: Path, examples: int) -> dict[str, Any]:
    auth = out / "auth.json"
    auth.write_text(
        json.dumps(
            {
                "auth": [
                    {"name": name, "fixedHeaders": [{"name": header, "value": value}]}
                    for name, (header, value) in target.identities.items()
                ]
            }
        )
    )
    config = out / "schemathesis.toml"
    peers = json.dumps(target.peers)
    config.write_text(f'[auth.wfc]\npath = "{auth}"\npeers = {peers}\n')
    argv = [
        str(st), "--config-file", str(config), "run", str(target.spec), "--url", target.url,
        "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful", "-n", str(examples),
        "--no-color", "--report", "json,har", "--report-json-path", str(out / "st.json"),
        "--report-har-path", str(out / "st.har"), "--seed", "1",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=out)
    elapsed = time.monotonic() - started
    try:
        report = json.loads((out / "st.json").read_text())
        har = json.loads((out / "st.har").read_text())
    except (OSError, ValueError):
        raise SystemExit(
            f"schemathesis produced no report:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        ) from None
    return {
        "elapsed_s": round(elapsed, 1),
        "requests": len(har["log"]["entries"]),
        "failures": report["failures"],
        "exit_code": done.returncode,
    }


def classify_schemathesis(
    truth: list[PlantedFlaw], failures: list[dict[str, Any]]
) -> dict[str, str]:
    """Flaw id -> ``vulnerability`` | ``generic`` | ``missed``."""
    verdicts = {}
    for flaw in truth:
        on_operation = [
            failure["type"]
            for failure in failures
            for operation in failure["operations"]
            if _same_operation(flaw, operation)
        ]
        if any(kind in SPECIFIC.get(flaw.rule, set()) for kind in on_operation):
            verdicts[flaw.id] = "vulnerability"
        elif on_operation and (flaw.method, flaw.path) != ("*", "*"):
            # (a flaw of the whole API, such as a guessable signing key, is not credited
            # to whatever else failed somewhere)
            verdicts[flaw.id] = "generic"
        else:
            verdicts[flaw.id] = "missed"
    return verdicts


def _same_operation(flaw: PlantedFlaw, operation: str) -> bool:
    method, _, path = operation.partition(" ")
    return flaw.method in ("*", method) and flaw.path in ("*", path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--examples", type=int, default=30, help="Schemathesis test cases per operation"
    )
    args = parser.parse_args()
    st = ensure_schemathesis()
    truth = load_truth()
    when, stamp = utc_timestamp()
    results: dict[str, Any] = {
        "time": when,
        "schemathesis": SCHEMATHESIS,
        "examples": args.examples,
    }
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        runs: dict[str, dict[str, Any]] = {}
        for kind in ("vulnerable", "safe"):
            for tool in ("dijk", "schemathesis"):
                out = work / f"{kind}-{tool}"
                out.mkdir()
                with Target(kind, out) as target:
                    if tool == "dijk":
                        runs[f"{kind}/{tool}"] = run_dijk(target, out / "report.json")
                    else:
                        runs[f"{kind}/{tool}"] = run_schemathesis(st, target, out, args.examples)
                print(
                    f"{kind:10} {tool:12} done in {runs[f'{kind}/{tool}']['elapsed_s']} s",
                    file=sys.stderr,
                )
    dijk_missed = {flaw.id for flaw in missed_flaws(truth, runs["vulnerable/dijk"]["findings"])}
    st_verdicts = classify_schemathesis(truth, runs["vulnerable/schemathesis"]["failures"])
    per_flaw = [
        {
            "id": flaw.id,
            "class": flaw.flaw_class,
            "operation": f"{flaw.method} {flaw.path}",
            "dijk": "missed" if flaw.id in dijk_missed else "vulnerability",
            "schemathesis": st_verdicts[flaw.id],
        }
        for flaw in truth
    ]
    safe_high = sum(1 for f in runs["safe/dijk"]["findings"] if f["severity"] == "high")
    safe_st = sum(int(f["count"]) for f in runs["safe/schemathesis"]["failures"])
    summary_rows = []
    for tool in ("dijk", "schemathesis"):
        vulnerable = runs[f"vulnerable/{tool}"]
        safe = runs[f"safe/{tool}"]
        found = sum(1 for row in per_flaw if row[tool] == "vulnerability")
        generic = sum(1 for row in per_flaw if row[tool] == "generic")
        summary_rows.append([
            "dijk scan" if tool == "dijk" else f"schemathesis {SCHEMATHESIS}",
            f"{found}/{len(truth)}",
            str(generic),
            str(len(truth) - found - generic),
            str(vulnerable["requests"]),
            f"{vulnerable['elapsed_s']:.1f}",
            str(safe_high) if tool == "dijk" else f"{safe_st} failures",
            str(safe["requests"]),
            f"{safe['elapsed_s']:.1f}",
        ])  # fmt: skip
    headers = [
        "tool", "flaws found", "generic only", "missed", "requests", "time s",
        "safe demo: high / failures", "requests", "time s",
    ]  # fmt: skip
    print(format_table(headers, summary_rows, right={1, 2, 3, 4, 5, 7, 8}))
    print()
    classes: dict[str, list[dict[str, Any]]] = {}
    for row in per_flaw:
        classes.setdefault(row["class"], []).append(row)
    class_rows = [
        [
            name,
            str(len(rows)),
            str(sum(r["dijk"] == "vulnerability" for r in rows)),
            str(sum(r["schemathesis"] == "vulnerability" for r in rows)),
            str(sum(r["schemathesis"] == "generic" for r in rows)),
        ]
        for name, rows in classes.items()
    ]
    print(
        format_table(
            ["class", "planted", "dijk scan", "schemathesis", "st generic only"],
            class_rows,
            right={1, 2, 3, 4},
        )
    )
    results.update(
        {
            "per_flaw": per_flaw,
            "runs": {
                key: {k: v for k, v in run.items() if k not in ("findings",)}
                | (
                    {"high": sum(1 for f in run["findings"] if f["severity"] == "high")}
                    if "findings" in run
                    else {}
                )
                for key, run in runs.items()
            },
            "machine": machine_info({}, ["aiohttp"]),
        }
    )
    for path in write_results(ROOT / "bench" / "results", "scan", stamp, results):
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
