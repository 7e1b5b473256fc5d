"""Accountability: the tamper-evident activity log.

Layers, bottom up (each imports only those before it):

``record``   the record model and its canonical encoding
``keys``     the audit secret and the keys derived from it
``chain``    hash chain, signed checkpoints, verification
``store``    storage behind a URL (``sqlite``, ``postgres``), queries, pruning
``lock``     the lock file that keeps a chain (and its spool) to one writer
``spool``    local append-only file used while the store is down
``writer``   the async writer the gateway's log phase calls
``export``   SIEM formats (ECS, CEF, syslog, Splunk HEC, Elastic bulk, OTLP/JSON)
``settings`` the ``audit:`` configuration section

For the gateway (the log-phase stage, priority 0): build one writer at startup with
``create_writer(settings, data_dir=...)`` and ``await writer.start()``; in the ``log``
phase of every request ``await writer.append(AuditRecord(...))``; on SIGTERM
``await writer.close()``. ``start`` refuses, with :class:`ChainInUseError`, a chain
that another writer holds: one chain, one writer. In strict mode ``append`` returns once
the record is committed, so the stage must run before the response is released; with
``on_sink_error: deny`` it raises :class:`AuditUnavailableError` while the database is
down (answer 503). The record
is built from the request context: ``time`` (wall clock at request start), ``request_id``,
``method``, ``route`` (route name), ``path_template``, ``status``, ``decision`` (``deny`` if
a decision denied, ``monitor`` if only monitored decisions, ``abort`` for a response cut
short because strict durability could not commit its record, else ``allow``), ``reason``,
``consumer`` / ``auth_method`` / ``credential_id`` from the identity, ``client_ip`` as
``keys.pseudonym(ip)`` unless ``pseudonymise_client_ip`` is off, ``findings`` as
``Finding(rule_id, field)``, latencies in microseconds, bytes in/out, PII categories.
Never raw credentials, bodies, paths with ids or personal data.
"""

from dijk.audit.chain import (
    ChainedRecord,
    ChainReport,
    Checkpoint,
    Problem,
    PruneRefusedError,
    VerifyReport,
    verify_store,
)
from dijk.audit.keys import AuditKeyError, AuditKeys
from dijk.audit.record import AuditRecord, Finding, Outcome, pseudonymise
from dijk.audit.settings import AuditSettings, create_writer
from dijk.audit.store import (
    AuditPage,
    AuditQuery,
    AuditSinkError,
    AuditStore,
    AuditStoreError,
    ChainInUseError,
    open_store,
    prune,
)
from dijk.audit.writer import (
    AuditUnavailableError,
    AuditWriter,
    AuditWriterClosedError,
    WriterStats,
)

__all__ = [
    "AuditKeyError",
    "AuditKeys",
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "AuditSettings",
    "AuditSinkError",
    "AuditStore",
    "AuditStoreError",
    "AuditUnavailableError",
    "AuditWriter",
    "AuditWriterClosedError",
    "ChainInUseError",
    "ChainReport",
    "ChainedRecord",
    "Checkpoint",
    "Finding",
    "Outcome",
    "Problem",
    "PruneRefusedError",
    "VerifyReport",
    "WriterStats",
    "create_writer",
    "open_store",
    "prune",
    "pseudonymise",
    "verify_store",
]
