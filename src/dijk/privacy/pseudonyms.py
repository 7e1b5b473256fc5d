"""Keyed pseudonyms of data subjects and clients, as the data map and breach reports store them.

Only pseudonyms reach the database: HMAC-SHA256 under the privacy pseudonym key (sealed at
rest by the key ring, see :mod:`dijk.privacy.keys`), truncated to 64 bits. Without the
key nobody can test a guess (an e-mail address, an IPv4 address); with it, a breach
investigation can count distinct people and pick out the clients of an address range.

- ``pii:<category>:<16 hex>`` for a value of personal data, in the same form as the
  masker's ``hash`` strategy (:func:`dijk.detect.masking.pseudonymise`), so a pseudonym in
  a response and in a breach report can be matched. Phone numbers are normalised here
  without phonenumbers' parser (it costs tens of microseconds per number and this runs for
  every number in every response): ``+``/``00`` international form, or the trunk ``0``
  replaced by the region's country code, which agrees with E.164 for the usual forms.
- ``client:<16 hex>`` for a client address, ``net:<16 hex>`` for its network (IPv4 /24,
  IPv6 /48), so ``dijk breach report --ip CIDR`` can select clients of a range without the
  addresses being stored.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Final, Literal

import phonenumbers

from dijk.detect.masking import normalise
from dijk.detect.pii_model import Category

__all__ = [
    "MAX_EXPANDED",
    "SubjectHasher",
    "cidr_pseudonyms",
    "client_pseudonyms",
    "network_of",
]

_HEX: Final = 16
MAX_EXPANDED: Final = 1 << 16
"""Most addresses (or networks) a CIDR may stand for in a breach query."""
_V4_NET: Final = 24
_V6_NET: Final = 48
_MEMO_SIZE: Final = 16_384


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:_HEX]


class SubjectHasher:
    """Pseudonyms of personal-data values under one key and phone region."""

    __slots__ = ("_country", "_key", "_memo", "_region")

    def __init__(self, key: bytes, region: str = "NL") -> None:
        if len(key) < 16:
            raise ValueError("pseudonym key must be at least 16 bytes")
        self._key = key
        self._region = region
        self._country = str(phonenumbers.country_code_for_region(region) or "")
        self._memo: dict[tuple[str, str], str] = {}

    def subject(self, value: str, category: Category) -> str:
        # keyed by the category's value string: hashing an enum member is a Python call,
        # and this runs for every finding of every response
        label: str = category._value_
        key = (value, label)
        found = self._memo.get(key)
        if found is not None:
            return found
        if category is Category.PHONE:
            normalised = self._phone(value)
        else:
            normalised = normalise(value, category, region=self._region)
        found = f"pii:{label}:" + _mac(self._key, label + "\x00" + normalised)
        if len(self._memo) >= _MEMO_SIZE:  # bounded; process memory only
            self._memo.clear()
        self._memo[key] = found
        return found

    def _phone(self, text: str) -> str:
        stripped = text.strip()
        digits = "".join(char for char in stripped if char.isdigit())
        if stripped.startswith("+"):
            return "+" + digits
        if digits.startswith("00"):
            return "+" + digits[2:]
        if digits.startswith("0") and self._country:
            return "+" + self._country + digits[1:]
        return digits

    def client(self, ip: str) -> tuple[str, str]:
        return client_pseudonyms(ip, self._key)


def network_of(ip: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address, or None if it is not one."""
    try:
        address = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = _V4_NET if address.version == 4 else _V6_NET
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False).compressed


def _address_text(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return address.compressed


def client_pseudonyms(ip: str, key: bytes) -> tuple[str, str]:
    """(client, network) pseudonyms of a client address."""
    network = network_of(ip) or "?"
    return (
        "client:" + _mac(key, "client\x00" + _address_text(ip)),
        "net:" + _mac(key, "net\x00" + network),
    )


def cidr_pseudonyms(
    cidr: str, key: bytes
) -> tuple[Literal["client", "client_net"], frozenset[str]]:
    """Pseudonyms that stand for every client in ``cidr``, and which column they match.

    A range of at most :data:`MAX_EXPANDED` addresses is expanded address by address;
    a wider one is expanded network by network (/24 or /48) if it is made of at most
    that many of them. Anything wider raises ValueError: name a narrower range.
    """
    try:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not an IP network: {cidr!r}") from None
    if network.num_addresses <= MAX_EXPANDED:
        return "client", frozenset(
            client_pseudonyms(str(address), key)[0] for address in _addresses(network)
        )
    unit = _V4_NET if network.version == 4 else _V6_NET
    if network.prefixlen <= unit and (1 << (unit - network.prefixlen)) <= MAX_EXPANDED:
        return "client_net", frozenset(
            "net:" + _mac(key, "net\x00" + subnet.compressed)
            for subnet in network.subnets(new_prefix=unit)
        )
    raise ValueError(
        f"{cidr} is too wide to search by pseudonym: at most {MAX_EXPANDED} addresses, or"
        f" {MAX_EXPANDED} networks of /{_V4_NET} (IPv4) or /{_V6_NET} (IPv6)"
    )


def _addresses(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    if network.num_addresses == 1:
        return [str(network.network_address)]
    return [str(address) for address in network]  # includes network and broadcast
