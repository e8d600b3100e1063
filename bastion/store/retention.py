"""Per-team retention: a team's traces older than its own TTL, deleted row by row.

The global TTL (``tracing.retention_days``, :meth:`Store.delete_before`) drops whole day
partitions on Postgres. A team's TTL cannot: a partition holds every team's traces of its
day, so a team whose TTL is shorter than the global one loses its older traces by row
deletes (index ``ix_traces_team (team, ts, id)``), in batches of ``CHUNK``, one
transaction each, with their bodies, text index entries and the feedback on them. On
Postgres the space comes back through (auto)vacuum, not at once. A TTL longer than the
global one could keep nothing longer (the partitions go anyway): the settings refuse it.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from bastion.store.erase import Purge
from bastion.store.errors import unavailable_as_store_error
from bastion.store.migrations import WRITE
from bastion.store.schema import Tables

CHUNK = 5000


class RetentionRows:
    def __init__(self, engine: Engine, t: Tables) -> None:
        self._engine = engine
        self._t = t
        self._purge = Purge(t, engine.dialect.name)

    def delete_team_before(self, team: str, ts: float) -> int:
        """Deletes ``team``'s traces older than ``ts``; returns how many."""
        c = self._t.traces.c
        page = (select(*self._purge.key_columns)
                .where(c.team == team, c.ts < ts).limit(CHUNK))
        removed = 0
        fts = False  # SQLite's index entries go with the bodies (trigger); not counted
        with unavailable_as_store_error("delete_team_before"), \
                self._engine.connect().execution_options(**WRITE) as conn:
            while True:
                with conn.begin():
                    rows = conn.execute(page).all()
                    done = self._purge.delete(conn, rows, fts).traces
                removed += done
                if len(rows) < CHUNK or not done:
                    return removed
