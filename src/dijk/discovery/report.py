"""Where ``dijk discover`` and the admin API get an inventory and documents from.

The I/O around the pure core: the inventory tables (``--db``, the gateway's
``audit.url``), or traffic files learnt on the spot (HAR, access logs, audit JSON lines),
and OpenAPI documents read and bundled by :mod:`dijk.openapi.document`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from dijk.discovery import importers
from dijk.discovery.db import open_discovery_db
from dijk.discovery.diff import SHADOW, diff_inventory
from dijk.discovery.inventory import Endpoint, Exchange, Learner, LearnerLimits, fold_endpoints
from dijk.reporting import Report

__all__ = [
    "TrafficFiles",
    "diff_documents",
    "file_limits",
    "learn_files",
    "load_documents",
    "load_inventory",
]


@dataclass(slots=True)
class TrafficFiles:
    har: Sequence[Path] = ()
    access_logs: Sequence[Path] = ()
    audit_logs: Sequence[Path] = ()

    @property
    def empty(self) -> bool:
        return not (self.har or self.access_logs or self.audit_logs)


def file_limits() -> LearnerLimits:
    """Files are learnt whole: every exchange sampled, generous bounds."""
    return LearnerLimits(
        max_endpoints=100_000,
        max_endpoint_bytes=1 << 20,
        max_total_bytes=1 << 31,
        max_tree_nodes=1_000_000,
        sample_first=1 << 62,
        sample_every=1,
        max_body_bytes=1 << 22,
    )


def _read_json_lines(path: Path) -> Iterable[Any]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise importers.ImportError_(f"{path}:{number}: not JSON") from None


def _exchanges(files: TrafficFiles) -> Iterable[Exchange]:
    for path in files.har:
        try:
            document = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise importers.ImportError_(f"{path}: not JSON ({exc})") from None
        try:
            yield from importers.from_har(document)
        except importers.ImportError_ as exc:
            raise importers.ImportError_(f"{path}: {exc}") from None
    for path in files.access_logs:
        with path.open(encoding="utf-8", errors="replace") as handle:
            yield from importers.from_access_log(handle, str(path))
    for path in files.audit_logs:
        yield from importers.from_audit_log(_read_json_lines(path), str(path))


def learn_files(files: TrafficFiles, limits: LearnerLimits | None = None) -> list[Endpoint]:
    """The inventory of traffic files; ImportError_ or OSError when one cannot be read."""
    learner = Learner(limits or file_limits())
    for exchange in _exchanges(files):
        learner.observe(exchange)
    return learner.snapshot()


async def load_inventory(url: str, prefix: str = "dijk_") -> tuple[list[Endpoint], dict[str, int]]:
    """The fleet's inventory from the database, templates folded."""
    async with open_discovery_db(url, prefix) as database:
        await database.connect(create=False)
        endpoints, meta = await database.load()
    return fold_endpoints(endpoints), meta


def load_documents(paths: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """(file, bundled root) of each document; SpecError names the problems."""
    from dijk.openapi.document import check_document, read_document

    documents = []
    for path in dict.fromkeys(paths):
        document = read_document(path)
        check_document(document)
        documents.append((path, document.root))
    return documents


def diff_documents(
    documents: Sequence[tuple[str, dict[str, Any]]],
    endpoints: Sequence[Endpoint],
    *,
    now_us: int,
    unused_days: int = 30,
    base_path: str | None = None,
    version: str = "",
) -> Report:
    """The diff against several documents: shadow means declared by none of them."""
    reports = [
        diff_inventory(
            root,
            endpoints,
            spec_file=path,
            now_us=now_us,
            unused_days=unused_days,
            base_path=base_path,
            version=version,
        )
        for path, root in documents
    ]
    shadow_everywhere = set.intersection(
        *(
            {
                (finding.location.method, finding.location.url)
                for finding in report.findings
                if finding.rule_id == SHADOW.id
            }
            for report in reports
        )
    )
    findings = []
    seen_shadow: set[tuple[str | None, str | None]] = set()
    for report in reports:
        for finding in report.findings:
            if finding.rule_id != SHADOW.id:
                findings.append(finding)
                continue
            where = (finding.location.method, finding.location.url)
            if where in shadow_everywhere and where not in seen_shadow:
                seen_shadow.add(where)
                findings.append(finding)
    merged = reports[0]
    merged.targets = [path for path, _ in documents]
    merged.findings = findings
    return merged
