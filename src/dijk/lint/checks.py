"""The checks: one walk over an OpenAPI 2.0/3.x document that yields raw findings.

A raw finding names its rule, the file and the JSON pointer tokens *where the problem is
written*: a schema problem is reported once at the schema's definition, however many
operations use it. Request-side rules (lengths, bounds, open objects) only look at what a
client sends (parameters and request bodies); response-side rules only at responses. That
keeps a large document's report about its attack surface, not about every string it
returns.

Nothing here reads positions, configuration or suppressions: :mod:`dijk.lint.engine`
applies those.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from dijk.lint import names
from dijk.lint.source import LoadError, Ref, Sources, Tokens

__all__ = ["MAX_SCHEMA_VISITS", "Checker", "Raw"]

METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_READS: Final = frozenset({"get", "head", "options", "trace"})
#: Most schema nodes one document's walks may visit (YAML aliases can multiply them).
MAX_SCHEMA_VISITS: Final = 3_000_000
_BOUNDED_FORMATS: Final = frozenset(
    {"date", "date-time", "time", "full-date", "uuid", "ipv4", "ipv6", "int32", "int64",
     "byte-length", "country-code", "currency-code"}
)  # fmt: skip
#: A quantifier without an upper bound: ``*``, ``+``, ``{n,}``.
_OPEN_QUANTIFIER: Final = re.compile(r"(?<!\\)[*+]|\{\d*,\}")
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"})
_SCHEMA_LISTS: Final = ("allOf", "anyOf", "oneOf", "prefixItems")
_JSONISH: Final = ("json", "xml", "text/plain", "*/*")


@dataclass(slots=True)
class Raw:
    rule: str
    file: int
    tokens: Tokens
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Node:
    """A value and where it is written."""

    file: int
    tokens: Tokens
    value: Any

    def child(self, *keys: str) -> _Node | None:
        value = self.value
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return _Node(self.file, self.tokens + keys, value)

    def items(self, key: str) -> Iterator[tuple[str, _Node]]:
        child = self.value.get(key) if isinstance(self.value, dict) else None
        if isinstance(child, dict):
            for name, value in child.items():
                yield name, _Node(self.file, (*self.tokens, key, name), value)

    def elements(self, key: str) -> Iterator[_Node]:
        child = self.value.get(key) if isinstance(self.value, dict) else None
        if isinstance(child, list):
            for position, value in enumerate(child):
                yield _Node(self.file, (*self.tokens, key, str(position)), value)


class Checker:
    """One document's checks; :meth:`run` returns the raw findings, deduplicated."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        root = sources.root
        if not isinstance(root, dict):
            raise LoadError(f"{sources.files[0].name}: not an OpenAPI document (no mapping)")
        if isinstance(root.get("openapi"), str) and root["openapi"].startswith("3."):
            self.v2 = False
        elif str(root.get("swagger")) == "2.0":
            self.v2 = True
        else:
            raise LoadError(
                f"{sources.files[0].name}: not an OpenAPI document: it needs 'openapi: 3.x' "
                "or 'swagger: \"2.0\"'"
            )
        self.root = _Node(0, (), root)
        self.found: dict[tuple[str, int, Tokens], Raw] = {}
        self.visited: set[tuple[int, Tokens, str, bool]] = set()
        self.visits = 0
        self.schemes: dict[str, _Node] = {}
        #: Per operation: label, node, under an admin path, requirements (scheme, scopes).
        self.access: list[tuple[str, _Node, bool, set[tuple[str, frozenset[str]]]]] = []

    # ------------------------------------------------------------------ plumbing

    def report(self, rule: str, node: _Node, message: str, **evidence: Any) -> None:
        key = (rule, node.file, node.tokens)
        if key not in self.found:
            self.found[key] = Raw(rule, node.file, node.tokens, message, evidence)

    def deref(self, node: _Node, limit: int = 32) -> _Node | None:
        """Follow ``$ref`` chains to a value; ``None`` when broken (reported elsewhere)."""
        seen = 0
        while isinstance(node.value, dict) and isinstance(node.value.get("$ref"), str):
            seen += 1
            if seen > limit:
                return None
            try:
                target: Ref = self.sources.resolve(node.file, node.value["$ref"])
            except (LoadError, KeyError):
                return None
            node = _Node(target.file, target.tokens, target.value)
        return node

    def run(self) -> list[Raw]:
        self.check_refs()
        self.check_security_schemes()
        self.check_servers(self.root)
        paths = self.root.child("paths")
        if paths is not None and isinstance(paths.value, dict):
            for template, item in _entries(paths):
                resolved = self.deref(item)
                if resolved is None or not isinstance(resolved.value, dict):
                    continue
                self.check_path(template, resolved)
        self.check_admin_access()
        return list(self.found.values())

    # ------------------------------------------------------------------ references

    def check_refs(self) -> None:
        """Every ``$ref`` in every file resolves, and no chain of them loops."""
        done = 0
        while done < len(self.sources.files):
            self._refs_in(done)
            done += 1

    def _refs_in(self, file: int) -> None:
        seen: set[int] = set()
        stack: list[tuple[Tokens, Any]] = [((), self.sources.files[file].data)]
        while stack:
            tokens, value = stack.pop()
            if isinstance(value, dict):
                if id(value) in seen:
                    continue
                seen.add(id(value))
                ref = value.get("$ref")
                if isinstance(ref, str) and not (tokens and tokens[-1] in ("properties",)):
                    self._check_ref(_Node(file, tokens, value), ref)
                for key, item in value.items():
                    if isinstance(item, dict | list):
                        stack.append(((*tokens, key), item))
            elif isinstance(value, list):
                if id(value) in seen:
                    continue
                seen.add(id(value))
                for position, item in enumerate(value):
                    if isinstance(item, dict | list):
                        stack.append(((*tokens, str(position)), item))

    def _check_ref(self, node: _Node, ref: str) -> None:
        chain: set[tuple[int, Tokens]] = {(node.file, node.tokens)}
        current = node
        while True:
            try:
                target = self.sources.resolve(current.file, current.value["$ref"])
            except LoadError as exc:
                self.report("ref-unresolvable", node, f"$ref {ref!r}: {exc}", ref=ref)
                return
            except KeyError:
                self.report("ref-unresolvable", node, f"$ref {ref!r} points at nothing", ref=ref)
                return
            key = (target.file, target.tokens)
            if key in chain:
                self.report(
                    "ref-unresolvable",
                    node,
                    f"$ref {ref!r} is part of a loop of references that never reaches a value",
                    ref=ref,
                )
                return
            chain.add(key)
            value = target.value
            if not (isinstance(value, dict) and isinstance(value.get("$ref"), str)):
                return
            current = _Node(target.file, target.tokens, value)

    # ------------------------------------------------------------------ security

    def check_security_schemes(self) -> None:
        container = (
            self.root.child("securityDefinitions")
            if self.v2
            else self.root.child("components", "securitySchemes")
        )
        if container is None or not isinstance(container.value, dict):
            return
        for name, raw in _entries(container):
            scheme = self.deref(raw)
            if scheme is None or not isinstance(scheme.value, dict):
                continue
            self.schemes[name] = scheme
            self._check_scheme(name, scheme)

    def _check_scheme(self, name: str, scheme: _Node) -> None:
        value = scheme.value
        kind = str(value.get("type", "")).lower()
        if kind == "apikey" and str(value.get("in", "")).lower() == "query":
            self.report(
                "credential-in-query",
                scheme.child("in") or scheme,
                f"API key scheme {name!r} is sent in the query parameter "
                f"{value.get('name', '?')!r}",
                scheme=name,
            )
        http_scheme = str(value.get("scheme", "")).lower() if kind == "http" else ""
        if kind == "basic" or http_scheme in ("basic", "digest", "negotiate"):
            label = "basic" if kind == "basic" else http_scheme
            self.report(
                "weak-http-auth",
                scheme.child("scheme") or scheme.child("type") or scheme,
                f"security scheme {name!r} uses HTTP {label.title()} authentication",
                scheme=name,
            )
        if kind != "oauth2":
            return
        if self.v2:
            declared = str(value.get("flow", ""))
            self._check_flow(name, declared, scheme.child("flow") or scheme)
            return
        flows = scheme.child("flows")
        if flows is None or not isinstance(flows.value, dict):
            return
        for flow_name, flow in _entries(flows):
            self._check_flow(name, flow_name, flow)
            if (
                flow_name in ("authorizationCode", "password")
                and isinstance(flow.value, dict)
                and not flow.value.get("refreshUrl")
            ):
                self.report(
                    "oauth-no-refresh-url",
                    flow,
                    f"OAuth {flow_name} flow of {name!r} declares no refreshUrl",
                    scheme=name,
                )

    def _check_flow(self, scheme: str, flow: str, node: _Node) -> None:
        if flow in ("implicit", "password"):
            self.report(
                f"oauth-{flow}-flow",
                node,
                f"OAuth scheme {scheme!r} uses the {flow} flow",
                scheme=scheme,
            )

    def _security(self, operation: _Node) -> tuple[_Node | None, bool]:
        """The requirements in force and whether they were written (``security: []``)."""
        own = operation.child("security")
        if own is not None:
            return own, True
        document = self.root.child("security")
        return document, document is not None

    # ------------------------------------------------------------------ servers

    def check_servers(self, holder: _Node) -> None:
        if self.v2:
            if holder.tokens and holder.tokens[0] != "paths":
                return
            host = str(self.root.value.get("host", ""))
            hostname = host.split(":")[0].lower()
            for scheme in holder.elements("schemes"):
                if str(scheme.value).lower() == "http" and hostname not in _LOOPBACK:
                    self.report(
                        "server-not-https",
                        scheme,
                        f"scheme 'http' for host {host or '(any)'!r}",
                        host=host,
                    )
            return
        for server in holder.elements("servers"):
            url = server.value.get("url") if isinstance(server.value, dict) else None
            if not isinstance(url, str) or not url.lower().startswith("http://"):
                continue
            try:
                hostname = (urlsplit(url).hostname or "").lower()
            except ValueError:
                hostname = ""
            if hostname in _LOOPBACK or hostname.endswith(".localhost"):
                continue
            self.report(
                "server-not-https",
                server.child("url") or server,
                f"server {url!r} uses plain HTTP",
                url=url,
            )

    # ------------------------------------------------------------------ operations

    def check_path(self, template: str, item: _Node) -> None:
        self.check_servers(item)
        shared = list(self._parameters(item))
        operations: dict[str, _Node] = {}
        for method in METHODS:
            operation = item.child(method)
            if operation is not None and isinstance(operation.value, dict):
                operations[method] = operation
        read_properties: dict[str, bool] = {}
        get = operations.get("get")
        if get is not None:
            read_properties = self._response_properties(get)
        for method, operation in operations.items():
            self.check_servers(operation)
            self.check_operation(template, method, operation, shared, read_properties)

    def _parameters(self, holder: _Node) -> Iterator[_Node]:
        for element in holder.elements("parameters"):
            resolved = self.deref(element)
            if resolved is not None and isinstance(resolved.value, dict):
                yield resolved

    def check_operation(
        self,
        template: str,
        method: str,
        operation: _Node,
        shared: list[_Node],
        read_properties: dict[str, bool],
    ) -> None:
        label = f"{method.upper()} {template}"
        requirements, written = self._security(operation)
        secured, scoped = self._check_requirements(label, requirements)
        self.access.append(
            (
                label,
                operation,
                _is_admin(template),
                _requirements(requirements) if secured else set(),
            )
        )
        if not written:
            rule = "read-without-security" if method in _READS else "write-without-security"
            self.report(rule, operation, f"{label} has no security requirement")
        if operation.value.get("deprecated") is True:
            self.report(
                "deprecated-operation",
                operation.child("deprecated") or operation,
                f"{label} is deprecated but still in the document",
            )
        parameters: dict[tuple[str, str], _Node] = {}
        for parameter in [*shared, *self._parameters(operation)]:
            key = (str(parameter.value.get("name")), str(parameter.value.get("in")))
            parameters[key] = parameter
        has_input = bool(parameters)
        for (name, where), parameter in parameters.items():
            self.check_parameter(label, name, where, parameter)
            if where == "path" and names.is_object_id(name) and not (secured or written):
                self.report(
                    "object-id-without-authorization",
                    operation,
                    f"{label}: object id {name!r} in the path, and no security requirement",
                    parameter=name,
                )
        body = self._request_body(operation, parameters)
        if body is not None:
            has_input = True
            self.walk_request(body)
        responses = operation.child("responses")
        if responses is None or not isinstance(responses.value, dict):
            return
        self.check_responses(label, operation, responses, secured, scoped, has_input)
        if body is not None:
            self.check_privileged(label, body, operation, read_properties)

    def _check_requirements(self, label: str, requirements: _Node | None) -> tuple[bool, bool]:
        """Report optional and undeclared requirements; say if secured and if scoped."""
        if requirements is None or not isinstance(requirements.value, list):
            return False, False
        secured = bool(requirements.value)
        scoped = False
        for requirement in _items(requirements):
            if not isinstance(requirement.value, dict):
                continue
            if not requirement.value:
                secured = False
                self.report(
                    "security-optional",
                    requirement,
                    f"{label}: the empty requirement {{}} makes authentication optional",
                )
            for scheme_name, scopes in requirement.value.items():
                if scheme_name not in self.schemes:
                    self.report(
                        "security-scheme-undefined",
                        requirement,
                        f"{label}: security scheme {scheme_name!r} is not declared",
                        scheme=scheme_name,
                    )
                if isinstance(scopes, list) and scopes:
                    scoped = True
        return secured, scoped

    def check_admin_access(self) -> None:
        ordinary: set[tuple[str, frozenset[str]]] = set()
        for _label, _operation, admin, requirements in self.access:
            if not admin:
                ordinary |= requirements
        for label, operation, admin, requirements in self.access:
            shared = requirements & ordinary
            if admin and shared:
                names_ = ", ".join(sorted(scheme for scheme, _scopes in shared))
                self.report(
                    "admin-security-not-distinct",
                    operation.child("security") or operation,
                    f"{label} accepts the same credentials as ordinary operations ({names_})",
                )

    def check_parameter(self, label: str, name: str, where: str, parameter: _Node) -> None:
        if where == "query" and names.is_credential(name):
            self.report(
                "credential-in-query",
                parameter,
                f"{label}: query parameter {name!r} carries a credential",
                parameter=name,
            )
        elif where in ("query", "path", "formData") and names.is_url_like(name):
            self.report(
                "url-parameter",
                parameter,
                f"{label}: {where} parameter {name!r} takes a URL",
                parameter=name,
            )
        if where in ("query", "path") and names.is_sensitive_in_url(name):
            self.report(
                "sensitive-data-in-url",
                parameter,
                f"{label}: {where} parameter {name!r} puts sensitive data in the URL",
                parameter=name,
            )
        schema = parameter if self.v2 else parameter.child("schema")
        if schema is None and not self.v2:
            for _media, content in _entries(parameter.child("content")):
                schema = content.child("schema")
                break
        if where == "path" and names.is_object_id(name):
            resolved = self.deref(schema) if schema is not None else None
            if (
                resolved is not None
                and isinstance(resolved.value, dict)
                and resolved.value.get("type") == "integer"
            ):
                self.report(
                    "numeric-object-id",
                    parameter,
                    f"{label}: object id {name!r} is a sequential integer",
                    parameter=name,
                )
        if where == "body" and self.v2:
            return  # the body parameter's schema is walked as the request body
        if schema is not None:
            self.walk_request(schema, f"{where} parameter {name!r}")

    def _request_body(
        self, operation: _Node, parameters: dict[tuple[str, str], _Node]
    ) -> _Node | None:
        if self.v2:
            for (_name, where), parameter in parameters.items():
                if where == "body":
                    return parameter.child("schema")
            return None
        body = operation.child("requestBody")
        if body is None:
            return None
        body = self.deref(body)
        if body is None:
            return None
        for _media, content in _entries(body.child("content")):
            schema = content.child("schema")
            if schema is not None:
                return schema
        return None

    # ------------------------------------------------------------------ responses

    def check_responses(
        self,
        label: str,
        operation: _Node,
        responses: _Node,
        secured: bool,
        scoped: bool,
        has_input: bool,
    ) -> None:
        codes = {str(code).upper() for code in responses.value}
        if secured and not codes & {"401", "4XX"}:
            self.report("response-401-missing", responses, f"{label} declares no 401 response")
        if scoped and not codes & {"403", "4XX"}:
            self.report("response-403-missing", responses, f"{label} declares no 403 response")
        if has_input and not codes & {"400", "422", "4XX"}:
            self.report("response-400-missing", responses, f"{label} declares no 400 response")
        if not codes & {"429", "4XX"}:
            self.report("response-429-missing", responses, f"{label} declares no 429 response")
        rate_limited = False
        successes = 0
        for code, raw in _entries(responses):
            response = self.deref(raw)
            if response is None or not isinstance(response.value, dict):
                continue
            headers = {str(name) for name in (response.value.get("headers") or {})}
            upper = code.upper()
            if upper.startswith("2"):
                successes += 1
                rate_limited = rate_limited or any(map(names.is_rate_limit_header, headers))
                self._check_success_content(label, upper, response)
            if upper == "429" and not any(names.fold(h) == "retryafter" for h in headers):
                self.report(
                    "retry-after-missing", response, f"{label}: 429 response without Retry-After"
                )
            for schema in self._response_schemas(response):
                self.walk_response(schema)
                if upper[0] in "45" or upper == "DEFAULT":
                    self.check_error_schema(schema)
        if successes and not rate_limited:
            self.report(
                "rate-limit-headers-missing",
                responses,
                f"{label}: no success response declares rate-limit headers",
            )

    def _check_success_content(self, label: str, code: str, response: _Node) -> None:
        if code == "204":
            return
        if self.v2:
            if code == "200" and "schema" not in response.value:
                self.report(
                    "response-without-schema", response, f"{label}: {code} response has no schema"
                )
            return
        for media, content in _entries(response.child("content")):
            if not any(kind in media.lower() for kind in _JSONISH):
                continue
            if not isinstance(content.value, dict) or "schema" not in content.value:
                self.report(
                    "response-without-schema",
                    content,
                    f"{label}: {code} {media} response has no schema",
                )

    def _response_schemas(self, response: _Node) -> Iterator[_Node]:
        if self.v2:
            schema = response.child("schema")
            if schema is not None:
                yield schema
            return
        for _media, content in _entries(response.child("content")):
            schema = content.child("schema")
            if schema is not None:
                yield schema

    def _response_properties(self, operation: _Node) -> dict[str, bool]:
        """Top-level properties of an operation's success responses (name → readOnly)."""
        found: dict[str, bool] = {}
        for code, raw in _entries(operation.child("responses")):
            if not code.startswith("2"):
                continue
            response = self.deref(raw)
            if response is None or not isinstance(response.value, dict):
                continue
            for schema in self._response_schemas(response):
                for name, (_node, read_only) in self.properties(schema).items():
                    found[name] = found.get(name, False) or read_only
        return found

    def check_error_schema(self, schema: _Node) -> None:
        for name, (node, _read_only) in self.properties(schema).items():
            if names.is_verbose_error_field(name):
                self.report(
                    "verbose-error-schema",
                    node,
                    f"error response property {name!r} exposes implementation details",
                    property=name,
                )

    def check_privileged(
        self, label: str, body: _Node, operation: _Node, read_properties: dict[str, bool]
    ) -> None:
        returned = {**read_properties, **self._response_properties(operation)}
        for name, (node, read_only) in self.properties(body).items():
            if read_only or not names.is_privileged(name) or name not in returned:
                continue
            self.report(
                "writable-privileged-property",
                node,
                f"{label}: request property {name!r} is also returned and is not readOnly",
                property=name,
            )

    # ------------------------------------------------------------------ schemas

    def properties(self, schema: _Node, depth: int = 0) -> dict[str, tuple[_Node, bool]]:
        """Top-level properties (``allOf`` merged, ``$ref`` followed): node and readOnly."""
        resolved = self.deref(schema)
        if resolved is None or not isinstance(resolved.value, dict) or depth > 8:
            return {}
        found: dict[str, tuple[_Node, bool]] = {}
        for member in resolved.elements("allOf"):
            found.update(self.properties(member, depth + 1))
        for name, node in resolved.items("properties"):
            target = self.deref(node)
            read_only = (
                target is not None
                and isinstance(target.value, dict)
                and target.value.get("readOnly") is True
            ) or (isinstance(node.value, dict) and node.value.get("readOnly") is True)
            found[name] = (node, read_only)
        return found

    def _visit(self, node: _Node, mode: str, in_all_of: bool) -> bool:
        key = (node.file, node.tokens, mode, in_all_of)
        if key in self.visited:
            return False
        self.visited.add(key)
        self.visits += 1
        if self.visits > MAX_SCHEMA_VISITS:
            raise LoadError(
                f"document too large to check: more than {MAX_SCHEMA_VISITS} schema visits"
            )
        return True

    def walk_request(self, schema: _Node, label: str | None = None) -> None:
        self._walk(schema, "request", False, set(), label)

    def walk_response(self, schema: _Node) -> None:
        self._walk(schema, "response", False, set())

    def _walk(
        self,
        node: _Node,
        mode: str,
        in_all_of: bool,
        stack: set[tuple[int, Tokens]],
        label: str | None = None,
    ) -> None:
        value = node.value
        if not isinstance(value, dict):
            return
        ref = value.get("$ref")
        if isinstance(ref, str):
            try:
                target = self.sources.resolve(node.file, ref)
            except (LoadError, KeyError):
                return  # reported by check_refs
            key = (target.file, target.tokens)
            if key in stack:
                self.report(
                    "ref-cycle",
                    node,
                    f"schema refers back to itself through $ref {ref!r}",
                    ref=ref,
                )
                return
            resolved = _Node(target.file, target.tokens, target.value)
            self._walk(resolved, mode, in_all_of, stack, label)
            return
        if not self._visit(node, mode, in_all_of):
            return
        here = (node.file, node.tokens)
        stack.add(here)
        try:
            if mode == "request":
                self._request_rules(node, in_all_of, label)
            else:
                self._response_rules(node)
            self._children(node, mode, stack)
        finally:
            stack.discard(here)

    def _children(self, node: _Node, mode: str, stack: set[tuple[int, Tokens]]) -> None:
        value = node.value
        for _name, child in node.items("properties"):
            self._walk(child, mode, False, stack)
        for _name, child in node.items("patternProperties"):
            self._walk(child, mode, False, stack)
        items = node.child("items")
        if items is not None:
            if isinstance(items.value, list):
                for element in node.elements("items"):
                    self._walk(element, mode, False, stack)
            else:
                self._walk(items, mode, False, stack)
        extra = value.get("additionalProperties")
        if isinstance(extra, dict):
            self._walk(_Node(node.file, (*node.tokens, "additionalProperties"), extra), mode,
                       False, stack)  # fmt: skip
        for keyword in _SCHEMA_LISTS:
            for element in node.elements(keyword):
                self._walk(element, mode, keyword == "allOf", stack)

    def _request_rules(self, node: _Node, in_all_of: bool, label: str | None) -> None:
        value = node.value
        if value.get("readOnly") is True or "enum" in value or "const" in value:
            return
        types = _types(value)
        what = _describe(node.tokens) if label is None else label
        if "string" in types and not _string_bounded(value):
            self.report("string-unbounded", node, f"{what} is a string without maxLength")
        if "array" in types and "maxItems" not in value:
            self.report("array-unbounded", node, f"{what} is an array without maxItems")
        if types & {"integer", "number"} and not _number_bounded(value):
            self.report("number-unbounded", node, f"{what} is a number without minimum/maximum")
        if "object" in types or "properties" in value:
            self._object_rules(node, in_all_of, what)
            for name, child in node.items("properties"):
                if names.is_url_like(name):
                    self.report("url-parameter", child, f"request property {name!r} takes a URL")

    def _object_rules(self, node: _Node, in_all_of: bool, what: str) -> None:
        value = node.value
        extra = value.get("additionalProperties")
        closed = extra is False or value.get("unevaluatedProperties") is False
        if closed or in_all_of:
            return
        if (extra is True or isinstance(extra, dict)) and extra != {}:
            if "maxProperties" not in value:
                self.report(
                    "object-map-unbounded",
                    node,
                    f"{what} accepts any number of extra properties (no maxProperties)",
                )
            return
        if value.get("properties") or value.get("allOf"):
            self.report(
                "object-open",
                node,
                f"{what} accepts undeclared properties (no additionalProperties: false)",
            )
        elif not any(key in value for key in ("oneOf", "anyOf", "$ref", "maxProperties")):
            self.report("object-open", node, f"{what} is a free-form object: any property passes")

    def _response_rules(self, node: _Node) -> None:
        for name, child in node.items("properties"):
            if not names.is_sensitive_in_response(name):
                continue
            target = self.deref(child)
            if (
                target is not None
                and isinstance(target.value, dict)
                and target.value.get("writeOnly") is True
            ):
                continue
            if isinstance(child.value, dict) and child.value.get("writeOnly") is True:
                continue
            self.report(
                "sensitive-data-in-response",
                child,
                f"response property {name!r} carries sensitive data",
                property=name,
            )


