"""workers: the count, the per-worker audit chain, and what cannot run with several."""

from __future__ import annotations

import io
import os

import orjson
import pytest

from dijk import logs
from dijk.config import ConfigError, load_config_text
from dijk.proxy.workers import worker_config, worker_count

BASE = """\
version: 1
upstreams: {app: {url: "http://127.0.0.1:3000"}}
routes: [{name: all, match: {path_prefix: /}, upstream: app}]
"""


def test_auto_is_one_worker_per_available_cpu() -> None:
    assert worker_count("auto") == len(os.sched_getaffinity(0))
    assert worker_count(3) == 3


def test_each_worker_writes_its_own_audit_chain() -> None:
    config = load_config_text(BASE + "workers: 2\naudit: {chain: edge}\n", "dijk.yaml")
    assert worker_config(config, 1).audit.chain == "edge-w1"
    assert worker_config(config, 2).audit.chain == "edge-w2"
    assert config.audit.chain == "edge"  # the loaded configuration itself is unchanged


def test_workers_out_of_range_are_refused() -> None:
    with pytest.raises(ConfigError, match="workers"):
        load_config_text(BASE + "workers: 0\n", "dijk.yaml")


def test_decision_listeners_need_a_single_worker() -> None:
    text = BASE + "workers: 2\ndecision: {listen: {address: 127.0.0.1, port: 9191}}\n"
    with pytest.raises(ConfigError, match="decision listeners run in one process"):
        load_config_text(text, "dijk.yaml")


def test_every_log_line_names_its_process_and_is_written_whole() -> None:
    stream = io.StringIO()
    writes: list[str] = []
    original = stream.write

    def write(text: str) -> int:
        writes.append(text)
        return original(text)

    stream.write = write  # type: ignore[method-assign]
    logs.configure("info", "json", stream)
    try:
        import structlog

        structlog.get_logger("dijk.access").info("request", status=200)
    finally:
        logs.configure()
    assert len(writes) == 1  # line and newline together: workers share stderr
    assert writes[0].endswith("\n")
    assert orjson.loads(writes[0])["pid"] == os.getpid()


def test_a_reload_that_changes_the_worker_count_says_it_needs_a_restart() -> None:
    from dijk.proxy.server import _restart_needed

    one = load_config_text(BASE, "dijk.yaml")
    two = load_config_text(BASE + "workers: 2\n", "dijk.yaml")
    assert "the number of workers changes after a restart" in _restart_needed(one, two)
    assert _restart_needed(one, one) == []
