"""Structured JSON logs (structlog + orjson) that never carry credentials.

Redaction is by key name, applied to every event including nested dicts, so a stage
author who logs a header mapping by mistake still does not leak ``Authorization``.
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


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
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
