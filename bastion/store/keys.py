"""Virtual keys' rows: ``api_keys``, on both engines.

A row holds a key's HMAC (``digest``), never the key. Every change sets ``updated_at``
(strictly increasing per writer, see :meth:`KeyRows.next_stamp`), so each gateway worker
keeps its in-memory table current by asking for the rows changed since the newest it has
(one indexed range read every poll, off the request path).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, select, update

from bastion.store.errors import unavailable_as_store_error
from bastion.store.migrations import WRITE
from bastion.store.schema import API_KEY_KEYS


class KeyRows:
    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self._t = table
        self._cols = [table.c[k] for k in API_KEY_KEYS]
        self._lock = threading.Lock()
        self._last_stamp = 0.0

    def next_stamp(self) -> float:
        """A change's ``updated_at``: the wall clock, but never equal to or before this
        writer's previous one (two changes within a clock tick stay ordered)."""
        with self._lock:
            stamp = max(time.time(), self._last_stamp + 1e-6)
            self._last_stamp = stamp
            return stamp

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        with unavailable_as_store_error(what), \
                self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
            yield conn

    def insert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        values = {k: row.get(k) for k in API_KEY_KEYS}
        values["updated_at"] = self.next_stamp()
        with self._write("insert_key") as conn:
            conn.execute(insert(self._t).values(values))
        return values

    def update(self, key_id: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Changes a key's columns (never ``id`` or ``digest``); the new row, or None."""
        changes = {k: v for k, v in values.items() if k in API_KEY_KEYS
                   and k not in ("id", "digest")}
        changes["updated_at"] = self.next_stamp()
        with self._write("update_key") as conn:
            found = conn.execute(
                update(self._t).where(self._t.c.id == key_id).values(changes)
                .returning(*self._cols)
            ).mappings().first()
        return dict(found) if found is not None else None

    def get(self, key_id: str) -> dict[str, Any] | None:
        with unavailable_as_store_error("get_key"), self._engine.connect() as conn:
            found = conn.execute(
                select(*self._cols).where(self._t.c.id == key_id)).mappings().first()
        return dict(found) if found is not None else None

    def changed_since(self, stamp: float) -> list[dict[str, Any]]:
        """Rows changed after ``stamp`` (0: all), oldest change first."""
        c = self._t.c
        with unavailable_as_store_error("keys_changed"), self._engine.connect() as conn:
            rows = conn.execute(
                select(*self._cols).where(c.updated_at > stamp).order_by(c.updated_at)
            ).mappings().all()
        return [dict(r) for r in rows]

    def list(self, team: str | None = None) -> list[dict[str, Any]]:
        """Every key (a team's only, when given), newest first."""
        c = self._t.c
        query = select(*self._cols).order_by(c.created_at.desc(), c.id)
        if team is not None:
            query = query.where(c.team == team)
        with unavailable_as_store_error("list_keys"), self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
