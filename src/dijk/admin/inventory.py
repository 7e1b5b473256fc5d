"""The running gateway's API inventory, for the admin API and the dashboard alike.

Both answer from the same data: the fleet's endpoints from the discovery table (this
gateway's latest flushed first) and their diff against the OpenAPI documents the routes
declare. A failure is an :class:`InventoryUnavailable` carrying its problem (status,
``discovery.*`` reason, detail), which each caller answers in its own way.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

from dijk import __version__
from dijk.discovery.inventory import Endpoint
from dijk.reporting import Report

if TYPE_CHECKING:
    from dijk.proxy.state import GatewayState

__all__ = ["InventoryUnavailable", "declared_documents", "inventory_diff", "running_inventory"]

NO_DOCUMENT: Final = "No route has an OpenAPI document to compare the inventory with."


class InventoryUnavailable(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


async def running_inventory(state: GatewayState) -> list[Endpoint]:
    """The fleet's inventory, after writing this gateway's latest."""
    from dijk.discovery.db import DiscoveryDatabaseError
    from dijk.discovery.report import load_inventory

    recorder = state.resources.discovery
    if recorder is None:
        raise InventoryUnavailable(404, "discovery.disabled", "No route has discovery on.")
    await recorder.flush()
    try:
        endpoints, _ = await load_inventory(
            state.config.audit.url, state.config.discovery.table_prefix
        )
    except DiscoveryDatabaseError as exc:
        raise InventoryUnavailable(503, "discovery.unavailable", str(exc)) from None
    return endpoints


def declared_documents(state: GatewayState) -> list[str]:
    """The OpenAPI documents the routes declare (resolved against the config's folder)."""
    from dijk.openapi.document import resolve_location

    base = os.path.dirname(state.source) if state.source else "."
    return sorted(
        {
            resolve_location(route.openapi.spec, base)
            for route in state.config.routes
            if route.openapi is not None
        }
    )


_DOCUMENTS: Final[OrderedDict[tuple[str, int, int], tuple[str, dict[str, Any]]]] = OrderedDict()
_MAX_DOCUMENTS: Final = 32


def _documents(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The documents, read and checked once per version of the file.

    Checking a document against the OpenAPI meta-schema takes about a third of a second;
    a file is read again when its size or modification time changes.
    """
    from dijk.discovery.report import load_documents

    loaded = []
    for path in paths:
        try:
            info = os.stat(path)
            key = (path, info.st_mtime_ns, info.st_size)
        except OSError:
            loaded.extend(load_documents([path]))  # raises the SpecError that says why
            continue
        cached = _DOCUMENTS.get(key)
        if cached is None:
            cached = _DOCUMENTS[key] = load_documents([path])[0]
            while len(_DOCUMENTS) > _MAX_DOCUMENTS:
                _DOCUMENTS.popitem(last=False)
        loaded.append(cached)
    return loaded


async def inventory_diff(state: GatewayState, endpoints: list[Endpoint]) -> Report:
    """Shadow, zombie and drift of ``endpoints`` against the routes' documents.

    Raises :class:`InventoryUnavailable` (404 ``discovery.no_document``) when no route
    declares a document; a document that cannot be read raises its ``SpecError``.
    """
    from dijk.discovery.report import diff_documents

    specs = declared_documents(state)
    if not specs:
        raise InventoryUnavailable(404, "discovery.no_document", NO_DOCUMENT)
    documents = await asyncio.to_thread(_documents, specs)
    return diff_documents(documents, endpoints, now_us=time.time_ns() // 1000, version=__version__)
