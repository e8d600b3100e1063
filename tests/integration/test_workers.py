"""Several worker processes: shared port, reload reaches every worker, crashed ones return."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.upstream import FakeUpstream
from tests.integration.test_lifecycle import free_port, start_bastion, stop_process, wait_ready


def get(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a new connection
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def pids(port: int, tries: int = 60) -> set[int]:
    return {get(port, "/health/live")["pid"] for _ in range(tries)}


def test_workers_share_the_port_reload_together_and_are_restarted(tmp_path: Path) -> None:
    with FakeUpstream().start() as up:
        port = free_port()
        first = {
            "server": {"workers": 2},
            "models": [{"name": "a", "backend": "openai", "base_url": up.base_url}],
        }
        proc = start_bastion(tmp_path, first, port)
        try:
            wait_ready(port, proc)
            deadline = time.monotonic() + 20
            seen: set[int] = set()
            while time.monotonic() < deadline and len(seen) < 2:
                seen |= pids(port, 20)
            assert len(seen) == 2, "both workers accept from the shared socket"

            # an API reload through one worker reaches the other within a second or so
            second = {**first, "models": [*first["models"], {"name": "b", "backend": "openai", "base_url": up.base_url}]}
            (tmp_path / "bastion.yaml").write_text(yaml.safe_dump(second))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/api/config/reload")
            assert conn.getresponse().status == 200
            conn.close()
            time.sleep(1.5)
            lists = [sorted(m["id"] for m in get(port, "/v1/models")["data"]) for _ in range(30)]
            assert all(models == ["a", "b"] for models in lists), lists

            # a worker that dies is replaced; the port keeps answering meanwhile
            victim = next(iter(seen))
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            now_seen: set[int] = set()
            while time.monotonic() < deadline and not (len(now_seen) == 2 and victim not in now_seen):
                with contextlib.suppress(OSError):  # between a death and its replacement
                    now_seen = pids(port, 20)
                time.sleep(0.2)
            assert len(now_seen) == 2 and victim not in now_seen

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            for pid in now_seen:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                raise AssertionError(f"worker {pid} outlived the supervisor")
        finally:
            stop_process(proc)


def test_feedback_right_after_the_answer_reaches_any_worker(tmp_path: Path) -> None:
    """Each worker knows the ids it answered; feedback sent at once on a new connection
    may reach the other, which waits for the trace to be stored rather than say 404."""
    with FakeUpstream().start() as up:
        port = free_port()
        config = {"server": {"workers": 2},
                  "models": [{"name": "a", "backend": "openai", "base_url": up.base_url}]}
        proc = start_bastion(tmp_path, config, port)
        try:
            wait_ready(port, proc)

            def post(path: str, body: dict[str, Any]) -> tuple[int, Any, str | None]:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    conn.request("POST", path, body=json.dumps(body),
                                 headers={"content-type": "application/json"})
                    resp = conn.getresponse()
                    return resp.status, json.loads(resp.read()), resp.getheader("x-request-id")
                finally:
                    conn.close()

            workers: set[int] = set()
            # at least 12 rounds, and until both workers have answered something (which
            # worker accepts a connection is the kernel's choice: it may favour one a while)
            for i in range(80):
                if i >= 12 and len(workers) == 2:
                    break
                status, _, rid = post("/v1/chat/completions", {
                    "model": "a", "messages": [{"role": "user", "content": f"q{i}"}]})
                assert status == 200 and rid
                status, row = post("/api/feedback", {"request_id": rid, "value": "up"})[:2]
                assert status == 201, (i, row)
                workers |= pids(port, 4)
            assert len(workers) == 2
            status, body = post("/api/feedback", {"request_id": "never", "value": "up"})[:2]
            assert status == 404, body
        finally:
            stop_process(proc, graceful=True)


def test_a_key_made_through_one_worker_works_on_all_within_a_second(tmp_path: Path) -> None:
    with FakeUpstream().start() as up:
        port = free_port()
        master = "sk-workers-master-key-0123456789"
        config = {"server": {"workers": 2, "master_key": master},
                  "models": [{"name": "a", "backend": "openai", "base_url": up.base_url}]}
        proc = start_bastion(tmp_path, config, port)
        try:
            wait_ready(port, proc)

            def call(method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    conn.request(method, path, body=json.dumps(body) if body else None,
                                 headers={"authorization": f"Bearer {key}",
                                          "content-type": "application/json"})
                    resp = conn.getresponse()
                    return resp.status, json.loads(resp.read())
                finally:
                    conn.close()

            status, made = call("POST", "/api/keys", master, {"role": "user"})
            assert status == 201, made
            time.sleep(1.0)  # the other worker's poll (every 0.5 s) has read it
            got = [call("GET", "/v1/models", made["key"])[0] for _ in range(30)]
            assert got == [200] * 30, got
            status, _ = call("POST", f"/api/keys/{made['id']}/revoke", master)
            assert status == 200
            time.sleep(1.0)
            got = [call("GET", "/v1/models", made["key"])[0] for _ in range(30)]
            assert got == [401] * 30, got
        finally:
            stop_process(proc, graceful=True)
