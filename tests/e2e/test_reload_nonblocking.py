"""Reload compiles off the event loop, against a real ``dijk serve`` process.

A reload to a configuration with a large OpenAPI document (the largest of the shared
corpus: seconds of openapi-spec-validator and schema compilation) and attack detection
with a cold Hyperscan cache (seconds more) must not stall the data plane: requests to a
route that already exists keep being answered while the new configuration compiles.
Reloads requested while one compiles are coalesced into one more, and the last file
written is the one that goes live; a reload that fails keeps the old configuration.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CORPORA
from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream

TOKEN = "s3cret-admin-token-for-reload-tests"
TOKEN_ENV = "DIJK_ADMIN_TOKEN"
SPECS = CORPORA / "openapi" / "specs"

# A request to a route that exists must be answered within this while a reload compiles
# (a few milliseconds without a reload, tens with the compiling thread holding the GIL).
MAX_LATENCY_S = 1.0
# Below this, the machine compiles too fast for a stall to be told from a slow request.
MIN_COMPILE_S = 2.0


def largest_spec() -> Path:
    specs = (
        sorted(SPECS.glob("*.json"), key=lambda path: path.stat().st_size) if SPECS.is_dir() else []
    )
    if not specs:
        pytest.skip(f"OpenAPI corpus not found at {SPECS}")
    return specs[-1]


def http(
    url: str, method: str = "GET", token: str | None = None, timeout: float = 60.0
) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def reload(gateway: GatewayProcess) -> dict[str, Any]:
    """POST the admin reload (waits for the reload to finish); the JSON result + status."""
    url = f"http://127.0.0.1:{gateway.admin_port}/admin/api/v1/reload"
    status, body = http(url, "POST", TOKEN, timeout=300)
    result: dict[str, Any] = json.loads(body)
    result["status"] = status
    return result


def generation(gateway: GatewayProcess) -> int:
    url = f"http://127.0.0.1:{gateway.admin_port}/admin/api/v1/status"
    status, body = http(url, token=TOKEN)
    assert status == 200
    value: int = json.loads(body)["generation"]
    return value


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


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class Background:
    """Runs ``function`` in a thread; ``result`` once it returns, ``ended`` when it did."""

    def __init__(self, function: Callable[[], dict[str, Any]]) -> None:
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.ended = 0.0
        self._thread = threading.Thread(target=self._run, args=(function,), daemon=True)
        self._thread.start()

    def _run(self, function: Callable[[], dict[str, Any]]) -> None:
        try:
            self.result = function()
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self.ended = time.monotonic()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = 300.0) -> dict[str, Any]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the reload request did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def plain_get_path(document: dict[str, Any]) -> str | None:
    """A path of ``document`` with a GET operation that needs no parameter, if any."""
    for path, item in document.get("paths", {}).items():
        if "{" in path or not isinstance(item, dict):
            continue
        operation = item.get("get")
        if not isinstance(operation, dict) or operation.get("requestBody"):
            continue
        parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
        if any(not isinstance(p, dict) or "$ref" in p or p.get("required") for p in parameters):
            continue
        return str(path)
    return None


def small_config(
    gateway: GatewayProcess, upstream: RecordingUpstream, *paths: str
) -> dict[str, Any]:
    """Exact routes for ``paths`` on the ports ``gateway`` already uses."""
    config = base_config(
        upstream.port,
        routes=[
            {"name": path.strip("/"), "match": {"path": path}, "upstream": "echo"} for path in paths
        ],
    )
    config["listen"] = gateway.config["listen"]
    config["admin"] = gateway.config["admin"]
    return config


def large_config(
    gateway: GatewayProcess, upstream: RecordingUpstream, spec: Path
) -> dict[str, Any]:
    """``/ok`` as before, plus everything else behind ``spec`` and attack detection."""
    config = small_config(gateway, upstream, "/ok")
    config["routes"].append(
        {
            "name": "api",
            "match": {"path_prefix": "/"},
            "upstream": "echo",
            "openapi": {"spec": str(spec), "mode": "enforce", "base_path": ""},
            "waf": {"mode": "block"},
        }
    )
    return config


@pytest.fixture
def gateway(tmp_path: Path, upstream: RecordingUpstream) -> Iterator[GatewayProcess]:
    """A gateway serving ``/ok``, with the admin API on and an empty Hyperscan cache (so a
    configuration that turns attack detection on compiles the database: seconds)."""
    env = {TOKEN_ENV: TOKEN, "DIJK_CACHE_DIR": str(tmp_path / "cache")}
    process = GatewayProcess(base_config(upstream.port), tmp_path, env)
    process.config = small_config(process, upstream, "/ok")
    process.start()
    yield process
    process.stop()


def timed_get(url: str) -> tuple[float, float, int]:
    """(sent at, seconds taken, status); a timeout counts as 60 s and status 0."""
    sent = time.monotonic()
    try:
        status = http(url, timeout=60)[0]
    except OSError:
        status = 0
    return sent, time.monotonic() - sent, status


def test_requests_are_answered_while_a_large_openapi_document_compiles(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    spec = largest_spec()
    url = gateway.url + "/ok"
    baseline = [timed_get(url) for _ in range(5)]
    assert all(status == 200 for _, _, status in baseline)

    gateway.write_config(large_config(gateway, recording, spec))
    began = time.monotonic()
    pending = Background(lambda: reload(gateway))
    samples: list[tuple[float, float, int]] = []
    while pending.running:
        samples.append(timed_get(url))
        time.sleep(0.02)
    result = pending.join()
    reload_s = pending.ended - began

    assert result["status"] == 200, result
    assert result["ok"] is True
    assert result["generation"] == 2
    if reload_s < MIN_COMPILE_S:
        pytest.skip(f"the reload took {reload_s:.2f} s: too fast to tell a stall from a request")
    during = [sample for sample in samples if sample[0] + sample[1] <= pending.ended]
    slowest = max(seconds for _, seconds, _ in samples)
    report = (
        f"reload {reload_s:.2f} s; {len(during)} requests during it, slowest {slowest:.3f} s; "
        f"baseline slowest {max(seconds for _, seconds, _ in baseline):.3f} s"
    )
    assert all(status == 200 for _, _, status in samples), report
    assert slowest < MAX_LATENCY_S, report
    # Requests were answered all along, not only before and after the compile.
    assert len(during) >= int(reload_s / (MAX_LATENCY_S + 0.02)), report
    compile_s = log_events(gateway, "reloaded")[-1]["compile_s"]
    assert compile_s <= reload_s

    # The document compiled in the worker thread checks requests on the event loop.
    status, body = http(gateway.url + "/no/such/path/in/the/document")
    assert status == 404
    assert json.loads(body)["type"].endswith("/openapi.unknown_path")
    document = json.loads(spec.read_text())
    known = plain_get_path(document)
    if known is not None:
        status, body = http(gateway.url + known)
        assert status == 200, body
    assert http(url)[0] == 200


def test_reloads_in_quick_succession_end_with_the_last_file_live(
    gateway: GatewayProcess, recording: RecordingUpstream
) -> None:
    """One reload compiles a large document; two more requested meanwhile coalesce into
    one, which reads the file after both asked: the last file written goes live."""
    gateway.write_config(large_config(gateway, recording, largest_spec()))
    first = Background(lambda: reload(gateway))
    assert wait_for(lambda: bool(log_events(gateway, "reload_started"))), gateway.logs()
    time.sleep(0.3)  # the worker reads the file first (milliseconds), then compiles (seconds)

    gateway.write_config(small_config(gateway, recording, "/ok", "/last"))
    second = Background(lambda: reload(gateway))
    assert wait_for(lambda: bool(log_events(gateway, "reload_queued")) or not first.running)
    overlapped = first.running
    third = Background(lambda: reload(gateway))
    results = [first.join(), second.join(), third.join()]

    assert [result["ok"] for result in results] == [True, True, True], results
    assert results[0]["generation"] == 2
    assert http(gateway.url + "/last")[0] == 200  # the last file written is live
    status, body = http(gateway.url + "/no/such/path/in/the/document")
    assert status == 404
    assert json.loads(body)["type"].endswith("/route.not_found")  # the large one is gone
    assert http(gateway.url + "/ok")[0] == 200
    if not overlapped:
        pytest.skip("the first reload ended before the others were requested")
    # The two requests made while the first compiled shared one reload.
    assert results[1]["generation"] == results[2]["generation"] == 3
    assert generation(gateway) == 3
    assert len(log_events(gateway, "reload_started")) == 2


def test_a_failing_reload_keeps_the_old_configuration_and_reports_why(
    gateway: GatewayProcess, recording: RecordingUpstream, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.openapi.yaml"
    broken.write_text(
        "openapi: 3.0.3\n"
        "info: {title: broken, version: '1'}\n"
        "paths:\n"
        "  /items:\n"
        "    get:\n"
        "      parameters: [{name: q, in: nowhere}]\n"
        "      responses: {'200': {description: ok}}\n"
    )
    config = small_config(gateway, recording, "/ok")
    config["routes"].append(
        {
            "name": "items",
            "match": {"path_prefix": "/items"},
            "upstream": "echo",
            "openapi": {"spec": str(broken)},
        }
    )
    gateway.write_config(config)
    result = reload(gateway)
    assert result["status"] == 422, result
    assert result["ok"] is False
    assert result["generation"] == 1
    errors = "\n".join(result["errors"])
    assert "routes[1].openapi.spec" in errors, errors
    assert str(broken) in errors, errors
    failure = log_events(gateway, "reload_failed")[-1]
    assert failure["kept_generation"] == 1
    assert failure["errors"] == result["errors"]
    assert http(gateway.url + "/ok")[0] == 200
    assert http(gateway.url + "/items")[0] == 404  # nothing of the refused file went live
    assert generation(gateway) == 1

    # the next good file still goes live: the failure left nothing behind
    gateway.write_config(small_config(gateway, recording, "/ok", "/items"))
    result = reload(gateway)
    assert (result["status"], result["generation"]) == (200, 2), result
    assert http(gateway.url + "/items")[0] == 200
