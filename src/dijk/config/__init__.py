"""Configuration: typed models, YAML loading with line numbers, cross-field checks."""

from __future__ import annotations

import os

from dijk.config.checks import cross_check
from dijk.config.loader import (
    ConfigError,
    ConfigIssue,
    issue_at,
    load_yaml_document,
    validate_document,
)
from dijk.config.loader import _read_text as read_config_text
from dijk.config.models import DijkConfig

__all__ = ["ConfigError", "ConfigIssue", "DijkConfig", "load_config", "load_config_text"]


def load_config_text(text: str, file: str) -> DijkConfig:
    data, lines = load_yaml_document(text, file)
    config = validate_document(data, lines, DijkConfig, file)
    issues = [issue_at(file, lines, path, message) for path, message in cross_check(config)]
    if issues:
        issues.sort(key=lambda issue: (issue.line or 0, issue.path))
        raise ConfigError(issues)
    return config


def load_config(path: str | os.PathLike[str]) -> DijkConfig:
    """Load and fully check a configuration file; raise :class:`ConfigError` on problems."""
    file = os.fspath(path)
    return load_config_text(read_config_text(file), file)
