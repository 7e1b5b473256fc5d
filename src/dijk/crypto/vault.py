"""HashiCorp Vault Transit as the key-encryption key of the key ring (envelope encryption).

Dijk never sends its data to Vault: data is sealed locally with AES-256-GCM under data
keys (:mod:`dijk.crypto.keyring`), and only those 32-byte data keys go to Vault, to be
wrapped (``transit/encrypt``) when they are made and unwrapped (``transit/decrypt``)
when the gateway loads its configuration. The key ring file then holds only
``vault:vN:...`` ciphertexts: useless without the Vault token and policy. This is the
pattern Vault recommends for high-volume data (one network call per key, not per record).

``dijk keys rotate`` with Vault also rotates the Transit key, and ``--reencrypt`` rewraps
every stored data key under its newest version (``transit/rewrap``, the data key never
leaves Vault in the clear for that).

The token comes from an environment variable (``VAULT_TOKEN`` by default), never from
the configuration file. hvac is synchronous: these calls happen at configuration load
and in ``dijk keys``, never on a request's path.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from typing import Any, Final
from urllib.parse import urlsplit

from dijk.crypto.keyring import CryptoError

__all__ = ["VaultTransit", "check_vault_url"]

_KEY_TYPE: Final = "aes256-gcm96"


def check_vault_url(url: str) -> str:
    """https, or plain http only to a loopback address (a local agent or a test server)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return url
        raise ValueError("plain http is only allowed to a loopback Vault (use https)")
    raise ValueError("Vault URL must be https://host[:port] (or http:// on loopback)")


class VaultTransit:
    """One Transit key used to wrap and unwrap data keys."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        mount: str = "transit",
        token_env: str = "VAULT_TOKEN",  # noqa: S107 - a variable name, not a token
        namespace: str | None = None,
        timeout_s: float = 5.0,
        ca_file: str | None = None,
        create_key: bool = True,
    ) -> None:
        self.url = check_vault_url(url)
        self.key = key
        self.mount = mount
        self.namespace = namespace
        self.timeout_s = timeout_s
        self._token_env = token_env
        self._verify: bool | str = ca_file or True
        self._create_key = create_key
        self._client: Any = None

    def describe(self) -> dict[str, str]:
        """What the key ring file records about its wrapping key (nothing secret)."""
        return {"url": self.url, "mount": self.mount, "key": self.key}

    def _transit(self) -> Any:
        if self._client is None:
            import hvac

            token = os.environ.get(self._token_env, "")
            if not token:
                raise CryptoError(f"Vault token missing: set {self._token_env}")
            self._client = hvac.Client(
                url=self.url,
                token=token,
                namespace=self.namespace,
                timeout=self.timeout_s,
                verify=self._verify,
            )
        return self._client.secrets.transit

    def _call(self, what: str, function: Any, **arguments: Any) -> Any:
        import hvac.exceptions
        import requests

        try:
            return function(mount_point=self.mount, **arguments)
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise self._error(what, exc) from None

    def _error(self, what: str, exc: Exception) -> CryptoError:
        import hvac.exceptions

        if isinstance(exc, hvac.exceptions.VaultError):
            # hvac's message is Vault's error text: no token, no plaintext in it.
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            return CryptoError(f"Vault Transit {what} failed ({type(exc).__name__}) {text}".strip())
        return CryptoError(f"Vault at {self.url} unreachable for {what}: {type(exc).__name__}")

    def ensure_key(self) -> None:
        """Create the Transit key (aes256-gcm96) if it does not exist yet."""
        import hvac.exceptions
        import requests

        transit = self._transit()
        try:
            transit.read_key(name=self.key, mount_point=self.mount)
        except hvac.exceptions.InvalidPath:
            if not self._create_key:
                raise CryptoError(
                    f"Vault Transit key {self.key!r} does not exist at {self.mount}/"
                ) from None
            self._call("create key", transit.create_key, name=self.key, key_type=_KEY_TYPE)
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise self._error("read key", exc) from None

    def wrap(self, data_key: bytes) -> str:
        """The data key encrypted by the newest version of the Transit key."""
        transit = self._transit()
        plaintext = base64.b64encode(data_key).decode("ascii")
        answer = self._call("encrypt", transit.encrypt_data, name=self.key, plaintext=plaintext)
        return _field(answer, "ciphertext")

    def unwrap(self, wrapped: str) -> bytes:
        transit = self._transit()
        answer = self._call("decrypt", transit.decrypt_data, name=self.key, ciphertext=wrapped)
        try:
            return base64.b64decode(_field(answer, "plaintext"), validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("Vault Transit decrypt returned no valid key") from None

    def rewrap(self, wrapped: str) -> str:
        """The same data key wrapped by the newest Transit key version (never in the clear)."""
        transit = self._transit()
        answer = self._call("rewrap", transit.rewrap_data, name=self.key, ciphertext=wrapped)
        return _field(answer, "ciphertext")

    def latest_version(self) -> int:
        """The newest version of the Transit key."""
        transit = self._transit()
        answer = self._call("read key", transit.read_key, name=self.key)
        try:
            version = answer["data"]["latest_version"]
        except (TypeError, KeyError):
            raise CryptoError("Vault Transit key answer has no latest_version") from None
        if not isinstance(version, int):
            raise CryptoError("Vault Transit key answer has no latest_version")
        return version

    def rotate(self) -> None:
        """Add a new version to the Transit key; new wraps use it."""
        transit = self._transit()
        self._call("rotate", transit.rotate_key, name=self.key)


def _field(answer: Any, name: str) -> str:
    try:
        value = answer["data"][name]
    except (TypeError, KeyError):
        raise CryptoError(f"Vault Transit answer has no {name}") from None
    if not isinstance(value, str):
        raise CryptoError(f"Vault Transit answer has no {name}")
    return value


def wrapped_version(wrapped: str) -> int | None:
    """The Transit key version of a ``vault:vN:...`` ciphertext."""
    parts = wrapped.split(":", 2)
    if len(parts) == 3 and parts[0] == "vault" and parts[1].startswith("v"):
        try:
            return int(parts[1][1:])
        except ValueError:
            return None
    return None
