"""Runs the gateway: listen, load models, serve until SIGTERM/SIGINT, then drain.

The socket is bound before the models load, so ``/health/live`` answers at once and
``/health/ready`` turns 200 when every model is loaded; requests to a model that is still
loading get 503 with ``Retry-After``. On SIGTERM the server stops accepting, lets
in-flight requests and streams finish (``server.graceful_timeout``), then closes backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Callable

import pluggy
import uvloop

from bastion.config import Settings
from bastion.gateway.app import Gateway
from bastion.server.http import HTTPServer, ServerConfig

log = logging.getLogger("bastion")


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[int], None] | None = None,
    pm: pluggy.PluginManager | None = None,
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Not possible outside the main thread (tests run the server in a thread).
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(settings, pm)
    cfg = settings.server
    server = HTTPServer(
        gateway.handle,
        ServerConfig(max_body_bytes=cfg.max_body_bytes, keepalive_timeout=cfg.keepalive_timeout),
    )
    await server.start(cfg.host, cfg.port)
    log.info("Bastion listening on http://%s:%d", cfg.host, server.port)
    if on_listening is not None:
        on_listening(server.port)
    loading = asyncio.create_task(gateway.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if loading in done:
            loading.result()  # a model that fails to load (checksum, path) stops start-up
            log.info("models ready: %s", ", ".join(gateway.backends))
            # Start-up objects live as long as the process: keep them out of the collector's
            # full passes (16-19 ms each here, which would land in some request's latency).
            gc.collect()
            gc.freeze()
            await stopping
        log.info("shutting down: draining in-flight requests")
    finally:
        loading.cancel()
        stopping.cancel()
        await server.shutdown(cfg.graceful_timeout)
        await gateway.close()


def run(settings: Settings) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        uvloop.run(serve(settings))
    except Exception as exc:  # noqa: BLE001 - start-up failure: report it plainly, exit 1
        log.error("Bastion failed to start: %s", exc)
        return 1
    return 0
