"""Address reputation lists from local files: formats, look-up, re-read on change."""

from __future__ import annotations

import os
from pathlib import Path

from dijk.abuse.reputation import ReputationLists, parse_list


def test_firehol_netsets_and_tor_exit_lists_are_read(tmp_path: Path) -> None:
    (tmp_path / "firehol_level1.netset").write_text(
        "# FireHOL level 1\n192.0.2.0/24\n198.51.100.7\n2001:db8::/32\nnot an address\n"
    )
    (tmp_path / "tor-exits.txt").write_text(
        "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\n"
        "Published 2024-01-01 00:00:00\n"
        "ExitAddress 203.0.113.66 2024-01-01 00:10:00\n"
    )
    lists = ReputationLists(tmp_path)
    assert lists.lookup("192.0.2.200") == "firehol_level1.netset"
    assert lists.lookup("198.51.100.7") == "firehol_level1.netset"
    assert lists.lookup("198.51.100.8") is None
    assert lists.lookup("2001:db8:1::5") == "firehol_level1.netset"
    assert lists.lookup("::ffff:203.0.113.66") == "tor-exits.txt"
    assert lists.lookup("not-an-ip") is None


def test_a_changed_list_is_read_again_without_a_reload(tmp_path: Path) -> None:
    listing = tmp_path / "blocked.ipset"
    listing.write_text("192.0.2.1\n")
    lists = ReputationLists(tmp_path, interval_s=1)
    assert lists.lookup("192.0.2.2") is None
    listing.write_text("192.0.2.1\n192.0.2.2\n")
    stat = listing.stat()
    os.utime(listing, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    lists._checked -= 5  # as if the interval had passed
    assert lists.lookup("192.0.2.2") == "blocked.ipset"


def test_overlapping_ranges_merge() -> None:
    networks = parse_list("10.0.0.0/8\n10.1.0.0/16\n")
    assert len(networks) == 2
