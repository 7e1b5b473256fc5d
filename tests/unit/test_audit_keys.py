"""The audit secret: where it comes from and what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dijk.audit.keys import AuditKeyError, AuditKeys, generate_key_file, load_public_key


def test_keys_come_from_the_environment() -> None:
    keys = AuditKeys.load(environ={"DIJK_AUDIT_KEY": "s" * 40})
    assert keys.hmac_key == AuditKeys.from_secret(b"s" * 40).hmac_key


def test_the_three_derived_keys_are_independent() -> None:
    keys = AuditKeys.from_secret(b"s" * 40)
    assert len({keys.hmac_key, keys.pseudonym_key, keys.public_key.public_bytes_raw()}) == 3


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(AuditKeyError, match="too short"):
        AuditKeys.load(environ={"DIJK_AUDIT_KEY": "short"})


def test_a_missing_key_names_the_ways_to_give_one() -> None:
    with pytest.raises(AuditKeyError, match="--key-file"):
        AuditKeys.load(environ={})


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    path.write_text("s" * 40)
    os.chmod(path, 0o644)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        AuditKeys.load(path, environ={})


def test_a_generated_key_file_is_private_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.key"
    generate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    keys = AuditKeys.load(environ={"DIJK_AUDIT_KEY_FILE": str(path)})
    assert load_public_key(keys.public_key_hex).public_bytes_raw() == (
        keys.public_key.public_bytes_raw()
    )
    with pytest.raises(AuditKeyError, match="already exists"):
        generate_key_file(path)


def test_a_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="not found"):
        AuditKeys.load(tmp_path / "nope.key", environ={})


def test_a_malformed_public_key_is_a_clear_error() -> None:
    with pytest.raises(AuditKeyError, match="64 hex digits"):
        load_public_key("zz")
