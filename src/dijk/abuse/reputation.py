"""Address reputation from local files: Tor exit lists, FireHOL ``.netset``/``.ipset`` lists.

Every file in the directory is read: one address or CIDR a line, ``#`` comments, and
Tor's ``exit-addresses`` format (``ExitAddress 192.0.2.1 2024-01-01 00:00:00``). Ranges are
merged into sorted integer intervals per IP version, so a look-up is one bisect. Files are
re-read when one of them changes (checked at most every ``interval_s``): a list updated by
cron takes effect without a reload, and nothing is ever fetched over the network.
"""

from __future__ import annotations

import bisect
import ipaddress
import os
import time
from pathlib import Path

import structlog

__all__ = ["ReputationLists", "parse_list"]

_LOG = structlog.get_logger("dijk.abuse")
_MAX_FILE_BYTES = 64 * 1024 * 1024


def parse_list(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "ExitAddress" and len(words) > 1:
            candidate = words[1]
        elif words[0] in ("ExitNode", "Published", "LastStatus"):
            continue
        else:
            candidate = words[0]
        try:
            networks.append(ipaddress.ip_network(candidate, strict=False))
        except ValueError:
            continue
    return networks


class _Intervals:
    __slots__ = ("ends", "names", "starts")

    def __init__(self, ranges: list[tuple[int, int, str]]) -> None:
        ranges.sort()
        starts: list[int] = []
        ends: list[int] = []
        names: list[str] = []
        for start, end, name in ranges:
            if ends and start <= ends[-1] + 1:
                ends[-1] = max(ends[-1], end)
                continue
            starts.append(start)
            ends.append(end)
            names.append(name)
        self.starts, self.ends, self.names = starts, ends, names

    def find(self, value: int) -> str | None:
        index = bisect.bisect_right(self.starts, value) - 1
        if index >= 0 and value <= self.ends[index]:
            return self.names[index]
        return None


class ReputationLists:
    def __init__(self, directory: Path, interval_s: float = 10.0) -> None:
        self.directory = directory
        self._interval = interval_s
        self._checked = 0.0
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self._v4 = _Intervals([])
        self._v6 = _Intervals([])
        self.size = 0
        self._cache: dict[str, str | None] = {}
        self.refresh(force=True)

    def _files(self) -> list[Path]:
        try:
            return sorted(
                path
                for path in self.directory.iterdir()
                if path.is_file() and not path.name.startswith(".")
            )
        except OSError:
            return []

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self._interval:
            return
        self._checked = now
        files = self._files()
        stamp = []
        for path in files:
            try:
                info = path.stat()
            except OSError:
                continue
            stamp.append((path.name, info.st_mtime_ns, info.st_size))
        if tuple(stamp) == self._stamp and not force:
            return
        self._stamp = tuple(stamp)
        v4: list[tuple[int, int, str]] = []
        v6: list[tuple[int, int, str]] = []
        for path in files:
            try:
                if path.stat().st_size > _MAX_FILE_BYTES:
                    _LOG.error("abuse: reputation list %s is over 64 MiB; skipped", path.name)
                    continue
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                _LOG.error("abuse: reputation list %s unreadable: %s", path.name, exc)
                continue
            for network in parse_list(text):
                entry = (int(network.network_address), int(network.broadcast_address), path.name)
                (v4 if network.version == 4 else v6).append(entry)
        self._v4, self._v6 = _Intervals(v4), _Intervals(v6)
        self.size = len(v4) + len(v6)
        self._cache = {}
        _LOG.info("abuse: reputation lists loaded", entries=self.size, files=len(files))

    def lookup(self, address: str) -> str | None:
        """The list that names ``address``, if any."""
        self.refresh()
        if not self.size:
            return None
        cache = self._cache
        if address in cache:
            return cache[address]
        found = self._find(address)
        if len(cache) >= 65_536:
            cache.clear()
        cache[address] = found
        return found

    def _find(self, address: str) -> str | None:
        try:
            parsed = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        table = self._v4 if parsed.version == 4 else self._v6
        return table.find(int(parsed))


def resolve_directory(directory: str, source: str) -> Path:
    path = Path(os.path.expanduser(directory))
    if not path.is_absolute() and source and not source.startswith("dijk/"):
        path = Path(source).resolve().parent / path
    return path
