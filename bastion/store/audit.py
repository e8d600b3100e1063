"""The audit log's rows: appends serialised by a lock (one chain whoever writes), reads in
``seq`` order. The chain and its signatures are :mod:`bastion.governance.audit`'s."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from sqlalchemy import Engine, Table, func, insert, select

from bastion.store.errors import unavailable_as_store_error
from bastion.store.migrations import WRITE
from bastion.store.schema import AUDIT_KEYS

AUDIT_LOCK = 0x62617374696F6E61  # pg_advisory_xact_lock key, "bastion\0a"


class HeadSigner(Protocol):
    public_key: str

    def sign(self, seq: int, head_hash: str) -> str: ...


class AuditRows:
    def __init__(self, engine: Engine, log: Table, heads: Table) -> None:
        self._engine = engine
        self._log = log
        self._heads = heads
        self._pg = engine.dialect.name == "postgresql"

    def append(self, actor: str, action: str, target: str | None,
               detail: Mapping[str, Any] | None, signer: HeadSigner,
               hash_of: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Adds one entry after the newest and signs the new head, in one transaction
        under the log's lock; returns (entry, head)."""
        c = self._log.c
        with unavailable_as_store_error("audit_append"), \
                self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if self._pg:
                conn.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK)))
            last = conn.execute(select(c.seq, c.hash).order_by(c.seq.desc()).limit(1)).first()
            seq, prev = (last[0] + 1, last[1]) if last is not None else (1, "0" * 64)
            entry = {"seq": seq, "ts": time.time(), "actor": actor, "action": action,
                     "target": target, "detail": dict(detail) if detail else None,
                     "prev": prev}
            digest: str = hash_of(prev, entry)
            entry["hash"] = digest
            conn.execute(insert(self._log).values(entry))
            head = {"seq": seq, "hash": digest, "ts": entry["ts"],
                    "public_key": signer.public_key, "signature": signer.sign(seq, digest)}
            conn.execute(insert(self._heads).values(head))
        return entry, head

    def entries(self, after: int = 0, limit: int | None = None,
                before: int | None = None) -> Iterator[dict[str, Any]]:
        """Entries with seq above ``after`` in order; with ``before``, those below it,
        newest first (the latest page: ``before`` one past the last seq)."""
        c = self._log.c
        columns = [c[k] for k in AUDIT_KEYS]
        if before is not None:
            query = select(*columns).where(c.seq < before).order_by(c.seq.desc())
        else:
            query = select(*columns).where(c.seq > after).order_by(c.seq)
        if limit is not None:
            query = query.limit(limit)
        with unavailable_as_store_error("audit_entries"), self._engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        yield from rows

    def heads(self) -> list[dict[str, Any]]:
        h = self._heads.c
        with unavailable_as_store_error("audit_heads"), self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(self._heads).order_by(h.seq))
                    .mappings()]
