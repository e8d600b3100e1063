"""The stats' half-hourly rollups on both engines: a long range read from them gives the
same sums as the traces and percentiles within 2 %, and every change to the traces (a
late insert, an erasure, retention, a repricing) reaches them. Without a reachable
Postgres the Postgres half skips, or fails when CI=true."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bastion.store import Store, open_store
from bastion.store import rolled_stats as rolled
from bastion.store.rollups import GRACE_S, UNIT_S
from tests.store_helpers import (
    create_database,
    drop_database,
    pg_url,
    psql,
    record,
    require_postgres,
)

START = math.floor(1_790_000_000 / UNIT_S) * UNIT_S  # a half hour's start, 2026-09-21
SPAN = 2 * 86_400.0
END = START + SPAN
LATER = END + 86_400  # "now" for rolling: every unit of the data closed
PCT = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms", "ttft_p95_ms")


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    require_postgres()
    name = create_database()
    yield name
    drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/data/bastion.db"
    else:
        url = pg_url(request.getfixturevalue("pg_database"))
    s = open_store(url, tmp_path)
    if request.param == "postgres":
        psql(url, "TRUNCATE traces, trace_bodies, feedback, trace_rollups, rollup_units")
    yield s
    s.close()


def dataset(n: int = 1500, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        model = rng.choice(["alpha", "beta"])
        status = rng.choices([200, 429, 500, 499, 400, None], [80, 5, 5, 3, 4, 3])[0]
        stream = rng.random() < 0.5
        latency = rng.lognormvariate(5.5, 0.7)
        out.append(record(
            i, ts=START + rng.uniform(0, SPAN), model=model,
            deployment=f"{model}-{rng.randint(1, 2)}",
            team=rng.choice(["support", "sales", None]), key_id=f"key-{rng.randint(1, 4)}",
            user=rng.choice(["ann", "bob", "cy"]), status=status,
            error=None if status in (200, None) else f"status {status}",
            output_tokens=rng.choice([0, rng.randint(1, 300)]),
            input_tokens=rng.randint(1, 500), cost=round(rng.uniform(0, 0.01), 6),
            latency_ms=rng.choice([latency, latency, latency, 0.0]),
            ttft_ms=latency * rng.uniform(0.05, 0.4) if stream else None,
            queue_ms=rng.choice([None, 0.0, rng.uniform(0, 20)]),
            guard_action=rng.choice([None, None, None, "redact", "block"])))
    return out


def reference(store: Store, monkeypatch: pytest.MonkeyPatch, *args: Any,
              **kwargs: Any) -> dict[str, Any]:
    """The same stats read from the traces (the rollups turned off). The stats read from
    rollups are compared with these: the sums equal, the percentiles within 2 %."""
    with monkeypatch.context() as m:
        m.setattr(rolled, "MIN_WINDOW_S", math.inf)
        return store.stats(*args, **kwargs)


def same(got: dict[str, Any], want: dict[str, Any], where: str = "totals") -> None:
    for name, value in want.items():
        if name in PCT:
            if value is None:
                assert got[name] is None, (where, name)
            else:
                assert got[name] == pytest.approx(value, rel=0.021), (where, name)
        elif isinstance(value, float):
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (where, name)
        elif name not in ("buckets", "key"):
            assert got[name] == value, (where, name)


def agree(got: dict[str, Any], want: dict[str, Any]) -> None:
    same(got["totals"], want["totals"])
    for b_got, b_want in zip(got.get("buckets", []), want.get("buckets", []), strict=True):
        assert b_got["ts"] == b_want["ts"]
        same(b_got, b_want, f"bucket {b_want['ts']}")
    groups = {str(g["key"]): g for g in got.get("groups", [])}
    assert set(groups) == {str(g["key"]) for g in want.get("groups", [])}
    for g in want.get("groups", []):
        same(groups[str(g["key"])], g, str(g["key"]))
        for b_got, b_want in zip(groups[str(g["key"])].get("buckets", []),
                                 g.get("buckets", []), strict=True):
            same(b_got, b_want, f"{g['key']} {b_want['ts']}")


QUERIES = [
    {"bucket_s": 3 * 3600, "group_by": []},
    {"bucket_s": None, "group_by": ["model"]},
    {"bucket_s": 12 * 3600, "group_by": ["team"], "filters": {"model": "alpha"}},
    {"bucket_s": 3600, "group_by": ["deployment", "key_id"]},
    {"bucket_s": 1800, "group_by": [], "team": "support", "filters": {"key_id": "key-2"}},
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: str(sorted(q.items())))
def test_long_ranges_read_the_rollups_and_agree_with_the_traces(
        store: Store, monkeypatch: pytest.MonkeyPatch, query: dict[str, Any]) -> None:
    store.insert_traces(dataset())
    since, until = START + 1234.5, END - 777.0  # partial half hours at both ends
    args = (since, until, query["bucket_s"], query["group_by"])
    kwargs = {k: query[k] for k in ("team", "filters") if k in query}
    want = reference(store, monkeypatch, *args, **kwargs)
    assert want["rolled_up_s"] == 0
    before = store.stats(*args, **kwargs)  # nothing rolled: the traces' path
    assert before["percentiles"] == "exact" and before["rolled_up_s"] == 0
    assert store.roll_up(now=LATER, budget_s=0) == 1  # one half hour: under half covered
    assert store.stats(*args, **kwargs)["rolled_up_s"] == 0
    while store.roll_up(now=LATER, budget_s=30):
        pass
    after = store.stats(*args, **kwargs)
    assert after["rolled_up_s"] == (math.floor(until / UNIT_S) - math.ceil(since / UNIT_S)) * UNIT_S
    agree(after, want)
    assert store.roll_up(now=LATER) == 0  # all current


def test_a_late_trace_makes_its_half_hour_stale_until_rolled_again(store: Store) -> None:
    store.insert_traces(dataset(300))
    while store.roll_up(now=LATER, budget_s=30):
        pass
    first = store.stats(START, END, 3600, [])
    full = first["rolled_up_s"]
    assert full == SPAN
    late = record(99_999, ts=START + 5000.0, latency_ms=4321.0, cost=0.5)
    store.insert_traces([late])  # into a closed, rolled half hour (a replayed spool)
    second = store.stats(START, END, 3600, [])
    assert second["rolled_up_s"] == full - UNIT_S  # that half hour is read from the traces
    assert second["totals"]["requests"] == first["totals"]["requests"] + 1
    assert second["totals"]["cost"] == pytest.approx(first["totals"]["cost"] + 0.5)
    assert store.roll_up(now=LATER) == 1
    third = store.stats(START, END, 3600, [])
    assert third["rolled_up_s"] == full
    same(third["totals"], second["totals"])


def test_erasure_retention_and_repricing_reach_the_rollups(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.insert_traces(dataset(600))
    while store.roll_up(now=LATER, budget_s=30):
        pass
    args = (START, END, 6 * 3600, ["team"])
    bob = reference(store, monkeypatch, START, END, None, [], filters={"user": "bob"})
    total = store.stats(*args)["totals"]["requests"]
    store.subjects.erase("bob")
    erased = store.stats(*args)
    assert erased["totals"]["requests"] == total - bob["totals"]["requests"] > 0
    agree(erased, reference(store, monkeypatch, *args))

    cut = START + 86_400 + 900.0  # inside a half hour
    store.delete_before(cut)
    kept = store.stats(*args)
    agree(kept, reference(store, monkeypatch, *args))
    r = store._t.rollups
    with store._engine.connect() as conn:
        oldest = conn.execute(select(func.min(r.c.unit))).scalar()
    assert oldest is None or oldest >= math.floor(cut / UNIT_S)

    store.reprice(START, END, lambda row: 1.0, "v2")
    repriced = store.stats(*args)
    assert repriced["totals"]["cost"] == pytest.approx(float(repriced["totals"]["requests"]))
    while store.roll_up(now=LATER, budget_s=30):
        pass
    rolled_again = store.stats(*args)
    assert rolled_again["rolled_up_s"] > 0
    agree(rolled_again, reference(store, monkeypatch, *args))


def test_rolling_in_two_threads_at_once_counts_each_trace_once(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.insert_traces(dataset(800))
    errors: list[BaseException] = []

    def roll() -> None:
        try:
            while store.roll_up(now=LATER, budget_s=30):
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=roll) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    args = (START, END, 3 * 3600, ["model"])
    got = store.stats(*args)
    assert got["rolled_up_s"] == SPAN
    agree(got, reference(store, monkeypatch, *args))
    r = store._t.rollups.c
    with store._engine.connect() as conn:
        rows = conn.execute(select(r.unit, r.level, r.team, r.model, r.deployment, r.key_id)).all()
    assert len(rows) == len(set(rows))  # no half hour rolled twice over


def test_only_closed_half_hours_are_rolled(store: Store) -> None:
    now = math.floor(1_800_000_000 / UNIT_S) * UNIT_S + 60.0  # a minute into a half hour
    store.insert_traces([record(1, ts=now - 30), record(2, ts=now - UNIT_S - 10),
                         record(3, ts=now - 3 * UNIT_S)])
    assert store.roll_up(now=now, budget_s=30) == 2  # the open unit and the one within GRACE_S wait
    assert GRACE_S > 60
    assert store.roll_up(now=now + GRACE_S, budget_s=30) == 1  # the grace is over
    assert store.roll_up(now=now + GRACE_S) == 0


def test_other_queries_read_the_traces(store: Store) -> None:
    store.insert_traces(dataset(200))
    while store.roll_up(now=LATER, budget_s=30):
        pass
    cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((START, END, 3600, ["user"]), {}),
        ((START, END, 3600, []), {"filters": {"user": "ann"}}),
        ((START, END, None, ["guard_action"]), {}),
        ((START, END, 600, []), {}),  # 10-minute buckets
        ((END - 3600, END, 1800, []), {}),  # under 6 hours
    ]
    for args, kwargs in cases:
        got = store.stats(*args, **kwargs)
        assert got["rolled_up_s"] == 0 and got["percentiles"] == "exact", args


def test_a_range_reaching_back_before_the_oldest_trace_reads_the_rollups(store: Store) -> None:
    store.insert_traces(dataset(300))
    while store.roll_up(now=LATER, budget_s=30):
        pass
    month = store.stats(END - 30 * 86_400, END, 12 * 3600, [])  # the data holds 2 days
    assert month["percentiles"] == "histogram" and month["rolled_up_s"] == SPAN
    assert month["totals"]["requests"] == 300
