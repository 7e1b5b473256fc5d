"""OpenAPI positive security (priority 4000; responses 900): only what the contract allows.

The route's OpenAPI document (``routes[].openapi``) is compiled once per configuration
(:mod:`dijk.openapi`); this stage only looks up and runs compiled validators:

- ``request_headers``: the operation for the path and method (404
  ``openapi.unknown_path``, 405 ``openapi.method_not_allowed`` with ``Allow``), the path,
  query, header and cookie parameters (400 ``openapi.invalid_request``; undeclared query
  parameters 400 ``openapi.undeclared_parameter`` under ``additional_properties: deny``),
  and the body's content type (415 ``openapi.unsupported_media_type``) - all before a
  byte of the body is read;
- ``request_body``: the body against its schema (400 ``openapi.invalid_request``;
  undeclared properties 400 ``openapi.undeclared_property``, read-only ones 400
  ``openapi.read_only_property``: mass assignment);
- ``response_headers`` / ``response_body`` (when ``response`` is not ``off``; a second
  stage, ``openapi_response`` at priority 900, so that on the way out it runs before
  privacy masking at 1000 and checks what the upstream sent): the status
  and content type must be declared and a JSON body must match its schema; ``strip``
  first removes undeclared and ``writeOnly`` properties and re-serialises the body (the
  writer sets the new Content-Length); ``enforce`` answers 502 ``openapi.invalid_response``.

For the attack detector (the WAF stage, priority 3000, runs after this one in both request
phases) the stage leaves ``ctx.annotations["openapi.constrained_fields"]``: the fields whose
schema keeps a conforming value harmless (integers, enums, ``uuid``...; worked out when the
document is compiled, :mod:`dijk.openapi.constrained`), so that the WAF drops its findings
on them. Parameters are added once all of the head conformed, body fields once the body
did; a request that broke the contract (``monitor`` mode lets it through) gets none, and
neither do query or form names spelt with escapes the two parsers read differently.

In ``monitor`` mode nothing is refused: each violation is recorded in ``ctx.monitored``
(audit record, metrics reason) and the request goes on. Response checks follow their own
``response`` setting. Details name the location, the field (a JSON pointer) and the rule,
never the offending value.

Response denials are decided in ``response_body`` even when the status line already
shows the problem: by then the upstream body has been read and its connection returned
to the pool, so a refused response never strands a connection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import structlog

from dijk.config.loader import ConfigError, ConfigIssue
from dijk.config.models import DijkConfig, OpenApiConfig
from dijk.openapi import CompiledSpec, SpecError, load_spec, resolve_location
from dijk.openapi.compiler import Body, Operation, ResponseBody
from dijk.openapi.constrained import (
    ANNOTATION,
    CONTENT_ANNOTATION,
    plain_form_names,
    plain_query_names,
)
from dijk.openapi.request import (
    Violation,
    check_body,
    check_parameters,
    check_response_body,
    check_response_head,
    find_operation,
    is_json,
    media_type,
    select_body,
)
from dijk.pipeline.context import RequestContext
from dijk.pipeline.decision import Decision
from dijk.pipeline.stage import Phase, Stage

log = structlog.get_logger("dijk.openapi")

_STATE = "openapi"
_GENERIC_RESPONSE = "The upstream response does not match the API contract."
# Headers that describe the exact bytes of a body: wrong once the body is rewritten.
_BODY_DIGESTS = frozenset({"etag", "content-md5", "digest", "repr-digest", "content-digest"})


@dataclass(slots=True)
class _Pending:
    """What the request phases learnt, for the later phases of the same request."""

    operation: Operation
    body: Body | None = None
    # False once a violation was let through (monitor mode): nothing is vouched for.
    conforms: bool = True
    response: ResponseBody | None = None
    response_violation: Violation | None = None


class OpenApiStage(Stage):
    """The request side: operation, parameters, content type, body."""

    name: ClassVar[str] = "openapi"
    priority: ClassVar[int] = 4000
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS, Phase.REQUEST_BODY})

    def __init__(self, spec: CompiledSpec, config: OpenApiConfig) -> None:
        self._spec = spec
        self._enforce = config.mode == "enforce"
        self._deny_undeclared = config.additional_properties == "deny"
        self._response = config.response

    def wants_request_body(self, ctx: RequestContext) -> bool:
        pending = ctx.annotations.get(_STATE)
        return isinstance(pending, _Pending) and pending.body is not None

    # ---- request -------------------------------------------------------------------------
    async def request_headers(self, ctx: RequestContext) -> Decision | None:
        found = find_operation(self._spec, ctx.method, ctx.path)
        if isinstance(found, Violation):
            return self._refuse(ctx, found)
        operation, path_params = found
        pending = _Pending(operation)
        ctx.annotations[_STATE] = pending
        ctx.annotations["openapi_operation"] = operation.label
        violation = check_parameters(
            operation,
            path_params,
            ctx.query,
            ctx.headers,
            deny_undeclared_query=self._deny_undeclared,
        )
        if violation is not None:
            decision = self._refuse(ctx, violation)
            if decision is not None:
                return decision
            pending.conforms = False
        content_type = ctx.header("content-type") or ""
        chosen = select_body(operation, content_type, _has_body(ctx))
        if isinstance(chosen, Violation):
            decision = self._refuse(ctx, chosen)
            if decision is not None:
                return decision
            pending.conforms = False
        elif chosen is not None:
            pending.body = chosen
        if pending.conforms and operation.constrained_params:
            _publish_parameters(ctx, operation)
        if self._response != "off" and operation.responses:
            # Compressed answers cannot be checked or stripped: ask for identity.
            ctx.headers = [
                (name, value) for name, value in ctx.headers if name != "accept-encoding"
            ]
        return None

    async def request_body(self, ctx: RequestContext) -> Decision | None:
        pending = ctx.annotations.get(_STATE)
        if not isinstance(pending, _Pending) or pending.body is None:
            return None
        body = ctx.inspected_body
        if not body:
            if pending.operation.body_required:
                violation = Violation(
                    400, "openapi.invalid_request", "request body: is required (requestBody)"
                )
                return self._nonconforming(ctx, pending, violation)
            return None
        content_type = ctx.header("content-type") or ""
        loaded = ctx.json_body() if is_json(media_type(content_type)) else None
        found = check_body(pending.body, content_type, body, loaded)
        if found is None:
            if pending.conforms:
                _publish_body(ctx, pending.body, content_type, body)
            return None
        return self._nonconforming(ctx, pending, found)

    def _nonconforming(
        self, ctx: RequestContext, pending: _Pending, violation: Violation
    ) -> Decision | None:
        pending.conforms = False
        ctx.annotations.pop(ANNOTATION, None)
        return self._refuse(ctx, violation)

    def _refuse(self, ctx: RequestContext, violation: Violation) -> Decision | None:
        if self._enforce:
            headers = (("Allow", violation.allow),) if violation.allow else ()
            return Decision.deny(violation.status, violation.reason, violation.detail, headers)
        ctx.monitored.append(Decision.monitor(violation.status, violation.reason, violation.detail))
        return None


class OpenApiResponseStage(Stage):
    """The response side, at priority 900 so that it runs *before* privacy masking (1000)
    on the way out (response phases run in reverse priority): the contract is checked on
    what the upstream sent, and masked values (``**** 1234``) never fail a ``pattern``.
    """

    name: ClassVar[str] = "openapi_response"
    priority: ClassVar[int] = 900
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.RESPONSE_HEADERS, Phase.RESPONSE_BODY})

    def __init__(self, config: OpenApiConfig) -> None:
        self._response = config.response

    def wants_response_body(self, ctx: RequestContext) -> bool:
        pending = ctx.annotations.get(_STATE)
        return isinstance(pending, _Pending) and (
            pending.response is not None or pending.response_violation is not None
        )

    async def response_headers(self, ctx: RequestContext) -> Decision | None:
        pending = ctx.annotations.get(_STATE)
        if self._response == "off" or not isinstance(pending, _Pending):
            return None
        status = ctx.response_status
        content_type = _response_header(ctx, "content-type") or ""
        result = check_response_head(
            pending.operation, status, content_type, _response_has_body(ctx)
        )
        if isinstance(result, Violation):
            self._response_problem(ctx, pending, result)
            return None
        if result is None or not is_json(media_type(content_type)):
            return None
        encoding = (_response_header(ctx, "content-encoding") or "identity").strip().lower()
        if encoding != "identity":
            violation = Violation(
                502,
                "openapi.invalid_response",
                "The upstream response is compressed and cannot be checked against the contract.",
            )
            self._response_problem(ctx, pending, violation)
            return None
        pending.response = result
        return None

    async def response_body(self, ctx: RequestContext) -> Decision | None:
        pending = ctx.annotations.get(_STATE)
        if not isinstance(pending, _Pending):
            return None
        if pending.response_violation is not None:
            return self._response_denial(ctx, pending.response_violation)
        if pending.response is None:
            return None
        content_type = _response_header(ctx, "content-type") or ""
        result = check_response_body(
            pending.response,
            content_type,
            ctx.response_body or b"",
            strip=self._response == "strip",
        )
        if result.body is not None:
            ctx.response_body = result.body
            ctx.response_headers = [
                (name, value) for name, value in ctx.response_headers if name not in _BODY_DIGESTS
            ]
            ctx.annotations["openapi_stripped"] = list(result.removed[:50])
        if result.violation is None:
            return None
        if self._response == "enforce":
            return self._response_denial(ctx, result.violation)
        ctx.monitored.append(
            Decision.monitor(502, result.violation.reason, result.violation.detail)
        )
        return None

    def _response_problem(
        self, ctx: RequestContext, pending: _Pending, violation: Violation
    ) -> None:
        if self._response == "enforce":
            pending.response_violation = violation  # refused in response_body (module doc)
        else:
            ctx.monitored.append(Decision.monitor(502, violation.reason, violation.detail))

    def _response_denial(self, ctx: RequestContext, violation: Violation) -> Decision:
        # The specifics stay in the log: they describe the upstream, not the client's request.
        log.warning(
            "openapi_invalid_response",
            request_id=ctx.request_id,
            route=ctx.route_name,
            detail=violation.detail,
        )
        return Decision.deny(502, violation.reason, _GENERIC_RESPONSE)


def _publish_parameters(ctx: RequestContext, operation: Operation) -> None:
    fields = operation.constrained_params
    if operation.constrained_query and not plain_query_names(ctx.query):
        fields = operation.constrained_headers
    if fields:
        ctx.annotations[ANNOTATION] = fields


def _publish_body(ctx: RequestContext, body: Body, content_type: str, raw: bytes) -> None:
    """Add the body's constrained fields (and the kinds of text its schema declares), for a
    body that conformed, read as the WAF
    reads it: JSON, or a form whose names decode alike; not a body the WAF would first
    inflate (``Content-Encoding``), which is not the one that was validated."""
    media = media_type(content_type)
    if is_json(media):
        fields, kinds = body.constrained_json, body.content_json
    elif media == "application/x-www-form-urlencoded" and plain_form_names(raw):
        fields, kinds = body.constrained_form, body.content_form
    else:
        return
    if not fields and not kinds:
        return
    encoding = ctx.header("content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        return
    if kinds:
        ctx.annotations[CONTENT_ANNOTATION] = kinds
    if not fields:
        return
    head = ctx.annotations.get(ANNOTATION)
    ctx.annotations[ANNOTATION] = fields | head if isinstance(head, frozenset) else fields


def _has_body(ctx: RequestContext) -> bool:
    if ctx.content_length is not None:
        return ctx.content_length > 0
    return ctx.header("transfer-encoding") is not None


def _response_header(ctx: RequestContext, name: str) -> str | None:
    for key, value in ctx.response_headers:
        if key == name:
            return value
    return None


def _response_has_body(ctx: RequestContext) -> bool:
    status = ctx.response_status
    if ctx.method == "HEAD" or status in (204, 304) or status < 200:
        return False
    return _response_header(ctx, "content-length") != "0"


# --------------------------------------------------------------------------- loading


def load_route_specs(config: DijkConfig, source: str = "") -> dict[str, CompiledSpec]:
    """Compile the OpenAPI document of every route that has one, by route name.

    Paths are relative to the configuration file's directory. Every problem of every
    document is reported at once (:class:`ConfigError`), each in its own file's terms.
    """
    base_dir = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()
    specs: dict[str, CompiledSpec] = {}
    done: dict[tuple[object, ...], CompiledSpec] = {}
    issues: list[ConfigIssue] = []
    for index, route in enumerate(config.routes):
        settings = route.openapi
        if settings is None or settings.mode == "off":
            continue
        try:
            path = resolve_location(settings.spec, base_dir)
        except ValueError as exc:
            issues.append(_config_issue(source, ("routes", index, "openapi", "spec"), str(exc)))
            continue
        if not os.path.isfile(path):
            issues.append(
                _config_issue(source, ("routes", index, "openapi", "spec"), f"no such file: {path}")
            )
            continue
        key = (path, settings.additional_properties, settings.response, settings.base_path)
        spec = done.get(key)
        if spec is None:
            try:
                spec = load_spec(
                    path,
                    close_objects=settings.additional_properties == "deny",
                    response_mode=settings.response,
                    base_path=settings.base_path,
                )
            except SpecError as exc:
                issues.append(
                    _config_issue(
                        source,
                        ("routes", index, "openapi", "spec"),
                        f"the OpenAPI document {path} has {len(exc.issues)} problem(s), below",
                    )
                )
                issues.extend(
                    ConfigIssue(issue.file, issue.line, issue.pointer or "/", issue.message)
                    for issue in exc.issues
                )
                continue
            done[key] = spec
        specs[route.name] = spec
    if issues:
        raise ConfigError(issues)
    return specs


def _config_issue(source: str, path: tuple[str | int, ...], message: str) -> ConfigIssue:
    """An issue at ``path`` of the configuration, with its line when the file can be read."""
    from dijk.config.loader import format_path, issue_at, load_yaml_document

    try:
        with open(source, encoding="utf-8") as stream:
            _, lines = load_yaml_document(stream.read(), source)
    except (OSError, ValueError, ConfigError):
        return ConfigIssue(source, None, format_path(path), message)
    return issue_at(source, lines, path, message)
