"""The command line as a user meets it: `dijk config validate` and `dijk serve` errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BAD = """\
version: 1
listen:
  address: 127.0.0.1
  port: "eighty"
upstreams:
  bank: {url: "http://127.0.0.1:8081"}
routes:
  - name: all
    match: {path_prefix: /}
    upstream: bank
    upstreem: typo
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dijk", *args], capture_output=True, text=True, timeout=60
    )


def test_validate_reports_each_error_with_file_line_and_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = run("config", "validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"{path}:4: listen.port: ")
    assert lines[1].startswith(f"{path}:11: routes[0].upstreem: unknown key 'upstreem'")
    assert "did you mean 'upstream'" in lines[1]
    assert "Traceback" not in result.stderr


def test_validate_reports_cross_reference_errors_at_their_line(tmp_path: Path) -> None:
    path = tmp_path / "ref.yaml"
    path.write_text(
        BAD.replace('  port: "eighty"\n', "  port: 8080\n")
        .replace("    upstreem: typo\n", "")
        .replace("upstream: bank", "upstream: nowhere")
    )
    result = run("config", "validate", str(path))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"{path}:10: routes[0].upstream: upstream 'nowhere' is not defined (known: bank)"
    )


def test_validate_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(
        BAD.replace('  port: "eighty"\n', "  port: 8080\n").replace("    upstreem: typo\n", "")
    )
    result = run("config", "validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_validate_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run("config", "validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "nope.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_an_invalid_file_exits_1_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = run("serve", "-c", str(path))
    assert result.returncode == 1
    assert "listen.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "demo", "config"):
        assert command in result.stdout
