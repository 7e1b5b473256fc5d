"""Structured JSON logs (structlog + orjson) that never carry credentials.

Redaction is by key name, applied to every event including nested dicts, so a stage
author who logs a header mapping by mistake still does not leak ``Authorization``.

Libraries log through the standard ``logging`` module (asyncpg, aiohttp, redis, asyncio
itself). :func:`configure` puts one handler on the root logger that renders their records
with the same processors: one JSON object per line, with ``logger`` (the library's
logger name) and an exception as the ``exception`` field, never a bare multi-line
traceback between the JSON lines. Python warnings take the same path. Library records
show from WARNING up (from INFO when the level is ``debug``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog

REDACTED = "[redacted]"
_SENSITIVE = re.compile(
    r"(authorization|cookie|api[-_]?key|password|passwd|secret|token|credential|session)",
    re.IGNORECASE,
)
_SAFE_KEYS = frozenset({"token_env", "secret_env", "request_id", "credential_id"})


def _redact_value(key: str, value: Any, depth: int = 0) -> Any:
    if key not in _SAFE_KEYS and _SENSITIVE.search(key):
        return REDACTED
    if depth < 4:
        if isinstance(value, Mapping):
            return {str(k): _redact_value(str(k), v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            if all(isinstance(item, tuple) and len(item) == 2 for item in value):
                return [(name, _redact_value(str(name), item, depth + 1)) for name, item in value]
            return [_redact_value("", item, depth + 1) for item in value]
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        event[key] = _redact_value(key, event[key])
    return event


_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def add_pid(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Which process wrote the line: with ``workers: N`` the access log says which worker
    served each request (a cached value, not a system call per line)."""
    event["pid"] = _pid
    return event


def _dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class _DijkHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler :func:`configure` installs (replaced, not stacked, on a second call)."""


def _route_stdlib(numeric: int, renderer: Any, stream: TextIO) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = _DijkHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _DijkHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries' INFO lines (connections made, pools sized) are noise in a gateway's log:
    # they show from WARNING up, or from INFO when the gateway itself logs at DEBUG.
    root.setLevel(max(numeric, logging.INFO if numeric <= logging.DEBUG else logging.WARNING))
    logging.captureWarnings(True)


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    _route_stdlib(numeric, renderer, stream or sys.stderr)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_pid,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (print() writes the line and its newline separately): worker
        # processes share stderr, and their lines must not interleave.
        logger_factory=structlog.WriteLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
