"""Data subjects without a server: subject ids, the ingest's tombstones (both reads, every
interleaving with an erasure), the vault's eraser, the aggregation of failed key uses,
role events, per-team retention's settings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bastion.config import load_settings
from bastion.errors import ConfigError
from bastion.governance import authfail
from bastion.governance.admin import role_event
from bastion.governance.authfail import FailedKeyUses
from bastion.governance.keys import KeyTable, hint, new_token
from bastion.governance.subjects import Subject, Tombstones, subject_id, vault_eraser
from bastion.guards.vault import Vault
from bastion.observe.ingest import Ingest

KEY = b"k" * 32


def test_a_subject_id_is_keyed_stable_and_names_nothing() -> None:
    assert subject_id(KEY, "alice") == subject_id(KEY, "alice")
    assert subject_id(KEY, "alice") != subject_id(KEY, "alicf")
    assert subject_id(KEY, "alice") != subject_id(b"j" * 32, "alice"), "keyed"
    assert "alice" not in subject_id(KEY, "alice")
    assert subject_id(KEY, "\ud800 lone surrogate").startswith("subj_")  # no crash


# ------------------------------------------------------------------ tombstones
class FakeSubjects:
    """The store's side: tombstones appended at chosen moments, deletes recorded."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float]] = []
        self.deleted: list[list[str]] = []
        self.on_read: list[Any] = []  # callbacks run at each read, first one first

    def tombstones(self, after: int) -> tuple[list[tuple[str, float]], int]:
        if self.on_read:
            self.on_read.pop(0)()
        return self.log[after:], len(self.log)

    def delete_traces(self, ids: list[str]) -> dict[str, int]:
        self.deleted.append(list(ids))
        return {"traces": len(ids)}


class FakeStore:
    def __init__(self) -> None:
        self.subjects = FakeSubjects()
        self.rows: dict[str, dict[str, Any]] = {}

    def insert_traces(self, records: list[dict[str, Any]]) -> int:
        for r in records:
            self.rows.setdefault(r["id"], r)
        return len(records)

    def ping(self) -> None:
        pass


def ingest(tmp_path: Path, store: FakeStore) -> Ingest:
    return Ingest(tmp_path / "spool", 1, lambda: store, unavailable=(OSError,),
                  tombstones=Tombstones(KEY))


def batch() -> list[dict[str, Any]]:
    return [{"id": "a1", "ts": 100.0, "user": "alice"}, {"id": "b1", "ts": 100.0, "user": "bob"},
            {"id": "a2", "ts": 300.0, "user": "alice"}, {"id": "n1", "ts": 100.0}]


def test_a_tombstone_read_before_the_batch_keeps_the_users_old_traces_out(
        tmp_path: Path) -> None:
    store = FakeStore()
    store.subjects.log.append((subject_id(KEY, "alice"), 200.0))
    worker = ingest(tmp_path, store)
    assert worker._insert(batch())
    assert sorted(store.rows) == ["a2", "b1", "n1"], "a2 is after the erasure: new data"
    assert worker.erased == 1


def test_a_tombstone_appended_while_the_batch_is_stored_erases_it_after(
        tmp_path: Path) -> None:
    store = FakeStore()
    erase = lambda: store.subjects.log.append((subject_id(KEY, "alice"), 200.0))  # noqa: E731
    store.subjects.on_read = [lambda: None, erase]  # after the first read, before the second
    worker = ingest(tmp_path, store)
    assert worker._insert(batch())
    assert store.subjects.deleted == [["a1"]], "the second read finds it"


def test_a_retry_after_a_failed_second_read_still_erases(tmp_path: Path) -> None:
    store = FakeStore()

    def fail() -> None:
        store.subjects.log.append((subject_id(KEY, "alice"), 200.0))
        raise OSError("store down")

    store.subjects.on_read = [lambda: None, fail]
    worker = ingest(tmp_path, store)
    assert not worker._insert(batch()), "the file waits for the next pass"
    assert "a1" in store.rows and store.subjects.deleted == []
    worker._healthy = True
    assert worker._insert(batch())
    assert store.subjects.deleted == [["a1"]], "the retry's first read drops and erases"


def test_without_tombstones_nothing_is_filtered(tmp_path: Path) -> None:
    store = FakeStore()
    worker = ingest(tmp_path, store)
    assert worker._insert(batch()) and len(store.rows) == 4 and worker.erased == 0


# ------------------------------------------------------------------- the vault
def test_the_vault_eraser_forgets_the_subjects_sessions_only() -> None:
    vault = Vault(ttl=3600)
    vault.pseudonym("key:k1/session:s1", "PERSON", "Alice Example")
    vault.pseudonym("request:t9", "PERSON", "Alice Example")
    vault.pseudonym("key:k2/session:s2", "PERSON", "Bob Other")
    gateway = SimpleNamespace(guards=SimpleNamespace(engine=SimpleNamespace(vault=vault)))
    eraser = vault_eraser(gateway)  # type: ignore[arg-type]
    assert eraser is not None
    dropped = eraser(Subject("alice", "subj_x", (("t1", "k1", "s1"), ("t9", "k1", None))))
    assert dropped == 2 and len(vault) == 1
    assert vault.originals("key:k2/session:s2") == {"<PERSON_1>": "Bob Other"}
    assert vault_eraser(SimpleNamespace(guards=None)) is None  # type: ignore[arg-type]


