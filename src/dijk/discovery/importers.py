"""Traffic that never passed through Dijk, as :class:`~dijk.discovery.inventory.Exchange` s.

- **HAR** (HTTP Archive 1.2, what browsers' developer tools and mitmproxy save): method,
  URL, headers (for the authentication seen and media types), request and response bodies;
- **combined access logs** (nginx ``combined``, Apache ``%h %l %u %t "%r" %>s %b
  "%{Referer}i" "%{User-agent}i"``, and the common format without the last two): method,
  path, query and status, so templates and parameter names but no bodies;
- **Dijk's audit log** as JSON lines (``dijk audit query --format json``, the admin API):
  method, the route's path template, status, authentication method and personal-data
  categories. Records hold templates, never raw paths, so a prefix route stays
  ``/prefix/*``.

Pure: each reader takes text (a parsed HAR document, or lines) and yields exchanges; a
malformed entry raises :class:`ImportError_` naming where it is.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from dijk.discovery.inventory import Exchange
from dijk.discovery.paths import PARAM

__all__ = ["ImportError_", "auth_of", "from_access_log", "from_audit_log", "from_har"]


class ImportError_(ValueError):
    """Input that cannot be read as the format asked for; the message says where."""


_COMBINED: Final = re.compile(
    r'(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]{1,16}) (?P<target>\S+)'
    r'(?: HTTP/[0-9.]+)?" (?P<status>[0-9]{3}) \S+(?: "[^"]*" "[^"]*")?.*'
)
_LOG_TIME: Final = "%d/%b/%Y:%H:%M:%S %z"
_TEMPLATE_PARAM: Final = re.compile(r"\{[^{}/]*\}")
_API_KEY_HEADERS: Final = frozenset({"x-api-key", "api-key", "apikey", "x-apikey", "x-auth-token"})
_MAX_BODY: Final = 1 << 20


def auth_of(headers: Iterable[tuple[str, str]], cookies: bool = False) -> str:
    """The kind of credential a request carried (never the credential)."""
    for name, value in headers:
        lower = name.lower()
        if lower == "authorization":
            scheme = value.strip().split(" ", 1)[0].lower()
            if scheme == "bearer":
                token = value.strip()[7:].strip()
                return "jwt" if token.count(".") == 2 and token.startswith("eyJ") else "bearer"
            if scheme in ("basic", "digest"):
                return scheme
            return "authorization"
        if lower in _API_KEY_HEADERS:
            return "api_key"
    return "cookie" if cookies else ""


def _time_us(text: str, where: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise ImportError_(f"{where}: not an ISO 8601 time: {str(text)[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def _headers(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        return []
    return [
        (str(item.get("name", "")), str(item.get("value", "")))
        for item in raw
        if isinstance(item, Mapping)
    ]


def _header(headers: list[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value
    return ""


def _har_body(text: Any, encoding: Any) -> bytes | None:
    if not isinstance(text, str) or not text:
        return None
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=False)[:_MAX_BODY]
        except (binascii.Error, ValueError):
            return None
    return text.encode("utf-8", "surrogatepass")[:_MAX_BODY]


def from_har(document: Any) -> Iterator[Exchange]:
    """Exchanges of a parsed HAR document (``{"log": {"entries": [...]}}``)."""
    log = document.get("log") if isinstance(document, Mapping) else None
    entries = log.get("entries") if isinstance(log, Mapping) else None
    if not isinstance(entries, list):
        raise ImportError_("not a HAR file: no log.entries list")
    for index, entry in enumerate(entries):
        where = f"log.entries[{index}]"
        if not isinstance(entry, Mapping):
            raise ImportError_(f"{where}: not an object")
        request = entry.get("request")
        response = entry.get("response") or {}
        if not isinstance(request, Mapping) or not isinstance(response, Mapping):
            raise ImportError_(f"{where}: no request")
        url = request.get("url")
        method = request.get("method")
        if not isinstance(url, str) or not isinstance(method, str):
            raise ImportError_(f"{where}: request without method or url")
        parts = urlsplit(url)
        headers = _headers(request.get("headers"))
        response_headers = _headers(response.get("headers"))
        post = request.get("postData") or {}
        content = response.get("content") or {}
        status = response.get("status")
        yield Exchange(
            method=method.upper(),
            path=parts.path or "/",
            query=parts.query,
            time_us=_time_us(entry.get("startedDateTime", ""), where),
            status=status if isinstance(status, int) and 100 <= status <= 999 else 0,
            request_type=str(post.get("mimeType") or _header(headers, "content-type")),
            response_type=str(content.get("mimeType") or _header(response_headers, "content-type")),
            request_body=_har_body(post.get("text"), None),
            response_body=_har_body(content.get("text"), content.get("encoding")),
            auth=auth_of(headers, bool(request.get("cookies"))) or "none",
        )


def from_access_log(lines: Iterable[str], source: str = "access log") -> Iterator[Exchange]:
    """Exchanges of combined (or common) access log lines; blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        found = _COMBINED.fullmatch(text)
        if found is None:
            raise ImportError_(f"{source}:{number}: not a combined or common log line")
        try:
            moment = datetime.strptime(found.group("time"), _LOG_TIME)
        except ValueError:
            raise ImportError_(f"{source}:{number}: bad time {found.group('time')!r}") from None
        target = found.group("target")
        if not target.startswith("/"):
            target = urlsplit(target).path or "/"
        path, _, query = target.partition("?")
        yield Exchange(
            method=found.group("method"),
            path=path,
            query=query,
            time_us=int(moment.timestamp() * 1_000_000),
            status=int(found.group("status")),
        )


def from_audit_log(records: Iterable[Any], source: str = "audit log") -> Iterator[Exchange]:
    """Exchanges of audit records (``dijk audit query --format json``, parsed)."""
    for number, record in enumerate(records, start=1):
        where = f"{source}:{number}"
        if not isinstance(record, Mapping) or not isinstance(record.get("method"), str):
            raise ImportError_(f"{where}: not an audit record")
        route = record.get("route") or ""
        template = record.get("path_template")
        if str(route).startswith("admin:") or not isinstance(template, str):
            continue
        if not template.startswith("/"):
            continue
        learnt = _TEMPLATE_PARAM.sub(PARAM, template)
        categories = record.get("pii_categories") or ()
        yield Exchange(
            method=record["method"].upper(),
            path=learnt,
            template=learnt,
            time_us=_time_us(record.get("time", ""), where),
            status=int(record.get("status") or 0),
            auth=str(record.get("auth_method") or "none"),
            pii=tuple(str(category) for category in categories)[:16],
            route=str(route),
            matched=bool(route),
        )
