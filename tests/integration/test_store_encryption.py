"""Trace bodies encrypted at rest, at the store, on both engines: what the database holds
(raw SQLite bytes, every Postgres row as text), reads, the blind text index, data key
rotation and re-encryption, tampering, a wrong key, and plaintext rows sealed later."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.store import Store, TraceQuery, open_store
from bastion.store.crypto import DataKeyError, DataKeyInUse, StoreKeys
from tests.store_helpers import fresh_database, psql, record

KEYS = StoreKeys.from_deployment_secret(b"store-encryption-test-secret-0001")
PROMPTS = ("ultramarine quokka rhapsody", "periwinkle axolotl sonata")
ANSWER = "tangerine pangolin overture"


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(str(request.param), tmp_path / "db") as database:
        yield database


def traces(n: int = 2, start: int = 0) -> list[dict[str, Any]]:
    return [record(start + i, input=[{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": PROMPTS[i % 2]}],
                   output={"role": "assistant", "content": f"{ANSWER} {start + i}"})
            for i in range(n)]


def raw_contents(url: str) -> bytes:
    """Everything the database holds: the SQLite files' bytes (checkpointed), or every
    row of every Postgres table (partitions included) as text."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    tables = psql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert {"traces", "trace_bodies", "data_keys"} <= {t[0] for t in tables}
    rows = [r[0] for (name,) in tables
            for r in psql(url, f'SELECT t::text FROM "{name}" t')]
    return "\n".join(rows).encode()


def assert_no_plaintext(raw: bytes, *texts: str) -> None:
    for text in texts:
        for word in text.split():
            assert word.encode() not in raw, word
            assert word.encode().hex().encode() not in raw, f"{word} (bytea hex)"


def body_keys(url: str) -> list[int | None]:
    query = "SELECT body_key FROM trace_bodies ORDER BY body_key"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [r[0] for r in conn.execute(query)]
    return [r[0] for r in psql(url, query)]


def search(store: Store, text: str) -> list[str]:
    return sorted(r["id"] for r in store.list_traces(TraceQuery(text=text), limit=100)[0])


