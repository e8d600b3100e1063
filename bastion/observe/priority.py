"""The ingest process's CPU priority: idle while it keeps up, normal once it falls behind.

Under Linux's SCHED_IDLE a thread runs only on CPU time nothing else wants, so a
saturated gateway loses almost nothing to storing its traces (side by side: 3-4 % of
throughput at nice 19, under 1 % at SCHED_IDLE). The spool files wait on disk meanwhile.
Starved for long, though, the backlog would grow without bound. So once the oldest file
waiting is older than ``max_lag`` seconds, the ingest goes back to normal scheduling (its
niceness kept), and it returns to SCHED_IDLE when it has caught up, that is when what it
takes next is younger than half of that. For the drain at shutdown it goes back to normal
too. An unprivileged process may be refused leaving SCHED_IDLE (RLIMIT_NICE); it then
stays idle, and says so once.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("bastion.ingest")


def idle_priority(tid: int = 0) -> bool:
    """Moves a thread (0: this one; threads started later inherit it) to SCHED_IDLE.
    False where that is unavailable or refused."""
    return _policy(tid, "SCHED_IDLE", logging.WARNING, "cannot use SCHED_IDLE: %s")


def normal_priority(tid: int = 0) -> bool:
    """Back from SCHED_IDLE to normal scheduling (niceness kept). False if refused."""
    return _policy(tid, "SCHED_OTHER", logging.INFO,
                   "staying at SCHED_IDLE (cannot leave it: %s)")


def _policy(tid: int, name: str, level: int, refused: str) -> bool:
    policy = getattr(os, name, None)
    if policy is None:
        return False
    try:
        os.sched_setscheduler(tid, policy, os.sched_param(0))
    except OSError as exc:
        log.log(level, refused, exc)
        return False
    return True


class IdleUnlessBehind:
    """SCHED_IDLE for thread ``tid`` while the backlog is young (see the module)."""

    def __init__(self, tid: int, max_lag: float) -> None:
        self.tid = tid
        self.max_lag = max_lag
        self.idle = idle_priority(tid)
        self._stuck = False  # normal scheduling was refused: do not ask again

    def lag(self, seconds: float) -> None:
        """The age of the spool file about to be ingested (0: none left)."""
        if self.idle and seconds > self.max_lag and not self._stuck:
            log.info("the trace backlog is %.0f s old: ingesting at normal priority", seconds)
            self.idle = not normal_priority(self.tid)
            self._stuck = self.idle
        elif not self.idle and not self._stuck and seconds < self.max_lag / 2:
            self.idle = idle_priority(self.tid)

    def normal(self) -> None:
        """For the drain: the gateway has stopped serving."""
        if self.idle and normal_priority(self.tid):
            self.idle = False
        self._stuck = True  # and no going back to idle
