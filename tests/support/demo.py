"""Start ``dijk demo`` as a user would, on free loopback ports, and read its keys."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.support.gateway import free_port

_KEY_LINE = re.compile(r"^(DIJK_DEMO_KEY_(?:READ|WRITE)|DIJK_ADMIN_TOKEN)=(\S+)$")


@dataclass
class DemoProcess:
    port: int
    upstream_port: int
    admin_port: int
    read_key: str
    write_key: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    # What the demo printed up to the keys (and the awaited line), for tests that read it.
    lines: list[str] = field(default_factory=list)
    admin_token: str = ""

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as Ctrl-C would; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def start_demo(
    data_dir: Path,
    *,
    stderr: int | IO[bytes] = subprocess.DEVNULL,
    cwd: Path | None = None,
    strip_env: tuple[str, ...] = ("DIJK_DEMO_KEY", "DIJK_ADMIN_TOKEN"),
    wait_for: str | None = None,
    timeout: float = 60,
    extra_env: dict[str, str] | None = None,
) -> DemoProcess:
    """Run the demo until it has printed both keys and the admin token (and a line
    starting with ``wait_for``).

    Environment variables starting with ``strip_env`` are removed, so that the demo makes
    its own keys as on a fresh machine; ``extra_env`` is added after.
    """
    port, upstream_port, admin_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(strip_env)}
    env.update(extra_env or {})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dijk",
            "demo",
            "--port",
            str(port),
            "--upstream-port",
            str(upstream_port),
            "--admin-port",
            str(admin_port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        cwd=cwd,
    )
    assert process.stdout is not None
    keys: dict[str, str] = {}
    lines: list[str] = []
    waiting = wait_for is not None
    deadline = time.monotonic() + timeout
    while (len(keys) < 3 or waiting) and time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if not line:
            break
        lines.append(line)
        found = _KEY_LINE.match(line.strip())
        if found:
            keys[found.group(1)] = found.group(2)
        if wait_for is not None and line.startswith(wait_for):
            waiting = False
    if len(keys) < 3 or waiting:
        process.kill()
        process.wait(10)
        missing = "the keys and the admin token" if len(keys) < 3 else repr(wait_for)
        raise AssertionError(f"the demo did not print {missing}: {''.join(lines)[-2000:]}")
    return DemoProcess(
        port,
        upstream_port,
        admin_port,
        keys["DIJK_DEMO_KEY_READ"],
        keys["DIJK_DEMO_KEY_WRITE"],
        process,
        data_dir,
        lines,
        keys["DIJK_ADMIN_TOKEN"],
    )
