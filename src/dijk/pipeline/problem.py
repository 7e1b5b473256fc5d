"""RFC 9457 problem documents: the one shape of every denial."""

from __future__ import annotations

from http import HTTPStatus

import orjson

PROBLEM_BASE = "https://dijk.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

# RFC 9110 names, where Python's http module still has the RFC 7231 ones.
_TITLES: dict[int, str] = {413: "Content Too Large", 422: "Unprocessable Content"}


def title_for(status: int) -> str:
    """The standard reason phrase, cached; unknown codes get a generic title."""
    title = _TITLES.get(status)
    if title is None:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        _TITLES[status] = title
    return title


def render_problem(
    status: int,
    reason: str,
    detail: str,
    request_id: str,
    extra: dict[str, object] | None = None,
) -> bytes:
    """Serialise a problem document.

    ``reason`` becomes the last part of ``type`` and is repeated as ``reason`` so that
    clients and log pipelines do not need to parse URLs. orjson escapes control
    characters, so a detail can never break the JSON.
    """
    document: dict[str, object] = {
        "type": PROBLEM_BASE + reason,
        "title": title_for(status),
        "status": status,
        "detail": detail,
        "reason": reason,
        "request_id": request_id,
    }
    if extra:
        for key, value in extra.items():
            document.setdefault(key, value)
    return orjson.dumps(document)
