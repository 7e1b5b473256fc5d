"""Information leakage through a real ``dijk serve`` process and a real aiohttp upstream.

The upstream is an aiohttp application, so it sends what real ones send: ``Server:
Python/3.x aiohttp/3.x`` on every response, plus ``X-Powered-By`` and ASP.NET version
headers from the handlers. Clients must not see them unless the configuration says so
(``strip_response_headers: []``), and the access log must name the route's path template,
never the raw path (ids and e-mail addresses travel in paths).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.gateway import GatewayProcess, base_config

LEAKY = {
    "X-Powered-By": "PHP/8.1.2",
    "X-AspNet-Version": "4.0.30319",
    "X-AspNetMvc-Version": "5.2",
    "X-Backend-Node": "db-7.internal",
}
VERSION_HEADERS = ("server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version")


class AiohttpUpstream:
    """An aiohttp application on a loopback port, in a background thread."""

    def __init__(self) -> None:
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    async def _json(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path}, headers=LEAKY)

    @staticmethod
    async def _stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=LEAKY)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for index in range(3):
            await response.write(b"part-%d\n" % index)
        await response.write_eof()
        return response

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get("/stream/{tail:.*}", self._stream)
        app.router.add_route("*", "/{tail:.*}", self._json)

        async def main() -> None:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert isinstance(server, asyncio.Server)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()

        loop.run_until_complete(main())
        loop.run_forever()
        if self._runner is not None:
            loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def start(self) -> AiohttpUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("aiohttp upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


@pytest.fixture(scope="module")
def leaky() -> Iterator[AiohttpUpstream]:
    server = AiohttpUpstream().start()
    yield server
    server.stop()


def _start(config: dict[str, Any], directory: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(config, directory)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, leaky: AiohttpUpstream
) -> Iterator[GatewayProcess]:
    """Default strip list, per-route overrides, access log on, no catch-all route."""
    config = base_config(
        leaky.port,
        logging={"access_log": True},
        routes=[
            {
                "name": "account",
                "match": {"path_template": "/api/v1/accounts/{id}"},
                "upstream": "echo",
            },
            {"name": "files", "match": {"path_prefix": "/files"}, "upstream": "echo"},
            {"name": "stream", "match": {"path_prefix": "/stream"}, "upstream": "echo"},
            {
                "name": "keep",
                "match": {"path_prefix": "/keep"},
                "upstream": "echo",
                "strip_response_headers": [],
            },
            {
                "name": "custom",
                "match": {"path_prefix": "/custom"},
                "upstream": "echo",
                "strip_response_headers": ["X-Backend-Node"],
            },
        ],
    )
    yield from _start(config, tmp_path_factory.mktemp("guarded"))


@pytest.fixture(scope="module")
def transparent(
    tmp_path_factory: pytest.TempPathFactory, leaky: AiohttpUpstream
) -> Iterator[GatewayProcess]:
    """``strip_response_headers: []`` at the top level: every header passes."""
    config = base_config(leaky.port, strip_response_headers=[])
    yield from _start(config, tmp_path_factory.mktemp("transparent"))


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, body
    finally:
        connection.close()


def access_line(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for line in gateway.logs().splitlines():
            if request_id in line:
                event: dict[str, Any] = json.loads(line)
                if event.get("event") == "request":
                    return event
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}:\n{gateway.logs()[-2000:]}")


# ---- strip_response_headers ---------------------------------------------------------------------


def test_the_aiohttp_upstream_really_sends_version_headers(leaky: AiohttpUpstream) -> None:
    status, headers, _ = get(leaky.port, "/anything")
    assert status == 200
    assert "aiohttp/" in headers["server"]
    assert headers["x-powered-by"] == "PHP/8.1.2"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["/api/v1/accounts/42", "/files/a.txt", "/stream/x"])
def test_version_headers_are_stripped_by_default(
    guarded: GatewayProcess, path: str, method: str
) -> None:
    status, headers, body = get(guarded.port, path, method)
    assert status == 200
    for name in VERSION_HEADERS:
        assert name not in headers, (name, headers)
    assert headers["x-backend-node"] == "db-7.internal"  # not on the default list
    assert headers["x-request-id"]
    if method == "GET" and path.startswith("/stream"):
        assert body == b"part-0\npart-1\npart-2\n"  # streamed (chunked) path


def test_route_with_an_empty_list_passes_every_header(guarded: GatewayProcess) -> None:
    _, headers, _ = get(guarded.port, "/keep/x")
    assert "aiohttp/" in headers["server"]
    assert headers["x-powered-by"] == "PHP/8.1.2"
    assert headers["x-aspnet-version"] == "4.0.30319"


def test_route_list_replaces_the_top_level_list(guarded: GatewayProcess) -> None:
    _, headers, _ = get(guarded.port, "/custom/x")
    assert "x-backend-node" not in headers
    assert "aiohttp/" in headers["server"]  # the route's list replaced the default one


def test_top_level_empty_list_passes_every_header(transparent: GatewayProcess) -> None:
    status, headers, _ = get(transparent.port, "/anything")
    assert status == 200
    assert "aiohttp/" in headers["server"]
    assert headers["x-powered-by"] == "PHP/8.1.2"
    assert headers["x-aspnetmvc-version"] == "5.2"


def test_dijk_names_no_server_or_version_of_its_own(guarded: GatewayProcess) -> None:
    # a problem document made by Dijk itself (no route), and a proxied response
    for path in ("/nowhere", "/api/v1/accounts/42"):
        _, headers, _ = get(guarded.port, path)
        assert "server" not in headers
        assert "x-powered-by" not in headers
        assert "via" not in headers
        assert not any("dijk/" in value.lower() for value in headers.values()), headers


# ---- access log ---------------------------------------------------------------------------------


def test_access_log_names_the_path_template_not_the_raw_path(guarded: GatewayProcess) -> None:
    raw_id = "jan.jansen@example.com"
    status, headers, _ = get(guarded.port, f"/api/v1/accounts/{raw_id}")
    assert status == 200
    line = access_line(guarded, headers["x-request-id"])
    assert line["path_template"] == "/api/v1/accounts/{id}"
    assert line["route"] == "account"
    assert "path" not in line
    assert raw_id not in guarded.logs()


def test_access_log_shows_a_prefix_route_as_prefix_star(guarded: GatewayProcess) -> None:
    status, headers, _ = get(guarded.port, "/files/NL91ABNA0417164300.pdf")
    assert status == 200
    line = access_line(guarded, headers["x-request-id"])
    assert line["path_template"] == "/files/*"
    assert line["route"] == "files"
    assert "NL91ABNA0417164300" not in guarded.logs()


def test_access_log_of_an_unmatched_request_has_a_placeholder(guarded: GatewayProcess) -> None:
    probe = "/wp-admin/piet@example.com/%3Cscript%3E"
    status, headers, _ = get(guarded.port, probe)
    assert status == 404
    line = access_line(guarded, headers["x-request-id"])
    assert line["path_template"] == "-"
    assert line["route"] == "-"
    assert line["reason"] == "route.not_found"
    logs = guarded.logs()
    assert "piet@example.com" not in logs
    assert "wp-admin" not in logs
