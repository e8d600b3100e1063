"""The ids of the requests this gateway answered lately: a bounded, insertion-ordered set.

Feedback names a request by id; the trace may still be on its way to the store (spooled,
not yet ingested), so ``POST /api/feedback`` asks here first and only then the store, and
an id neither knows is a 404 rather than feedback for nothing. Adding is a dict store and,
once full, one pop of the oldest: no lock (one event loop), no I/O on the request path.
"""

from __future__ import annotations

DEFAULT_SIZE = 100_000  # at ~100 bytes an id, about 10 MB at most


class RecentIds:
    __slots__ = ("_ids", "_size")

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("RecentIds needs room for at least one id")
        self._ids: dict[str, None] = {}
        self._size = size

    def add(self, request_id: str) -> None:
        ids = self._ids
        if request_id in ids:
            return
        ids[request_id] = None
        if len(ids) > self._size:
            del ids[next(iter(ids))]  # the oldest (dicts keep insertion order)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
