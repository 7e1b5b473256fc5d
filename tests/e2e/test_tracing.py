"""Tracing against a real ``dijk serve`` and an OTLP/HTTP receiver run here: the trace has
a span for the request, one per stage that ran, and one for the upstream call; the upstream
sees the same trace id in ``traceparent``; a client's trace is continued; log lines carry
the trace id."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.support.gateway import GatewayProcess, base_config, log_events, wait_for
from tests.support.upstream import RecordingUpstream


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Any] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver  # type: ignore[assignment]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.server.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[GatewayProcess, _Receiver, RecordingUpstream]]:
    receiver = _Receiver()
    upstream = RecordingUpstream().start()
    config = base_config(
        upstream.port,
        tracing={
            "enabled": True,
            "endpoint": f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces",
            "export_delay_ms": 200,
        },
        logging={"access_log": True},
        audit={"enabled": False},
    )
    config["routes"][0]["waf"] = {"mode": "block"}
    gateway = GatewayProcess(config, tmp_path)
    try:
        yield gateway.start(timeout=60), receiver, upstream
    finally:
        gateway.stop()
        receiver.shutdown()
        receiver.server_close()


CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_request_is_traced_through_its_stages_and_the_upstream(
    setup: tuple[GatewayProcess, _Receiver, RecordingUpstream],
) -> None:
    gateway, receiver, upstream = setup
    request = urllib.request.Request(
        gateway.url + "/accounts",
        headers={"traceparent": f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    assert wait_for(lambda: len(receiver.spans) >= 4, 20), receiver.spans
    names = {span.name for span in receiver.spans}
    assert {"GET all", "client_limits", "waf", "upstream echo"} <= names
    assert {span.trace_id.hex() for span in receiver.spans} == {CLIENT_TRACE}
    # The upstream sees the same trace, with the gateway's request span as parent.
    sent = {k.lower(): v for k, v in upstream.requests[-1].headers}
    assert [k.lower() for k, _ in upstream.requests[-1].headers].count("traceparent") == 1
    root = next(span for span in receiver.spans if span.name == "GET all")
    assert sent["traceparent"] == f"00-{CLIENT_TRACE}-{root.span_id.hex()}-01"
    children = [span for span in receiver.spans if span.name != "GET all"]
    assert all(span.parent_span_id == root.span_id for span in children)
    # The access log line carries the trace id.
    assert log_events(gateway, "request")[-1]["trace_id"] == CLIENT_TRACE


def test_without_a_client_trace_a_new_one_starts(
    setup: tuple[GatewayProcess, _Receiver, RecordingUpstream],
) -> None:
    gateway, receiver, upstream = setup
    with urllib.request.urlopen(gateway.url + "/x", timeout=10) as response:
        assert response.status == 200
    assert wait_for(lambda: any(s.name == "GET all" for s in receiver.spans), 20)
    root = next(span for span in receiver.spans if span.name == "GET all")
    sent = {k.lower(): v for k, v in upstream.requests[-1].headers}
    assert sent["traceparent"].split("-")[1] == root.trace_id.hex()
    assert root.trace_id.hex() != "0" * 32