def _is_admin(template: str) -> bool:
    return any(segment.lower() in ("admin", "admins", "administration") or
               segment.lower().startswith("admin") for segment in template.split("/"))  # fmt: skip


def _requirements(requirements: _Node | None) -> set[tuple[str, frozenset[str]]]:
    found: set[tuple[str, frozenset[str]]] = set()
    if requirements is None or not isinstance(requirements.value, list):
        return found
    for requirement in requirements.value:
        if isinstance(requirement, dict):
            for scheme, scopes in requirement.items():
                listed = scopes if isinstance(scopes, list) else []
                found.add((str(scheme), frozenset(str(scope) for scope in listed)))
    return found


def _entries(node: _Node | None) -> Iterator[tuple[str, _Node]]:
    if node is None or not isinstance(node.value, dict):
        return
    for name, value in node.value.items():
        yield str(name), _Node(node.file, (*node.tokens, str(name)), value)


def _items(node: _Node) -> Iterator[_Node]:
    if isinstance(node.value, list):
        for position, value in enumerate(node.value):
            yield _Node(node.file, (*node.tokens, str(position)), value)


def _types(value: dict[str, Any]) -> set[str]:
    kind = value.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(item) for item in kind}
    if "properties" in value or "additionalProperties" in value:
        return {"object"}
    if "items" in value:
        return {"array"}
    return set()


