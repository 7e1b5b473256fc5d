"""Alert webhook delivery against a real local HTTP receiver: JSON body, HMAC signature,
retries with backoff after failures, a bounded queue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from dijk.alerts.engine import Alert
from dijk.alerts.settings import WebhookSettings
from dijk.alerts.webhook import SIGNATURE_HEADER, WebhookPoster


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=502)
        self.received.append((dict(request.headers), body))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


def alert(number: int = 1) -> Alert:
    return Alert(
        rule="waf-burst",
        per="client_ip",
        key="5f2c0d9e",
        count=21,
        threshold=20,
        window_s=60.0,
        time=datetime.now(UTC),
        reasons={"waf.sqli": 21},
        request_ids=(f"r{number}",),
    )


async def until(condition: Any, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_alert_is_posted_as_signed_json(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERT_SECRET", "s3cret")
    poster = WebhookPoster(WebhookSettings(url=receiver.url, secret_env="ALERT_SECRET"))
    poster.post(alert())
    await until(lambda: receiver.received)
    await poster.close()
    headers, body = receiver.received[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert (payload["type"], payload["rule"], payload["count"]) == ("dijk.alert", "waf-burst", 21)
    assert "waf-burst: 21 matching requests within 60 s" in payload["summary"]


async def test_failed_posts_are_retried_with_backoff_in_order(receiver: Receiver) -> None:
    receiver.fail_next = 3
    poster = WebhookPoster(WebhookSettings(url=receiver.url), retry_initial_s=0.05)
    for number in range(3):
        poster.post(alert(number))
    await until(lambda: len(receiver.received) == 3)
    await poster.close()
    ids = [json.loads(body)["request_ids"][0] for _, body in receiver.received]
    assert ids == ["r0", "r1", "r2"]
    assert poster.sent == 3


async def test_an_unreachable_webhook_never_blocks_and_drops_beyond_its_queue() -> None:
    poster = WebhookPoster(
        WebhookSettings(url="http://127.0.0.1:9/hook", max_queue=5), retry_initial_s=0.05
    )
    started = time.monotonic()
    for number in range(50):
        poster.post(alert(number))
    assert time.monotonic() - started < 0.5
    await poster.close(timeout_s=0.5)
    assert poster.dropped >= 45


def test_a_missing_secret_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_SECRET", raising=False)
    with pytest.raises(ValueError, match="NOT_SET_SECRET is not set"):
        WebhookPoster(WebhookSettings(url="http://127.0.0.1:9/", secret_env="NOT_SET_SECRET"))
