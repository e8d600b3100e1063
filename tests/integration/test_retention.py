"""Per-team retention on both engines: a team's traces past its own TTL go (with their
bodies, text index entries and feedback), every other team's stay; the ingest runs it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.observe.ingest import Ingest
from bastion.store import Store, StoreUnavailable, TraceQuery, open_store
from tests.store_helpers import fresh_database, record

DAY = 86_400.0


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with fresh_database(request.param, tmp_path) as url:
        opened = open_store(url, tmp_path)
        try:
            yield opened
        finally:
            opened.close()


def fill(store: Store, now: float) -> None:
    """Teams a and b, each with traces 1, 5 and 20 days old (and feedback on each)."""
    records = []
    for i, (team, age) in enumerate((t, a) for t in ("a", "b") for a in (1, 5, 20)):
        records.append(record(i, team=team, ts=now - age * DAY, user=f"u-{team}",
                              input=[{"role": "user", "content": f"teamword{team} {age}"}]))
    store.insert_traces(records)
    for r in records:
        store.upsert_feedback({"request_id": r["id"], "value": "up"})


def ages(store: Store, team: str, now: float) -> list[int]:
    rows, _ = store.list_traces(TraceQuery(team=team))
    return sorted(round((now - r["ts"]) / DAY) for r in rows)


def test_a_teams_ttl_deletes_only_its_older_traces(store: Store) -> None:
    now = time.time()
    fill(store, now)
    assert store.retention.delete_team_before("a", now - 3 * DAY) == 2
    assert ages(store, "a", now) == [1] and ages(store, "b", now) == [1, 5, 20]
    assert store.subjects.remaining("u-a") == {"traces": 1, "bodies": 1, "text_index": 1,
                                               "feedback": 1}, "bodies and feedback went too"
    rows, _ = store.list_traces(TraceQuery(text="teamworda"))
    assert len(rows) == 1, "the text index has only the kept trace"
    assert store.retention.delete_team_before("a", now - 3 * DAY) == 0
    assert store.retention.delete_team_before("nobody", now) == 0


def test_the_ingest_runs_the_global_and_the_team_ttls(store: Store, tmp_path: Path) -> None:
    now = time.time()
    fill(store, now)
    worker = Ingest(tmp_path / "spool", 1, lambda: store, unavailable=(StoreUnavailable,),
                    retention_days=10, retention_by_team={"a": 3, "b": 10})
    assert worker.run_once()
    assert ages(store, "a", now) == [1], "a: its own 3 days"
    assert ages(store, "b", now) == [1, 5], "b: the global 10 days (its own is the same)"
    assert worker.deleted == 3


def test_team_ttls_alone_run_without_a_global_one(store: Store, tmp_path: Path) -> None:
    now = time.time()
    fill(store, now)
    worker = Ingest(tmp_path / "spool", 1, lambda: store, unavailable=(StoreUnavailable,),
                    retention_by_team={"b": 2})
    assert worker.run_once()
    assert ages(store, "a", now) == [1, 5, 20] and ages(store, "b", now) == [1]


def test_the_ingest_rolls_up_the_stats_and_a_teams_ttl_reaches_them(
        store: Store, tmp_path: Path) -> None:
    now = time.time()
    fill(store, now)
    worker = Ingest(tmp_path / "spool", 1, lambda: store, unavailable=(StoreUnavailable,))
    while True:  # each pass rolls for a quarter of a second, in a thread of its own
        before = worker.rolled
        assert worker.run_once()
        worker.wait_rolled(30)
        if worker.rolled == before:
            break
        worker._next_rollup = 0.0
    assert worker.rolled >= 3  # the half hours of the 1, 5 and 20 days old traces, at least
    month = store.stats(now - 30 * DAY, now, 86_400, ["team"])
    # from the oldest trace's half hour on (before it there are none to roll)
    assert month["rolled_up_s"] > 19 * DAY and month["percentiles"] == "histogram"
    assert {g["key"]["team"]: g["requests"] for g in month["groups"]} == {"a": 3, "b": 3}
    store.retention.delete_team_before("a", now - 3 * DAY)
    month = store.stats(now - 30 * DAY, now, 86_400, ["team"])
    assert {g["key"]["team"]: g["requests"] for g in month["groups"]} == {"a": 1, "b": 3}


def test_the_running_ingest_rolls_up_in_a_thread_of_its_own(store: Store, tmp_path: Path) -> None:
    import threading

    now = time.time()
    store.insert_traces([record(i, ts=now - (i + 1) * 3600) for i in range(8)])
    worker = Ingest(tmp_path / "spool", 1, lambda: store, unavailable=(StoreUnavailable,))
    draining = threading.Event()
    loop = threading.Thread(target=worker.run, args=(draining,), kwargs={"poll": 0.02})
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while store.stats(now - DAY, now, 3600, [])["rolled_up_s"] < 7 * 3600:
            assert time.monotonic() < deadline, f"{worker.rolled} half hours rolled"
            time.sleep(0.2)
        assert worker._rolling is not None  # the passes ran beside the loop, not in it
    finally:
        draining.set()
        loop.join(30)
    assert not loop.is_alive() and not worker._rolling.is_alive()
