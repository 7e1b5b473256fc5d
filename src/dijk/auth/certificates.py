"""Client certificates (mTLS) bound to consumers: by fingerprint, subjectAltName or subject.

The TLS layer has already verified the chain against ``listen.tls.client_ca_file`` before
a request exists; this ring only says *which consumer* a verified certificate belongs to.
Look-up order is most specific first: the SHA-256 fingerprint of the DER certificate (one
exact certificate), then each subjectAltName entry (DNS, URI such as SPIFFE ids, e-mail, IP),
then the exact subject (its attribute set; order does not matter). The first match wins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dijk.config.models import ConsumerConfig

_SHORT_NAMES = {
    "CN": "commonName",
    "O": "organizationName",
    "OU": "organizationalUnitName",
    "C": "countryName",
    "L": "localityName",
    "ST": "stateOrProvinceName",
    "E": "emailAddress",
    "EMAILADDRESS": "emailAddress",
    "DC": "domainComponent",
    "SERIALNUMBER": "serialNumber",
    "STREET": "streetAddress",
}
_SAN_TYPES = {"dns": "DNS", "uri": "URI", "email": "email", "ip": "IP Address"}

Subject = frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class CertificateOwner:
    consumer: str
    scopes: frozenset[str]
    groups: frozenset[str]


class CertificateRing:
    """Fingerprint / SAN / subject → consumer, built once per configuration."""

    def __init__(self, consumers: Iterable[ConsumerConfig]) -> None:
        self._by_fingerprint: dict[str, CertificateOwner] = {}
        self._by_san: dict[tuple[str, str], CertificateOwner] = {}
        self._by_subject: dict[Subject, CertificateOwner] = {}
        for consumer in consumers:
            owner = CertificateOwner(
                consumer.name, frozenset(consumer.scopes), frozenset(consumer.groups)
            )
            for ref in consumer.client_certificates:
                if ref.sha256 is not None:
                    self._by_fingerprint[ref.sha256.replace(":", "").lower()] = owner
                elif ref.san is not None:
                    kind, _, value = ref.san.partition(":")
                    self._by_san[_san_key(_SAN_TYPES[kind.lower()], value)] = owner
                elif ref.subject is not None:
                    self._by_subject[parse_subject(ref.subject)] = owner

    def __len__(self) -> int:
        return len(self._by_fingerprint) + len(self._by_san) + len(self._by_subject)

    def find(self, tls: Mapping[str, Any]) -> CertificateOwner | None:
        fingerprint = tls.get("client_cert_sha256")
        if not isinstance(fingerprint, str):
            return None
        owner = self._by_fingerprint.get(fingerprint.lower())
        if owner is not None:
            return owner
        certificate = tls.get("client_cert")
        if not isinstance(certificate, Mapping):
            return None
        for entry in certificate.get("subjectAltName", ()):
            if isinstance(entry, tuple) and len(entry) == 2:
                owner = self._by_san.get(_san_key(str(entry[0]), str(entry[1])))
                if owner is not None:
                    return owner
        if self._by_subject:
            return self._by_subject.get(_peer_subject(certificate.get("subject", ())))
        return None


def parse_subject(text: str) -> Subject:
    """``'CN=payments, O=Polder Bank'`` → {('commonName', 'payments'), ...}."""
    pairs = set()
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        pairs.add((_SHORT_NAMES.get(name.upper(), name), value.strip()))
    return frozenset(pairs)


def _peer_subject(subject: Any) -> Subject:
    """The subject of ``ssl.SSLSocket.getpeercert()``: a tuple of RDNs of (name, value)."""
    pairs = set()
    for rdn in subject or ():
        for attribute in rdn:
            if isinstance(attribute, tuple) and len(attribute) == 2:
                pairs.add((str(attribute[0]), str(attribute[1])))
    return frozenset(pairs)


def _san_key(kind: str, value: str) -> tuple[str, str]:
    if kind in ("DNS", "email"):
        return kind, value.lower()
    if kind == "IP Address":
        try:
            return kind, str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return kind, value
    return kind, value
