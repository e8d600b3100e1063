"""Keeps a worker's :class:`KeyTable` current with the store.

At start, every key is read (in a thread). Then, every ``POLL_SECONDS``, the rows changed
since the newest one applied: changes made through any worker (or replica) arrive within a
poll. While that change is recent the window reaches ``OVERLAP_SECONDS`` further back,
because writers' clocks and commits are not ordered with each other (applying a row twice
is harmless); once it is older, a quiet table costs a read that returns nothing. A store
that is down leaves the table as it was (keys keep working) and is retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from bastion.governance.keys import PEPPER_INFO, KeyTable

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.observe.setup import StoreHandle

log = logging.getLogger("bastion.governance")
POLL_SECONDS = 0.5
OVERLAP_SECONDS = 5.0


def key_table(settings: Settings) -> KeyTable:
    from bastion.observe.setup import deployment_secret
    from bastion.observe.spool_crypto import derive

    return KeyTable(derive(deployment_secret(settings), PEPPER_INFO))


async def sync_once(table: KeyTable, store: StoreHandle) -> int:
    """Applies the changed rows; raises StoreUnavailable when the store is down."""
    since = 0.0
    if table.loaded:  # the overlap only while the newest change is recent: a row committed
        # late by a writer whose clock is behind is at most OVERLAP_SECONDS older than it
        recent = time.time() - table.stamp < 2 * OVERLAP_SECONDS
        since = table.stamp - OVERLAP_SECONDS if recent else table.stamp
    rows = await asyncio.to_thread(lambda: store.get().keys.changed_since(since))
    changed = table.apply(rows)
    table.loaded = True
    return changed


async def sync_forever(table: KeyTable, store: StoreHandle) -> None:
    from bastion.store import StoreUnavailable

    down = False
    while True:
        try:
            await sync_once(table, store)
            if down:
                log.info("key store reachable again: %d keys", len(table))
            down = False
        except StoreUnavailable as exc:
            if not down:
                log.warning("cannot read keys from the store (keeping %d): %s", len(table), exc)
            down = True
        await asyncio.sleep(POLL_SECONDS)
