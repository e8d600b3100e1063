"""Each virtual key's own content mode, as the ingest applies it.

A key may keep less of its traces than its team's (or the global) mode: a key made for a
health-data client with ``content_mode: metadata`` stores no prompt or answer even where
its team keeps them redacted. A key never keeps *more* than its team's mode: the stricter
of the two wins, so a developer who makes keys for its team cannot widen what the
operator chose to store.

The modes are read in the ingest, from the store's key rows changed since its last read,
before each spool file: a key's row is written before its token is handed out, so every
line of a file was written by a key whose row that read sees. The request path carries
nothing for it (the spool's lines name the key already).
"""

from __future__ import annotations

from typing import Any

CONTENT_MODES = ("metadata", "redacted", "full")  # least kept first


def stricter_mode(mode: str, key_mode: str | None) -> str:
    """The content mode a trace is kept in: its key's, where that keeps less than
    ``mode`` (its team's, else the global one)."""
    if key_mode is None or key_mode not in CONTENT_MODES or mode not in CONTENT_MODES:
        return mode
    return min(mode, key_mode, key=CONTENT_MODES.index)


class KeyModes:
    __slots__ = ("modes", "stamp")

    def __init__(self) -> None:
        self.modes: dict[str, str] = {}  # key id -> its own mode (keys with one only)
        self.stamp = 0.0  # the newest updated_at read

    def refresh(self, store: Any) -> None:
        """Reads the key rows changed since the last call (a store without keys, such as
        a test's sink, has none); the store's errors go to the caller."""
        keys = getattr(store, "keys", None)
        if keys is None:
            return
        for row in keys.changed_since(self.stamp):
            self.stamp = max(self.stamp, float(row["updated_at"]))
            mode = row.get("content_mode")
            if mode:
                self.modes[row["id"]] = mode
            else:
                self.modes.pop(row["id"], None)

    def mode(self, mode: str, key_id: str | None) -> str:
        if key_id is None or not self.modes:
            return mode
        return stricter_mode(mode, self.modes.get(key_id))
