"""``dijk demo``: the Polder Bank upstream, the gateway in front of it, the admin listener."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from importlib import resources
from pathlib import Path
from typing import Any

import typer

from dijk.config import ConfigError, DijkConfig, load_config_text
from dijk.demo.upstream import DEMO_USER_PASSWORD, DEMO_USERNAME

DEMO_CONFIG_NAME = "dijk/demo/config.yaml"
KEY_ENV_READ = "DIJK_DEMO_KEY_READ"
KEY_ENV_WRITE = "DIJK_DEMO_KEY_WRITE"
LOGIN_ENV = "DIJK_DEMO_LOGIN"
ADMIN_TOKEN_ENV = "DIJK_ADMIN_TOKEN"  # noqa: S105 (a variable's name) admin.token_env of the shipped demo configuration


def demo_config_text() -> str:
    return resources.files("dijk.demo").joinpath("config.yaml").read_text(encoding="utf-8")


def demo_config(port: int, upstream_port: int, admin_port: int, data_dir: Path) -> DijkConfig:
    """The shipped demo configuration with the command-line ports and data dir applied."""
    config = load_config_text(demo_config_text(), DEMO_CONFIG_NAME)
    upstream = config.upstreams["bank"].model_copy(
        update={"url": f"http://127.0.0.1:{upstream_port}"}
    )
    return config.model_copy(
        update={
            "listen": config.listen.model_copy(update={"port": port}),
            "admin": config.admin.model_copy(update={"port": admin_port}),
            "upstreams": {"bank": upstream},
            "audit": config.audit.model_copy(
                update={"url": f"sqlite:///{(data_dir / 'audit.db').resolve()}"}
            ),
            "abuse": config.abuse.model_copy(
                update={
                    "reputation": config.abuse.reputation.model_copy(
                        update={"directory": str((data_dir / "reputation").resolve())}
                    ),
                    "anomaly": config.abuse.anomaly.model_copy(
                        update={"state_file": str((data_dir / "anomaly.json").resolve())}
                    ),
                }
            ),
        }
    )


def ensure_keys() -> tuple[str, str]:
    """Demo keys from the environment, or new random ones (exported for the config)."""
    read = os.environ.get(KEY_ENV_READ) or "dk_read_" + secrets.token_urlsafe(24)
    write = os.environ.get(KEY_ENV_WRITE) or "dk_write_" + secrets.token_urlsafe(24)
    if read == write:
        raise typer.BadParameter(f"{KEY_ENV_READ} and {KEY_ENV_WRITE} must differ")
    os.environ[KEY_ENV_READ] = read
    os.environ[KEY_ENV_WRITE] = write
    return read, write


def ensure_admin_token() -> str:
    """The admin token from the environment, or a new random one: the demo always has
    its admin API and dashboard on (on loopback)."""
    token = os.environ.get(ADMIN_TOKEN_ENV) or "dk_admin_" + secrets.token_urlsafe(24)
    os.environ[ADMIN_TOKEN_ENV] = token
    return token


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo upstream exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the demo upstream did not listen on port {port} within {timeout:g} s")


def start_upstream(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-P",  # do not put the working directory first on sys.path (a stray secrets.py)
            "-m",
            "dijk.demo.upstream",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdin=subprocess.DEVNULL,
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def banner(
    port: int, upstream_port: int, admin_port: int, read: str, write: str, admin_token: str = ""
) -> str:
    base = f"http://127.0.0.1:{port}"
    return "\n".join(
        [
            "Dijk demo: the Polder Bank API behind the gateway",
            f"  gateway   {base}",
            f"  upstream  http://127.0.0.1:{upstream_port}  (unprotected, for comparison)",
            f"  admin     http://127.0.0.1:{admin_port}  (/healthz /readyz /metrics)",
            f"  dashboard http://127.0.0.1:{admin_port}/ui/  (sign in with {ADMIN_TOKEN_ENV})",
            f"{KEY_ENV_READ}={read}",
            f"{KEY_ENV_WRITE}={write}",
            f"{LOGIN_ENV}={DEMO_USERNAME}:{DEMO_USER_PASSWORD}",
            f"{ADMIN_TOKEN_ENV}={admin_token}",
            "Try:",
            f"  curl -i {base}/api/v1/status",
            f'  curl -i -H "X-API-Key: {read}" {base}/api/v1/accounts/1',
            f"  curl -i {base}/api/v1/accounts            # 401: no key",
            f'  curl -i -X POST -H "X-API-Key: {read}" -H "Content-Type: application/json" '
            f'-d \'{{"name":"A","email":"a@example.nl"}}\' {base}/api/v1/accounts   # 403',
            f"  curl -s http://127.0.0.1:{admin_port}/metrics | grep dijk_requests",
            "Stop with Ctrl-C.",
        ]
    )


def audit_banner(data_dir: Path) -> str:
    """Where the activity log is and how to check it (the key is beside the database
    unless DIJK_AUDIT_KEY / DIJK_AUDIT_KEY_FILE is set)."""
    database = (data_dir / "audit.db").resolve()
    key = os.environ.get("DIJK_AUDIT_KEY_FILE") or str(database.parent / "audit.key")
    if os.environ.get("DIJK_AUDIT_KEY") and not os.environ.get("DIJK_AUDIT_KEY_FILE"):
        key = "$DIJK_AUDIT_KEY"
    url = f"sqlite:///{database}"
    return "\n".join(
        [
            f"Audit log: {database}  (key: {key})",
            f"  dijk audit verify --db {url}",
            f"  dijk audit query --db {url} --since 15m",
            f"  dijk audit export --db {url} --format ecs",
        ]
    )


def run_demo(port: int, upstream_port: int, admin_port: int, data_dir: Path) -> None:
    from dijk.cli.run import run_gateway

    for name, value in (
        ("--port", port),
        ("--upstream-port", upstream_port),
        ("--admin-port", admin_port),
    ):
        if not port_free(value):
            typer.echo(f"error: {name} {value} is already in use on 127.0.0.1", err=True)
            raise typer.Exit(2)
    if len({port, upstream_port, admin_port}) != 3:
        typer.echo("error: --port, --upstream-port and --admin-port must differ", err=True)
        raise typer.Exit(2)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "reputation").mkdir(exist_ok=True)  # address lists (Tor exits, FireHOL)
    read, write = ensure_keys()
    admin_token = ensure_admin_token()
    try:
        config = demo_config(port, upstream_port, admin_port, data_dir)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    upstream = start_upstream(upstream_port, data_dir)
    try:
        try:
            wait_for_port(upstream_port, upstream)
        except RuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

        def started(_server: object) -> None:
            typer.echo(banner(port, upstream_port, admin_port, read, write, admin_token))
            typer.echo(audit_banner(data_dir))
            sys.stdout.flush()

        try:
            run_gateway(
                config,
                DEMO_CONFIG_NAME,
                loader=lambda: demo_config(port, upstream_port, admin_port, data_dir),
                on_started=started,
            )
        except ConfigError as exc:  # e.g. the audit log cannot be opened in the data dir
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
    finally:
        stop_process(upstream)


def run_vulnerable(port: int) -> None:
    """Serve the unsafe build on 127.0.0.1:port until Ctrl-C; print its URL and identities."""
    import asyncio
    import contextlib

    from dijk.demo import vulnerable

    if not port_free(port):
        typer.echo(f"error: --port {port} is already in use on 127.0.0.1", err=True)
        raise typer.Exit(2)
    spec_path = str(resources.files("dijk.demo").joinpath("vulnerable_openapi.yaml"))

    def started(url: str, identities: list[vulnerable.Identity]) -> None:
        typer.echo(vulnerable.banner(url, spec_path, identities))
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_signal(vulnerable.serve("127.0.0.1", port, started)))


async def _serve_until_signal(server: Coroutine[Any, Any, None]) -> None:
    """Run ``server`` until SIGINT or SIGTERM, then cancel it (its clean-up runs)."""
    import asyncio
    import signal

    task = asyncio.ensure_future(server)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
