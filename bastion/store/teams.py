"""Registered teams' rows: ``teams``, on both engines.

A team exists wherever a key names it; registering one gives it an organisation and a
description, so that teams can be listed by organisation and a team with no keys yet
still shows. The rows are read by the management API only, never on the request path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bastion.store.errors import unavailable_as_store_error
from bastion.store.migrations import WRITE
from bastion.store.schema import TEAM_KEYS


class TeamExists(Exception):
    """A team of that name is registered already."""


class TeamRows:
    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self._t = table
        self._cols = [table.c[k] for k in TEAM_KEYS]

    def insert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        now = time.time()
        values = {**{k: row.get(k) for k in TEAM_KEYS}, "created_at": now, "updated_at": now}
        try:
            with unavailable_as_store_error("insert_team"), \
                    self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
                conn.execute(insert(self._t).values(values))
        except IntegrityError:
            raise TeamExists(row["name"]) from None
        return values

    def update(self, name: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
        changes = {k: v for k, v in values.items() if k in ("org", "description", "metadata")}
        changes["updated_at"] = time.time()
        with unavailable_as_store_error("update_team"), \
                self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
            found = conn.execute(update(self._t).where(self._t.c.name == name)
                                 .values(changes).returning(*self._cols)).mappings().first()
        return dict(found) if found is not None else None

    def delete(self, name: str) -> bool:
        with unavailable_as_store_error("delete_team"), \
                self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
            return bool(conn.execute(delete(self._t).where(self._t.c.name == name)).rowcount)

    def get(self, name: str) -> dict[str, Any] | None:
        with unavailable_as_store_error("get_team"), self._engine.connect() as conn:
            found = conn.execute(select(*self._cols).where(self._t.c.name == name)
                                 ).mappings().first()
        return dict(found) if found is not None else None

    def list(self, org: str | None = None) -> list[dict[str, Any]]:
        query = select(*self._cols).order_by(self._t.c.name)
        if org is not None:
            query = query.where(self._t.c.org == org)
        with unavailable_as_store_error("list_teams"), self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
