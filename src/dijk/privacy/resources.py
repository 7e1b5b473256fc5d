"""What the privacy stages of one configuration share, built once when it loads.

The detector (compiled once), the data map recorder (one background flush for all
routes), and the keys: the key ring and the sealed pseudonym key. Keys that already exist
are read when the configuration loads, so a reload with an unreadable or too widely
readable key ring is refused and the old configuration keeps serving. Keys that do not
exist yet are created on first use, in a worker thread, rather than at load: loading a
configuration (``dijk config validate``) must not write files.

The stages hold a reference each; the last one to close flushes the data map.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Final

from dijk.config.loader import ConfigError, ConfigIssue
from dijk.crypto.keyring import CryptoError
from dijk.detect.masking import Masker, Strategy
from dijk.detect.pii import PiiDetector
from dijk.pipeline.stage import DependencyUnavailable
from dijk.privacy.datamap import DataMapRecorder
from dijk.privacy.db import open_privacy_db
from dijk.privacy.keys import PSEUDONYM_KEY_FILE, PrivacyKeys, load_privacy_keys
from dijk.privacy.pseudonyms import SubjectHasher
from dijk.privacy.settings import PrivacySettings, data_dir_for

if TYPE_CHECKING:
    from dijk.config.models import DijkConfig

__all__ = ["PrivacyResources"]

_OPENAPI_META: Final = "openapi:"


class PrivacyResources:
    """Shared by the privacy stages of one configuration (see the module docstring)."""

    def __init__(self, config: DijkConfig, source: str = "") -> None:
        settings: PrivacySettings = config.privacy
        self.settings = settings
        self.data_dir = data_dir_for(settings, config.audit.url)
        self.detector = PiiDetector(region=settings.region)
        # Debug body logging masks every category, whatever the route masks.
        self.debug_masker = Masker(strategy=Strategy.MASK) if settings.debug_log_bodies else None
        self.needs_keys = settings.datamap or any(
            route.privacy is not None
            and (
                route.privacy.strategy == "hash"
                or any(rule == "hash" for rule in route.privacy.fields.values())
            )
            for route in config.routes
        )
        self._keys: PrivacyKeys | None = None
        self.hasher: SubjectHasher | None = None
        self._key_lock = asyncio.Lock()
        if self.needs_keys and self._key_files_exist(settings):
            try:
                self._set_keys(load_privacy_keys(settings, self.data_dir))
            except (CryptoError, OSError) as exc:
                raise ConfigError([ConfigIssue(source, None, "privacy.keys", str(exc))]) from None
        self.recorder: DataMapRecorder | None = None
        if settings.datamap:
            url, prefix = config.audit.url, settings.table_prefix
            self.recorder = DataMapRecorder(
                lambda: open_privacy_db(url, prefix),
                flush_interval_s=settings.flush_interval_s,
                bucket_s=settings.exposure_bucket_s,
                retention_days=settings.exposure_retention_days,
                max_pending=settings.max_pending,
                meta=_meta(config, source),
            )
        self._users = 0

    def _key_files_exist(self, settings: PrivacySettings) -> bool:
        ring = settings.keys.path(self.data_dir)
        return ring.exists() and (self.data_dir / PSEUDONYM_KEY_FILE).exists()

    def _set_keys(self, keys: PrivacyKeys) -> None:
        self._keys = keys
        self.hasher = SubjectHasher(keys.pseudonym_key, self.settings.region)

    @property
    def keys(self) -> PrivacyKeys | None:
        return self._keys

    async def ensure_keys(self) -> PrivacyKeys:
        """The keys, created on first use; DependencyUnavailable (503) if that fails."""
        if self._keys is not None:
            return self._keys
        async with self._key_lock:
            if self._keys is None:
                try:
                    keys = await asyncio.to_thread(load_privacy_keys, self.settings, self.data_dir)
                except (CryptoError, OSError) as exc:
                    raise DependencyUnavailable(
                        "privacy.keys_unavailable",
                        "The gateway's privacy keys are not available; the request was not"
                        " forwarded.",
                    ) from exc
                self._set_keys(keys)
        assert self._keys is not None
        return self._keys

    def retain(self) -> None:
        self._users += 1

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0 and self.recorder is not None:
            with contextlib.suppress(Exception):
                await self.recorder.close()


def _meta(config: DijkConfig, source: str) -> dict[str, str]:
    """Settings the reports read back from the database (nothing secret)."""
    meta = {
        "region": config.privacy.region,
        "exposure_bucket_s": str(config.privacy.exposure_bucket_s),
        "exposure_retention_days": str(config.privacy.exposure_retention_days),
    }
    retention = getattr(config.audit, "retention_days", None)
    meta["audit_retention_days"] = "" if retention is None else str(retention)
    base = str(Path(source).parent) if source else "."
    for route in config.routes:
        spec = getattr(getattr(route, "openapi", None), "spec", None)
        if isinstance(spec, str) and spec:
            meta[_OPENAPI_META + route.name] = _spec_location(spec, base)
    return meta


def _spec_location(spec: str, base: str) -> str:
    try:
        from dijk.openapi.document import resolve_location
    except ImportError:  # pragma: no cover - before the OpenAPI package lands
        return spec
    try:
        return resolve_location(spec, base)
    except ValueError:
        return spec
