"""Several worker processes on one listening socket (``server.workers``).

The supervisor binds the socket, forks the workers (each a full gateway with its own
models and event loop, accepting from the shared socket), restarts any that die, and
forwards signals: SIGTERM/SIGINT drain every worker and exit; SIGHUP makes every worker
reload its configuration. A reload through one worker's ``POST /api/config/reload``
reaches the others the same way (the worker sends SIGHUP to the supervisor), and each
worker also watches the config file, so a change reaches all of them within a second.

SIGUSR2 is a rolling restart: slot by slot, a replacement is forked (it reads the config
file afresh), loads its models and only then accepts and reports ready through a pipe;
then the old worker of that slot gets SIGTERM and drains (``HTTPServer.shutdown``) while
the roll moves on. The socket never stops being accepted from, so no connection is
refused and, with the drain, no request fails. A replacement that exits or is not ready
within ``server.ready_timeout`` aborts the roll (the old workers keep serving); a SIGUSR2 while
a roll is under way is ignored. A roll re-reads everything but ``server.host``, ``port``
and ``workers`` (the socket and the process count are the supervisor's); it does not load
new code, since workers are forked from the supervisor.

Workers that stop on purpose (replaced, or shutting down) are not crashes. A worker that
dies otherwise is replaced; the replacement reads the config file too (if it dies before it
is ready, the next one starts with the supervisor's start-up settings), and accepts only
once ready while a sibling serves. A slot that keeps dying stops the whole supervisor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import uvloop

from bastion.config import Settings
from bastion.errors import ConfigError
from bastion.gateway.runner import serve
from bastion.ui.announce import announce

log = logging.getLogger("bastion.supervisor")
_CRASH_WINDOW = 30.0  # a slot whose workers die _CRASH_LIMIT times within this is crash-looping
_CRASH_LIMIT = 5
_READY = b"R"
_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2, signal.SIGCHLD)


@dataclass(slots=True)
class _Worker:
    slot: int
    started: float
    ready_fd: int | None  # read end of the readiness pipe, until the worker reports
    fresh: bool  # read the config file itself (not the supervisor's start-up settings)
    ready: bool = False
    retiring: bool = False  # stopped on purpose: its exit is not a crash


@dataclass(slots=True)
class _Roll:
    slots: deque[int]  # still to replace
    candidate: int = 0  # pid of the replacement being waited for
    deadline: float = 0.0
    started: float = field(default_factory=time.monotonic)


def run_workers(
    settings: Settings,
    loader: Callable[[], Settings] | None,
    watch: Path | None,
) -> int:
    return _Supervisor(settings, loader, watch).run()


class _Supervisor:
    def __init__(
        self, settings: Settings, loader: Callable[[], Settings] | None, watch: Path | None
    ) -> None:
        self.settings = settings
        self.loader = loader
        self.watch = watch
        cfg = settings.server
        self.sock = socket.create_server((cfg.host, cfg.port), backlog=2048)
        self.sock.setblocking(False)
        self.children: dict[int, _Worker] = {}
        self.signals: deque[int] = deque()
        self.respawns: list[tuple[float, int]] = []  # (when, slot)
        self.deaths: dict[int, list[float]] = {}
        self.stale: set[int] = set()  # slots whose fresh replacement died before it was ready
        self.roll: _Roll | None = None
        self.stopping = False
        self.failed = False
        self.wake: tuple[int, int] = (-1, -1)  # the signal wakeup pipe (read, write)

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        cfg = self.settings.server
        port = self.sock.getsockname()[1]
        log.info("supervisor %d: %d workers on %s://%s:%d", os.getpid(), cfg.workers,
                 "https" if cfg.tls is not None else "http", cfg.host, port)
        announce(self.settings, port)
        self.wake = wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in _HANDLED:
            signal.signal(sig, self._on_signal)
        try:
            for slot in range(cfg.workers):
                self._spawn(slot)
            while self.children or (self.respawns and not self.stopping):
                fds = [wake_r, *(w.ready_fd for w in self.children.values()
                                 if w.ready_fd is not None)]
                readable, _, _ = select.select(fds, [], [], self._timeout())
                if wake_r in readable:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                self._handle_signals()
                self._reap()
                for fd in readable:
                    if fd != wake_r:
                        self._on_ready_fd(fd)
                self._check_roll_deadline()
                self._spawn_due()
        finally:
            signal.set_wakeup_fd(-1)
            for fd in (wake_r, wake_w):
                os.close(fd)
            self.sock.close()
        return 1 if self.failed else 0

    def _timeout(self) -> float:
        now = time.monotonic()
        due = [when for when, _ in self.respawns]
        if self.roll is not None and self.roll.candidate:
            due.append(self.roll.deadline)
        return max(0.0, min([now + 1.0, *due]) - now)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)  # handled by the main loop (the wakeup fd wakes it)

    def _handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.popleft()
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._stop_all()
            elif signum == signal.SIGHUP:
                self._signal_workers(signal.SIGHUP)
            elif signum == signal.SIGUSR2:
                self._start_roll()

    def _stop_all(self) -> None:
        if self.roll is not None:
            log.warning("rolling restart abandoned: shutting down")
            self.roll = None
        self.stopping = True
        self._signal_workers(signal.SIGTERM, retiring_too=True)

    def _signal_workers(self, signum: int, retiring_too: bool = False) -> None:
        for pid, worker in list(self.children.items()):
            if retiring_too or not worker.retiring:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    # ------------------------------------------------------------------ workers
    def _spawn(self, slot: int, *, fresh: bool = False, accept_after_ready: bool = False) -> int:
        """Forks a worker. ``fresh``: it reads the config file (a replacement: the file may
        have changed since the supervisor started), else it uses the start-up settings."""
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            self._worker_main(ready_w, fresh=fresh, accept_after_ready=accept_after_ready)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        self.children[pid] = _Worker(slot, time.monotonic(), ready_r, fresh)
        return pid

    def _worker_main(self, ready_w: int, *, fresh: bool, accept_after_ready: bool) -> NoReturn:
        code = 0
        try:
            signal.set_wakeup_fd(-1)
            for fd in self.wake:
                os.close(fd)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            # until the gateway installs its own handlers: neither may kill a starting worker
            for sig in (signal.SIGHUP, signal.SIGUSR2):
                signal.signal(sig, signal.SIG_IGN)
            settings = self.loader() if fresh and self.loader is not None else self.settings

            def ready() -> None:
                with contextlib.suppress(OSError):  # a supervisor that is gone hears nothing
                    os.write(ready_w, _READY)
                os.close(ready_w)

            uvloop.run(serve(settings, loader=self.loader, watch=self.watch, sock=self.sock,
                             worker=True, accept_after_ready=accept_after_ready,
                             on_ready=ready))
        except ConfigError as exc:
            log.error("worker %d: configuration refused: %s", os.getpid(), exc)
            code = 2
        except BaseException:
            log.exception("worker %d failed", os.getpid())
            code = 1
        os._exit(code)

    def _on_ready_fd(self, fd: int) -> None:
        pid, worker = next(((p, w) for p, w in self.children.items() if w.ready_fd == fd),
                           (0, None))
        if worker is None:
            return
        try:
            data = os.read(fd, 16)
        except BlockingIOError:
            return
        os.close(fd)
        worker.ready_fd = None
        if data != _READY:
            return  # closed without a word: it died before it was ready (reaped apart)
        worker.ready = True
        self.stale.discard(worker.slot)
        roll = self.roll
        if roll is not None and pid == roll.candidate:
            self._replaced(pid, worker, roll)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            worker = self.children.pop(pid, None)
            if worker is not None:
                self._exited(pid, worker, os.waitstatus_to_exitcode(status))

    def _exited(self, pid: int, worker: _Worker, code: int) -> None:
        if worker.ready_fd is not None:
            os.close(worker.ready_fd)
            worker.ready_fd = None
        if self.stopping or worker.retiring:
            log.info("worker %d (slot %d) stopped (exit %d)", pid, worker.slot, code)
            return
        if worker.fresh and not worker.ready:
            self.stale.add(worker.slot)  # its next replacement starts as the supervisor did
        roll = self.roll
        if roll is not None and pid == roll.candidate:
            log.error("rolling restart aborted: replacement %d (slot %d) exited %d before it "
                      "was ready; the other workers keep serving", pid, worker.slot, code)
            self.roll = None
        if self._slot_served(worker.slot):
            return
        now = time.monotonic()
        recent = [t for t in self.deaths.get(worker.slot, []) if now - t < _CRASH_WINDOW]
        recent.append(now)
        self.deaths[worker.slot] = recent
        if len(recent) >= _CRASH_LIMIT:
            log.error("worker slot %d died %d times in %.0f s: stopping", worker.slot,
                      len(recent), _CRASH_WINDOW)
            self.failed = True
            self._stop_all()
            return
        log.warning("worker %d (slot %d) exited %d: starting a new one", pid, worker.slot, code)
        # do not spin on a worker that dies at once
        self.respawns.append((now + (0.5 if now - worker.started < 1.0 else 0.0), worker.slot))

    def _slot_served(self, slot: int) -> bool:
        return any(w.slot == slot and not w.retiring for w in self.children.values())

    def _spawn_due(self) -> None:
        now = time.monotonic()
        due = [slot for when, slot in self.respawns if when <= now]
        self.respawns = [(when, slot) for when, slot in self.respawns if when > now]
        for slot in due:
            if self.stopping or self._slot_served(slot):
                continue  # e.g. a rolling restart already put a replacement there
            # while siblings serve, a replacement accepts only once it can answer
            siblings = any(w.ready and not w.retiring for w in self.children.values())
            self._spawn(slot, fresh=slot not in self.stale, accept_after_ready=siblings)

    # ------------------------------------------------------------------ rolling restart
    def _start_roll(self) -> None:
        if self.stopping:
            return
        if self.roll is not None:
            log.warning("SIGUSR2 ignored: a rolling restart is already under way")
            return
        slots = sorted({w.slot for w in self.children.values() if not w.retiring})
        log.info("rolling restart: replacing %d workers one at a time", len(slots))
        self.roll = _Roll(deque(slots))
        self._roll_next()

    def _roll_next(self) -> None:
        roll = self.roll
        assert roll is not None
        if not roll.slots:
            log.info("rolling restart done in %.1f s", time.monotonic() - roll.started)
            self.roll = None
            return
        slot = roll.slots.popleft()
        roll.candidate = self._spawn(slot, fresh=True, accept_after_ready=True)
        roll.deadline = time.monotonic() + self.settings.server.ready_timeout

    def _replaced(self, pid: int, worker: _Worker, roll: _Roll) -> None:
        """The candidate is ready and accepting: every other worker of its slot drains."""
        old = [p for p, w in self.children.items()
               if w.slot == worker.slot and p != pid and not w.retiring]
        for p in old:
            self.children[p].retiring = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)
        log.info("rolling restart: worker %d (slot %d) ready in %.1f s; draining %s",
                 pid, worker.slot, time.monotonic() - worker.started,
                 ", ".join(map(str, old)) or "nothing")
        roll.candidate = 0
        self._roll_next()

    def _check_roll_deadline(self) -> None:
        roll = self.roll
        if roll is None or not roll.candidate or time.monotonic() < roll.deadline:
            return
        pid = roll.candidate
        log.error("rolling restart aborted: replacement %d not ready after %.0f s; the "
                  "other workers keep serving", pid, self.settings.server.ready_timeout)
        self.roll = None
        worker = self.children.get(pid)
        if worker is not None:
            worker.retiring = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # it accepts nothing until ready: nothing to drain
