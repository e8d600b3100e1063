"""Repricing: the stored cost of past traces recomputed with the current prices (after a
provider changes them, or a price was missing), in chunks of one transaction each; the
half hours repriced are marked stale for the rollups in the same transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine, select, tuple_, update

from bastion.store import rollups
from bastion.store.migrations import WRITE
from bastion.store.schema import Tables


def reprice(
    engine: Engine,
    t: Tables,
    since: float,
    until: float,
    cost: Callable[[Mapping[str, Any]], float | None],
    version: str,
    chunk: int = 1000,
) -> int:
    """Recomputes the cost of the traces in ``[since, until)``: ``cost(row)`` gets
    ``deployment``, ``input_tokens``, ``output_tokens``, ``cached_tokens`` and
    ``latency_ms``; the trace's ``metadata.price_version`` becomes ``version``.
    Returns how many traces were repriced (in transactions of ``chunk``)."""
    c = t.traces.c
    columns = (c.id, c.ts, c.deployment, c.input_tokens, c.output_tokens,
               c.cached_tokens, c.latency_ms, c.metadata)
    done = 0
    after: tuple[float, str] = (since, "")
    while True:
        page = (
            select(*columns)
            .where(c.ts < until, tuple_(c.ts, c.id) > tuple_(*after))
            .order_by(c.ts, c.id)
            .limit(chunk)
        )
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            rows = conn.execute(page).mappings().all()
            rollups.bump(conn, t, rollups.units_of(r["ts"] for r in rows))
            for row in rows:
                metadata = dict(row["metadata"] or {})
                metadata["price_version"] = version
                conn.execute(
                    update(t.traces)
                    .where(c.id == row["id"], c.ts == row["ts"])
                    .values(cost=cost({str(k): v for k, v in row.items()}),
                            metadata=metadata)
                )
        if not rows:
            return done
        done += len(rows)
        after = (rows[-1]["ts"], rows[-1]["id"])
