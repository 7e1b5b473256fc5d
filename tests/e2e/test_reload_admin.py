"""The admin listener and configuration reload, against a real ``dijk serve`` process.

Health, readiness and Prometheus metrics; reload by SIGHUP and by the admin API, where a
broken file is refused with ``FILE:LINE: path: message`` errors and the old configuration
keeps serving, and a good file goes live without a restart.
"""

from __future__ import annotations

import copy
import json
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream

TOKEN = "s3cret-admin-token-for-tests"
TOKEN_ENV = "DIJK_ADMIN_TOKEN"


def http(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def admin(
    gateway: GatewayProcess, path: str, method: str = "GET", token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return http(f"http://127.0.0.1:{gateway.admin_port}{path}", method, headers)


def proxied(gateway: GatewayProcess, path: str) -> int:
    return http(gateway.url + path)[0]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def log_events(gateway: GatewayProcess, event: str) -> list[dict[str, Any]]:
    found = []
    for line in gateway.logs().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event:
            found.append(record)
    return found


def routes_config(upstream: RecordingUpstream, *paths: str) -> dict[str, Any]:
    return base_config(
        upstream.port,
        routes=[
            {"name": path.strip("/") or "root", "match": {"path": path}, "upstream": "echo"}
            for path in paths
        ],
    )


def broken(config: dict[str, Any]) -> tuple[str, int, int]:
    """The config as YAML with a wrong type and an unknown key, and the lines of both."""
    bad = copy.deepcopy(config)
    bad["limits"] = {"max_body_bytes": "lots"}
    bad["surprise"] = True
    text = yaml.safe_dump(bad)
    lines = text.splitlines()
    wrong_type = next(i for i, line in enumerate(lines, 1) if "max_body_bytes" in line)
    unknown = next(i for i, line in enumerate(lines, 1) if line.startswith("surprise:"))
    return text, wrong_type, unknown


def metric(text: str, name: str, **labels: str) -> float | None:
    """Value of one sample in Prometheus text format (labels must match exactly)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        sample_name, _, label_text = sample.partition("{")
        if sample_name != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', label_text))
        if found == labels:
            return float(value)
    return None


def config_for(gateway: GatewayProcess, upstream: RecordingUpstream, *paths: str) -> dict[str, Any]:
    """A fresh configuration with these routes, on the ports ``gateway`` already uses."""
    config = routes_config(upstream, *paths)
    config["listen"] = gateway.config["listen"]
    config["admin"] = gateway.config["admin"]
    return config


def generation(gateway: GatewayProcess) -> int:
    status, _, body = admin(gateway, "/admin/api/v1/status", token=TOKEN)
    assert status == 200
    value: int = json.loads(body)["generation"]
    return value


@pytest.fixture(scope="module")
def admin_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream
) -> Iterator[GatewayProcess]:
    """One gateway with the admin token set, shared: each test writes the file it reloads."""
    process = GatewayProcess(
        routes_config(upstream, "/ok"), tmp_path_factory.mktemp("admin"), {TOKEN_ENV: TOKEN}
    )
    process.start()
    yield process
    process.stop()


# ---- health, readiness, metrics -----------------------------------------------------------------


def test_health_readiness_and_metrics_after_traffic(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    gateway = start_gateway(routes_config(recording, "/ok"))
    status, headers, body = admin(gateway, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers.get("x-request-id")
    status, _, body = admin(gateway, "/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ready"})

    for _ in range(3):
        assert proxied(gateway, "/ok") == 200
    assert proxied(gateway, "/missing") == 404

    status, headers, body = admin(gateway, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert metric(text, "dijk_requests_total", route="ok", status="200", reason="") == 3
    assert (
        metric(text, "dijk_requests_total", route="", status="404", reason="route.not_found") == 1
    )
    assert metric(text, "dijk_request_duration_seconds_count", route="ok") == 3
    assert metric(text, "dijk_upstream_duration_seconds_count", route="ok") == 3
    assert metric(text, "dijk_config_generation") == 1

    status, headers, body = admin(gateway, "/admin/api/v1/nothing")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"] == "https://dijk.dev/problems/route.not_found"


# ---- reload by SIGHUP ---------------------------------------------------------------------------


def test_sighup_with_a_broken_file_keeps_serving_and_a_good_file_goes_live(
    start_gateway: Callable[..., GatewayProcess], recording: RecordingUpstream
) -> None:
    config = routes_config(recording, "/ok")
    gateway = start_gateway(config)
    with_new_route = copy.deepcopy(config)
    with_new_route["routes"].append({"name": "new", "match": {"path": "/new"}, "upstream": "echo"})

    # a broken file (wrong type, unknown key): refused, logged, the old config keeps serving
    text, wrong_type, unknown = broken(with_new_route)
    gateway.write_config(text=text)
    gateway.signal(signal.SIGHUP)
    assert wait_for(lambda: bool(log_events(gateway, "reload_failed"))), gateway.logs()
    failure = log_events(gateway, "reload_failed")[0]
    assert failure["level"] == "error"
    assert failure["kept_generation"] == 1
    errors = "\n".join(failure["errors"])
    assert f"{gateway.path}:{wrong_type}: limits.max_body_bytes:" in errors
    assert f"{gateway.path}:{unknown}: surprise:" in errors
    assert proxied(gateway, "/ok") == 200
    assert proxied(gateway, "/new") == 404  # nothing of the broken file went live
    assert gateway.process is not None
    assert gateway.process.poll() is None
    text = admin(gateway, "/metrics")[2].decode()
    assert metric(text, "dijk_config_reloads_total", result="failed") == 1
    assert metric(text, "dijk_config_generation") == 1

    # the same change in a good file goes live without a restart
    gateway.write_config(with_new_route)
    gateway.signal(signal.SIGHUP)
    assert wait_for(lambda: proxied(gateway, "/new") == 200), gateway.logs()
    assert proxied(gateway, "/ok") == 200
    assert log_events(gateway, "reloaded")[0]["generation"] == 2
    assert "/new" in [received.target for received in recording.requests]
    text = admin(gateway, "/metrics")[2].decode()
    assert metric(text, "dijk_config_reloads_total", result="ok") == 1
    assert metric(text, "dijk_config_generation") == 2


# ---- reload by the admin API --------------------------------------------------------------------


def test_admin_api_is_disabled_without_the_token_variable(
    tmp_path: Path, recording: RecordingUpstream
) -> None:
    gateway = GatewayProcess(routes_config(recording, "/ok"), tmp_path)
    gateway.env.pop(TOKEN_ENV, None)
    gateway.start()
    try:
        for path, method in (("/admin/api/v1/reload", "POST"), ("/admin/api/v1/status", "GET")):
            status, headers, body = admin(gateway, path, method, token="anything")
            assert status == 403
            assert headers["content-type"] == "application/problem+json"
            problem = json.loads(body)
            assert problem["type"] == "https://dijk.dev/problems/admin.disabled"
            assert TOKEN_ENV in problem["detail"]
        assert not log_events(gateway, "reloaded")
        assert not log_events(gateway, "reload_failed")
    finally:
        gateway.stop()


WRONG_TOKENS = [
    (None, "auth.missing_credentials"),
    ("", "auth.missing_credentials"),
    ("wrong", "auth.invalid_token"),
    (TOKEN + "x", "auth.invalid_token"),
    (TOKEN[:-1], "auth.invalid_token"),
]


def test_admin_api_with_a_missing_or_wrong_token_gets_401(admin_gateway: GatewayProcess) -> None:
    before = generation(admin_gateway)
    failures = len(log_events(admin_gateway, "reload_failed"))
    for token, reason in WRONG_TOKENS:
        status, headers, body = admin(admin_gateway, "/admin/api/v1/reload", "POST", token=token)
        assert status == 401, token
        assert headers["content-type"] == "application/problem+json"
        assert headers.get("www-authenticate", "").startswith("Bearer")
        assert json.loads(body)["type"] == f"https://dijk.dev/problems/{reason}"
        assert TOKEN.encode() not in body
    status, _, _ = admin(admin_gateway, "/admin/api/v1/status", token="wrong")
    assert status == 401
    assert generation(admin_gateway) == before  # no reload happened
    assert len(log_events(admin_gateway, "reload_failed")) == failures


def test_admin_reload_with_the_right_token_swaps_the_configuration(
    admin_gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    before = generation(admin_gateway)
    assert proxied(admin_gateway, "/added") == 404
    config = config_for(admin_gateway, recording, "/ok", "/added")
    admin_gateway.write_config(config)
    status, headers, body = admin(admin_gateway, "/admin/api/v1/reload", "POST", token=TOKEN)
    assert status == 200
    assert headers["content-type"] == "application/json"
    result = json.loads(body)
    assert result["ok"] is True
    assert result["generation"] == before + 1
    assert result["errors"] == []
    assert proxied(admin_gateway, "/added") == 200  # live as soon as the answer is sent
    status, _, body = admin(admin_gateway, "/admin/api/v1/status", token=TOKEN)
    assert status == 200
    assert json.loads(body)["routes"] == ["ok", "added"]


def test_admin_reload_with_a_broken_file_gets_422_with_located_errors(
    admin_gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    before = generation(admin_gateway)
    text, wrong_type, unknown = broken(config_for(admin_gateway, recording, "/ok"))
    admin_gateway.write_config(text=text)
    status, headers, body = admin(admin_gateway, "/admin/api/v1/reload", "POST", token=TOKEN)
    assert status == 422
    assert headers["content-type"] == "application/json"
    result = json.loads(body)
    assert result["ok"] is False
    assert result["generation"] == before
    path = str(admin_gateway.path)
    assert len(result["errors"]) == 2
    for error in result["errors"]:
        assert re.fullmatch(re.escape(path) + r":\d+: [\w.\[\]\"]+: .+", error), error
    assert any(
        e.startswith(f"{path}:{wrong_type}: limits.max_body_bytes: ") for e in result["errors"]
    )
    assert any(e.startswith(f"{path}:{unknown}: surprise: ") for e in result["errors"])
    assert proxied(admin_gateway, "/ok") == 200
    assert generation(admin_gateway) == before
    assert log_events(admin_gateway, "reload_failed")


def test_admin_reload_that_fails_to_compile_keeps_the_old_configuration(
    admin_gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    """Valid YAML and types, but a route template the router refuses at compile time."""
    before = generation(admin_gateway)
    config = config_for(admin_gateway, recording, "/ok")
    config["routes"].append(
        {"name": "bad", "match": {"path_template": "/u/{id}/{id}"}, "upstream": "echo"}
    )
    admin_gateway.write_config(config)
    status, _, body = admin(admin_gateway, "/admin/api/v1/reload", "POST", token=TOKEN)
    assert status == 422
    result = json.loads(body)
    assert result["ok"] is False
    assert any("routes" in error and "repeats" in error for error in result["errors"]), result
    assert proxied(admin_gateway, "/ok") == 200
    assert generation(admin_gateway) == before


def test_admin_reload_of_a_missing_file_keeps_the_old_configuration(
    admin_gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    before = generation(admin_gateway)
    admin_gateway.path.unlink()
    status, _, body = admin(admin_gateway, "/admin/api/v1/reload", "POST", token=TOKEN)
    assert status == 422
    result = json.loads(body)
    assert result["ok"] is False
    assert result["errors"]
    assert str(admin_gateway.path) in result["errors"][0]
    assert proxied(admin_gateway, "/ok") == 200
    assert generation(admin_gateway) == before


def test_admin_reload_applies_new_header_limits_to_new_connections(
    admin_gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    big_header = {"X-Big": "v" * 2000}
    assert http(admin_gateway.url + "/ok", headers=big_header)[0] == 200
    config = config_for(admin_gateway, recording, "/ok")
    config["limits"] = {"max_header_bytes": 1024}
    admin_gateway.write_config(config)
    status, _, body = admin(admin_gateway, "/admin/api/v1/reload", "POST", token=TOKEN)
    assert status == 200
    assert any("new connections" in warning for warning in json.loads(body)["warnings"])
    status, _, body = http(admin_gateway.url + "/ok", headers=big_header)
    assert status == 431
    assert json.loads(body)["type"] == "https://dijk.dev/problems/limits.headers_too_large"
    assert "1024" in json.loads(body)["detail"]
    assert http(admin_gateway.url + "/ok")[0] == 200
