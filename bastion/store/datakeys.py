"""The data keys' rows, and what the store does with them (see :mod:`bastion.store.crypto`).

    open(conn)              at store open: unwrap the keyring; make key 1 if there is none
    seal(rows)              a batch to insert, under the current key
    check(conn, id, rows)   in the insert's transaction: the key is still current (else
                            the rows are sealed again under the one that is)
    open_body(id, row)      a stored row's bodies in the clear, or a ``body_error``
    rotate()                a new data key, current from then on in every process
    reencrypt(limit)        bodies under older keys (and plaintext ones) sealed again
    status(), drop(id)      what is under which key; drop a key no body needs any more

Every process sees a rotation at its next insert (the insert's transaction reads the
current key id, on Postgres ``FOR KEY SHARE``, so a key is never dropped under a batch
being sealed with it) or its next read of a body under a key it does not have yet.
Re-encryption is resumable by construction: it looks for the rows whose ``body_key`` is
not the current one (an index), batch by batch, each one transaction; on SQLite with
``secure_delete`` on, so the old ciphertext or plaintext is overwritten, not freed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from bastion.store.crypto import (
    BODY,
    BODY_FIELDS,
    PREVIEW,
    PREVIEW_FIELDS,
    BodyUnreadable,
    Codec,
    DataKeyError,
    DataKeyInUse,
    StoreKeys,
    new_data_key,
    unwrap,
    wrap,
)
from bastion.store.migrations import WRITE
from bastion.store.schema import Tables

RELOAD_EVERY_S = 1.0  # a body under an unknown key re-reads the keyring at most this often
_PLAIN = (*BODY_FIELDS, *PREVIEW_FIELDS)


class BodyKeys:
    """The keyring of one store. ``keys`` None: the store was opened without a store key
    (it writes plaintext, and reports sealed bodies as encrypted); ``encrypt``: new bodies
    are sealed (and plaintext ones re-encrypted in the background)."""

    def __init__(self, engine: Engine, tables: Tables, keys: StoreKeys | None,
                 encrypt: bool) -> None:
        self._engine = engine
        self._t = tables
        self._pg = engine.dialect.name == "postgresql"
        self._kek = keys.kek() if keys is not None else None
        self._index_key = keys.index_key() if keys is not None else None
        self.encrypt = encrypt and keys is not None
        self.codec: Codec | None = None
        self._tokens: dict[str, str] = {}
        self._reloaded = 0.0
        self._after: dict[int | None, Any] = {}  # re-encryption cursors, per old key
        self._sealed_plain = False  # plaintext bodies sealed in this round
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ keyring
    def open(self, conn: Connection) -> None:
        if self._kek is None:
            return
        if not self._load(conn) and self.encrypt:
            self._add(conn, 1)
            conn.commit()
            self._load(conn)

    def _load(self, conn: Connection) -> bool:
        assert self._kek is not None and self._index_key is not None
        dk = self._t.data_keys.c
        rows = conn.execute(select(dk.id, dk.wrapped)).all()
        if not rows:
            self.codec = None
            return False
        keys = {int(r[0]): unwrap(self._kek, int(r[0]), bytes(r[1])) for r in rows}
        self.codec = Codec(keys, self._index_key, self._tokens)
        return True

    def _reload(self, force: bool = False) -> Codec | None:
        """The keyring read again: at once for a key newer than the current one (another
        process rotated), else at most every ``RELOAD_EVERY_S`` (a dropped key's body)."""
        with self._lock:
            due = force or time.monotonic() - self._reloaded >= RELOAD_EVERY_S
            if self._kek is not None and due:
                self._reloaded = time.monotonic()
                with self._engine.connect() as conn:
                    self._load(conn)
            return self.codec

    def _add(self, conn: Connection, key_id: int) -> None:
        assert self._kek is not None
        dialect_insert = postgresql.insert if self._pg else sqlite.insert
        values = {"id": key_id, "wrapped": wrap(self._kek, key_id, new_data_key()),
                  "created_at": time.time()}
        conn.execute(dialect_insert(self._t.data_keys).values(values).on_conflict_do_nothing())

    def _current(self, conn: Connection, share: bool = False) -> int | None:
        sql = "SELECT id FROM data_keys ORDER BY id DESC LIMIT 1"
        if share and self._pg:
            sql += " FOR KEY SHARE"
        found = conn.exec_driver_sql(sql).scalar()
        return None if found is None else int(found)

    def _require(self) -> None:
        if self._kek is None:
            raise DataKeyError("this store was opened without its store key "
                               "(store.encryption_key): it cannot manage data keys")

    # ------------------------------------------------------------------ writes
    def seal(self, rows: list[dict[str, Any]]) -> int | None:
        """Seals the rows (in place) under the current key; returns its id (None: the
        rows stay plaintext)."""
        codec = self.codec
        if not self.encrypt or codec is None:
            return None
        for row in rows:
            codec.seal_row(row)
        return codec.current

    def check(self, conn: Connection, sealed_with: int | None,
              rows: list[dict[str, Any]]) -> None:
        """In the insert's transaction, before the rows are written: if another process
        rotated meanwhile, the rows are sealed again under the key that is current now."""
        if sealed_with is None:
            return
        current = self._current(conn, share=True)
        if current == sealed_with:
            return
        self._load(conn)
        codec = self.codec
        if codec is None or codec.current != current:
            raise DataKeyError("the store's data keys changed while a batch was written")
        for row in rows:
            row["sealed"] = codec.reseal(BODY, row["id"], row["sealed"])
            row["sealed_preview"] = codec.reseal(PREVIEW, row["id"], row["sealed_preview"])
            row["body_key"] = codec.current
        self._current(conn, share=True)  # the new key's row, locked as above

    # ------------------------------------------------------------------- reads
    def open_body(self, trace_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """The plaintext columns of a ``trace_bodies`` row (those of ``input``, ``output``,
        ``spans``, ``preview_in``, ``preview_out`` that ``row`` has, or whose sealed
        column it has). A row that cannot be opened gives them as None and a
        ``body_error`` saying why; it never raises for a bad row."""
        out = {k: row[k] for k in _PLAIN if k in row}
        key_id = row.get("body_key")
        if key_id is None:
            return out
        if "sealed" in row:
            out.update(dict.fromkeys(BODY_FIELDS))
        if "sealed_preview" in row:
            out.update(dict.fromkeys(PREVIEW_FIELDS))
        codec = self.codec
        if codec is None or key_id not in codec.key_ids:
            codec = self._reload(force=codec is None or key_id > codec.current)
        if codec is None:
            out["body_error"] = ("encrypted: this store was opened without its data keys "
                                 "(store.encryption_key)")
            return out
        try:
            out.update(codec.open_row(trace_id, row))
        except BodyUnreadable as exc:
            out["body_error"] = f"unreadable: the stored body {exc}"
        return out

    # ---------------------------------------------------------------- rotation
    def rotate(self) -> int:
        """A new data key, current at once; returns its id."""
        self._require()
        with self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
            self._add(conn, (self._current(conn) or 0) + 1)
            self._load(conn)
        assert self.codec is not None
        self._after.clear()
        return self.codec.current

    def status(self) -> dict[str, Any]:
        """The keys (id, created_at, current, traces sealed under it), the plaintext
        traces, and how many traces re-encryption has still to seal."""
        dk, b = self._t.data_keys.c, self._t.bodies.c
        with self._engine.connect() as conn:
            keys = conn.execute(select(dk.id, dk.created_at).order_by(dk.id)).all()
            counts = {k: int(n) for k, n in conn.execute(
                select(b.body_key, func.count()).group_by(b.body_key)).all()}
        current = keys[-1][0] if keys else None
        pending = sum(n for k, n in counts.items()
                      if k != current and (k is not None or self.encrypt))
        return {
            "current": current, "encrypt_bodies": self.encrypt,
            "keys": [{"id": k, "created_at": at, "current": k == current,
                      "traces": counts.get(k, 0)} for k, at in keys],
            "plaintext_traces": counts.get(None, 0), "to_reencrypt": pending,
        }

    def drop(self, key_id: int) -> None:
        """Deletes a data key once no body is sealed under it (DataKeyInUse otherwise;
        LookupError for a key that does not exist). Irreversible."""
        self._require()
        dk, b = self._t.data_keys.c, self._t.bodies.c
        with self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if key_id == self._current(conn):
                raise DataKeyInUse(f"data key {key_id} is the current one: rotate first")
            # the delete waits for inserts sealing under it (they hold FOR KEY SHARE); the
            # count after it sees what they wrote
            if conn.execute(delete(self._t.data_keys).where(dk.id == key_id)).rowcount < 1:
                raise LookupError(f"no data key {key_id}")
            left = conn.execute(select(func.count()).where(b.body_key == key_id)).scalar_one()
            if left:
                raise DataKeyInUse(
                    f"{left} traces are still sealed under data key {key_id}: drop it once "
                    "re-encryption has sealed them under the current key "
                    "(bastion keys data-keys shows what is left)")
            self._load(conn)

    def reencrypt(self, limit: int) -> int:
        """Seals again, under the current key, up to ``limit`` bodies that are under an
        older key (or plaintext, when bodies are encrypted), in one transaction. Returns
        how many rows it looked at (0: none left; a row it cannot open is passed over
        and tried again in a later round)."""
        if self._kek is None:
            return 0
        with self._engine.connect() as conn:
            if self._current(conn) != (self.codec.current if self.codec else None):
                self._load(conn)  # rotated by another process
        codec = self.codec
        if codec is None:
            return 0
        olds: list[int | None] = [*sorted(k for k in codec.key_ids if k != codec.current)]
        if self.encrypt:
            olds.append(None)
        for old in olds:
            seen = self._reencrypt_from(codec, old, limit)
            if seen:
                self._sealed_plain = self._sealed_plain or old is None
                return seen
        self._after.clear()  # a round is over: passed-over rows are tried again next time
        if self._sealed_plain:
            self._sealed_plain = False
            self._purge_words()
        return 0

    def _purge_words(self) -> None:
        """After plaintext bodies were sealed: SQLite's FTS5 keeps a deleted document's
        words in its old segments (behind a delete marker) until they are merged, so
        merge them all now, with ``secure_delete`` on (freed pages overwritten). Postgres
        keeps dead row versions until VACUUM (see the README)."""
        if self._pg:
            return
        with self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if conn.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE name = 'trace_text'").first() is None:
                return
            conn.exec_driver_sql("PRAGMA secure_delete = ON")
            conn.exec_driver_sql("INSERT INTO trace_text(trace_text) VALUES ('optimize')")
            conn.exec_driver_sql("PRAGMA secure_delete = OFF")

    def _reencrypt_from(self, codec: Codec, old: int | None, limit: int) -> int:
        t, b = self._t, self._t.bodies.c
        columns = [b.sealed_preview, b.search, b.sealed, *(b[k] for k in _PLAIN)]
        cursor: Any
        if self._pg:
            query = select(b.id, b.ts, *columns).order_by(b.body_key, b.ts, b.id)
            cursor = tuple_(b.ts, b.id)
        else:
            query = (select(b.seq, t.traces.c.id, *columns)
                     .select_from(t.bodies.join(t.traces, t.traces.c.seq == b.seq))
                     .order_by(b.seq))
            cursor = b.seq
        under = b.body_key.is_(None) if old is None else b.body_key == old
        query = query.where(under).limit(limit)
        after = self._after.get(old)
        if after is not None:
            query = query.where(cursor > (tuple_(*after) if self._pg else after))
        with self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if not self._pg:
                conn.exec_driver_sql("PRAGMA secure_delete = ON")
            rows = conn.execute(query).mappings().all()
            if not rows:
                return 0
            changes = [c for c in (_resealed(codec, old, r) for r in rows) if c is not None]
            if changes:
                conn.execute(self._update(old), changes)
            if not self._pg:
                conn.exec_driver_sql("PRAGMA secure_delete = OFF")
        last = rows[-1]
        self._after[old] = (last["ts"], last["id"]) if self._pg else last["seq"]
        return len(rows)

    def _update(self, old: int | None) -> Any:
        b = self._t.bodies.c
        key = ([b.id == bindparam("k_id"), b.ts == bindparam("k_ts")] if self._pg
               else [b.seq == bindparam("k_seq")])
        under = b.body_key.is_(None) if old is None else b.body_key == old
        values: dict[str, Any] = {"body_key": bindparam("v_key"), "sealed": bindparam("v_body"),
                                  "sealed_preview": bindparam("v_preview")}
        if old is None:  # plaintext: the body columns emptied, the words hashed
            values.update(dict.fromkeys(_PLAIN))
            values["search"] = bindparam("v_search")
        return update(self._t.bodies).where(*key, under).values(values)


def _resealed(codec: Codec, old: int | None, row: Mapping[Any, Any]) -> dict[str, Any] | None:
    """The update's parameters for one row (None: it cannot be opened; left as it is)."""
    trace_id = row["id"]
    out: dict[str, Any] = ({"k_id": trace_id, "k_ts": row["ts"]} if "ts" in row
                           else {"k_seq": row["seq"]})
    if old is None:
        plain = {"id": trace_id, "search": row["search"], **{k: row[k] for k in _PLAIN}}
        codec.seal_row(plain)
        out.update(v_key=codec.current, v_body=plain["sealed"],
                   v_preview=plain["sealed_preview"], v_search=plain["search"])
        return out
    try:
        out.update(v_key=codec.current, v_body=codec.reseal(BODY, trace_id, row["sealed"]),
                   v_preview=codec.reseal(PREVIEW, trace_id, row["sealed_preview"]))
    except BodyUnreadable:
        return None
    return out
