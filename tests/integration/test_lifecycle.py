"""Start-up, readiness and graceful shutdown of a real `bastion serve` process."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.upstream import FakeUpstream

MSG = [{"role": "user", "content": "hi"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health/ready")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("bastion did not become ready")


def start_bastion(tmp_path: Path, config: dict[str, Any], port: int) -> subprocess.Popen[bytes]:
    path = tmp_path / "bastion.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["BASTION_HOME"] = str(tmp_path / "home")  # its traces, journal and metrics
    return subprocess.Popen(
        [sys.executable, "-m", "bastion", "serve", "--config", str(path), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@contextlib.contextmanager
def bastion_processes(tmp_path: Path, config: dict[str, Any], count: int,
                      own_homes: bool = False) -> Iterator[list[int]]:
    """``count`` `bastion serve` processes with ``config``, ready; their ports. They share
    ``tmp_path`` (its SQLite store), or each has a directory of its own (``own_homes``)."""
    ports = [free_port() for _ in range(count)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, port in enumerate(ports):
            home = tmp_path / str(i) if own_homes else tmp_path
            home.mkdir(exist_ok=True)
            procs.append(start_bastion(home, config, port))
        for port, proc in zip(ports, procs, strict=True):
            wait_ready(port, proc)
        yield ports
    finally:
        for proc in procs:
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], graceful: bool = False) -> None:
    """Ends a `bastion serve` started by a test (by its own pid) and closes its pipes."""
    if proc.poll() is None:
        if graceful:
            proc.terminate()
            proc.wait(30)
        else:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture()
def slow_upstream() -> Any:
    with FakeUpstream().start() as up:
        up.behaviour.chunk_delay_ms = 150
        up.behaviour.chunks = 6
        yield up


def test_sigterm_lets_streams_finish_then_exits(tmp_path: Path, slow_upstream: FakeUpstream) -> None:
    port = free_port()
    config = {"models": [{"name": "fake-model", "backend": "openai", "base_url": slow_upstream.base_url}]}
    proc = start_bastion(tmp_path, config, port)
    try:
        wait_ready(port, proc)
        results: dict[str, Any] = {}

        def stream() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            body = json.dumps({"model": "fake-model", "messages": MSG, "stream": True})
            conn.request("POST", "/v1/chat/completions", body=body)
            resp = conn.getresponse()
            results["status"] = resp.status
            results["body"] = resp.read()
            conn.close()

        worker = threading.Thread(target=stream)
        worker.start()
        slow_upstream.wait_for_requests(1)
        time.sleep(0.2)  # the stream is under way
        proc.send_signal(signal.SIGTERM)
        worker.join(30)
        assert results["status"] == 200
        assert results["body"].rstrip().endswith(b"data: [DONE]")
        assert proc.wait(30) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        stop_process(proc)


def test_invalid_config_exits_with_the_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server: {port: not-a-port}\n")
    result = subprocess.run(
        [sys.executable, "-m", "bastion", "serve", "--config", str(path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert b"server.port" in result.stderr


def test_refuses_public_bind_without_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["BASTION_HOME"] = str(tmp_path / "home")  # its traces, journal and metrics
    result = subprocess.run(
        [sys.executable, "-m", "bastion", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert b"requires authentication" in result.stderr
