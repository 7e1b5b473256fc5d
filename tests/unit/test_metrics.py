"""The gateway's lock-free metrics expose exactly what prometheus-client's own would."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from dijk import metrics

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def reference() -> tuple[CollectorRegistry, dict[str, object]]:
    """prometheus-client metrics with the names, help texts and labels of ours."""
    registry = CollectorRegistry(auto_describe=True)
    return registry, {
        "requests": Counter(
            metrics.REQUESTS.name,
            metrics.REQUESTS.documentation,
            metrics.REQUESTS.labelnames,
            registry=registry,
        ),
        "gateway": Histogram(
            metrics.GATEWAY_LATENCY.name,
            metrics.GATEWAY_LATENCY.documentation,
            metrics.GATEWAY_LATENCY.labelnames,
            buckets=BUCKETS,
            registry=registry,
        ),
        "upstream": Histogram(
            metrics.UPSTREAM_LATENCY.name,
            metrics.UPSTREAM_LATENCY.documentation,
            metrics.UPSTREAM_LATENCY.labelnames,
            buckets=BUCKETS,
            registry=registry,
        ),
        "in_flight": Gauge(
            metrics.IN_FLIGHT.name, metrics.IN_FLIGHT.documentation, registry=registry
        ),
        "protocol": Counter(
            metrics.PROTOCOL_ERRORS.name,
            metrics.PROTOCOL_ERRORS.documentation,
            metrics.PROTOCOL_ERRORS.labelnames,
            registry=registry,
        ),
    }


def lines_of(text: bytes, names: tuple[str, ...]) -> set[str]:
    """Exposition lines of these metric families, without the time-dependent _created."""
    kept = set()
    for line in text.decode().splitlines():
        if "_created" in line:
            continue
        name = line.split(" ")[2] if line.startswith("#") else line.split("{")[0].split(" ")[0]
        if name.startswith(names):
            kept.add(line)
    return kept


def test_loop_metrics_expose_the_same_text_as_prometheus_client() -> None:
    registry, ours_like = reference()
    route = "metrics-test-route"
    observations = [(200, "", 0.0005), (200, "", 0.0007), (404, "route.not_found", 0.3)]
    observations += [(503, "overload.shed", 31.0), (200, "", 1.0)]
    for status, reason, seconds in observations:
        metrics.observe_request(route, status, reason, seconds)
        metrics.observe_upstream(route, seconds / 2)
        ours_like["requests"].labels(route, str(status), reason).inc()  # type: ignore[attr-defined]
        ours_like["gateway"].labels(route).observe(seconds)  # type: ignore[attr-defined]
        ours_like["upstream"].labels(route).observe(seconds / 2)  # type: ignore[attr-defined]
    metrics.protocol_error("metrics-test.reason")
    ours_like["protocol"].labels("metrics-test.reason").inc()  # type: ignore[attr-defined]

    def only_this_test(lines: set[str]) -> set[str]:
        return {
            line
            for line in lines
            if line.startswith("#") or route in line or "metrics-test.reason" in line
        }

    names = (
        "dijk_requests_total",
        "dijk_request_duration_seconds",
        "dijk_upstream_duration_seconds",
        "dijk_protocol_errors_total",
    )
    expected = only_this_test(lines_of(generate_latest(registry), names))
    assert only_this_test(lines_of(metrics.render(), names)) == expected


def test_in_flight_gauge_goes_up_and_down_and_is_exported() -> None:
    before = metrics.REGISTRY.get_sample_value("dijk_requests_in_flight")
    metrics.IN_FLIGHT.inc()
    metrics.IN_FLIGHT.inc()
    metrics.IN_FLIGHT.dec()
    assert metrics.REGISTRY.get_sample_value("dijk_requests_in_flight") == (before or 0) + 1
    metrics.IN_FLIGHT.dec()


def test_a_value_on_a_bucket_bound_falls_in_that_bucket() -> None:
    child = metrics.LoopHistogram("x_seconds", "x", ("route",), (0.1, 1.0)).labels("r")
    for value in (0.1, 0.10001, 1.0, 2.0):
        child.observe(value)
    assert child.counts == [1, 2, 1]  # <=0.1, <=1.0, +Inf (not cumulative)


def test_counter_children_made_by_labels_and_by_the_hot_path_are_the_same_series() -> None:
    route = "metrics-test-labels"
    metrics.REQUESTS.labels(route, 200, "").inc()
    metrics.observe_request(route, 200, "", 0.001)
    value = metrics.REGISTRY.get_sample_value(
        "dijk_requests_total", {"route": route, "status": "200", "reason": ""}
    )
    assert value == 2
    created = metrics.REGISTRY.get_sample_value(
        "dijk_requests_created", {"route": route, "status": "200", "reason": ""}
    )
    assert created is not None
    assert created > 0


# ---- several workers: snapshots added up --------------------------------------------------


def _snapshot(requests: float, in_flight: float, generation: float, created: float) -> list[Any]:
    return [
        [
            "dijk_requests",
            "counter",
            "Requests.",
            [
                ["dijk_requests_total", {"route": "a", "status": "200", "reason": ""}, requests],
                ["dijk_requests_created", {"route": "a", "status": "200", "reason": ""}, created],
            ],
        ],
        [
            "dijk_requests_in_flight",
            "gauge",
            "In flight.",
            [["dijk_requests_in_flight", {}, in_flight]],
        ],
        [
            "dijk_config_generation",
            "gauge",
            "Generation.",
            [["dijk_config_generation", {}, generation]],
        ],
    ]


def _samples(families: list[Any]) -> dict[str, float]:
    return {sample.name: sample.value for family in families for sample in family.samples}


def test_worker_snapshots_sum_counters_of_all_and_gauges_of_live_workers() -> None:
    merged = _samples(
        metrics.aggregate(
            [
                (True, _snapshot(5, 2, 3, 100.0)),
                (True, _snapshot(7, 1, 2, 50.0)),
                (False, _snapshot(11, 9, 1, 10.0)),  # a dead worker: counts stay, gauges go
            ]
        )
    )
    assert merged["dijk_requests_total"] == 23
    assert merged["dijk_requests_created"] == 10.0
    assert merged["dijk_requests_in_flight"] == 3
    assert merged["dijk_config_generation"] == 2  # the oldest configuration a live worker serves


def test_shared_metrics_render_every_worker_snapshot(tmp_path: Path) -> None:
    (tmp_path / "worker-1.json").write_bytes(orjson.dumps(_snapshot(5, 0, 1, 1.0)))
    (tmp_path / "dead-2.json").write_bytes(orjson.dumps(_snapshot(4, 6, 1, 1.0)))
    before = metrics._shared_dir
    metrics.share(tmp_path)
    try:
        text = metrics.render().decode()
        own = tmp_path / f"worker-{os.getpid()}.json"
        assert own.exists()  # this process wrote its own snapshot before adding up
    finally:
        metrics._shared_dir = before
    # 5 + 4 from the files, plus whatever this test process counted itself.
    own_requests = sum(
        value for key, value in metrics.REQUESTS.values.items() if key == ("a", "200", "")
    )
    expected = float(9 + own_requests)
    assert f'dijk_requests_total{{reason="",route="a",status="200"}} {expected}' in text
    # The dead worker's 6 requests in flight are gone with it.
    assert f"dijk_requests_in_flight {float(metrics.IN_FLIGHT.value)}" in text
