"""Process-level runner: listeners, TLS, signals, graceful stop and atomic reload."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from dijk import metrics
from dijk.admin.api import AdminHandler
from dijk.config import ConfigError, DijkConfig, load_config
from dijk.config.models import LimitsConfig, TlsConfig
from dijk.proxy.decision import Listener, open_decision_listeners
from dijk.proxy.gateway import Gateway
from dijk.proxy.http1 import BodyMemory, Handler, HttpProtocol, PerIpConnections, ServerLimits
from dijk.proxy.state import GatewayState, build_state

log = structlog.get_logger("dijk.server")

_DRAIN_SECONDS = 10.0


@dataclass(slots=True)
class ReloadResult:
    ok: bool
    generation: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "generation": self.generation,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def server_limits(limits: LimitsConfig) -> ServerLimits:
    return ServerLimits(
        max_header_bytes=limits.max_header_bytes,
        max_headers=limits.max_headers,
        header_timeout_s=limits.header_timeout_s,
        body_timeout_s=limits.body_timeout_s,
        keepalive_timeout_s=limits.keepalive_timeout_s,
        min_body_rate_bytes_s=limits.min_body_rate_bytes_s,
        body_rate_grace_s=limits.body_rate_grace_s,
        max_pipelined=limits.max_pipelined_requests,
        max_buffered_body_bytes=limits.max_buffered_body_bytes,
    )


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """A server context with TLS 1.2+ and forward-secret AEAD ciphers only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if tls.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(tls.client_ca_file)
    return context


