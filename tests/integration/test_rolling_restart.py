"""Rolling restart of the workers (SIGUSR2) and the server's drain, under live keep-alive traffic."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvloop
import yaml

from bastion.server.http import HTTPServer
from bastion.server.types import Request, Response
from bastion.server.wire import ServerConfig
from tests.fakes.upstream import FakeUpstream
from tests.integration.test_lifecycle import free_port, wait_ready
from tests.integration.test_workers import pids

MSG = [{"role": "user", "content": "hi"}]


# ----------------------------------------------------------------------------- helpers


class Clients:
    """Keep-alive clients sending chat requests back to back (every other one a stream)
    until stopped; every outcome is recorded."""

    def __init__(self, port: int, count: int = 4) -> None:
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self.reconnects = 0  # responses that carried Connection: close
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(count)]

    def _run(self, index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        n = index
        while not self._stop.is_set():
            n += 1
            stream = n % 2 == 0
            body = json.dumps({"model": "a", "messages": MSG, "stream": stream})
            try:
                conn.request("POST", "/v1/chat/completions", body=body,
                             headers={"content-type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                closing = (resp.getheader("connection") or "").lower() == "close"
            except (OSError, http.client.HTTPException) as exc:
                self._record(f"{type(exc).__name__}: {exc}")
                conn.close()
                continue
            done = data.rstrip().endswith(b"data: [DONE]") if stream else b'"choices"' in data
            self._record(None if resp.status == 200 and done else f"{resp.status} {data[:120]!r}",
                         closing)
            time.sleep(0.005)
        conn.close()

    def _record(self, failure: str | None, closing: bool = False) -> None:
        with self._lock:
            if failure is None:
                self.ok += 1
            else:
                self.failures.append(failure)
            self.reconnects += closing

    def wait_for(self, ok: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.ok < ok:
            assert time.monotonic() < deadline, (self.ok, self.failures[:5])
            time.sleep(0.02)

    @contextmanager
    def running(self) -> Iterator[Clients]:
        for t in self._threads:
            t.start()
        try:
            yield self
        finally:
            self._stop.set()
            for t in self._threads:
                t.join(30)


class Bastion:
    """`bastion serve` in its own process group (supervisor and workers), logging to a file."""

    def __init__(self, tmp_path: Path, config: dict[str, Any], port: int) -> None:
        path = tmp_path / "bastion.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / "bastion.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        env["BASTION_HOME"] = str(tmp_path / "home")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bastion", "serve", "--config", str(path),
                 "--port", str(port)],
                env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def count(self, text: str) -> int:
        return self.log().count(text)

    def wait_for(self, text: str, times: int = 1, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.count(text) < times:
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, f"{text!r} x{times} not logged:\n{self.log()}"
            time.sleep(0.05)

    def stop(self) -> None:
        """Ends the supervisor and any worker left behind (by the group's id)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_gone(pid_set: set[int], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not all(gone(p) for p in pid_set):
        assert time.monotonic() < deadline, f"old workers still running: {pid_set}"
        time.sleep(0.05)


def both_pids(port: int, timeout: float = 20) -> set[int]:
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while len(seen) < 2:
        assert time.monotonic() < deadline, f"only saw workers {seen}"
        seen |= pids(port, 20)
    return seen


@pytest.fixture()
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream().start() as up:
        up.behaviour.chunks = 4
        up.behaviour.chunk_delay_ms = 10
        yield up


def two_workers(up: FakeUpstream) -> dict[str, Any]:
    return {
        "server": {"workers": 2, "graceful_timeout": 10},
        "models": [{"name": "a", "backend": "openai", "base_url": up.base_url}],
    }


# ----------------------------------------------------------------------------- rolling restart


def test_rolling_restart_under_keepalive_load_fails_no_request(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    port = free_port()
    bastion = Bastion(tmp_path, two_workers(upstream), port)
    proc = bastion.proc
    try:
        wait_ready(port, proc)
        before = both_pids(port)
        with Clients(port).running() as clients:
            clients.wait_for(40)
            proc.send_signal(signal.SIGUSR2)
            bastion.wait_for("rolling restart: replacing")
            proc.send_signal(signal.SIGUSR2)  # during the roll (ignored) or after it (a 2nd roll)
            wait_gone(before)
            bastion.wait_for("rolling restart done", 1)
            clients.wait_for(clients.ok + 40)  # and traffic goes on through the new workers
        assert clients.failures == [], clients.failures[:5]
        assert clients.reconnects >= 1, "the draining workers closed their keep-alive connections"
        after = both_pids(port)
        assert after.isdisjoint(before), (before, after)
        assert proc.poll() is None, "the supervisor keeps running"
        rolls = bastion.count("rolling restart done")
        ignored = bastion.count("SIGUSR2 ignored: a rolling restart is already under way")
        if rolls < 2 and ignored == 0:  # the second SIGUSR2 started a roll still under way
            bastion.wait_for("rolling restart done", 2)
            rolls = 2
        assert rolls + ignored == 2
        assert bastion.count("starting a new one") == 0, "a retired worker was taken for a crash"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        bastion.stop()


def test_a_replacement_that_cannot_start_aborts_the_roll(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    port = free_port()
    config = two_workers(upstream)
    bastion = Bastion(tmp_path, config, port)
    proc = bastion.proc
    try:
        wait_ready(port, proc)
        before = both_pids(port)
        with Clients(port, count=2).running() as clients:
            clients.wait_for(20)
            (tmp_path / "bastion.yaml").write_text("models: [{name: a, backend: nope}]\n")
            proc.send_signal(signal.SIGUSR2)
            bastion.wait_for("rolling restart aborted")
            clients.wait_for(clients.ok + 20)
            assert pids(port, 20) <= before, "the old workers keep serving"

            # with the config file fixed, the next roll goes through
            (tmp_path / "bastion.yaml").write_text(yaml.safe_dump(config))
            proc.send_signal(signal.SIGUSR2)
            bastion.wait_for("rolling restart done")
            wait_gone(before)
        assert clients.failures == [], clients.failures[:5]
        assert proc.poll() is None
        assert both_pids(port).isdisjoint(before)
    finally:
        bastion.stop()


# ----------------------------------------------------------------------------- drain


async def _ok(request: Request) -> Response:
    return Response(200, b'{"ok":true}', [(b"content-type", b"application/json")])


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                  if line.startswith(b"content-length:"))
    return head.lower(), await reader.readexactly(length)


GET = b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n"


def test_idle_keepalive_connection_is_answered_within_the_drain_linger() -> None:
    async def main() -> None:
        server = HTTPServer(_ok, ServerConfig(drain_linger=30.0))
        await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(GET)
        head, _ = await _read_response(reader)
        assert b"connection: close" not in head  # keep-alive; the connection is now idle
        port = server.port
        shutdown = asyncio.create_task(server.shutdown(grace=60.0))
        await asyncio.sleep(0)
        assert server.draining
        writer.write(GET)  # a request already on its way on the idle connection
        head, body = await _read_response(reader)
        assert head.startswith(b"http/1.1 200") and body == b'{"ok":true}'
        assert b"connection: close" in head
        assert await reader.read() == b""  # then the server closes it...
        await asyncio.wait_for(shutdown, 10)  # ...and, nothing left, the drain ends early
        writer.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    uvloop.run(main())


def test_idle_connection_is_closed_after_the_linger() -> None:
    async def main() -> None:
        server = HTTPServer(_ok, ServerConfig(drain_linger=0.2))
        await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(GET)
        await _read_response(reader)
        await asyncio.wait_for(server.shutdown(grace=60.0), 10)  # well before the grace
        assert await asyncio.wait_for(reader.read(), 5) == b""  # a FIN, not a reset
        writer.close()

    uvloop.run(main())


def test_pipelined_requests_are_all_answered_during_the_drain() -> None:
    release = asyncio.Event()

    async def slow_first(request: Request) -> Response:
        if request.path == "/first":
            await release.wait()
        return Response(200, request.path.encode(), [])

    async def main() -> None:
        server = HTTPServer(slow_first, ServerConfig(drain_linger=0.2))
        await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /first HTTP/1.1\r\nhost: t\r\n\r\nGET /second HTTP/1.1\r\nhost: t\r\n\r\n")
        while not any(c.busy for c in server.connections):
            await asyncio.sleep(0.01)
        shutdown = asyncio.create_task(server.shutdown(grace=60.0))
        await asyncio.sleep(0.05)
        release.set()
        head1, body1 = await _read_response(reader)
        head2, body2 = await _read_response(reader)
        assert (body1, body2) == (b"/first", b"/second")
        assert b"connection: close" not in head1
        assert b"connection: close" in head2  # the last one it owed
        assert await reader.read() == b""
        await asyncio.wait_for(shutdown, 10)
        writer.close()

    uvloop.run(main())


def test_a_single_process_logs_and_ignores_sigusr2(tmp_path: Path, upstream: FakeUpstream) -> None:
    port = free_port()
    config = {"models": [{"name": "a", "backend": "openai", "base_url": upstream.base_url}]}
    bastion = Bastion(tmp_path, config, port)
    try:
        wait_ready(port, bastion.proc)
        bastion.proc.send_signal(signal.SIGUSR2)
        bastion.wait_for("SIGUSR2 ignored: a rolling restart needs server.workers >= 2")
        assert pids(port, 5) == {bastion.proc.pid}, "it still serves, as itself"
    finally:
        bastion.stop()
