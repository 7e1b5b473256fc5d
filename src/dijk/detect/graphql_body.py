"""GraphQL requests: limits on the document, and its values as leaves.

The document is parsed with graphql-core (bounded by a token limit). Depth counts nested
selection sets through fragments; aliases and introspection fields are counted over the
whole document; a JSON array of operations is a batch. String arguments written inline
and the variables become leaves, so an injection inside ``variables`` is inspected like
any JSON field.
"""

from __future__ import annotations

import json

from graphql import GraphQLError, parse
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
)

from dijk.detect.findings import GraphQLLimits, JsonValue, RequestParts
from dijk.detect.leaves import Collector, media_type, walk_json
from dijk.detect.normalise import decode_utf8_lenient

MAX_TOKENS = 20_000
_INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


def add_graphql_request(
    collector: Collector,
    request: RequestParts,
    body: JsonValue,
    has_body: bool,
    limits: GraphQLLimits,
) -> bool:
    """Inspect a GraphQL request (query string and body); True when the body was consumed
    as GraphQL."""
    add_graphql_query_string(collector, request.query, limits)
    return add_graphql_body(collector, request, body, has_body, limits)


def add_graphql_query_string(
    collector: Collector, query: tuple[tuple[str, str], ...], limits: GraphQLLimits
) -> None:
    """A GraphQL GET request: the document and variables travel in the query string."""
    query_document = next((value for name, value in query if name == "query"), None)
    if query_document is None:
        return
    add_document(collector, query_document, "query", limits)
    variables = next((value for name, value in query if name == "variables"), None)
    if variables:
        try:
            walk_json(collector, json.loads(variables), "graphql", "$.variables")
        except (ValueError, RecursionError):
            collector.add("graphql", "variables", variables)


def add_graphql_body(
    collector: Collector,
    request: RequestParts,
    body: JsonValue,
    has_body: bool,
    limits: GraphQLLimits,
) -> bool:
    """A GraphQL body (``application/graphql`` or a JSON operation or batch); True when
    the body was consumed as GraphQL."""
    if media_type(request.content_type) == "application/graphql":
        if not request.body:
            return False
        add_document(collector, decode_utf8_lenient(request.body), "$", limits)
        return True
    if not has_body:
        return False
    operations: list[JsonValue]
    if isinstance(body, list):
        operations = body
        if len(body) > limits.max_batch:
            collector.hit("graphql-batch", "graphql", "$", f"{len(body)} operations")
    else:
        operations = [body]
    consumed = False
    for index, operation in enumerate(operations):
        root = f"$[{index}]" if isinstance(body, list) else "$"
        if not isinstance(operation, dict) or not isinstance(operation.get("query"), str):
            continue
        consumed = True
        document = operation["query"]
        assert isinstance(document, str)
        add_document(collector, document, f"{root}.query", limits)
        for key, value in operation.items():
            if key != "query":
                walk_json(collector, value, "graphql", f"{root}.{key}")
    return consumed


def add_document(collector: Collector, text: str, field_path: str, limits: GraphQLLimits) -> None:
    try:
        document = parse(text, no_location=True, max_tokens=MAX_TOKENS)
    except (GraphQLError, RecursionError):
        collector.hit("graphql-syntax", "graphql", field_path, "")
        if not limits.allow_introspection and ("__schema" in text or "__type" in text):
            collector.hit("graphql-introspection", "graphql", field_path, "__schema")
        collector.add("graphql", field_path, text)
        return
    _check_document(collector, document, field_path, limits)


def _check_document(
    collector: Collector, document: DocumentNode, field_path: str, limits: GraphQLLimits
) -> None:
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    operations = [
        definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]
    if len(operations) > limits.max_batch:
        collector.hit("graphql-batch", "graphql", field_path, f"{len(operations)} operations")
    aliases = 0
    introspection = False
    max_depth = 0
    # (selection set, depth, fragments on the way) — iterative, cycles cut by the path set.
    stack: list[tuple[SelectionSetNode, int, frozenset[str], str]] = [
        (operation.selection_set, 1, frozenset(), field_path) for operation in operations
    ]
    visited = 0
    while stack and visited < MAX_TOKENS:
        selection_set, depth, seen, path = stack.pop()
        max_depth = max(max_depth, depth)
        if depth > limits.max_depth + 1:
            continue
        for selection in selection_set.selections:
            visited += 1
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if selection.alias is not None:
                    aliases += 1
                if name in _INTROSPECTION_FIELDS:
                    introspection = True
                child_path = f"{path}.{name}"
                for argument in selection.arguments or ():
                    _add_value(collector, argument.value, f"{child_path}({argument.name.value})")
                if selection.selection_set is not None:
                    stack.append((selection.selection_set, depth + 1, seen, child_path))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, depth, seen, path))
            elif isinstance(selection, FragmentSpreadNode):
                fragment_name = selection.name.value
                fragment = fragments.get(fragment_name)
                if fragment is not None and fragment_name not in seen:
                    stack.append((fragment.selection_set, depth, seen | {fragment_name}, path))
    if max_depth > limits.max_depth:
        collector.hit("graphql-depth", "graphql", field_path, f"depth {max_depth}")
    if aliases > limits.max_aliases:
        collector.hit("graphql-aliases", "graphql", field_path, f"{aliases} aliases")
    if introspection and not limits.allow_introspection:
        collector.hit("graphql-introspection", "graphql", field_path, "__schema")


def _add_value(collector: Collector, value: ValueNode, path: str) -> None:
    stack: list[tuple[ValueNode, str]] = [(value, path)]
    while stack:
        current, current_path = stack.pop()
        if isinstance(current, StringValueNode):
            collector.add("graphql", current_path, current.value)
        elif isinstance(current, ListValueNode):
            for index, item in enumerate(current.values):
                stack.append((item, f"{current_path}[{index}]"))
        elif isinstance(current, ObjectValueNode):
            for object_field in current.fields:
                stack.append((object_field.value, f"{current_path}.{object_field.name.value}"))
