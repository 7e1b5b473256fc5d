"""Server-side request forgery: URLs whose host is really an internal address.

Attackers write ``127.0.0.1`` as ``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
``[::ffff:127.0.0.1]`` or ``localtest``-style names, hoping that the filter parses the
host differently from the HTTP client. Here the host is parsed the way ``inet_aton`` and
the common URL libraries do, and the address is classified by range.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass

MAX_URLS_PER_VALUE = 16

_DANGEROUS_SCHEMES = frozenset(
    {"gopher", "dict", "file", "ldap", "ldaps", "tftp", "jar", "netdoc", "expect", "phar"}
)
_WEB_SCHEMES = frozenset({"http", "https", "ftp", "ws", "wss", "sftp", "smb"})
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_HOST_STOP = frozenset("/?#\\ \t\r\n\"'<>`{}|^")
_METADATA_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "kubernetes.default",
        "kubernetes.default.svc",
    }
)
_METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)


@dataclass(frozen=True, slots=True)
class UrlIssue:
    """Why a URL in a value is dangerous: ``kind`` is used as the rule id suffix."""

    kind: str
    url: str


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """Parse an IPv4 address as ``inet_aton`` does: 1-4 parts, decimal, octal or hex."""
    parts = host.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        if not part or len(part) > 34:
            return None
        lowered = part.lower()
        try:
            if lowered.startswith("0x"):
                if len(lowered) == 2:
                    return None
                number = int(lowered[2:], 16)
            elif len(lowered) > 1 and lowered.startswith("0"):
                number = int(lowered, 8)
            elif lowered.isdigit():
                number = int(lowered, 10)
            else:
                return None
        except ValueError:
            return None
        numbers.append(number)
    *leading, last = numbers
    if any(number > 255 for number in leading):
        return None
    if last >= 1 << (8 * (4 - len(leading))):
        return None
    value = 0
    for number in leading:
        value = (value << 8) | number
    value = (value << (8 * (4 - len(leading)))) | last
    return ipaddress.IPv4Address(value)


def _is_canonical_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(
        part.isdigit() and (part == "0" or not part.startswith("0")) for part in parts
    )


def classify_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """``metadata``, ``loopback``, ``link_local``, ``private`` or None for public addresses."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is None and address.packed[:12] == bytes(12) and int(address) > 1:
            mapped = ipaddress.IPv4Address(address.packed[12:])  # IPv4-compatible ::a.b.c.d
        if mapped is not None:
            return classify_address(mapped)
    if address in _METADATA_ADDRESSES:
        return "metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "loopback"
    if address.is_link_local:
        return "link_local"
    if address.is_private or address.is_reserved or address.is_multicast:
        return "private"
    if isinstance(address, ipaddress.IPv4Address) and address in _CARRIER_NAT:
        return "private"
    return None


_CARRIER_NAT = ipaddress.IPv4Network("100.64.0.0/10")


def classify_host(host: str) -> tuple[str | None, bool]:
    """Classify a URL host; the flag says whether it was an obfuscated IP notation."""
    host = host.strip().rstrip(".").lower()
    if not host:
        return (None, False)
    if host.startswith("[") and host.endswith("]"):
        literal = host[1:-1].split("%", 1)[0]
        try:
            return (classify_address(ipaddress.IPv6Address(literal)), False)
        except ValueError:
            return (None, False)
    if host in _METADATA_NAMES:
        return ("metadata", False)
    if host == "localhost" or host.endswith(".localhost") or host == "localhost.localdomain":
        return ("loopback", False)
    if host.endswith((".internal", ".local", ".localdomain", ".intranet", ".corp", ".lan")):
        return ("private", False)
    address = parse_ipv4_loose(host)
    if address is None:
        if host in _LOOPBACK_NAMES or host.endswith(_LOOPBACK_SUFFIXES):
            return ("loopback", False)
        embedded = embedded_address(host)
        if embedded is None:
            return (None, False)
        return (classify_address(embedded), False)
    return (classify_address(address), not _is_canonical_ipv4(host))


