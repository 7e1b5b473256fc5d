"""The key ring: AES-256-GCM sealing, versions, the 0600 file, rotation and re-encryption."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from dijk.crypto import (
    DecryptionError,
    KeyRing,
    KeyRingFileError,
    UnknownKeyVersionError,
    create_key_ring,
    describe_key_ring,
    is_sealed,
    is_token,
    load_key_ring,
    load_or_create_key_ring,
    read_sealed,
    reencrypt_tree,
    rotate_key_ring,
    sealed_version,
    write_sealed,
)
from dijk.crypto.keyring import new_data_key


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing({1: new_data_key()}, 1)


def test_binary_values_round_trip_and_name_their_label(ring: KeyRing) -> None:
    sealed = ring.encrypt(b"spooled record", "audit-spool")
    assert is_sealed(sealed)
    assert b"spooled record" not in sealed
    assert ring.decrypt(sealed, "audit-spool") == b"spooled record"
    assert sealed_version(sealed) == 1


def test_text_tokens_round_trip_as_one_ascii_line(ring: KeyRing) -> None:
    token = ring.encrypt_text(b'{"seq": 1}', "audit-spool")
    assert is_token(token)
    assert token.isascii()
    assert "\n" not in token
    assert token.startswith("dijk1:00000001:audit-spool:")
    assert ring.decrypt_text(token, "audit-spool") == b'{"seq": 1}'


def test_same_plaintext_seals_differently_each_time(ring: KeyRing) -> None:
    assert ring.encrypt_text(b"x", "a") != ring.encrypt_text(b"x", "a")


def test_a_value_cannot_be_passed_off_under_another_label(ring: KeyRing) -> None:
    sealed = ring.encrypt(b"key material", "privacy-pseudonym-key")
    with pytest.raises(DecryptionError):
        ring.decrypt(sealed, "audit-spool")
    # rewriting the label in the clear header breaks authentication
    forged = sealed.replace(b"privacy-pseudonym-key", b"privacy-pseudonym-kez")
    with pytest.raises(DecryptionError):
        ring.decrypt(forged, "privacy-pseudonym-kez")


def test_tampered_ciphertext_is_refused(ring: KeyRing) -> None:
    sealed = bytearray(ring.encrypt(b"record", "a"))
    sealed[-1] ^= 1
    with pytest.raises(DecryptionError):
        ring.decrypt(bytes(sealed), "a")
    token = ring.encrypt_text(b"record", "a")
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(DecryptionError):
        ring.decrypt_text(flipped, "a")


def test_claiming_another_key_version_is_refused() -> None:
    old, new = new_data_key(), new_data_key()
    ring = KeyRing({1: old, 2: new}, 2)
    token = ring.encrypt_text(b"record", "a")
    moved = token.replace("dijk1:00000002:", "dijk1:00000001:")
    with pytest.raises(DecryptionError):
        ring.decrypt_text(moved, "a")


def test_unknown_version_names_the_versions_it_has(ring: KeyRing) -> None:
    other = KeyRing({7: new_data_key()}, 7)
    with pytest.raises(UnknownKeyVersionError, match="version 7"):
        ring.decrypt(other.encrypt(b"x", "a"), "a")


def test_rotation_keeps_old_values_readable_and_seals_new_ones_with_the_new_key() -> None:
    first = new_data_key()
    before = KeyRing({1: first}, 1)
    old = before.encrypt_text(b"old", "a")
    after = KeyRing({1: first, 2: new_data_key()}, 2)
    assert after.decrypt_text(old, "a") == b"old"
    assert sealed_version(after.encrypt_text(b"new", "a")) == 2


def test_reencryption_moves_a_token_without_changing_its_length() -> None:
    first = new_data_key()
    old = KeyRing({1: first}, 1).encrypt_text(b"payload" * 10, "audit-spool")
    ring = KeyRing({1: first, 2: new_data_key()}, 2)
    moved = ring.reencrypt_text(old)
    assert sealed_version(moved) == 2
    assert len(moved) == len(old)
    assert ring.decrypt_text(moved, "audit-spool") == b"payload" * 10
    assert ring.reencrypt_text(moved) is moved


def test_repr_never_shows_key_material() -> None:
    key = new_data_key()
    assert key.hex() not in repr(KeyRing({1: key}, 1))


def test_bad_labels_and_keys_are_programming_errors(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="label"):
        ring.encrypt(b"x", "Bad Label")
    with pytest.raises(ValueError, match="256-bit"):
        KeyRing({1: b"short"}, 1)
    with pytest.raises(ValueError, match="primary"):
        KeyRing({1: new_data_key()}, 2)


# -- the file ----------------------------------------------------------------------------------


def test_key_ring_file_is_created_0600_and_reloads_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keyring.json"
    ring = create_key_ring(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = ring.encrypt_text(b"x", "a")
    assert load_key_ring(path).decrypt_text(token, "a") == b"x"
    document = json.loads(path.read_text())
    assert document["format"] == "dijk-keyring/1"
    assert document["protection"] == "file"


def test_key_ring_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    create_key_ring(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyRingFileError, match="chmod 600"):
        load_key_ring(path)


def test_creating_over_an_existing_ring_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    create_key_ring(path)
    with pytest.raises(KeyRingFileError, match="already exists"):
        create_key_ring(path)


def test_concurrent_first_use_creates_one_ring(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    rings: list[KeyRing] = []

    def use() -> None:
        rings.append(load_or_create_key_ring(path)[0])

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    token = rings[0].encrypt_text(b"x", "a")
    assert all(ring.decrypt_text(token, "a") == b"x" for ring in rings)


def test_malformed_ring_files_get_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_text("{not json")
    os.chmod(path, 0o600)
    with pytest.raises(KeyRingFileError, match="not valid JSON"):
        load_key_ring(path)
    with pytest.raises(KeyRingFileError, match="not found"):
        load_key_ring(tmp_path / "missing.json")


def test_rotate_adds_a_primary_version_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    old = create_key_ring(path).encrypt(b"sealed before", "a")
    ring = rotate_key_ring(path)
    assert ring.versions == (1, 2)
    assert ring.primary == 2
    assert ring.decrypt(old, "a") == b"sealed before"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = describe_key_ring(path)
    assert info.primary == 2
    assert [version for version, _ in info.versions] == [1, 2]


# -- re-encryption ---------------------------------------------------------------------------


def test_reencrypt_tree_moves_sealed_files_and_token_lines_in_place(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    first = create_key_ring(path)
    write_sealed(tmp_path / "pseudonym.key", b"k" * 32, first, "privacy-pseudonym-key")
    spool = tmp_path / "audit-spool" / "dijk_audit-default.spool.jsonl"
    spool.parent.mkdir()
    lines = [first.encrypt_text(f"record {n}".encode(), "audit-spool") for n in range(5)]
    partial = first.encrypt_text(b"being written", "audit-spool")[:20]
    spool.write_text("\n".join(lines) + "\n" + partial)
    size = spool.stat().st_size
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    (upstream / "sealed").write_bytes(first.encrypt(b"not ours", "a"))
    (tmp_path / "plain.txt").write_text("not sealed\n")

    ring = rotate_key_ring(path)
    report = reencrypt_tree(tmp_path, ring)

    assert report.errors == []
    assert report.values == 6
    assert report.files == 2
    assert sealed_version((tmp_path / "pseudonym.key").read_bytes()) == 2
    assert read_sealed(tmp_path / "pseudonym.key", ring, "privacy-pseudonym-key") == b"k" * 32
    assert spool.stat().st_size == size  # same offsets: a replay offset stays valid
    rewritten = spool.read_text().split("\n")
    assert [sealed_version(line) for line in rewritten[:5]] == [2] * 5
    assert [ring.decrypt_text(line, "audit-spool") for line in rewritten[:5]] == [
        f"record {n}".encode() for n in range(5)
    ]
    assert rewritten[5] == partial  # a write in progress is left alone
    assert sealed_version((upstream / "sealed").read_bytes()) == 1  # excluded directory
    again = reencrypt_tree(tmp_path, ring)
    assert again.values == 0
    assert again.already_current == 6
