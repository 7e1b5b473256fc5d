"""Malformed documents never crash the linter: every value in every slot is survivable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dijk.lint import lint_document
from dijk.lint.checks import Checker
from dijk.lint.source import Sources

KEYS = st.sampled_from(
    [
        "type", "properties", "items", "additionalProperties", "allOf", "oneOf", "$ref",
        "schema", "content", "parameters", "responses", "security", "name", "in", "headers",
        "requestBody", "maxLength", "enum", "readOnly", "get", "post", "servers", "url",
        "flows", "scheme", "application/json", "200", "429", "x-dijk-lint-ignore", "id",
    ]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from(["string", "object", "array", "integer", "query", "path", "#/components",
                     "#/components/schemas/A", "http://x", "basic", "implicit", "other.yaml"]),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=25,
)


def skeleton(paths: Any, components: Any, security: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": paths,
        "components": components,
        "security": security,
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    paths=st.one_of(VALUES, st.dictionaries(st.sampled_from(["/a/{id}", "/admin"]), VALUES)),
    components=st.one_of(
        VALUES,
        st.fixed_dictionaries({"schemas": st.dictionaries(st.sampled_from(["A", "B"]), VALUES)}),
    ),
    security=VALUES,
)
def test_any_values_in_any_slot_are_checked_without_an_exception(
    tmp_path_factory: Any, paths: Any, components: Any, security: Any
) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "api.json"
    path.write_text(json.dumps(skeleton(paths, components, security)))
    Checker(Sources(str(path))).run()  # raises on a bug; the engine would hide it
    result = lint_document(str(path))
    assert result.error is None
    for finding in result.findings:
        assert finding.location.line is not None
