"""Helpers for the store suite: Postgres databases per run, a throwaway Postgres server,
trace records, and a store opened from another process."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import in_ci

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_ADMIN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
REPO = Path(__file__).resolve().parents[1]


def skip_or_fail(reason: str) -> None:
    """Skips, except under CI=true, where a missing dependency is a failure."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: not skipping)")
    pytest.skip(reason)


def require_postgres() -> None:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {exc}")


def create_database(prefix: str = "bastion_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    assert name.startswith("bastion_test_"), name  # never anything this suite did not make
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@contextlib.contextmanager
def fresh_database(engine: str, directory: Path) -> Iterator[str]:
    """The URL of a database no store has opened yet: a SQLite file under ``directory``,
    or a new Postgres database, dropped afterwards."""
    if engine == "sqlite":
        yield f"sqlite:///{directory}/bastion.db"
        return
    require_postgres()
    name = create_database()
    try:
        yield pg_url(name)
    finally:
        drop_database(name)


def pg_url(name: str, host: str = PG_HOST, port: int = PG_PORT) -> str:
    return f"postgresql+psycopg://postgres@{host}:{port}/{name}"


def psql(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Runs one statement on a Postgres URL (for assertions about the catalog)."""
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayPostgres:
    """A private Postgres server (Debian's initdb/pg_ctl) in a temp dir, on a free port.
    As root it runs as the ``postgres`` user, which owns the data directory."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            skip_or_fail("no /usr/lib/postgresql/*/bin/pg_ctl for a throwaway server")
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.data, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> ThrowawayPostgres:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  "postgres", "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.data} -c listen_addresses={PG_HOST} "
                   "-c fsync=off -c shared_buffers=16MB")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "log"),
                  "-w", "-t", "30", "-o", options, "start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return pg_url(database, PG_HOST, self.port)

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    try:
        server.init().start()
        yield server
    finally:
        server.cleanup()


T0 = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC: fixed, so partitions and buckets are known


def record(i: int, **fields: Any) -> dict[str, Any]:
    """A complete trace record; ``fields`` override."""
    base: dict[str, Any] = {
        "id": f"req-{i:05d}",
        "ts": T0 + i,
        "endpoint": "/v1/chat/completions",
        "operation": "chat",
        "model": "alpha",
        "deployment": "alpha-1",
        "provider": "openai",
        "model_version": "alpha-2026",
        "key_id": "key-1",
        "team": "support",
        "user": "ann",
        "session": "s-1",
        "tenant": "acme",
        "priority": 1,
        "stream": False,
        "status": 200,
        "error": None,
        "finish_reason": "stop",
        "input_tokens": 10,
        "output_tokens": 20,
        "cached_tokens": 0,
        "cost": 0.001,
        "latency_ms": 100.0,
        "ttft_ms": None,
        "tpot_ms": None,
        "overhead_ms": 0.5,
        "queue_ms": 0.0,
        "attempts": 1,
        "fallback": False,
        "content_mode": "full",
        "params": {"temperature": 0.2},
        "input": [{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": f"Question number {i}"}],
        "output": {"role": "assistant", "content": f"Answer number {i}"},
        "guards": [],
        "guard_action": None,
        "spans": [{"name": "upstream", "start_ms": 0.2, "duration_ms": 99.0}],
        "metadata": {"client_request_id": f"c-{i}"},
        "trace_id": f"{i:032x}",
        "span_id": f"{i:016x}",
        "confidence": 0.8,
    }
    base.update(fields)
    return base


OPEN_SCRIPT = """
import json, sys, time
from bastion.store import open_store
url, home, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
store = open_store(url, home)
print(json.dumps(store.migrations_applied))
store.close()
"""


def open_concurrently(url: str, home: Path, processes: int = 2) -> list[list[str]]:
    """Opens the store from several processes at the same instant; returns what each
    applied."""
    start = time.time() + 2.5  # past every child's imports
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_SCRIPT, url, str(home), str(start)],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results
