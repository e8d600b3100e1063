"""Failed key uses in the audit log, aggregated: one entry per (reason, key, source) a minute.

A refused authentication is the path a keyless attacker drives, so it writes nothing on
the request path: :meth:`FailedKeyUses.note` counts in a dict (no I/O, no await), and a
background task appends one ``auth.failure`` entry per group once a window
(``WINDOW_S``), with the count and the first and last time. The groups are bounded:
past ``MAX_GROUPS`` distinct ones in a window, the rest fold into one group per reason
with key and source ``*`` (an attacker varying keys or addresses costs a counter, not an
entry each). Each worker process aggregates its own.

What a group names: ``reason`` is ``invalid`` (no such key), ``expired`` or ``revoked``
(a known key: its id), or what other authenticators say (an SSO token's reason); ``key``
is the key's id when the key is known, its hint (``bst-...wxyz``, as lists show a key)
when it looks like a virtual key, else ``-`` (a wrong master key: nothing of it is
kept); ``source`` is the client's address. A missing or malformed Authorization header is
not a key use: only counted in the metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bastion.governance.keys import KeyTable, expired, hint, looks_like_key

WINDOW_S = 60.0
MAX_GROUPS = 100
NOT_KEY_USES = frozenset({"missing", "malformed"})
ACTOR = "unauthenticated"

Append = Callable[[str, str, str | None, Mapping[str, Any] | None], Awaitable[None]]


@dataclass
class _Group:
    count: int
    first: float
    last: float


class FailedKeyUses:
    def __init__(self, record: Append, keys: KeyTable, background: set[asyncio.Task[None]],
                 clock: Callable[[], float] = time.time) -> None:
        self._record = record
        self._keys = keys
        self._background = background
        self._clock = clock
        self._groups: dict[tuple[str, str, str], _Group] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, reason: str, authorization: bytes | None,
             client: tuple[str, int] | None) -> None:
        """Counts one refused request (on the event loop; never blocks, never raises for
        what a client sends)."""
        if reason in NOT_KEY_USES:
            return
        reason, key = self._identify(reason, authorization)
        group = (reason, key, client[0] if client else "-")
        now = self._clock()
        found = self._groups.get(group)
        if found is None:
            if len(self._groups) >= MAX_GROUPS:
                group = (reason, "*", "*")
                found = self._groups.get(group)
            if found is None:
                self._groups[group] = found = _Group(0, now, now)
        found.count += 1
        found.last = now
        self._start()

    def _identify(self, reason: str, authorization: bytes | None) -> tuple[str, str]:
        token = (authorization or b"").strip().partition(b" ")[2].strip()
        if not looks_like_key(token):
            return reason, "-"
        principal = self._keys.lookup(token)
        if principal is not None and principal.key_id is not None and expired(principal):
            return "expired", principal.key_id
        revoked = self._keys.revoked_id(token)
        if revoked is not None:
            return "revoked", revoked
        return reason, hint(token.decode("ascii", "replace"))

    def _start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        task = asyncio.get_running_loop().create_task(self._run())
        self._task = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run(self) -> None:
        try:
            while self._groups:
                await asyncio.sleep(WINDOW_S)
                await self.flush()
        finally:  # cancelled at shutdown: what was counted is still written
            await self.flush()

    async def flush(self) -> int:
        """Appends one entry per group counted since the last flush; returns how many."""
        groups, self._groups = self._groups, {}
        for (reason, key, source), g in groups.items():
            await self._record(ACTOR, "auth.failure", None if key == "-" else key, {
                "reason": reason, "source": source, "count": g.count,
                "first": round(g.first, 3), "last": round(g.last, 3),
                "window_s": WINDOW_S})
        return len(groups)