# Public names that resolve to 127.0.0.1 (any subdomain too), made for local development.
_LOOPBACK_NAMES = frozenset({"localtest.me", "lvh.me", "vcap.me", "lacolhost.com", "localh.st"})
_LOOPBACK_SUFFIXES = tuple("." + name for name in _LOOPBACK_NAMES)
# Wildcard DNS services that answer with the address written in the name, also in hex
# (nip.io, sslip.io: 10.0.0.1.nip.io, 10-0-0-1.nip.io, 0a000001.nip.io) and DNS
# rebinding services that alternate between two (7f000001.c0a80001.rbndr.us).
_WILDCARD_SUFFIXES = (
    ".nip.io",
    ".sslip.io",
    ".xip.io",
    ".nip.direct",
    ".traefik.me",
    ".rbndr.us",
    ".1u.ms",
    ".localtest.me",
)


def embedded_address(host: str) -> ipaddress.IPv4Address | None:
    """A private, loopback, link-local or metadata IPv4 address written inside a host
    name (four decimal labels, or one label of four dash-separated numbers, anywhere;
    eight hex digits as a label of a wildcard-DNS service), which wildcard DNS resolves
    to; None when the name embeds no such address."""
    labels = host.split(".")
    if len(labels) < 2 or len(labels) > 64:
        return None
    candidates: list[ipaddress.IPv4Address] = []
    for start in range(len(labels) - 3):
        window = labels[start : start + 4]
        if all(label.isdigit() and len(label) <= 3 and int(label) <= 255 for label in window):
            candidates.append(ipaddress.IPv4Address(".".join(str(int(x)) for x in window)))
    wildcard = host.endswith(_WILDCARD_SUFFIXES)
    for label in labels:
        parts = label.split("-")
        if len(parts) >= 4:
            numbers = parts[-4:]
            if all(part.isdigit() and len(part) <= 3 and int(part) <= 255 for part in numbers):
                candidates.append(ipaddress.IPv4Address(".".join(str(int(x)) for x in numbers)))
        if wildcard and len(label) == 8:
            with contextlib.suppress(ValueError):
                candidates.append(ipaddress.IPv4Address(int(label, 16)))
    for candidate in candidates:
        if classify_address(candidate) is not None:
            return candidate
    return None


def _scheme_before(text: str, colon: int) -> str:
    start = colon
    while start > 0 and text[start - 1] in _SCHEME_CHARS and colon - start < 16:
        start -= 1
    while start < colon and not text[start].isalpha():
        start += 1
    return text[start:colon].lower()


def _authority_after(text: str, start: int) -> str:
    end = start
    limit = min(len(text), start + 300)
    while end < limit and text[end] not in _HOST_STOP:
        end += 1
    return text[start:end]


def _host_of(authority: str) -> str:
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        close = host.find("]")
        return host[: close + 1] if close > 0 else host
    return host.partition(":")[0]


def find_url_issues(text: str) -> list[UrlIssue]:
    """Dangerous schemes and internal or obfuscated hosts of the URLs inside ``text``."""
    issues: list[UrlIssue] = []
    position = 0
    found = 0
    while found < MAX_URLS_PER_VALUE:
        marker = text.find("://", position)
        if marker < 0:
            break
        found += 1
        position = marker + 3
        scheme = _scheme_before(text, marker)
        snippet_start = max(0, marker - len(scheme))
        authority = _authority_after(text, marker + 3)
        url = text[snippet_start : marker + 3 + len(authority)]
        if scheme in _DANGEROUS_SCHEMES:
            issues.append(UrlIssue("scheme_" + scheme, url))
            continue
        if scheme and scheme not in _WEB_SCHEMES:
            continue
        host = _host_of(authority)
        kind, obfuscated = classify_host(host)
        if kind is not None:
            issues.append(UrlIssue(kind, url))
        elif obfuscated:
            issues.append(UrlIssue("obfuscated_ip", url))
        if obfuscated and kind is not None:
            issues.append(UrlIssue("obfuscated_ip", url))
    return issues
