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
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
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


_OPERATION_STARTS = ("{", "query", "mutation", "subscription", "fragment")


def looks_like_graphql(body: JsonValue) -> bool:
    """A JSON body shaped like a GraphQL request (``{"query": "query { ... }"}`` or a batch
    of them) whose document parses: GraphQL sent to a path not named ``graphql``."""
    operation = body[0] if isinstance(body, list) and body else body
    if not isinstance(operation, dict):
        return False
    document = operation.get("query")
    if not isinstance(document, str) or not document.lstrip().startswith(_OPERATION_STARTS):
        return False
    try:
        parsed = parse(document, no_location=True, max_tokens=MAX_TOKENS)
    except GraphQLError as error:
        # Too large to parse is still GraphQL (and a limits finding once inspected).
        return any(message in error.message for message in _BUDGET_MESSAGES)
    except RecursionError:
        return True
    return any(
        isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode)
        for definition in parsed.definitions
    )


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
    variables = next((value for name, value in query if name == "variables"), None)
    parsed: JsonValue = None
    if variables:
        try:
            parsed = json.loads(variables)
        except (ValueError, RecursionError):
            collector.add("graphql", "variables", variables)
        else:
            walk_json(collector, parsed, "graphql", "$.variables")
    add_document(collector, query_document, "query", limits, parsed)


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
        add_document(collector, document, f"{root}.query", limits, operation.get("variables"))
        for key, value in operation.items():
            if key != "query":
                walk_json(collector, value, "graphql", f"{root}.{key}")
    return consumed


def add_document(
    collector: Collector,
    text: str,
    field_path: str,
    limits: GraphQLLimits,
    variables: JsonValue = None,
) -> None:
    """Inspect one GraphQL document (``variables``: the request's variables, for the
    page-size arguments that take their value from one)."""
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
    page_variables = _add_literals(collector, document, field_path, limits)
    if page_variables and isinstance(variables, dict):
        for name in page_variables:
            value = variables.get(name)
            if value is not None and _over_page_size(value, limits.max_page_size):
                collector.hit(
                    "graphql-page-size", "graphql", f"{field_path}.${name}", str(value)[:32]
                )
                break
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
) -> set[str]:
    """Every literal of the document, once; the checks that need no expansion (the
    introspection fields it names, duplicated fields, directives per node, page sizes
    written inline). Returns the variables that page-size arguments take their value from."""
    checks = _LocalChecks(limits)
    stack: list[tuple[SelectionSetNode, str]] = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            root = field_path
            for variable in definition.variable_definitions or ():
                variable_path = f"{root}.${variable.variable.name.value}"
                if variable.default_value is not None:
                    _add_value(collector, variable.default_value, variable_path)
                    checks.defaults[variable.variable.name.value] = variable.default_value
                _add_directives(collector, variable.directives, variable_path, checks)
        elif isinstance(definition, FragmentDefinitionNode):
            root = f"{field_path}...{definition.name.value}"
        else:
            continue  # type system definitions: nothing a server executes
        _add_directives(collector, definition.directives, root, checks)
        stack.append((definition.selection_set, root))
    while stack:
        selection_set, path = stack.pop()
        names: dict[str, int] = {}
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                key = selection.alias.value if selection.alias is not None else name
                names[key] = names.get(key, 0) + 1
                checks.introspection = checks.introspection or name in _INTROSPECTION_FIELDS
                child_path = f"{path}.{name}"
                for argument in selection.arguments or ():
                    argument_path = f"{child_path}({argument.name.value})"
                    _add_value(collector, argument.value, argument_path)
                    if argument.name.value.lower() in PAGE_SIZE_ARGUMENTS:
                        checks.page_size(argument.value, argument_path)
                _add_directives(collector, selection.directives, child_path, checks)
                if selection.selection_set is not None:
                    stack.append((selection.selection_set, child_path))
            elif isinstance(selection, InlineFragmentNode):
                _add_directives(collector, selection.directives, path, checks)
                stack.append((selection.selection_set, path))
            elif isinstance(selection, FragmentSpreadNode):
                _add_directives(collector, selection.directives, path, checks)
        if names and checks.duplicate is None:
            key, count = max(names.items(), key=lambda item: item[1])
            if count > limits.max_duplicate_fields:
                checks.duplicate = (f"{path}.{key}", f"{key} x{count}")
    checks.report(collector, field_path)
    return checks.page_variables


