"""``DIJK_*`` environment overrides of configuration keys, and ``--no-env``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dijk.config import ConfigError, load_config_text

BASE = """\
version: 1
upstreams:
  Bank: {url: "http://127.0.0.1:8081"}
routes:
  - {name: all, match: {path_prefix: /}, upstream: Bank}
"""


def load(environ: dict[str, str], text: str = BASE):  # type: ignore[no-untyped-def]
    return load_config_text(text, "dijk.yaml", environ)


def test_a_nested_key_is_overridden_with_the_models_conversion() -> None:
    config = load({"DIJK_LIMITS__MAX_BODY_BYTES": "1048576", "DIJK_WORKERS": "2"})
    assert config.limits.max_body_bytes == 1048576
    assert config.workers == 2


def test_map_keys_match_the_file_case_insensitively_and_lists_by_index() -> None:
    config = load(
        {
            "DIJK_UPSTREAMS__BANK__URL": "https://10.0.0.5:8443",
            "DIJK_ROUTES__0__STRIP_PREFIX": "/api",
            "DIJK_TRUSTED_PROXIES": "[10.0.0.0/8]",
            "DIJK_AUDIT__ENABLED": "false",
        }
    )
    assert config.upstreams["Bank"].url == "https://10.0.0.5:8443"
    assert config.routes[0].strip_prefix == "/api"
    assert config.trusted_proxies == ["10.0.0.0/8"]
    assert config.audit.enabled is False


def test_an_unknown_key_is_an_error_naming_the_variable_and_the_closest_key() -> None:
    with pytest.raises(ConfigError) as raised:
        load({"DIJK_LIMITS__MAX_BODDY_BYTES": "1"})
    message = str(raised.value)
    assert (
        "environment: DIJK_LIMITS__MAX_BODDY_BYTES: unknown key 'max_boddy_bytes' in limits"
        in message
    )
    assert "did you mean 'max_body_bytes'" in message


def test_an_index_past_the_end_of_a_list_is_an_error() -> None:
    with pytest.raises(ConfigError, match="DIJK_ROUTES__5__NAME: routes has no item 5"):
        load({"DIJK_ROUTES__5__NAME": "x"})


def test_an_invalid_value_fails_validation_like_the_file_would() -> None:
    with pytest.raises(ConfigError, match=r"limits\.max_body_bytes"):
        load({"DIJK_LIMITS__MAX_BODY_BYTES": "lots"})


def test_variables_that_name_no_key_and_have_no_separator_are_not_overrides() -> None:
    config = load({"DIJK_ADMIN_TOKEN": "secret", "DIJK_CACHE_DIR": "/tmp"})
    assert config.admin.token_env == "DIJK_ADMIN_TOKEN"


def test_validate_no_env_ignores_overrides_and_unset_secrets(tmp_path: Path) -> None:
    path = tmp_path / "dijk.yaml"
    path.write_text(
        BASE
        + "auth: {api_key: {header: X-API-Key}}\n"
        + "consumers: [{name: app, api_keys: [{env: DIJK_TEST_UNSET_KEY_FOR_NO_ENV}]}]\n"
    )
    env = {"PATH": "/usr/bin:/bin"}

    def validate(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dijk", "config", "validate", str(path), *extra],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    unset = validate()
    assert unset.returncode == 1
    assert "DIJK_TEST_UNSET_KEY_FOR_NO_ENV is not set" in unset.stderr
    env["DIJK_LIMITS__MAX_BODDY"] = "1"
    misspelt = validate()
    assert misspelt.returncode == 1
    assert "DIJK_LIMITS__MAX_BODDY: unknown key" in misspelt.stderr
    without = validate("--no-env")
    assert without.returncode == 0, without.stderr
    assert "valid (1 route)" in without.stdout


def test_version_option_prints_the_version() -> None:
    from dijk import __version__

    result = subprocess.run(
        [sys.executable, "-m", "dijk", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == f"dijk {__version__}"
