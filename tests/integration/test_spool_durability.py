"""What a SIGKILL leaves, and what is on disk: a real `bastion serve`, killed mid-traffic.

- Every request whose answer the client received whole has its trace after a SIGKILL and
  a restart (the trace line is written through to the spool before the answer's last byte
  goes out; the restarted gateway's ingest takes the dead one's files, torn last line and
  all). Before, traces waited in memory for the next flush and the last ones were lost.
- Nothing of a request's secrets is on disk in the clear: a raw read of every file under
  the data directory, spool included, before and after the ingest, and the data directory
  is 0700, its files 0600.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.integration.test_lifecycle import free_port, start_bastion, stop_process, wait_ready

SECRETS = (b"sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", b"hunter2xyz")
PROMPT = (f"my key is {SECRETS[0].decode()} and password={SECRETS[1].decode()} "
          "please keep them")


@pytest.fixture()
def upstream() -> Any:
    with FakeUpstream().start() as up:
        up.behaviour.chunks = 3
        yield up


def config(upstream: FakeUpstream, **tracing: Any) -> dict[str, Any]:
    return {
        "models": [{"name": "fake-model", "backend": "openai", "base_url": upstream.base_url}],
        "routing": {"default": {"retries": 0}},
        # a long flush interval: a line held in memory until the next flush (or a file not
        # yet handed to the ingest) would certainly be there when the kill comes
        "tracing": {"flush_interval": 5.0, **tracing},
    }


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (its ingest), to end them by their own pid."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    for pid in pids:  # not our children (the gateway's): wait until they are gone
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)


def ask(conn: http.client.HTTPConnection, stream: bool, content: str = "hi") -> str | None:
    """One request; its x-request-id if the whole answer arrived (else None)."""
    body = json.dumps({"model": "fake-model", "stream": stream, "max_tokens": 8,
                       "messages": [{"role": "user", "content": content}]})
    try:
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"content-type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()  # whole: content-length met, or the chunked terminator read
    except (OSError, http.client.HTTPException):
        conn.close()
        return None
    if resp.status != 200 or (stream and b"[DONE]" not in data):
        return None
    return resp.getheader("x-request-id")


def stored(home: Path) -> set[str]:
    db = home / "bastion.db"
    if not db.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return {r[0] for r in conn.execute("select id from traces")}
    except sqlite3.OperationalError:  # not created yet
        return set()


def wait_stored(home: Path, ids: set[str], timeout: float = 60) -> set[str]:
    deadline = time.monotonic() + timeout
    missing = ids
    while time.monotonic() < deadline:
        missing = ids - stored(home)
        if not missing:
            break
        time.sleep(0.2)
    return missing


def test_sigkill_loses_no_trace_of_an_answered_request(tmp_path: Path,
                                                       upstream: FakeUpstream) -> None:
    port = free_port()
    proc = start_bastion(tmp_path, config(upstream), port)
    answered: list[str] = []
    lock = threading.Lock()
    kill_at = 300
    try:
        wait_ready(port, proc)

        def client(n: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            i = 0
            while True:
                with lock:
                    if len(answered) >= kill_at + 50:
                        break
                rid = ask(conn, stream=(i + n) % 2 == 0)
                i += 1
                if rid is None:
                    conn.close()
                    if proc.poll() is not None:
                        break  # killed: the rest of this client's requests get nothing
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    continue
                with lock:
                    answered.append(rid)
            conn.close()

        workers = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for w in workers:
            w.start()
        while len(answered) < kill_at:  # then SIGKILL, with requests in flight
            assert proc.poll() is None
            time.sleep(0.001)
        ingest = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kill_all(ingest)  # its ingest too: the restarted gateway's takes over
        for w in workers:
            w.join(30)
    finally:
        stop_process(proc)
    assert len(answered) >= kill_at
    spool = tmp_path / "home" / "spool"
    assert list(spool.glob("*/*.open")) or list(spool.glob("*/*.jsonl")), (
        "the killed gateway left its spool file for the next start")

    proc = start_bastion(tmp_path, config(upstream), port)
    try:
        wait_ready(port, proc)
        missing = wait_stored(tmp_path / "home", set(answered))
        assert not missing, f"{len(missing)} of {len(answered)} answered requests have no trace"
    finally:
        stop_process(proc, graceful=True)


def raw_bytes(home: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}


def assert_no_secret(home: Path, when: str) -> None:
    files = raw_bytes(home)
    assert files, f"{when}: nothing on disk at all?"
    for path, data in files.items():
        for secret in SECRETS:
            assert secret not in data, f"{when}: {secret!r} in the clear in {path}"


def assert_private(home: Path) -> None:
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{path}: {mode:o}"
        else:
            assert mode == 0o600, f"{path}: {mode:o}"


def answered_then_killed(tmp_path: Path, settings: dict[str, Any], port: int, n: int,
                         content: str) -> set[str | None]:
    """Starts a gateway, asks ``n`` questions (alternately streamed), then SIGKILLs it and
    its ingest at once, so the spool stays as it was: the answered ids (None: no answer)."""
    proc = start_bastion(tmp_path, settings, port)
    try:
        wait_ready(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        ids = {ask(conn, stream=i % 2 == 0, content=content) for i in range(n)}
        conn.close()
        ingest = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kill_all(ingest)
    finally:
        stop_process(proc)
    return ids


def test_nothing_on_disk_holds_a_secret_sent_in_a_request(tmp_path: Path,
                                                          upstream: FakeUpstream) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)  # as an older version left it: tightened at start
    (home / "old.log").write_bytes(b"x")
    os.chmod(home / "old.log", 0o644)
    port = free_port()
    ids = answered_then_killed(tmp_path, config(upstream), port, 6, PROMPT)
    assert None not in ids
    spool = list((home / "spool").rglob("*.open")) + list((home / "spool").rglob("*.jsonl"))
    assert spool, "the spool was read before the ingest"
    assert_no_secret(home, "before the ingest")
    assert_private(home)

    proc = start_bastion(tmp_path, config(upstream), port)
    try:
        wait_ready(port, proc)
        assert not wait_stored(home, {i for i in ids if i is not None})
    finally:
        stop_process(proc, graceful=True)
    assert_private(home)
    assert_no_secret(home, "after the ingest")


def test_metadata_mode_spools_no_body(tmp_path: Path, upstream: FakeUpstream) -> None:
    home = tmp_path / "home"
    ids = answered_then_killed(tmp_path, config(upstream, content="metadata"), free_port(), 4,
                               PROMPT + " plain-marker-q7")
    assert None not in ids
    lines = [x for p in (home / "spool").rglob("*") if p.is_file()
             for x in p.read_bytes().splitlines()]
    assert len(lines) >= 4, "metadata mode: plain lines, readable"
    assert not any(b"plain-marker-q7" in x for x in lines)
    assert not any(b"fake-model" not in x for x in lines), "the metadata is there"
