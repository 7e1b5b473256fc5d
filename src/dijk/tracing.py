"""OpenTelemetry traces (``tracing.enabled``): one span per request, per stage, and for the
upstream call, exported over OTLP/HTTP by a batch processor (its own thread: nothing is
sent on the event loop).

:class:`Tracer` is built once per configuration (``StageResources``) and shut down, which
flushes what is queued, when the last stage using it closes. Per request the tracing stage
(``stages/tracing.py``) sets ``ctx.trace`` to a :class:`RequestTrace`; the pipeline opens a
child span around every stage call and the gateway one around the upstream call, only when
``ctx.trace`` is set — with tracing off the cost is one attribute test per stage.

The W3C ``traceparent``/``tracestate`` of the client are continued (same trace id), but the
client's sampled flag is not obeyed: sampling is decided on the trace id by
``sample_ratio``, so a client cannot make every one of its requests recorded and exported.
"""

from __future__ import annotations

import time
from typing import Any

from dijk.config.models import TracingConfig

TRACE_HEADERS = ("traceparent", "tracestate")


class Tracer:
    def __init__(self, config: TracingConfig) -> None:
        # Imported here: the SDK (and its exporter) load only when tracing is on.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=TraceIdRatioBased(config.sample_ratio),
        )
        exporter = OTLPSpanExporter(endpoint=config.endpoint, timeout=5)
        self.provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=config.export_delay_ms)
        )
        self.tracer = self.provider.get_tracer("dijk")
        self.propagator = TraceContextTextMapPropagator()
        self.users = 0

    def begin(self, headers: list[tuple[str, str]], method: str, route: str) -> RequestTrace:
        """The request's span, continuing the client's trace when it sent a valid one."""
        from opentelemetry.trace import SpanKind

        carrier = {name: value for name, value in headers if name in TRACE_HEADERS}
        parent = self.propagator.extract(carrier) if carrier else None
        span = self.tracer.start_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
        )
        return RequestTrace(self, span)

    def shutdown(self) -> None:
        """Flush and stop the exporter (blocking, bounded by its timeout)."""
        self.provider.shutdown()


class RequestTrace:
    """The spans of one request."""

    __slots__ = ("_context", "_perf0", "_wall0_ns", "span", "tracer")

    def __init__(self, tracer: Tracer, span: Any) -> None:
        from opentelemetry.trace import set_span_in_context

        self.tracer = tracer
        self.span = span
        self._context = set_span_in_context(span)
        # perf_counter() times of the request (ctx.upstream_started) map to wall-clock ns.
        self._wall0_ns = time.time_ns()
        self._perf0 = time.perf_counter()

    @property
    def trace_id(self) -> str:
        return f"{self.span.get_span_context().trace_id:032x}"

    def child(self, name: str, **attributes: Any) -> Any:
        """A started span under the request's (the caller ends it)."""
        return self.tracer.tracer.start_span(name, context=self._context, attributes=attributes)

    def upstream_headers(self) -> list[tuple[str, str]]:
        """``traceparent`` (and ``tracestate``) for the upstream: this request's trace."""
        carrier: dict[str, str] = {}
        self.tracer.propagator.inject(carrier, context=self._context)
        return list(carrier.items())

    def span_between(self, name: str, started: float, seconds: float, **attributes: Any) -> None:
        """A finished child span from ``started`` (perf_counter) lasting ``seconds``: the
        upstream call, timed by the gateway, recorded without touching its path."""
        start_ns = self._wall0_ns + int((started - self._perf0) * 1e9)
        span = self.tracer.tracer.start_span(
            name, context=self._context, start_time=start_ns, attributes=attributes
        )
        span.end(end_time=start_ns + int(seconds * 1e9))

    def end(self, status: int, reason: str) -> None:
        self.span.set_attribute("http.response.status_code", status)
        if reason:
            self.span.set_attribute("dijk.reason", reason)
        self.span.end()
