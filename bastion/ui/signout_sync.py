"""Sign-outs reach every worker and replica: a sign-out is written to the store
(``ui_signouts``), and each worker reads the new ones every ``POLL_SECONDS`` into its
:class:`~bastion.ui.sessions.Sessions`, which then refuses those cookies. The worker that
signed a session out refuses it at once; the others within a poll. While the store is
down, sign-outs still end the session in the worker that took them (and it retries
writing them), and the others refuse it when it expires, as before."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.observe.setup import StoreHandle
    from bastion.ui.sessions import Sessions

log = logging.getLogger("bastion.ui")
POLL_SECONDS = 1.0
OVERLAP_SECONDS = 5.0  # writers' clocks and commits are not ordered with each other


class SignoutSync:
    def __init__(self, sessions: Sessions, store: StoreHandle) -> None:
        self.sessions = sessions
        self.store = store
        self.stamp = time.time() - OVERLAP_SECONDS  # sessions older were refused at start
        self.unsent: dict[str, float] = {}  # sign-outs the store did not take yet

    async def record(self, sid: str, expires_at: float) -> None:
        """Writes a sign-out for the others (this worker has refused it already)."""
        self.unsent[sid] = expires_at
        await self._send()

    async def _send(self) -> None:
        from bastion.store import StoreUnavailable

        for sid, expires_at in list(self.unsent.items()):
            try:
                await asyncio.to_thread(self._add, sid, expires_at)
            except StoreUnavailable as exc:
                log.warning("a sign-out could not be stored (%s): other workers refuse "
                            "that session when it expires; retrying", exc)
                return
            self.unsent.pop(sid, None)

    def _add(self, sid: str, expires_at: float) -> None:
        self.store.get().signouts.add(sid, expires_at)

    async def sync_once(self) -> int:
        """Applies the sign-outs made since the last poll; raises StoreUnavailable."""
        if self.unsent:
            await self._send()
        since = self.stamp - OVERLAP_SECONDS
        rows = await asyncio.to_thread(lambda: self.store.get().signouts.since(since))
        for sid, expires_at, created_at in rows:
            self.sessions.signed_out(sid, expires_at)
            self.stamp = max(self.stamp, created_at)
        return len(rows)

    async def sync_forever(self) -> None:
        from bastion.store import StoreUnavailable

        while True:
            try:
                await self.sync_once()
            except StoreUnavailable:
                pass  # retried at the next poll; sessions keep their own expiry
            except Exception:  # a bug must not stop sign-outs from arriving for good
                log.exception("reading sign-outs failed")
            await asyncio.sleep(POLL_SECONDS)