def _string_bounded(value: dict[str, Any]) -> bool:
    if "maxLength" in value:
        return True
    fmt = value.get("format")
    if fmt == "binary":
        return True  # a file upload: the body size limit bounds it
    if isinstance(fmt, str) and fmt.lower() in _BOUNDED_FORMATS:
        return True
    pattern = value.get("pattern")
    return (
        isinstance(pattern, str)
        and pattern.startswith("^")
        and pattern.endswith("$")
        and not _OPEN_QUANTIFIER.search(pattern)
    )


def _number_bounded(value: dict[str, Any]) -> bool:
    low = "minimum" in value or isinstance(value.get("exclusiveMinimum"), int | float)
    high = "maximum" in value or isinstance(value.get("exclusiveMaximum"), int | float)
    return low and high  # (3.0's boolean exclusive flags need minimum/maximum anyway)


def _describe(tokens: Tokens) -> str:
    if len(tokens) >= 2 and tokens[-2] == "properties":
        return f"property {tokens[-1]!r}"
    if tokens and tokens[-1] == "items":
        return "array items"
    if len(tokens) >= 2 and tokens[-2] in ("schemas", "definitions"):
        return f"schema {tokens[-1]!r}"
    if tokens and tokens[-1] == "schema":
        return "the schema"
    if len(tokens) >= 2 and tokens[-2] == "parameters":
        return "the parameter"
    return "the value"
