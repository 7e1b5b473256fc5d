"""The Stage contract: phases, priority, fail-closed behaviour.

A stage joins the phases it lists in ``phases``; the pipeline calls only those methods.
Higher ``priority`` runs earlier on the way in; response phases run in reverse (Envoy).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from dijk.pipeline.context import RequestContext
    from dijk.pipeline.decision import Decision


class Phase(StrEnum):
    REQUEST_HEADERS = "request_headers"
    REQUEST_BODY = "request_body"
    RESPONSE_HEADERS = "response_headers"
    RESPONSE_BODY = "response_body"
    LOG = "log"


class OnError(StrEnum):
    """What a fault inside a stage does to the request (default: deny, i.e. fail closed)."""

    DENY = "deny"
    ALLOW = "allow"


class DependencyUnavailable(Exception):
    """Raised by a stage when a dependency it needs (Redis, an IdP) is down: answered 503."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Stage:
    """Base class for stages. Subclasses set the class attributes and override phases.

    The methods below are only called for phases listed in ``phases``. They return
    ``None`` (go on) or a :class:`~dijk.pipeline.decision.Decision`; they never raise to
    deny. ``wants_request_body`` / ``wants_response_body`` let a stage ask for a buffered
    body for this request; bodies stream otherwise.
    """

    name: ClassVar[str] = "stage"
    priority: ClassVar[int] = 0
    phases: ClassVar[frozenset[Phase]] = frozenset()
    on_error: OnError = OnError.DENY

    def wants_request_body(self, ctx: RequestContext) -> bool:
        return Phase.REQUEST_BODY in self.phases

    def wants_response_body(self, ctx: RequestContext) -> bool:
        return Phase.RESPONSE_BODY in self.phases

    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        return None

    async def request_body(self, ctx: RequestContext) -> Decision | None:
        return None

    async def response_headers(self, ctx: RequestContext) -> Decision | None:
        return None

    async def response_body(self, ctx: RequestContext) -> Decision | None:
        return None

    async def log(self, ctx: RequestContext) -> None:
        return None

    async def close(self) -> None:
        """Release resources when a new configuration replaces this stage."""
        return None
