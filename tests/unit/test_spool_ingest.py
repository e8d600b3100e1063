"""The trace spool and the ingest: whole files, every trace stored once, a locked store
waits, orphans of dead gateways are taken over, refused records are kept aside."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bastion.config import load_settings
from bastion.context import RequestContext, Span
from bastion.errors import ConfigError
from bastion.observe.ingest import Ingest
from bastion.observe.spool import Spool, c_lines, decode, encode
from bastion.observe.spool_crypto import (
    HEADER_BYTES,
    KEY_FILE,
    load_secret,
    open_file,
    spool_key,
)
from bastion.routing.fairqueue import Claim
from bastion.store import Store, StoreUnavailable, open_store


def ctx(i: int, **extra: object) -> RequestContext:
    c = RequestContext(f"t{i:04d}", "/v1/chat/completions", 10.0)
    c.operation, c.model, c.backend, c.stream, c.status = "chat", "m", "d", False, 200
    c.body = {"model": "m", "messages": [{"role": "user", "content": f"hi {i}"}]}
    c.raw_body = orjson.dumps(c.body)
    c.response_body = b'{"choices":[{"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}'
    c.finished_at, c.wall_time = 10.02, 1_800_000_000.0 + i
    c.claim = Claim(priority=3, tenant="acme")
    c.spans = [Span("backend", 10.001, 10.019, {"deployment": "d", "status": 200})]
    for k, v in extra.items():
        setattr(c, k, v)
    return c


def test_encode_decode_round_trip_keeps_what_the_record_needs() -> None:
    original = ctx(1, user="u", session="s", first_token_at=10.005, usage={"prompt_tokens": 3},
                   chunks=[b'data: {"choices":[]}\n\n', b"data: [DONE]\n\n"], stream=True)
    back = decode(encode(original))
    for name in ("request_id", "endpoint", "received_at", "model", "backend", "user", "session",
                 "first_token_at", "finished_at", "wall_time", "usage", "status", "body"):
        assert getattr(back, name) == getattr(original, name), name
    assert back.claim == Claim(priority=3, tenant="acme")
    assert back.spans == original.spans
    assert orjson.loads(back.response_body or b"") == orjson.loads(original.response_body or b"")
    assert back.chunks == [b"".join(original.chunks or [])]


def test_every_field_of_the_event_table_goes_at_its_position_both_ways() -> None:
    """encode() writes the fields positionally (for speed); each must sit where the table
    (spool._FIELDS) says, with or without bodies, and decode must read it back."""
    from bastion.observe import spool as spool_module

    original = ctx(2)
    for i, name in enumerate(spool_module._FIELDS):
        if name in ("request_id", "endpoint", "received_at"):
            continue
        setattr(original, name, f"value-{i}" if name != "usage" else {"n": i})
    for bodies in (True, False):
        data = orjson.loads(encode(original, bodies=bodies))
        for i, name in enumerate(spool_module._FIELDS):
            want = getattr(original, name)
            if not bodies and name in spool_module.BODY_FIELDS:
                want = None
            assert data[1 + i] == want, (bodies, name)
    back = decode(encode(original))
    for name in spool_module._FIELDS:
        assert getattr(back, name) == getattr(original, name), name


def test_pretty_printed_bodies_stay_one_line() -> None:
    c = ctx(2)
    c.raw_body = orjson.dumps(c.body, option=orjson.OPT_INDENT_2)
    c.response_body = b'{\n  "choices": []\n}'
    line = encode(c)
    assert line.count(b"\n") == 1
    assert decode(line).body == c.body


def test_a_bare_carriage_return_in_a_body_stays_in_its_line(tmp_path: Path) -> None:
    c = ctx(4)
    c.raw_body = b'{"model": "m",\r"messages": [{"role": "user", "content": "hi 4"}]}'
    line = encode(c)
    assert line.count(b"\n") == 1 and b"\r" in line  # embedded as sent
    ingest = make_ingest(tmp_path)
    (ingest.dir / "00000000000000000001-x-1.jsonl").write_bytes(line + encode(ctx(5)))
    assert ingest.run_once()
    assert stored_ids(tmp_path) == ["t0004", "t0005"] and ingest.rejected == 0


def encoded(c: RequestContext, fast: bool) -> bytes:
    """c's line as the C encoder (fast) or Python's writes it."""
    if not fast:
        return encode(c)
    lines = c_lines()
    if lines is None:
        pytest.skip("the C encoder is not built (python setup.py build_ext --inplace)")
    assert lines.add(c) == 1
    return bytes(lines.take())


@pytest.mark.parametrize("fast", [True, False], ids=["c", "python"])
def test_spool_writes_whole_files_and_skips_non_inference_calls(
    tmp_path: Path, fast: bool
) -> None:
    line = max(len(encoded(ctx(i), fast)) for i in range(7))
    # a file is handed to the ingest (renamed .jsonl) once it holds 3 lines' worth
    spool = Spool(tmp_path, file_bytes=3 * line - 1, fast=fast)

    def on_disk() -> list[str]:
        files = sorted([*spool.dir.glob("*.jsonl"), *spool.dir.glob("*.open")])
        return [decode(x).request_id for f in files for x in f.read_bytes().splitlines()]

    for i in range(7):
        spool.observe(ctx(i))
        spool.write_pending()  # what the loop runs before the answers go out
        # in the file before any flush: a SIGKILL now loses nothing
        assert on_disk() == [f"t{j:04d}" for j in range(i + 1)]
    spool.observe(RequestContext("h", "/health/ready", 1.0))  # not traced
    assert spool.flush() == 1  # the open file's one line
    files = sorted(spool.dir.glob("*.jsonl"))
    assert [len(f.read_bytes().splitlines()) for f in files] == [3, 3, 1]
    assert on_disk() == [f"t{i:04d}" for i in range(7)]
    assert not list(spool.dir.glob("*.open")), "flushed: no file left open"


def open_sqlite(home: Path) -> Store:
    return open_store(None, home)


def make_ingest(tmp_path: Path, owner: int | None = None) -> Ingest:
    home = tmp_path / "home"
    return Ingest(tmp_path / "spool", owner or os.getpid(), lambda: open_sqlite(home),
                  unavailable=(StoreUnavailable,), retry_interval=0.0, batch_size=4)


def stored_ids(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "home" / "bastion.db") as conn:
        return sorted(r[0] for r in conn.execute("select id from traces"))


def test_ingest_stores_every_trace_once_and_removes_the_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", chunk_lines=1)
    for i in range(12):
        spool.observe(ctx(i))
    spool.flush()
    ingest = make_ingest(tmp_path)
    assert ingest.run_once() is True
    assert stored_ids(tmp_path) == [f"t{i:04d}" for i in range(12)]
    assert not list(spool.dir.glob("*.jsonl"))
    for i in range(10, 14):  # 10 and 11 again (a replay): stored once
        spool.observe(ctx(i))
    spool.flush()
    ingest.run_once()
    assert stored_ids(tmp_path) == [f"t{i:04d}" for i in range(14)]


def test_orphaned_spool_of_a_dead_gateway_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          check=True, capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    orphan = tmp_path / "spool" / str(dead_pid)
    orphan.mkdir(parents=True)
    (orphan / "00000000000000000001-x-1.jsonl").write_bytes(encode(ctx(7)))
    ingest = make_ingest(tmp_path)
    assert ingest.run_once()
    assert stored_ids(tmp_path) == ["t0007"] and not orphan.exists()


def test_undecodable_lines_are_kept_aside_not_dropped(tmp_path: Path) -> None:
    ingest = make_ingest(tmp_path)
    (ingest.dir / "00000000000000000001-x-1.jsonl").write_bytes(b"{garbage\n" + encode(ctx(3)))
    assert ingest.run_once()
    assert stored_ids(tmp_path) == ["t0003"]
    assert (tmp_path / "spool" / "rejected.jsonl").read_bytes() == b"{garbage\n"
    assert ingest.rejected == 1


@pytest.mark.parametrize("mode", ["full", "metadata"])
def test_content_mode_per_tenant_applies_in_the_ingest(tmp_path: Path, mode: str) -> None:
    ingest = make_ingest(tmp_path)
    ingest.content, ingest.content_by_tenant = "redacted", {"acme": mode}
    (ingest.dir / "00000000000000000001-x-1.jsonl").write_bytes(encode(ctx(5)))
    ingest.run_once()
    with sqlite3.connect(tmp_path / "home" / "bastion.db") as conn:
        (content_mode,) = conn.execute("select content_mode from traces").fetchone()
    assert content_mode == mode


def test_retention_deletes_old_traces(tmp_path: Path) -> None:
    import time as clock

    ingest = make_ingest(tmp_path)
    ingest.retention_days = 1.0
    old, new = ctx(1), ctx(2)
    old.wall_time = clock.time() - 3 * 86400
    new.wall_time = clock.time()
    (ingest.dir / "00000000000000000001-x-1.jsonl").write_bytes(encode(old) + encode(new))
    assert ingest.run_once()
    assert stored_ids(tmp_path) == ["t0002"] and ingest.deleted == 1


def test_lines_of_older_gateways_still_decode() -> None:
    from bastion.observe import spool as spool_module

    c = ctx(7)
    c.parsed_at = 10.001
    c.guards, c.guard_action = [{"scanner": "pii", "action": "redact"}], "redact"
    line = orjson.loads(encode(c))
    assert line[0] == spool_module.VERSION == 3
    assert decode(orjson.dumps(line)).guard_action == "redact"
    n = len(spool_module._FIELDS)
    for version, fields in spool_module._FIELDS_BY_VERSION.items():
        old = [version, *line[1 : len(fields) + 1], *line[n + 1 :]]  # fewer fields
        back = decode(orjson.dumps(old))
        assert back.request_id == c.request_id and back.body == c.body
        assert (back.parsed_at is None) == (version < 2)
        assert (back.guards is None) == (version < 3)
    with pytest.raises(ValueError, match="version"):
        decode(orjson.dumps([99, 1, 2]))


def test_spool_writes_a_partial_chunk_each_flush_interval(tmp_path: Path) -> None:
    """The writer asks the event loop for the chunk it is filling: a quiet gateway's
    traces reach the disk within a flush interval or two, without flush() or close()."""
    import asyncio

    async def scenario() -> list[Path]:
        spool = Spool(tmp_path, flush_interval=0.05)
        spool.start(asyncio.get_running_loop())
        try:
            spool.observe(ctx(1))
            spool.observe(ctx(2))
            for _ in range(200):
                await asyncio.sleep(0.01)
                files = sorted(spool.dir.glob("*.jsonl"))
                if files:
                    return files
            return []
        finally:
            spool.close()

    files = asyncio.run(scenario())
    assert files, "nothing written within 2 s"
    lines = [x for f in files for x in f.read_bytes().splitlines()]
    assert [decode(x).request_id for x in lines] == ["t0001", "t0002"]


def test_ingest_priority_idle_then_normal_for_the_drain() -> None:
    """SCHED_IDLE while the gateway serves; back to normal scheduling to drain (in a child
    process: the test runner's own scheduling is left alone)."""
    if not hasattr(os, "SCHED_IDLE"):
        pytest.skip("no SCHED_IDLE on this platform")
    code = (
        "import os\n"
        "from bastion.observe.priority import idle_priority, normal_priority\n"
        "assert idle_priority()\n"
        "print(os.sched_getscheduler(0) == os.SCHED_IDLE)\n"
        "normal_priority(0)\n"
        "print(os.sched_getscheduler(0) == os.SCHED_OTHER)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    assert out.stdout.split() == ["True", "True"]


def test_keep_freed_memory_sets_both_thresholds() -> None:
    code = ("from bastion.observe.spool import keep_freed_memory\n"
            "print(keep_freed_memory())\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    assert out.stdout.strip() == "True"  # glibc here (Debian); False where no mallopt


def test_idle_ingest_goes_normal_when_behind_and_back_once_caught_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.observe import priority

    calls: list[str] = []
    monkeypatch.setattr(priority, "idle_priority", lambda tid=0: calls.append("idle") or True)
    monkeypatch.setattr(priority, "normal_priority",
                        lambda tid=0: calls.append("normal") or True)
    p = priority.IdleUnlessBehind(123, max_lag=30.0)
    for age in (1.0, 29.0):  # keeping up: stays idle
        p.lag(age)
    assert calls == ["idle"] and p.idle
    p.lag(31.0)  # behind: normal scheduling, and it stays there until well caught up
    p.lag(20.0)
    assert calls == ["idle", "normal"] and not p.idle
    p.lag(14.0)
    assert calls == ["idle", "normal", "idle"] and p.idle
    p.normal()  # the drain: normal, and no going back
    p.lag(0.0)
    assert calls == ["idle", "normal", "idle", "normal"] and not p.idle


def test_refused_normal_priority_is_not_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.observe import priority

    calls: list[str] = []
    monkeypatch.setattr(priority, "idle_priority", lambda tid=0: True)
    monkeypatch.setattr(priority, "normal_priority",
                        lambda tid=0: calls.append("normal") and False)
    p = priority.IdleUnlessBehind(1, max_lag=5.0)
    p.lag(10.0)
    p.lag(60.0)
    assert calls == ["normal"] and p.idle


def test_ingest_reports_the_age_of_each_file_and_zero_when_done(tmp_path: Path) -> None:
    import time as clock

    ingest = make_ingest(tmp_path)
    ages: list[float] = []
    ingest.on_lag = ages.append
    old = clock.time_ns() - 40 * 10**9
    (ingest.dir / f"{old:020d}-x-1.jsonl").write_bytes(encode(ctx(1)))
    (ingest.dir / f"{clock.time_ns():020d}-x-2.jsonl").write_bytes(encode(ctx(2)))
    assert ingest.run_once()
    assert len(ages) == 3 and 39 < ages[0] < 60 and 0 <= ages[1] < 5 and ages[2] == 0.0


@pytest.mark.parametrize("fast", [True, False], ids=["c", "python"])
def test_a_spool_that_cannot_write_drops_beyond_its_memory_bound_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    import bastion.observe.spool as spool_module

    def disk_full(*args: object) -> int:
        raise OSError(28, "No space left on device")

    line = max(len(encoded(ctx(i), fast)) for i in range(3))
    spool = Spool(tmp_path, chunk_lines=1, max_pending=5 * line, fast=fast)
    told: list[int] = []
    spool.on_drop = told.append
    monkeypatch.setattr(spool_module, "_write_file", disk_full)
    monkeypatch.setattr(spool_module, "_WRITE", disk_full)
    for i in range(12):
        spool.observe(ctx(i))
        spool._write()  # the writer's pass: fails, keeps the chunks
    assert spool._pending <= 5 * line
    kept = len(spool._chunks)
    assert kept >= 4 and spool.dropped == 12 - kept and sum(told) == spool.dropped
    monkeypatch.undo()  # the disk is back
    assert spool.flush() == kept
    stored = [decode(x).request_id for f in sorted(spool.dir.glob("*.jsonl"))
              for x in f.read_bytes().splitlines()]
    assert not list(spool.dir.glob("*.open")) and not list(spool.dir.glob(".*.tmp"))
    assert stored == [f"t{i:04d}" for i in range(kept)], "the oldest are kept, in order"


# ---------------------------------------------------------------- sealed spool, SIGKILL leftovers
SECRET_TEXT = "password=hunter2xyz sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"
KEY = bytes(range(32))


def secret_ctx(i: int) -> RequestContext:
    c = ctx(i)
    c.body = {"model": "m", "messages": [{"role": "user", "content": f"{SECRET_TEXT} {i}"}]}
    c.raw_body = orjson.dumps(c.body)
    c.guarded_body = c.body
    return c


def sealed_ingest(tmp_path: Path, key: bytes | None = KEY, owner: int | None = None) -> Ingest:
    home = tmp_path / "home"
    return Ingest(tmp_path / "spool", owner or os.getpid(), lambda: open_sqlite(home),
                  unavailable=(StoreUnavailable,), retry_interval=0.0, batch_size=4, key=key)


def spool_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("fast", [True, False], ids=["c", "python"])
def test_a_sealed_spool_holds_no_body_in_the_clear_and_ingests_all(
    tmp_path: Path, fast: bool
) -> None:
    spool = Spool(tmp_path / "spool", key=KEY, fast=fast)
    for i in range(5):
        spool.observe(secret_ctx(i))
    spool.write_pending()
    assert b"hunter2xyz" not in spool_bytes(tmp_path / "spool"), "in the file, sealed"
    assert b"t0001" not in spool_bytes(tmp_path / "spool"), "the metadata too"
    spool.flush()
    assert b"hunter2xyz" not in spool_bytes(tmp_path / "spool")
    ingest = sealed_ingest(tmp_path)
    assert ingest.run_once() is True
    assert stored_ids(tmp_path) == [f"t{i:04d}" for i in range(5)]
    assert ingest.unauthenticated == 0 and ingest.torn == 0
    assert not list(spool.dir.iterdir())


def test_a_record_failing_authentication_is_counted_and_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", key=KEY)
    for i in range(3):
        spool.observe(secret_ctx(i))
        spool.write_pending()  # a record each (as three loop iterations would)
    spool.flush()
    (path,) = spool.dir.glob("*.jsonl")
    data = bytearray(path.read_bytes())
    second = HEADER_BYTES + 4 + int.from_bytes(data[HEADER_BYTES : HEADER_BYTES + 4], "little")
    data[second + 20] ^= 1  # one bit of the second record's ciphertext
    path.write_bytes(bytes(data))
    ingest = sealed_ingest(tmp_path)
    assert ingest.run_once() is True
    assert stored_ids(tmp_path) == ["t0000", "t0002"]
    assert ingest.unauthenticated == 1
    assert ingest.rejected == 0, "nothing of it kept in the clear"
    # with another key: every record counted, nothing stored, the file kept (sealed)
    spool.observe(secret_ctx(7))
    spool.flush()
    wrong = sealed_ingest(tmp_path, key=bytes(32))
    assert wrong.run_once() is True
    assert wrong.unauthenticated == 1 and "t0007" not in stored_ids(tmp_path)
    kept = list((tmp_path / "spool" / "unreadable").iterdir())
    assert len(kept) == 2 and b"hunter2xyz" not in spool_bytes(tmp_path / "spool")


@pytest.mark.parametrize("key", [KEY, None], ids=["sealed", "plain"])
def test_a_torn_last_line_is_skipped_and_the_rest_stored(tmp_path: Path,
                                                         key: bytes | None) -> None:
    """What a SIGKILL mid-write leaves: the killed gateway's open file, cut short."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, check=True)
    spool = Spool(tmp_path / "spool", key=key)
    for i in range(3):
        spool.observe(ctx(i))
        spool.write_pending()
    (path,) = spool.dir.glob("*.open")
    orphan = tmp_path / "spool" / dead.stdout.decode().strip()
    orphan.mkdir()
    (orphan / path.name).write_bytes(path.read_bytes()[:-7])  # torn in the last line
    path.unlink()
    ingest = sealed_ingest(tmp_path, key=key)
    assert ingest.run_once() is True
    assert stored_ids(tmp_path) == ["t0000", "t0001"]
    assert ingest.torn == 1 and ingest.rejected == 0 and ingest.unauthenticated == 0
    assert not orphan.exists()


@pytest.mark.parametrize("fast", [True, False], ids=["c", "python"])
def test_metadata_mode_spools_no_body(tmp_path: Path, fast: bool) -> None:
    spool = Spool(tmp_path, fast=fast, bodies=False)
    spool.observe(secret_ctx(1))
    spool.write_pending()
    raw = spool_bytes(tmp_path)
    assert b"hunter2xyz" not in raw and b"yo" not in raw
    back = decode(raw.splitlines()[0])
    assert back.request_id == "t0001" and back.model == "m" and back.status == 200
    assert back.body is None and back.response_body is None and back.guarded_body is None


def test_the_generated_key_is_private_and_stable_and_an_empty_one_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_secret(None, tmp_path / "home")
    assert load_secret(None, tmp_path / "home") == first and len(first) == 64
    assert (tmp_path / "home" / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert spool_key(first) != spool_key(b"another secret of some length")
    for value in ("", " ", "short"):
        monkeypatch.setenv("BASTION_ENCRYPTION_KEY", value)
        with pytest.raises(ConfigError, match="encryption key"):
            load_settings(None)
    monkeypatch.setenv("BASTION_ENCRYPTION_KEY", "k3y-Of-Enough-Length-8d7f")
    assert load_settings(None).store.encryption_key is not None


@pytest.mark.parametrize("fast", [True, False], ids=["c", "python"])
def test_requests_finished_in_one_loop_iteration_share_one_sealed_write(
    tmp_path: Path, fast: bool
) -> None:
    """written(): what the gateway awaits before it sends an answer. Resolved only once the
    lines are in the file; one future, one record for the lines of one iteration."""
    import asyncio

    async def scenario() -> None:
        spool = Spool(tmp_path / "spool", key=KEY, fast=fast)
        spool.start(asyncio.get_running_loop())
        try:
            assert spool.written() is None, "nothing pending: nothing to wait for"
            waiters = []
            for i in range(3):
                spool.observe(secret_ctx(i))
                waiters.append(spool.written())
            assert all(w is not None for w in waiters)
            assert not list(spool.dir.glob("*.open")), "not yet written"
            assert waiters[1] is not None
            waiters[1].cancel()  # its client went away: the others still get theirs
            await asyncio.gather(waiters[0], waiters[2])
            (path,) = spool.dir.glob("*.open")
            opened = open_file(path.read_bytes(), KEY)
            assert [decode(x).request_id for x in opened.lines] == ["t0000", "t0001", "t0002"]
            assert path.stat().st_size == HEADER_BYTES + 4 + sum(
                len(encoded(secret_ctx(i), fast)) for i in range(3)) + 16, "one record"
            spool.observe(secret_ctx(3))
            second = spool.written()
            assert second is not None
            await second
            assert len(open_file(path.read_bytes(), KEY).lines) == 4
        finally:
            spool.close()

    asyncio.run(scenario())


def test_the_data_directory_is_made_private_but_not_what_is_not_ours(tmp_path: Path) -> None:
    from bastion.config import Settings
    from bastion.observe.datadir import secure_data_dir

    home = tmp_path / "home"
    (home / "spool" / "123").mkdir(parents=True)
    for path, mode in ((home, 0o755), (home / "spool", 0o755), (home / "spool" / "123", 0o777)):
        path.chmod(mode)
    for name in ("bastion.db", "bastion.db-wal", "spool/123/x.jsonl", "old.log", "notes.txt"):
        (home / name).write_bytes(b"x")
        (home / name).chmod(0o644)
    secure_data_dir(Settings(home=str(home)))
    mode = {p.relative_to(home).as_posix(): p.stat().st_mode & 0o777 for p in home.rglob("*")}
    assert home.stat().st_mode & 0o777 == 0o700
    assert mode == {"spool": 0o700, "spool/123": 0o700, "spool/123/x.jsonl": 0o600,
                    "bastion.db": 0o600, "bastion.db-wal": 0o600, "old.log": 0o600,
                    "notes.txt": 0o644}
    fresh = tmp_path / "fresh" / "home"
    secure_data_dir(Settings(home=str(fresh)))
    assert fresh.stat().st_mode & 0o777 == 0o700
