"""Configuration: typed models, YAML loading with line numbers, cross-field checks."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping

from dijk.config.checks import cross_check
from dijk.config.defaults import expand_routes
from dijk.config.environment import ENVIRONMENT, apply_overrides, is_missing_variable
from dijk.config.loader import (
    ConfigError,
    ConfigIssue,
    LineMap,
    Path,
    format_path,
    issue_at,
    load_yaml_document,
    validate_document,
)
from dijk.config.loader import _read_text as read_config_text
from dijk.config.models import DijkConfig, RouteConfig

__all__ = ["ConfigError", "ConfigIssue", "DijkConfig", "load_config", "load_config_text"]


def load_config_text(
    text: str,
    file: str,
    environ: Mapping[str, str] | None = None,
    *,
    secrets_required: bool = True,
) -> DijkConfig:
    """Parse, override from ``environ`` (``DIJK_*``; None: no overrides) and check;
    ``secrets_required=False`` accepts secrets whose variables are unset."""
    data, lines = load_yaml_document(text, file)
    if environ is not None and isinstance(data, dict):
        _, refused = apply_overrides(data, DijkConfig, environ)
        if refused:
            raise ConfigError(
                [ConfigIssue(ENVIRONMENT, None, variable, message) for variable, message in refused]
            )
    origins: dict[tuple[int, str], Path] = {}
    if isinstance(data, dict):
        merged = expand_routes(data, frozenset(RouteConfig.model_fields), origins)
        if merged:
            raise ConfigError([issue_at(file, lines, path, message) for path, message in merged])
    try:
        config = validate_document(data, lines, DijkConfig, file)
    except ConfigError as exc:
        if not origins:
            raise
        raise ConfigError([_shared_origin(issue, origins, lines) for issue in exc.issues]) from None
    issues = [issue_at(file, lines, path, message) for path, message in cross_check(config)]
    if not secrets_required:  # no environment (CI without secrets): unset secrets are fine
        issues = [issue for issue in issues if not is_missing_variable(issue.message)]
    if issues:
        issues.sort(key=lambda issue: (issue.line or 0, issue.path))
        raise ConfigError(issues)
    return config


def load_config(path: str | os.PathLike[str], *, use_env: bool = True) -> DijkConfig:
    """Load and fully check a configuration file; raise :class:`ConfigError` on problems.

    ``DIJK_*`` variables override keys (``config/environment.py``) unless ``use_env`` is
    false, which also accepts secrets whose variables are unset.
    """
    file = os.fspath(path)
    text = read_config_text(file)
    if use_env:
        return load_config_text(text, file, os.environ)
    return load_config_text(text, file, None, secrets_required=False)


_ROUTE_KEY = re.compile(r"^routes\[(\d+)\]\.([a-z_]+)")


def _shared_origin(
    issue: ConfigIssue, origins: dict[tuple[int, str], Path], lines: LineMap
) -> ConfigIssue:
    """An issue in a value a route took from route_defaults/route_groups, told there."""
    found = _ROUTE_KEY.match(issue.path)
    if found is None:
        return issue
    origin = origins.get((int(found.group(1)), found.group(2)))
    if origin is None:
        return issue
    return dataclasses.replace(
        issue,
        line=lines.value_line(origin) or issue.line,
        message=f"{issue.message} (the value comes from {format_path(origin)})",
    )