# Arguments that ask for a number of items (Relay connections, offset pagination).
PAGE_SIZE_ARGUMENTS = frozenset(
    {
        "first",
        "last",
        "limit",
        "pagesize",
        "page_size",
        "perpage",
        "per_page",
        "count",
        "take",
        "top",
        "size",
        "pagelimit",
        "page_limit",
        "maxresults",
        "max_results",
        "batchsize",
        "batch_size",
    }
)


def _over_page_size(value: object, bound: int) -> bool:
    """A page size (an int, a float, or digits in a string) above ``bound``."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value > bound
    if isinstance(value, str):
        digits = value.strip()
        if digits.isdigit():
            return len(digits) > 12 or int(digits) > bound
    return False


class _LocalChecks:
    """What the literal pass finds on the way; each check reports once per document."""

    __slots__ = (
        "defaults",
        "directives",
        "duplicate",
        "introspection",
        "limits",
        "page",
        "page_variables",
    )

    def __init__(self, limits: GraphQLLimits) -> None:
        self.limits = limits
        self.introspection = False
        self.duplicate: tuple[str, str] | None = None
        self.directives: tuple[str, str] | None = None
        self.page: tuple[str, str] | None = None
        self.page_variables: set[str] = set()
        self.defaults: dict[str, ValueNode] = {}

    def page_size(self, value: ValueNode, path: str) -> None:
        if isinstance(value, VariableNode):
            self.page_variables.add(value.name.value)
        elif isinstance(value, IntValueNode | FloatValueNode | StringValueNode):
            literal = value.value
            number: object = literal
            if isinstance(value, FloatValueNode):
                try:
                    number = float(literal)
                except ValueError:
                    return
            elif isinstance(value, IntValueNode):
                number = literal.lstrip("-")
            if self.page is None and _over_page_size(number, self.limits.max_page_size):
                self.page = (path, literal[:32])

    def report(self, collector: Collector, field_path: str) -> None:
        for name in self.page_variables:
            default = self.defaults.get(name)
            if default is not None:
                self.page_size(default, f"{field_path}.${name}")
        if self.introspection and not self.limits.allow_introspection:
            collector.hit("graphql-introspection", "graphql", field_path, "__schema")
        if self.duplicate is not None:
            collector.hit("graphql-duplicate-fields", "graphql", *self.duplicate)
        if self.directives is not None:
            collector.hit("graphql-directives", "graphql", *self.directives)
        if self.page is not None:
            collector.hit("graphql-page-size", "graphql", *self.page)


def _add_directives(
    collector: Collector,
    directives: tuple[DirectiveNode, ...] | None,
    path: str,
    checks: _LocalChecks,
) -> None:
    if not directives:
        return
    if len(directives) > checks.limits.max_directives and checks.directives is None:
        checks.directives = (path, f"{len(directives)} directives")
    for directive in directives:
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
    chain: int = 0  # longest chain of fragment spreads below


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
    depth = fields = aliases = chain = 0
    for operation in operations:
        shape = _shape(operation.selection_set, shapes)
        depth = max(depth, shape.depth)
        chain = max(chain, shape.chain)
        fields = min(fields + shape.fields, _COUNT_CAP)
        aliases = min(aliases + shape.aliases, _COUNT_CAP)
    if depth > limits.max_depth:
        collector.hit("graphql-depth", "graphql", field_path, f"depth {depth}")
    if aliases > limits.max_aliases:
        collector.hit("graphql-aliases", "graphql", field_path, f"{aliases} aliases")
    if fields > limits.max_fields:
        collector.hit("graphql-expansion", "graphql", field_path, f"{fields} fields")
    if chain > limits.max_fragment_depth:
        collector.hit("graphql-fragment-depth", "graphql", field_path, f"{chain} fragments deep")


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
                    result.chain = max(result.chain, fragment.chain + 1)
                    result.depth = max(result.depth, depth - 1 + fragment.depth)
                    result.fields = min(result.fields + fragment.fields, _COUNT_CAP)
                    result.aliases = min(result.aliases + fragment.aliases, _COUNT_CAP)
    return result
