"""Client limits (priority 9000): body size before forwarding, JSON shape limits.

Header size, header/body read timeouts and malformed framing are enforced earlier, by the
HTTP server itself (:mod:`dijk.proxy.http1`), because they must hold before a request
exists. This stage covers what needs the request: ``Content-Length`` against the body
limit, and for JSON bodies a streaming-safe scan of depth, array length, string length and
key count (:mod:`dijk.detect.json_limits`) before any parser builds the document.

A body with a ``Content-Encoding`` is decoded here, once, for every later stage
(:mod:`dijk.stages.content_coding`): the decoded size counts against the body limit, and
a body that cannot be decoded exactly is refused, never passed on unread.
"""

from __future__ import annotations

from typing import ClassVar

from dijk.config.models import LimitsConfig
from dijk.detect.json_limits import JsonLimits, check_json_limits
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage
from dijk.stages.content_coding import content_codings, decode_body

_STATUS = {
    "json.too_deep": (400, "limits.json_too_deep"),
    "json.array_too_long": (413, "limits.json_array_too_long"),
    "json.string_too_long": (413, "limits.json_string_too_long"),
    "json.too_many_keys": (413, "limits.json_too_many_keys"),
    "json.malformed": (400, "limits.json_malformed"),
}


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class ClientLimitsStage(Stage):
    name: ClassVar[str] = "client_limits"
    priority: ClassVar[int] = 9000
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS, Phase.REQUEST_BODY})

    def __init__(self, limits: LimitsConfig) -> None:
        self._max_body = limits.max_body_bytes
        self._json = JsonLimits(
            max_depth=limits.max_json_depth,
            max_array_length=limits.max_json_array_length,
            max_string_length=limits.max_json_string_length,
            max_object_keys=limits.max_json_keys,
        )

    def wants_request_body(self, ctx: RequestContext) -> bool:
        if is_json(ctx.content_type):
            return True
        return ctx.content_length != 0 and ctx.header("content-encoding") is not None

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        ctx.content_type = ctx.header("content-type") or ""
        length = ctx.content_length
        if length is not None and length > self._max_body:
            return Decision.deny(
                413,
                "limits.body_too_large",
                f"The request body is larger than the limit of {self._max_body} bytes.",
                limit=self._max_body,
            )
        return None

    async def request_body(self, ctx: RequestContext) -> Decision | None:
        if not ctx.body:
            return None
        body = ctx.body
        encoding = ctx.header("content-encoding")
        codings = content_codings(encoding) if encoding is not None else []
        if codings:
            refusal = self._decode(ctx, body, codings)
            if refusal is not None:
                return refusal
            body = ctx.decoded_body or b""
        if not is_json(ctx.content_type):
            return None
        violation = check_json_limits(body, self._json)
        if violation is None:
            return None
        status, reason = _STATUS.get(violation.reason, (400, "limits.json_malformed"))
        return Decision.deny(status, reason, violation.detail)

    def _decode(self, ctx: RequestContext, body: bytes, codings: list[str]) -> Decision | None:
        """Decode the body into ``ctx.decoded_body``, or the refusal when it cannot be."""
        decoded = decode_body(body, codings, self._max_body)
        if not decoded.error:
            ctx.decoded_body = decoded.body
            return None
        if decoded.error == "unsupported":
            if not is_json(ctx.content_type):
                return None  # not ours to read: the WAF's unknown_encoding setting decides
            return Decision.deny(
                415,
                "limits.unsupported_encoding",
                "The request body's Content-Encoding is not one the gateway can decode; "
                "send it as gzip, deflate or uncompressed.",
            )
        if decoded.error == "too_large":
            return Decision.deny(
                413,
                "limits.body_too_large",
                f"The request body is larger than the limit of {self._max_body} bytes once "
                "its Content-Encoding is undone.",
                limit=self._max_body,
            )
        return Decision.deny(
            400,
            "limits.body_undecodable",
            f"The request body does not decode as its Content-Encoding says ({decoded.detail}).",
        )
