"""GraphQL requests: limits on the document, and its values as leaves.

The document is parsed with graphql-core, bounded by a token limit and its nesting limit;
a document past either is a ``limits`` finding (the detector did not see all of it), not
a pass. Two passes follow, each linear in the size of the document:

* **Literals, once each.** Every literal written anywhere in the document becomes a leaf:
  field and directive arguments, variable default values, list and object values, in
  every operation and every fragment, whether or not the fragment is used and whichever
  operation ``operationName`` picks. Fragment spreads are not followed here, so a
  fragment spread a thousand times is still inspected once.
* **Limits, without expanding fragments.** Each fragment's depth, field count and alias
  count are worked out once, in dependency order, and a spread adds the fragment's
  figures. Counts are therefore those of the fully expanded query (what the server will
  execute) at the cost of one visit per selection. A cycle among fragments is a finding
  of its own (the server refuses such a document; here it must not be walked).

The variables (and ``extensions``) become leaves as JSON, so an injection inside
``variables`` is inspected like any JSON field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from graphql import GraphQLError, parse
from graphql.language import (
    DirectiveNode,
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
# Counts past this are only reported as "at least": they are compared with limits far below.
_COUNT_CAP = 1 << 40
_INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
# graphql-core's messages for the two parser budgets (its own limits, not syntax errors).
_BUDGET_MESSAGES = ("more than", "nested too deeply")


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
    except RecursionError:
        _unparsed(collector, text, field_path, limits, "limits-graphql-too-large")
        return
    except GraphQLError as error:
        budget = any(message in error.message for message in _BUDGET_MESSAGES)
        rule_id = "limits-graphql-too-large" if budget else "graphql-syntax"
        _unparsed(collector, text, field_path, limits, rule_id)
        return
    _add_literals(collector, document, field_path, limits)
    _check_limits(collector, document, field_path, limits)


def _unparsed(
    collector: Collector, text: str, field_path: str, limits: GraphQLLimits, rule_id: str
) -> None:
    """A document we could not parse is still inspected as text."""
    collector.hit(rule_id, "graphql", field_path, "")
    if not limits.allow_introspection and ("__schema" in text or "__type" in text):
        collector.hit("graphql-introspection", "graphql", field_path, "__schema")
    collector.add("graphql", field_path, text)


# -- literals ---------------------------------------------------------------------------


def _add_literals(
    collector: Collector, document: DocumentNode, field_path: str, limits: GraphQLLimits
) -> None:
    """Every literal of the document, once, and the introspection fields it names."""
    introspection = False
    stack: list[tuple[SelectionSetNode, str]] = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            root = field_path
            for variable in definition.variable_definitions or ():
                variable_path = f"{root}.${variable.variable.name.value}"
                if variable.default_value is not None:
                    _add_value(collector, variable.default_value, variable_path)
                _add_directives(collector, variable.directives, variable_path)
        elif isinstance(definition, FragmentDefinitionNode):
            root = f"{field_path}...{definition.name.value}"
        else:
            continue  # type system definitions: nothing a server executes
        _add_directives(collector, definition.directives, root)
        stack.append((definition.selection_set, root))
    while stack:
        selection_set, path = stack.pop()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                introspection = introspection or name in _INTROSPECTION_FIELDS
                child_path = f"{path}.{name}"
                for argument in selection.arguments or ():
                    _add_value(collector, argument.value, f"{child_path}({argument.name.value})")
                _add_directives(collector, selection.directives, child_path)
                if selection.selection_set is not None:
                    stack.append((selection.selection_set, child_path))
            elif isinstance(selection, InlineFragmentNode):
                _add_directives(collector, selection.directives, path)
                stack.append((selection.selection_set, path))
            elif isinstance(selection, FragmentSpreadNode):
                _add_directives(collector, selection.directives, path)
    if introspection and not limits.allow_introspection:
        collector.hit("graphql-introspection", "graphql", field_path, "__schema")


def _add_directives(
    collector: Collector, directives: tuple[DirectiveNode, ...] | None, path: str
) -> None:
    for directive in directives or ():
        for argument in directive.arguments or ():
            argument_path = f"{path}@{directive.name.value}({argument.name.value})"
            _add_value(collector, argument.value, argument_path)


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


# -- limits -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Shape:
    """What a selection set costs once its fragments are expanded: the deepest field
    (its own fields are at depth 1), and how many fields and aliases it executes."""

    depth: int = 0
    fields: int = 0
    aliases: int = 0


def _check_limits(
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
    order, cycle = _fragment_order(fragments)
    if cycle:
        collector.hit("graphql-fragment-cycle", "graphql", field_path, " -> ".join(cycle))
    shapes: dict[str, _Shape] = {}
    for name in order:
        shapes[name] = _shape(fragments[name].selection_set, shapes)
    depth = fields = aliases = 0
    for operation in operations:
        shape = _shape(operation.selection_set, shapes)
        depth = max(depth, shape.depth)
        fields = min(fields + shape.fields, _COUNT_CAP)
        aliases = min(aliases + shape.aliases, _COUNT_CAP)
    if depth > limits.max_depth:
        collector.hit("graphql-depth", "graphql", field_path, f"depth {depth}")
    if aliases > limits.max_aliases:
        collector.hit("graphql-aliases", "graphql", field_path, f"{aliases} aliases")
    if fields > limits.max_fields:
        collector.hit("graphql-expansion", "graphql", field_path, f"{fields} fields")


def _spreads(selection_set: SelectionSetNode) -> list[str]:
    """Names of the fragments spread anywhere inside a selection set (not following them)."""
    names: list[str] = []
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                names.append(selection.name.value)
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)
    return names


def _fragment_order(
    fragments: dict[str, FragmentDefinitionNode],
) -> tuple[list[str], list[str]]:
    """Fragments so that each comes after those it spreads, and the first cycle found
    (empty when there is none). Fragments on a cycle are left out of the order: the
    document is refused, and their figures count as nothing."""
    uses = {
        name: [used for used in _spreads(f.selection_set) if used in fragments]
        for name, f in fragments.items()
    }
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycle: list[str] = []
    for start in fragments:
        if start in state:
            continue
        path: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while path:
            name, next_index = path[-1]
            children = uses[name]
            if next_index < len(children):
                path[-1] = (name, next_index + 1)
                child = children[next_index]
                child_state = state.get(child)
                if child_state is None:
                    state[child] = 1
                    path.append((child, 0))
                elif child_state == 1 and not cycle:
                    names = [entry for entry, _ in path]
                    cycle = [*names[names.index(child) :], child]
                continue
            path.pop()
            state[name] = 2
            order.append(name)
    if cycle:
        on_cycle = set(cycle)
        order = [name for name in order if name not in on_cycle]
    return order, cycle


def _shape(selection_set: SelectionSetNode, shapes: dict[str, _Shape]) -> _Shape:
    """The expanded shape of one selection set, spreads taken from ``shapes`` (fragments
    already worked out; unknown or cyclic ones count as nothing)."""
    result = _Shape()
    stack: list[tuple[SelectionSetNode, int]] = [(selection_set, 1)]
    while stack:
        current, depth = stack.pop()
        for selection in current.selections:
            if isinstance(selection, FieldNode):
                result.fields += 1
                if selection.alias is not None:
                    result.aliases += 1
                result.depth = max(result.depth, depth)
                if selection.selection_set is not None:
                    stack.append((selection.selection_set, depth + 1))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, depth))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = shapes.get(selection.name.value)
                if fragment is not None:
                    result.depth = max(result.depth, depth - 1 + fragment.depth)
                    result.fields = min(result.fields + fragment.fields, _COUNT_CAP)
                    result.aliases = min(result.aliases + fragment.aliases, _COUNT_CAP)
    return result
