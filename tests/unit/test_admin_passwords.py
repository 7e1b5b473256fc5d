"""Dashboard users' password hashes (scrypt) and ``dijk admin hash-password``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dijk.auth.passwords import check_hash, hash_password, verify_password


def test_a_password_verifies_against_its_hash_and_a_wrong_one_does_not() -> None:
    encoded = hash_password("correct horse battery staple")
    assert encoded.startswith("scrypt$15$8$1$")
    assert "correct horse" not in encoded
    assert verify_password("correct horse battery staple", encoded)
    assert not verify_password("correct horse battery stapler", encoded)
    assert not verify_password("", encoded)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("same") != hash_password("same")


def test_an_unknown_user_never_verifies() -> None:
    assert not verify_password("anything", None)
    assert not verify_password("", None)


@pytest.mark.parametrize(
    "stored",
    [
        "hunter2",
        "sha256$abc",
        "scrypt$10$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,  # too cheap
        "scrypt$15$8$1$short$" + "A" * 43,
    ],
)
def test_anything_but_a_strong_scrypt_hash_is_refused_as_a_stored_password(stored: str) -> None:
    with pytest.raises(ValueError, match=r"not a password hash|cost out of range"):
        check_hash(stored)


def test_an_empty_password_gets_no_hash() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_hash_password_reads_the_password_from_a_pipe_and_prints_only_its_hash() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dijk", "admin", "hash-password"],
        input="pipe password 9\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    assert "pipe password" not in done.stdout + done.stderr
    assert verify_password("pipe password 9", check_hash(printed))