# --------------------------------------------------------------- failed key uses
class Trail:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str | None, dict[str, Any]]] = []

    async def record(self, actor: str, action: str, target: str | None,
                     detail: Any) -> None:
        self.entries.append((actor, action, target, dict(detail)))


def table_with(rows: list[dict[str, Any]]) -> KeyTable:
    table = KeyTable(b"p" * 32)
    table.apply(rows)
    return table


def key_row(table: KeyTable, token: str, key_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": key_id, "digest": table.digest_hex(token), "role": "user",
            "updated_at": 1.0, "revoked_at": None, "expires_at": None, **extra}


def bearer(token: str) -> bytes:
    return f"Bearer {token}".encode()


def test_failed_key_uses_are_counted_per_reason_key_and_source() -> None:
    async def run() -> list[tuple[str, str, str | None, dict[str, Any]]]:
        trail, empty = Trail(), KeyTable(b"p" * 32)
        revoked, old, unknown = new_token(), new_token(), new_token()
        rows = [key_row(empty, revoked, "key_rev", revoked_at=5.0),
                key_row(empty, old, "key_old", expires_at=1.0)]
        uses = FailedKeyUses(trail.record, table_with(rows), set())
        for _ in range(30):
            uses.note("invalid", bearer(unknown), ("10.0.0.1", 1))
        uses.note("invalid", bearer(unknown), ("10.0.0.2", 1))
        uses.note("invalid", bearer(revoked), ("10.0.0.1", 1))
        uses.note("expired", bearer(old), ("10.0.0.1", 1))
        uses.note("invalid", b"Bearer sk-not-the-master-key", None)
        uses.note("missing", None, ("10.0.0.1", 1))
        uses.note("malformed", b"Basic abc", ("10.0.0.1", 1))
        assert await uses.flush() == 5
        assert await uses.flush() == 0, "each count is written once"
        return trail.entries

    entries = asyncio.run(run())
    seen = {(e[3]["reason"], e[2], e[3]["source"]): e[3]["count"] for e in entries}
    assert all(e[:2] == ("unauthenticated", "auth.failure") for e in entries)
    assert seen.pop(("revoked", "key_rev", "10.0.0.1")) == 1
    assert seen.pop(("expired", "key_old", "10.0.0.1")) == 1
    assert seen.pop(("invalid", None, "-")) == 1, "nothing of a wrong master key is kept"
    hints = {k: v for k, v in seen.items() if k[1] and k[1].startswith("bst-...")}
    assert sorted(hints.values()) == [1, 30] and len(seen) == 2
    assert "sk-not-the-master-key" not in repr(entries)


def test_a_flood_of_distinct_keys_is_bounded_in_entries_not_in_counts() -> None:
    async def run() -> list[tuple[str, str, str | None, dict[str, Any]]]:
        trail = Trail()
        uses = FailedKeyUses(trail.record, KeyTable(b"p" * 32), set())
        for i in range(1000):
            uses.note("invalid", bearer(new_token()), (f"10.0.{i // 250}.{i % 250}", 1))
        await uses.flush()
        return trail.entries

    entries = asyncio.run(run())
    assert len(entries) == authfail.MAX_GROUPS + 1
    assert sum(e[3]["count"] for e in entries) == 1000
    folded = [e for e in entries if e[2] == "*"]
    assert len(folded) == 1 and folded[0][3]["count"] == 1000 - authfail.MAX_GROUPS


def test_the_background_flush_writes_what_was_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authfail, "WINDOW_S", 0.01)

    async def run() -> list[Any]:
        trail, background = Trail(), set[asyncio.Task[None]]()
        uses = FailedKeyUses(trail.record, KeyTable(b"p" * 32), background)
        token = new_token()
        uses.note("invalid", bearer(token), ("127.0.0.1", 1))
        assert len(background) == 1
        while background:
            await asyncio.sleep(0.01)
        assert trail.entries[0][2] == hint(token)
        return trail.entries

    assert len(asyncio.run(run())) == 1


# ------------------------------------------------------------------ role events
def test_role_events() -> None:
    made = {"id": "key_1", "role": "developer", "team": "ops"}
    assert role_event(None, made) == ("role.grant", {"role": "developer", "team": "ops"})
    assert role_event(made, {**made, "id": "key_2"}) is None
    assert role_event(made, {**made, "role": "admin"}) == (
        "role.change", {"role": "admin", "team": "ops", "previous": "developer"})


# ---------------------------------------------------------- per-team retention
def test_a_team_ttl_longer_than_the_global_one_is_refused() -> None:
    ok = load_settings(env={}, overrides={"tracing": {"retention_days": 30,
                                                      "retention_by_team": {"a": 7}}})
    assert ok.tracing.retention_by_team == {"a": 7.0}
    for bad in ({"retention_days": 30, "retention_by_team": {"a": 31}},
                {"retention_by_team": {"a": 0}}, {"retention_by_team": {"a": -1}},
                {"retention_by_team": {"a": float("nan")}},
                {"retention_by_team": {"a": "soon"}}):
        with pytest.raises(ConfigError, match="retention_by_team"):
            load_settings(env={}, overrides={"tracing": bad})
