"""Runs the gateway: listen, load models, serve until SIGTERM/SIGINT, then drain.

The socket is bound before the models load, so ``/health/live`` answers at once and
``/health/ready`` turns 200 when every model is loaded; requests to a model that is still
loading get 503 with ``Retry-After``. A replacement worker (``accept_after_ready``) does
the opposite: its siblings are serving, so it accepts only once its models are loaded and
then tells the supervisor (``on_ready``). On SIGTERM the server stops accepting, drains
(in-flight requests and streams finish within ``server.graceful_timeout``; idle keep-alive
connections get a short linger, see ``HTTPServer.shutdown``), then closes backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pluggy

from bastion.config import Settings
from bastion.errors import ConfigError
from bastion.gateway.app import Gateway
from bastion.observe.logs import configure_logging
from bastion.server.http import HTTPServer
from bastion.server.tls import ServerTls
from bastion.server.wire import ServerConfig
from bastion.ui.announce import announce

log = logging.getLogger("bastion")


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[int], None] | None = None,
    pm: pluggy.PluginManager | None = None,
    loader: Callable[[], Settings] | None = None,
    watch: Path | None = None,
    sock: socket.socket | None = None,
    worker: bool = False,
    accept_after_ready: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """``loader`` re-reads the configuration for a reload (SIGHUP, ``POST
    /api/config/reload``, or a change to the ``watch`` file, checked every second).
    ``sock``/``worker``: run as one of several worker processes on a shared socket;
    ``accept_after_ready``: start accepting only once every model is loaded; ``on_ready``
    is called then (after the server accepts)."""
    stop = stop or asyncio.Event()
    tls = _server_tls(settings)  # before the gateway: a pair that fails to load stops here
    gateway = Gateway(settings, pm)
    if tls is not None:
        tls.on_result = gateway.metrics.tls_reload
    gateway.loader = loader
    if worker:
        parent = os.getppid()
        # an API reload in this worker reaches its siblings through the supervisor
        gateway.on_reloaded = lambda: os.kill(parent, signal.SIGHUP)
    _install_signals(gateway, stop, worker)
    cfg = settings.server
    server = HTTPServer(
        gateway.handle,
        ServerConfig(max_body_bytes=cfg.max_body_bytes, keepalive_timeout=cfg.keepalive_timeout,
                     drain_linger=cfg.drain_linger, header_timeout=cfg.header_timeout,
                     body_timeout=cfg.body_timeout, write_timeout=cfg.write_timeout),
    )

    async def listen() -> None:
        await server.start(cfg.host, cfg.port, sock=sock,
                           ssl=tls.context if tls is not None else None)
        log.info("Bastion listening on %s://%s:%d", "https" if tls else "http", cfg.host,
                 server.port)
        if not worker:
            announce(settings, server.port)
        if on_listening is not None:
            on_listening(server.port)

    if not accept_after_ready:
        await listen()
    loading = asyncio.create_task(gateway.start())
    stopping = asyncio.create_task(stop.wait())
    watcher = (
        asyncio.create_task(_watch(watch, gateway)) if watch is not None and loader else None
    )
    reloading = asyncio.create_task(tls.run()) if tls is not None else None
    try:
        done, _ = await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if loading in done:
            loading.result()  # a model that fails to load (checksum, path) stops start-up
            if accept_after_ready:
                await listen()
            log.info("models ready: %s", ", ".join(gateway.backends))
            # Start-up objects live as long as the process: keep them out of the collector's
            # full passes (16-19 ms each here, which would land in some request's latency).
            gc.collect()
            gc.freeze()
            if on_ready is not None:
                on_ready()
            await stopping
        log.info("shutting down: draining in-flight requests")
    finally:
        loading.cancel()
        stopping.cancel()
        for task in (watcher, reloading):
            if task is not None:
                task.cancel()
        await server.shutdown(cfg.graceful_timeout)
        await gateway.close()


def _server_tls(settings: Settings) -> ServerTls | None:
    """The HTTPS context and its certificate reloader, for ``server.tls`` (None: plain
    HTTP). A config reload does not change TLS settings (paths, versions): only a restart
    (or a rolling one) does; the files themselves are reloaded when they change."""
    tls = settings.server.tls
    if tls is None:
        return None
    return ServerTls(tls.cert, tls.key, tls.password(), min_version=tls.min_version,
                     interval=tls.reload_interval)


def _install_signals(gateway: Gateway, stop: asyncio.Event, worker: bool) -> None:
    """SIGTERM/SIGINT drain and stop; SIGHUP reloads (when there is a loader). A single
    process has no workers to roll: SIGUSR2 (a rolling restart under the supervisor) is
    logged, rather than killing the process as its default action would."""
    loop = asyncio.get_running_loop()
    # Not possible outside the main thread (tests run the server in a thread).
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if gateway.loader is not None:
            loop.add_signal_handler(signal.SIGHUP, _spawn, gateway, _reload_from(gateway))
        if not worker:
            loop.add_signal_handler(
                signal.SIGUSR2, log.warning,
                "SIGUSR2 ignored: a rolling restart needs server.workers >= 2",
            )


def _reload_from(gateway: Gateway) -> Callable[[], Coroutine[Any, Any, None]]:
    async def reload() -> None:
        if gateway.loader is None:
            return
        try:
            result = await gateway.reload(gateway.loader())
        except ConfigError as exc:
            log.error("reload refused, old configuration kept: %s", exc)
            return
        configure_logging(  # new keys to redact, maybe
            gateway.settings, json=gateway.settings.server.log_format == "json"
        )
        if result["restart_required"]:
            log.warning("needs a restart to take effect: %s", result["restart_required"])

    return reload


def _spawn(gateway: Gateway, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
    task = asyncio.get_running_loop().create_task(job())
    gateway.background.add(task)
    task.add_done_callback(gateway.background.discard)


async def _watch(path: Path, gateway: Gateway) -> None:
    """Reloads when the config file changes (mtime or size), checked once a second."""

    def stamp() -> tuple[float, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    last = stamp()
    reload = _reload_from(gateway)
    while True:
        await asyncio.sleep(1.0)
        current = stamp()
        if current is not None and current != last:
            last = current
            log.info("config file %s changed: reloading", path)
            await reload()

