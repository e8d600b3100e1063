"""Several worker processes on one listening socket (``server.workers``).

The supervisor binds the socket, forks the workers (each a full gateway with its own
models and event loop, accepting from the shared socket), restarts any that die, and
forwards signals: SIGTERM/SIGINT drain every worker and exit; SIGHUP makes every worker
reload its configuration. A reload through one worker's ``POST /api/config/reload``
reaches the others the same way (the worker sends SIGHUP to the supervisor), and each
worker also watches the config file, so a change reaches all of them within a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

from bastion.config import Settings

log = logging.getLogger("bastion.supervisor")
_CRASH_WINDOW = 30.0  # a slot whose workers die _CRASH_LIMIT times within this is crash-looping
_CRASH_LIMIT = 5


def run_workers(
    settings: Settings,
    loader: Callable[[], Settings] | None,
    watch: Path | None,
) -> int:
    from bastion.gateway.runner import serve

    cfg = settings.server
    sock = socket.create_server((cfg.host, cfg.port), backlog=2048)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    log.info("supervisor %d: %d workers on http://%s:%d", os.getpid(), cfg.workers, cfg.host, port)
    children: dict[int, tuple[int, float]] = {}  # pid -> (slot, started)
    stopping = False

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                uvloop.run(
                    serve(settings, loader=loader, watch=watch, sock=sock, worker=True)
                )
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            os._exit(code)
        children[pid] = (slot, time.monotonic())

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for slot in range(cfg.workers):
        spawn(slot)
    failed = False
    deaths: dict[int, list[float]] = {}
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        slot, started = children.pop(pid)
        if stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        now = time.monotonic()
        recent = [t for t in deaths.get(slot, []) if now - t < _CRASH_WINDOW] + [now]
        deaths[slot] = recent
        if len(recent) >= _CRASH_LIMIT:
            log.error("worker slot %d died %d times in %.0f s: stopping", slot, len(recent),
                      _CRASH_WINDOW)
            failed = True
            forward(signal.SIGTERM, None)
            continue
        log.warning("worker %d (slot %d) exited %d: starting a new one", pid, slot, code)
        if now - started < 1.0:
            time.sleep(0.5)  # do not spin on a worker that dies at once
        spawn(slot)
    sock.close()
    return 1 if failed else 0
