"""The key ring wrapped by HashiCorp Vault Transit, through hvac, against a fake Transit.

No Vault is installed here, so the test runs a small Transit look-alike on loopback: a real
HTTP server answering the endpoints hvac calls (keys read/create/rotate, encrypt, decrypt,
rewrap) with Vault's JSON shapes and ``vault:vN:`` ciphertexts, under real AES-GCM keys
per version, and checking ``X-Vault-Token``. It proves what Dijk sends and how it reacts;
it does not prove compatibility with every Vault release (that is hvac's contract).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from typer.testing import CliRunner

from dijk.cli.main import app
from dijk.crypto import (
    CryptoError,
    KeyRingFileError,
    VaultTransit,
    create_key_ring,
    load_key_ring,
    rewrap_key_ring,
    rotate_key_ring,
)

TOKEN = "s.fake-root-token"


class FakeTransit:
    """Transit keys by name: a list of AES-256 keys, one per version."""

    def __init__(self) -> None:
        self.keys: dict[str, list[bytes]] = {}
        self.calls: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeTransit:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()

    def _seal(self, name: str, plaintext: bytes) -> str:
        version = len(self.keys[name])
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[name][-1]).encrypt(nonce, plaintext, None)
        return f"vault:v{version}:" + base64.b64encode(nonce + sealed).decode()

    def _open(self, name: str, ciphertext: str) -> bytes:
        _, version, payload = ciphertext.split(":", 2)
        raw = base64.b64decode(payload)
        return AESGCM(self.keys[name][int(version[1:]) - 1]).decrypt(raw[:12], raw[12:], None)

    def answer(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        self.calls.append(f"{method} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] != ["v1", "transit"] or len(parts) < 4:
            return 404, {"errors": []}
        action, name = parts[2], parts[3]
        if action == "keys" and len(parts) == 4:
            if method == "GET":
                if name not in self.keys:
                    return 404, {"errors": []}
                return 200, {"data": {"name": name, "latest_version": len(self.keys[name])}}
            self.keys.setdefault(name, [AESGCM.generate_key(bit_length=256)])
            return 204, None
        if name not in self.keys:
            return 400, {"errors": ["encryption key not found"]}
        if action == "keys" and parts[4:] == ["rotate"]:
            self.keys[name].append(AESGCM.generate_key(bit_length=256))
            return 204, None
        if action == "encrypt":
            plaintext = base64.b64decode(body["plaintext"])
            return 200, {"data": {"ciphertext": self._seal(name, plaintext)}}
        if action == "decrypt":
            try:
                plaintext = self._open(name, body["ciphertext"])
            except Exception:
                return 400, {"errors": ["cipher: message authentication failed"]}
            return 200, {"data": {"plaintext": base64.b64encode(plaintext).decode()}}
        if action == "rewrap":
            plaintext = self._open(name, body["ciphertext"])
            return 200, {"data": {"ciphertext": self._seal(name, plaintext)}}
        return 404, {"errors": []}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        transit = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("x-vault-token") != TOKEN:
                    status, payload = 403, {"errors": ["permission denied"]}
                else:
                    status, payload = transit.answer(
                        self.command, self.path.split("?", 1)[0], json.loads(raw or b"{}")
                    )
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

        return Handler


@pytest.fixture
def transit(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTransit]:
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = FakeTransit().start()
    yield server
    server.stop()


def vault(server: FakeTransit, key: str = "dijk") -> VaultTransit:
    return VaultTransit(server.url, key, timeout_s=5)


def test_ring_file_holds_only_vault_ciphertexts(tmp_path: Path, transit: FakeTransit) -> None:
    path = tmp_path / "keyring.json"
    ring = create_key_ring(path, vault(transit))
    document = json.loads(path.read_text())
    assert document["protection"] == "vault-transit"
    assert document["vault"] == {"url": transit.url, "mount": "transit", "key": "dijk"}
    entry = document["keys"][0]
    assert "key" not in entry
    assert entry["wrapped"].startswith("vault:v1:")
    token = ring.encrypt_text(b"spooled", "audit-spool")
    assert load_key_ring(path, vault(transit)).decrypt_text(token, "audit-spool") == b"spooled"
    assert "POST /v1/transit/keys/dijk" in transit.calls  # the Transit key was created


def test_a_vault_wrapped_ring_cannot_be_read_without_vault(
    tmp_path: Path, transit: FakeTransit, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keyring.json"
    create_key_ring(path, vault(transit))
    with pytest.raises(KeyRingFileError, match=r"configure privacy\.keys\.vault"):
        load_key_ring(path)
    monkeypatch.setenv("VAULT_TOKEN", "s.wrong")
    with pytest.raises(CryptoError, match=r"Forbidden|permission"):
        load_key_ring(path, vault(transit))
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(CryptoError, match="set VAULT_TOKEN"):
        load_key_ring(path, vault(transit))


def test_an_unreachable_vault_is_a_clear_error(tmp_path: Path, transit: FakeTransit) -> None:
    path = tmp_path / "keyring.json"
    create_key_ring(path, vault(transit))
    url = transit.url
    transit.stop()
    with pytest.raises(CryptoError, match="unreachable"):
        load_key_ring(path, VaultTransit(url, "dijk", timeout_s=1))


def test_rotation_rotates_the_transit_key_and_rewrap_moves_old_keys(
    tmp_path: Path, transit: FakeTransit
) -> None:
    path = tmp_path / "keyring.json"
    old = create_key_ring(path, vault(transit)).encrypt(b"before", "a")
    ring = rotate_key_ring(path, vault(transit))
    assert ring.primary == 2
    assert ring.decrypt(old, "a") == b"before"
    assert len(transit.keys["dijk"]) == 2  # Transit key rotated
    wrapped = [entry["wrapped"] for entry in json.loads(path.read_text())["keys"]]
    assert [value.split(":")[1] for value in wrapped] == ["v1", "v2"]
    assert rewrap_key_ring(path, vault(transit)) == 1
    wrapped = [entry["wrapped"] for entry in json.loads(path.read_text())["keys"]]
    assert [value.split(":")[1] for value in wrapped] == ["v2", "v2"]
    assert load_key_ring(path, vault(transit)).decrypt(old, "a") == b"before"


def test_vault_urls_must_be_https_or_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        VaultTransit("http://vault.example:8200", "dijk")
    VaultTransit("https://vault.example:8200", "dijk")


def test_keys_cli_rotates_and_reencrypts_through_vault(
    tmp_path: Path, transit: FakeTransit
) -> None:
    config = tmp_path / "dijk.yaml"
    config.write_text(
        "version: 1\n"
        f"audit: {{url: 'sqlite:///{tmp_path}/audit.db'}}\n"
        f"privacy: {{keys: {{vault: {{url: '{transit.url}', key: dijk-test}}}}}}\n"
        "upstreams: {up: {url: 'http://127.0.0.1:9'}}\n"
        "routes: [{name: all, match: {path_prefix: /}, upstream: up, privacy: {}}]\n"
    )
    runner = CliRunner()
    result = runner.invoke(app, ["keys", "init", "-c", str(config)])
    assert result.exit_code == 0, result.output
    sealed = (tmp_path / "privacy-pseudonym.key").read_bytes()
    result = runner.invoke(app, ["keys", "rotate", "-c", str(config), "--reencrypt"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 value(s) in 1 file(s)" in result.output
    assert "rewrapped 1 data key(s)" in result.output
    assert (tmp_path / "privacy-pseudonym.key").read_bytes() != sealed
    result = runner.invoke(app, ["keys", "status", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "vault-transit" in result.output
    assert "v2" in result.output