class GatewayServer:
    """Runs the data plane and the admin listener in one event loop."""

    def __init__(
        self,
        config: DijkConfig,
        source: str = "",
        loader: Callable[[], DijkConfig] | None = None,
        reuse_port: bool = False,
    ) -> None:
        """``loader`` reads the configuration again on reload (default: ``source``);
        ``reuse_port``: worker processes share the listeners (``proxy/workers.py``)."""
        self.source = source
        self._reuse_port = reuse_port
        self._loader = loader or (lambda: load_config(source))
        self.gateway = Gateway(build_state(config, 1, source))
        self.admin_token_env = config.admin.token_env
        # Read per connection, so that a reload's header limits and timeouts apply to the
        # connections accepted after it (what the reload warning promises).
        self._data_limits = server_limits(config.limits)
        self.ready = False
        # The last reload's result and when it finished (the dashboard shows it).
        self.last_reload: tuple[float, ReloadResult] | None = None
        self._servers: list[Listener] = []
        self._connections: set[HttpProtocol] = set()
        # Request body bytes held by all data-plane connections (limits.max_buffered_body_bytes,
        # read per connection like the other limits).
        self._body_memory = BodyMemory()
        self._stopping: asyncio.Event | None = None
        # Reloads compile in a worker thread, one at a time (the lock); at most one more
        # waits behind the one compiling, shared by every request made meanwhile (reload()).
        self._reload_lock = asyncio.Lock()
        self._queued_reload: asyncio.Task[ReloadResult] | None = None
        self._reload_tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False
        # States replaced by a reload, closed after the drain delay or at stop (whichever
        # comes first), so that what they own (an audit writer) is always closed cleanly.
        self._retired: dict[int, GatewayState] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        metrics.CONFIG_GENERATION.set(1)

    @property
    def state(self) -> GatewayState:
        return self.gateway.state

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.state.start()  # the audit log opens before the first request arrives
        try:
            await self._listen(loop)
        except BaseException:
            await self.state.close()  # e.g. the port is taken: close the audit log cleanly
            raise

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        config = self.state.config
        # The decision listeners (a proxy in front asks, Dijk decides) open first, so that a
        # port conflict there stops the start before anything serves.
        self._servers = await open_decision_listeners(config, self.gateway, self._decision_protocol)
        if not config.decision.inline:  # decision service only: no proxy listener
            self._servers.append(await self._open_admin(loop))
            self.ready = True
            log.info("started", admin=f"http://{config.admin.address}:{config.admin.port}")
            return
        ssl_context = tls_context(config.listen.tls) if config.listen.tls else None
        scheme = "https" if ssl_context else "http"
        # Per-IP connection cap on the data plane; trusted proxies (a load balancer in
        # front) are not counted. The cap is read at start; a reload keeps it.
        per_ip = PerIpConnections(config.limits.max_connections_per_ip, self._trusted_peer)
        data_plane = await loop.create_server(
            lambda: self._protocol(
                self.gateway, self._data_limits, scheme, per_ip, self._body_memory
            ),
            _bind(config.listen.address),
            config.listen.port,
            ssl=ssl_context,
            backlog=2048,
            reuse_address=True,
            reuse_port=self._reuse_port,
        )
        admin = await self._open_admin(loop)
        self._servers += [data_plane, admin]
        self.ready = True
        log.info(
            "started",
            listen=f"{scheme}://{config.listen.address}:{config.listen.port}",
            admin=f"http://{config.admin.address}:{config.admin.port}",
            routes=len(config.routes),
            config=self.source,
        )

    async def _open_admin(self, loop: asyncio.AbstractEventLoop) -> asyncio.Server:
        config = self.state.config
        admin_limits = ServerLimits(header_timeout_s=5, body_timeout_s=5, keepalive_timeout_s=30)
        return await loop.create_server(
            lambda: self._protocol(AdminHandler(self), admin_limits, "http"),
            _bind(config.admin.address),
            config.admin.port,
            reuse_address=True,
            reuse_port=self._reuse_port,
        )

    def _decision_protocol(self, handler: Handler) -> HttpProtocol:
        """Decision listener connections: the data plane's header limits and timeouts."""
        return self._protocol(handler, self._data_limits, "http")

    def _protocol(
        self,
        handler: Handler,
        limits: ServerLimits,
        scheme: str,
        per_ip: PerIpConnections | None = None,
        memory: BodyMemory | None = None,
    ) -> HttpProtocol:
        protocol = HttpProtocol(
            handler,
            limits,
            scheme,
            on_close=self._connections.discard,
            connections=per_ip,
            memory=memory,
        )
        self._connections.add(protocol)
        return protocol

    def _trusted_peer(self, ip: str) -> bool:
        trusted = self.gateway.state.trusted_proxies
        return bool(trusted) and trusted.trusts(ip)

    async def reload(self) -> ReloadResult:
        """Read and compile the configuration off the event loop, then swap; on error keep
        the old one.

        Requests keep being served while the new configuration compiles: reading the file
        and :func:`build_state` (OpenAPI documents, the Hyperscan database, key files) run
        in a worker thread; opening what needs the event loop (:meth:`GatewayState.start`)
        and the swap happen on the loop. One reload compiles at a time. Reloads requested
        while one compiles are coalesced into one more, which reads the file only after
        the running one has finished: every caller gets the result of a reload that read
        the file after it asked, so the last file written is the one that ends up live.
        """
        if self._stopped:
            generation = self.state.generation
            return ReloadResult(False, generation, ["the gateway is stopping"])
        queued = self._queued_reload
        if queued is None or queued.done():
            if self._reload_lock.locked():
                log.info("reload_queued", behind_generation=self.state.generation + 1)
            queued = self._queued_reload = self._track(self._reload_when_free())
        # Shielded: a caller that goes away (an admin connection closing) does not cancel
        # a reload other callers share; only stop() does.
        result = await asyncio.shield(queued)
        self.last_reload = (time.time(), result)
        return result

    async def _reload_when_free(self) -> ReloadResult:
        async with self._reload_lock:
            self._queued_reload = None  # from now on a request queues the next reload
            return await self._reload_now()

    async def _reload_now(self) -> ReloadResult:
        old = self.state
        generation = old.generation + 1
        log.info("reload_started", generation=generation)
        started = time.perf_counter()
        try:
            config, new = await self._compile_off_loop(generation)
        except ConfigError as exc:
            metrics.RELOADS.labels("failed").inc()
            errors = [issue.format() for issue in exc.issues]
            log.error("reload_failed", errors=errors, kept_generation=old.generation)
            return ReloadResult(False, old.generation, errors)
        except Exception as exc:  # a bug while compiling: keep serving the old config
            metrics.RELOADS.labels("failed").inc()
            log.exception("reload_failed", kept_generation=old.generation)
            return ReloadResult(False, old.generation, [f"{type(exc).__name__}: {exc}"])
        compile_s = time.perf_counter() - started
        try:
            await new.start(old)  # on the loop: the audit log's database, tasks, locks
        except ConfigError as exc:
            await new.close()
            metrics.RELOADS.labels("failed").inc()
            errors = [issue.format() for issue in exc.issues]
            log.error("reload_failed", errors=errors, kept_generation=old.generation)
            return ReloadResult(False, old.generation, errors)
        except BaseException:  # cancelled by stop(): this state never serves
            await new.close()
            raise
        warnings = _restart_needed(old.config, config)
        self.gateway.state = new
        self._data_limits = server_limits(config.limits)
        metrics.RELOADS.labels("ok").inc()
        metrics.CONFIG_GENERATION.set(generation)
        log.info(
            "reloaded", generation=generation, warnings=warnings, compile_s=round(compile_s, 3)
        )
        self._retire(old)
        return ReloadResult(True, generation, [], warnings)

    def _compile_off_loop(self, generation: int) -> asyncio.Future[tuple[DijkConfig, GatewayState]]:
        """Read and compile the configuration in a new worker thread.

        The thread is a daemon: a SIGTERM during a long compile does not wait for it (the
        result is dropped). Only one runs at a time (the reload lock), except after stop()
        has cancelled a reload, when no new reload starts.
        """
        done: concurrent.futures.Future[tuple[DijkConfig, GatewayState]] = (
            concurrent.futures.Future()
        )

        def compile_config() -> None:
            if not done.set_running_or_notify_cancel():
                return
            try:
                config = self._loader()
                done.set_result((config, build_state(config, generation, self.source)))
            except BaseException as exc:
                done.set_exception(exc)

        threading.Thread(target=compile_config, name="dijk-reload", daemon=True).start()
        return asyncio.wrap_future(done)

    def _track(self, coroutine: Coroutine[Any, Any, ReloadResult]) -> asyncio.Task[ReloadResult]:
        """A task stop() can cancel, held until it ends (the loop keeps only weak ones)."""
        task = asyncio.ensure_future(coroutine)
        self._reload_tasks.add(task)
        task.add_done_callback(self._reload_tasks.discard)
        return task

    def _retire(self, old: GatewayState) -> None:
        """Close ``old`` after the drain delay (requests in flight finish on it)."""
        self._retired[id(old)] = old

        async def close_later() -> None:
            await asyncio.sleep(_DRAIN_SECONDS)
            if self._retired.pop(id(old), None) is not None:
                await old.close()

        task = asyncio.ensure_future(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def serve_forever(self, install_signals: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._stopping.set)
            loop.add_signal_handler(signal.SIGHUP, lambda: self._track(self.reload()))
        try:
            await self._stopping.wait()
        finally:
            if install_signals:
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(signum)
            await self.stop()

    def request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), then close."""
        self.ready = False
        # A reload compiling now is abandoned (its thread's result is dropped) and one
        # waiting never starts: nothing may swap in a state while this one drains.
        self._stopped = True
        reloads = list(self._reload_tasks)
        for task in reloads:
            task.cancel()
        if reloads:
            await asyncio.wait(reloads)
        for server in self._servers:
            server.close()
        deadline = time.monotonic() + _DRAIN_SECONDS
        for protocol in list(self._connections):
            protocol.close_idle()
        while self.gateway.in_flight > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # polling keeps the hot path free of an Event per request
        for protocol in list(self._connections):
            protocol.force_close()
        for server in self._servers:
            await server.wait_closed()
        # Requests cut off by force_close still run their log phase: give them a moment,
        # so that their audit records are written before the writer closes.
        deadline = time.monotonic() + 1.0
        while self.gateway.in_flight > 0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for task in list(self._retiring):
            task.cancel()
        retired, self._retired = self._retired, {}
        for old in retired.values():
            await old.close()
        await self.state.close()  # flushes the audit log (SIGTERM loses nothing)
        log.info("stopped")


def _bind(address: str) -> str | None:
    return None if address == "*" else address


def _restart_needed(old: DijkConfig, new: DijkConfig) -> list[str]:
    warnings = []
    if old.listen != new.listen:
        warnings.append("listen settings changed: they take effect after a restart")
    if old.admin != new.admin:
        warnings.append("admin settings changed: they take effect after a restart")
    if (old.decision.listen, old.decision.grpc, old.decision.inline) != (
        new.decision.listen,
        new.decision.grpc,
        new.decision.inline,
    ):
        warnings.append("decision listeners changed: they take effect after a restart")
    if old.workers != new.workers:
        warnings.append("the number of workers changes after a restart")
    if old.limits != new.limits:
        warnings.append("header limits and timeouts apply to new connections only")
    return warnings
