"""Dashboard sessions signed out, so that every worker and replica refuses their cookie
within a poll (:mod:`bastion.ui.signout_sync`), not only the one that signed them out.
A row holds the session's id (random, not a secret: the cookie is the MAC over it) and
when the session would have expired; rows past that are deleted as new ones come."""

from __future__ import annotations

import time

from sqlalchemy import Engine, Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from bastion.store.errors import unavailable_as_store_error
from bastion.store.migrations import WRITE


class SignoutRows:
    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self._t = table

    def add(self, sid: str, expires_at: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        t = self._t
        insert = postgresql.insert(t) if self._engine.dialect.name == "postgresql" \
            else sqlite.insert(t)
        with unavailable_as_store_error("signout"), \
                self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(delete(t).where(t.c.expires_at < now))
            conn.execute(insert.values(sid=sid, expires_at=expires_at, created_at=now)
                         .on_conflict_do_nothing(index_elements=["sid"]))

    def since(self, ts: float, now: float | None = None) -> list[tuple[str, float, float]]:
        """(sid, expires_at, created_at) of sign-outs made at ``ts`` or later that are
        still within their session's life."""
        now = time.time() if now is None else now
        c = self._t.c
        query = select(c.sid, c.expires_at, c.created_at).where(
            c.created_at >= ts, c.expires_at >= now).order_by(c.created_at)
        with unavailable_as_store_error("signouts"), self._engine.connect() as conn:
            return [(r[0], float(r[1]), float(r[2])) for r in conn.execute(query)]