def execute(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One statement (``%s`` parameters) on either engine."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()
    return psql(url, sql, params)


def test_bodies_are_sealed_and_read_back_in_the_clear(url: str, tmp_path: Path) -> None:
    with open_store(url, tmp_path, keys=KEYS) as store:
        written = traces(4)
        assert store.insert_traces(written) == 4
        got = store.get_trace("req-00001")
        assert got is not None and "body_error" not in got
        assert got["input"] == written[1]["input"] and got["output"] == written[1]["output"]
        assert got["spans"] == written[1]["spans"]
        page, _ = store.list_traces(TraceQuery(), limit=10)
        assert page[0]["preview"] == {"input": PROMPTS[1], "output": f"{ANSWER} 3"}
        # the blind index: words and AND of words; not prefixes, not words of no trace
        assert search(store, "quokka") == ["req-00000", "req-00002"]
        assert search(store, "PANGOLIN Ultramarine") == ["req-00000", "req-00002"]
        assert search(store, "pangolin") == [f"req-0000{i}" for i in range(4)]
        assert search(store, "quok") == [] and search(store, "quokka axolotl") == []
        assert search(store, "%_") == [], "no word: nothing to look for"
        rows, _ = store.list_traces(TraceQuery(text="quokka", since=written[2]["ts"]))
        assert [r["id"] for r in rows] == ["req-00002"], "with another filter"
    assert set(body_keys(url)) == {1}
    assert_no_plaintext(raw_contents(url), *PROMPTS, ANSWER)


def test_rotation_re_encrypts_and_the_old_key_is_dropped_after(url: str, tmp_path: Path) -> None:
    with open_store(url, tmp_path, keys=KEYS) as store:
        store.insert_traces(traces(5))
        assert store.body_keys.rotate() == 2
        store.insert_traces(traces(2, start=10))  # under key 2
        status = store.body_keys.status()
        assert [(k["id"], k["current"], k["traces"]) for k in status["keys"]] == [
            (1, False, 5), (2, True, 2)]
        assert status["to_reencrypt"] == 5
        assert all(store.get_trace(f"req-0000{i}") is not None for i in range(5))
        with pytest.raises(DataKeyInUse, match="5 traces are still sealed"):
            store.body_keys.drop(1)
        with pytest.raises(DataKeyInUse, match="current"):
            store.body_keys.drop(2)
        with pytest.raises(LookupError):
            store.body_keys.drop(7)
        looked = [store.reencrypt_bodies(2) for _ in range(4)]
        assert looked == [2, 2, 1, 0]
        assert body_keys(url) == [2] * 7, "no row is under key 1 any more"
        store.body_keys.drop(1)
        assert [k["id"] for k in store.body_keys.status()["keys"]] == [2]
    with open_store(url, tmp_path, keys=KEYS) as again:  # key 1 is gone for good
        got = again.get_trace("req-00003")
        assert got is not None and got["output"]["content"] == f"{ANSWER} 3"
        assert "body_error" not in got
        assert search(again, "axolotl") == ["req-00001", "req-00003", "req-00011"]


def test_a_writer_that_missed_a_rotation_seals_under_the_new_key(
    url: str, tmp_path: Path
) -> None:
    with open_store(url, tmp_path, keys=KEYS) as ingest, \
            open_store(url, tmp_path, keys=KEYS) as admin, \
            open_store(url, tmp_path, keys=KEYS) as reader:
        ingest.insert_traces(traces(1))
        assert reader.get_trace("req-00000") is not None  # its keyring: key 1
        admin.body_keys.rotate()
        ingest.insert_traces(traces(1, start=1))  # its keyring still says key 1
        assert body_keys(url) == [1, 2]
        for store in (admin, reader):  # the reader learns of key 2 from the row
            got = store.get_trace("req-00001")
            assert got is not None and got["input"][1]["content"] == PROMPTS[0]
            assert "body_error" not in got


def test_a_tampered_or_moved_body_is_reported_unreadable(url: str, tmp_path: Path) -> None:
    with open_store(url, tmp_path, keys=KEYS) as store:
        store.insert_traces(traces(3))
        sqlite = url.startswith("sqlite")
        key = "seq = %s" if sqlite else "id = %s"

        def at(i: int) -> Any:
            return i + 1 if sqlite else f"req-0000{i}"

        # flip one bit of trace 0's sealed body; give trace 1 trace 2's sealed previews
        [(sealed,)] = execute(url, f"SELECT sealed FROM trace_bodies WHERE {key}", (at(0),))
        flipped = bytearray(sealed)
        flipped[40] ^= 0x01
        execute(url, f"UPDATE trace_bodies SET sealed = %s WHERE {key}",
                (bytes(flipped), at(0)))
        [(previews,)] = execute(
            url, f"SELECT sealed_preview FROM trace_bodies WHERE {key}", (at(2),))
        execute(url, f"UPDATE trace_bodies SET sealed_preview = %s WHERE {key}",
                (bytes(previews), at(1)))
        tampered = store.get_trace("req-00000")
        assert tampered is not None
        assert tampered["input"] is None and tampered["output"] is None
        assert tampered["body_error"].startswith("unreadable: the stored body")
        assert tampered["model"] == "alpha", "the rest of the trace is there"
        page, _ = store.list_traces(TraceQuery(), limit=10)
        previews = {r["id"]: r["preview"] for r in page}
        assert previews["req-00001"] == {"input": None, "output": None}, "moved: refused"
        assert previews["req-00000"]["input"] == PROMPTS[0], "its previews were not touched"
        intact = store.get_trace("req-00002")
        assert intact is not None and "body_error" not in intact
        assert store.reencrypt_bodies() == 0, "nothing under an old key"


def test_another_deployment_secret_is_a_clear_error(url: str, tmp_path: Path) -> None:
    open_store(url, tmp_path, keys=KEYS).close()
    other = StoreKeys.from_deployment_secret(b"not-the-secret-of-this-store-999")
    with pytest.raises(DataKeyError, match="does not open data key 1 of this store"):
        open_store(url, tmp_path, keys=other)
    with open_store(url, tmp_path, keys=KEYS) as store:
        store.insert_traces(traces(1))
    with open_store(url, tmp_path) as keyless:  # no store key: sealed bodies stay sealed
        got = keyless.get_trace("req-00000")
        assert got is not None and got["input"] is None
        assert got["body_error"].startswith("encrypted: this store was opened without")


def test_plaintext_bodies_are_sealed_when_encryption_is_turned_on(
    url: str, tmp_path: Path
) -> None:
    with open_store(url, tmp_path, keys=KEYS, encrypt_bodies=False) as plain:
        plain.insert_traces(traces(3))
        assert search(plain, "quok") == ["req-00000", "req-00002"], "words and prefixes"
        assert plain.reencrypt_bodies() == 0, "not encrypting: plaintext stays"
    assert body_keys(url) == [None] * 3
    assert PROMPTS[0].encode() in raw_contents(url), "the check can fail"
    with open_store(url, tmp_path, keys=KEYS) as store:
        assert store.body_keys.status()["to_reencrypt"] == 3
        assert search(store, "quokka") == [], "hashed words: plaintext rows not yet"
        while store.reencrypt_bodies(2):
            pass
        assert body_keys(url) == [1] * 3
        assert search(store, "quokka") == ["req-00000", "req-00002"]
        got = store.get_trace("req-00001")
        assert got is not None and got["input"][1]["content"] == PROMPTS[1]
        page, _ = store.list_traces(TraceQuery(), limit=10)
        assert page[0]["preview"]["output"] == f"{ANSWER} 2"
    assert_no_plaintext(raw_contents(url), *PROMPTS, ANSWER)
