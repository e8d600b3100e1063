"""Every request traced into the store, queried through the admin API; feedback; content
modes; no trace lost when the store is locked or the gateway is stopped under load."""

from __future__ import annotations

import http.client
import json
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import chat, traced_gateway, traces
from tests.integration.test_lifecycle import free_port, start_bastion, stop_process, wait_ready
from tests.store_helpers import throwaway_postgres

EMAIL = "jane.doe@example.com"


def test_every_request_is_traced_with_its_details(up: FakeUpstream, tmp_path: Path) -> None:
    gw = traced_gateway(up, tmp_path, tracing={"content": "full"})
    try:
        status, headers, _ = chat(gw, f"mail {EMAIL}", user="u-42", metadata={"session_id": "s-1"},
                                  temperature=0.3)
        assert status == 200
        first_id = headers["x-request-id"]
        assert chat(gw, "count", stream=True)[0] == 200
        status, _, _ = gw.request_full("POST", "/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]})
        assert status == 404
        status, headers, _ = gw.request_full(
            "POST", "/v1/chat/completions", {"model": "chat", "messages": "bad"},
            headers={"x-request-id": "client-id-1"})
        assert status == 400 and headers["x-bastion-trace-id"] != "client-id-1"
        rows = traces(gw, 4)
        assert len(rows) == 4
        by_status = {r["status"]: r for r in rows}
        assert set(by_status) == {200, 404, 400}
        assert rows[0]["ts"] >= rows[-1]["ts"], "newest first"

        status, trace = gw.request("GET", f"/api/traces/{first_id}")
        assert status == 200, trace
        assert trace["model"] == "chat" and trace["deployment"] == "chat"
        assert trace["provider"] == "openai" and trace["operation"] == "chat"
        assert trace["user"] == "u-42" and trace["session"] == "s-1"
        assert trace["input"] == [{"role": "user", "content": f"mail {EMAIL}"}]
        assert trace["output"]["content"], trace["output"]
        assert trace["finish_reason"] == "stop"
        assert trace["input_tokens"] > 0 and trace["output_tokens"] > 0
        assert trace["cost"] == pytest.approx(
            (trace["input_tokens"] * 1.0 + trace["output_tokens"] * 2.0) / 1e6)
        assert trace["params"]["temperature"] == 0.3
        assert trace["latency_ms"] > 0 and trace["overhead_ms"] >= 0
        assert [s["name"] for s in trace["spans"]] == ["auth", "admission", "parse", "backend"]
        assert trace["spans"][-1]["attrs"]["deployment"] == "chat"
        starts = [s["start_ms"] for s in trace["spans"]]
        assert starts == sorted(starts) and all(s["duration_ms"] >= 0 for s in trace["spans"])

        streamed = next(r for r in rows if r["stream"])
        status, streamed = gw.request("GET", f"/api/traces/{streamed['id']}")
        assert streamed["output"]["content"], "reassembled from the stream's events"
        assert streamed["ttft_ms"] is not None and streamed["ttft_ms"] <= streamed["latency_ms"]
        assert streamed["output_tokens"] > 0

        unknown = by_status[404]
        assert unknown["model"] == "nope" and unknown["error"]
        status, body = gw.request("GET", "/api/traces/does-not-exist")
        assert status == 404 and body["error"]["code"] == "trace_not_found"
    finally:
        gw.stop()


def test_feedback_is_idempotent_and_shows_in_trace_and_stats(up: FakeUpstream, tmp_path: Path) -> None:
    gw = traced_gateway(up, tmp_path)
    try:
        _, headers, _ = chat(gw)
        rid = headers["x-request-id"]
        fb = {"request_id": rid, "value": "up", "score": 0.9, "comment": "good"}
        status, row = gw.request("POST", "/api/feedback", fb)
        assert status == 201, row
        status, row = gw.request("POST", "/api/feedback", fb)
        assert status == 200, "the same feedback again changes nothing"
        status, row = gw.request("POST", "/api/feedback", {**fb, "value": "down"})
        assert status == 200 and row["value"] == "down"
        status, body = gw.request("POST", "/api/feedback", {"request_id": rid, "value": "meh"})
        assert status == 400 and body["error"]["param"] == "value"
        traces(gw, 1)
        status, trace = gw.request("GET", f"/api/traces/{rid}")
        assert [f["value"] for f in trace["feedback"]] == ["down"]
        status, stats = gw.request("GET", "/api/stats?since=1h")
        assert status == 200, stats
        totals = stats["totals"]
        assert totals["requests"] == 1 and totals["errors"] == 0
        assert (totals["feedback_up"], totals["feedback_down"]) == (0, 1)
        assert totals["input_tokens"] > 0 and totals["cost"] > 0
        status, grouped = gw.request("GET", "/api/stats?since=1h&bucket=1m&group_by=model")
        assert status == 200, grouped
    finally:
        gw.stop()


def test_feedback_names_a_request_the_gateway_answered(up: FakeUpstream, tmp_path: Path) -> None:
    """An id nobody answered is a 404 naming request_id; one answered a moment ago is taken
    before its trace is stored (the ingest is held back), and one stored before a restart
    is taken from the store."""
    gw = traced_gateway(up, tmp_path, tracing={"flush_interval": 10})
    try:
        status, body = gw.request("POST", "/api/feedback", {"request_id": "nope", "value": "up"})
        assert status == 404, body
        assert body["error"]["code"] == "trace_not_found"
        assert body["error"]["param"] == "request_id"
        _, headers, _ = chat(gw)
        rid = headers["x-request-id"]
        assert gw.request("GET", f"/api/traces/{rid}")[0] == 404, "not stored yet"
        status, row = gw.request("POST", "/api/feedback", {"request_id": rid, "value": "up"})
        assert status == 201, row
        # the client's own x-request-id is not the trace's id: the 404 says which to send
        _, own, _ = chat(gw, headers={"x-request-id": "client-chosen-1"})
        status, body = gw.request("POST", "/api/feedback",
                                  {"request_id": "client-chosen-1", "value": "up"})
        assert status == 404 and "x-bastion-trace-id" in body["error"]["message"]
        status, _ = gw.request("POST", "/api/feedback",
                               {"request_id": own["x-bastion-trace-id"], "value": "up"})
        assert status == 201
    finally:
        gw.stop()  # drains the spool: both traces are stored
    gw = traced_gateway(up, tmp_path)
    try:
        status, row = gw.request("POST", "/api/feedback", {"request_id": rid, "value": "down"})
        assert status == 200 and row["value"] == "down", "the stored trace, after a restart"
        status, body = gw.request("POST", "/api/feedback", {"request_id": "nope", "value": "up"})
        assert status == 404, body
    finally:
        gw.stop()


def test_content_modes(up: FakeUpstream, tmp_path: Path) -> None:
    for mode in ("redacted", "metadata"):
        gw = traced_gateway(up, tmp_path / mode, tracing={"content": mode})
        try:
            _, headers, _ = chat(gw, f"write to {EMAIL} please")
            traces(gw, 1)
            _, trace = gw.request("GET", f"/api/traces/{headers['x-request-id']}")
            assert trace["content_mode"] == mode
            if mode == "redacted":
                assert trace["input"][0]["content"] == "write to <EMAIL> please"
            else:
                assert trace["input"] is None and trace["output"] is None
                assert trace["input_tokens"] > 0, "metadata is still kept"
            assert EMAIL not in json.dumps(trace)
        finally:
            gw.stop()


def test_content_mode_per_tenant(up: FakeUpstream, tmp_path: Path) -> None:
    gw = traced_gateway(up, tmp_path, tracing={"content": "metadata", "content_by_tenant": {"debug": "full"}})
    try:
        _, plain, _ = chat(gw, f"to {EMAIL}")
        _, debug, _ = chat(gw, f"to {EMAIL}", headers={"x-bastion-tenant": "debug"})
        traces(gw, 2)
        _, t1 = gw.request("GET", f"/api/traces/{plain['x-request-id']}")
        _, t2 = gw.request("GET", f"/api/traces/{debug['x-request-id']}")
        assert t1["content_mode"] == "metadata" and t1["input"] is None
        assert t2["content_mode"] == "full" and t2["input"][0]["content"] == f"to {EMAIL}"
        assert t2["tenant"] == "debug"
    finally:
        gw.stop()


def test_traces_api_rejects_bad_parameters(up: FakeUpstream, tmp_path: Path) -> None:
    gw = traced_gateway(up, tmp_path)
    try:
        for query, param in [("limit=0", "limit"), ("limit=x", "limit"), ("since=yesterday", "since"),
                             ("status=abc", "status"), ("min_latency_ms=fast", "min_latency_ms")]:
            status, body = gw.request("GET", f"/api/traces?{query}")
            assert status == 400 and body["error"]["param"] == param, (query, body)
        status, body = gw.request("GET", "/api/stats?group_by=colour")
        assert status == 400 and body["error"]["param"] == "group_by"
        # a misspelt filter must not quietly match everything; nan and inf are no time
        chat(gw)
        traces(gw, 1)
        for path, param in [("/api/traces?modle=chat", "modle"), ("/api/traces?since=nan", "since"),
                            ("/api/traces?until=inf", "until"), ("/api/stats?bucket=inf", "bucket"),
                            ("/api/stats?sinse=1h", "sinse"), ("/api/traces?max_cost=nan", "max_cost")]:
            status, body = gw.request("GET", path)
            assert status == 400 and body["error"]["param"] == param, (path, body)
        assert "model" in gw.request("GET", "/api/traces?modle=chat")[1]["error"]["message"]
        status, body = gw.request("GET", "/api/traces?model=")  # blank is no filter
        assert status == 200 and body["data"]
    finally:
        gw.stop()


def test_a_locked_store_loses_no_trace(up: FakeUpstream, tmp_path: Path) -> None:
    """The store refuses writes for a while (another process holds SQLite's write lock):
    requests are all answered meanwhile, and every trace is in the store afterwards."""
    gw = traced_gateway(up, tmp_path, tracing={"flush_interval": 0.05})
    db = Path(gw.settings.home) / "bastion.db"
    try:
        assert chat(gw)[0] == 200
        traces(gw, 1)
        locker = sqlite3.connect(db, timeout=1, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda i: chat(gw, f"during {i}")[0], range(60)))
            assert statuses == [200] * 60, "the gateway keeps serving"
            time.sleep(0.5)
        finally:
            locker.execute("COMMIT")
            locker.close()
        rows = traces(gw, 61, timeout=30)
        assert len(rows) == 61, "every trace reached the store after it came back"
        assert len({r["id"] for r in rows}) == 61
    finally:
        gw.stop()


def test_sigterm_under_load_loses_no_trace(up: FakeUpstream, tmp_path: Path) -> None:
    up.behaviour.delay_ms = 20
    port = free_port()
    home = tmp_path / "home"
    config = {
        "home": str(home),
        "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}],
        "tracing": {"flush_interval": 1.0},  # most traces still queued at SIGTERM
    }
    proc = start_bastion(tmp_path, config, port)
    answered: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("POST", "/v1/chat/completions", json.dumps(
                    {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}),
                    {"content-type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    answered.append(resp.getheader("x-request-id") or "")
            except OSError:
                return  # the gateway stopped accepting
            finally:
                conn.close()

    try:
        wait_ready(port, proc)
        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        stop.set()
        stop_process(proc)
    assert len(answered) > 20
    with sqlite3.connect(home / "bastion.db") as conn:
        stored = {row[0] for row in conn.execute("select id from traces")}
    missing = set(answered) - stored
    assert not missing, f"{len(missing)} of {len(answered)} answered requests have no trace"


def test_postgres_stopped_mid_load_loses_no_trace(up: FakeUpstream, tmp_path: Path) -> None:
    """Postgres (a throwaway server) is stopped while requests keep coming and started again
    later: every request is answered, and every trace is in Postgres afterwards."""
    with throwaway_postgres() as server:
        gw = traced_gateway(up, tmp_path, store={"url": server.url()})
        try:
            sent: list[str] = []

            def ask(i: int) -> int:
                status, headers, _ = chat(gw, f"n{i}")
                sent.append(headers["x-request-id"])
                return status

            with ThreadPoolExecutor(4) as pool:
                assert list(pool.map(ask, range(20))) == [200] * 20
                traces(gw, 20)
                server.stop()
                assert list(pool.map(ask, range(20, 80))) == [200] * 60, "serving without a store"
                status, body = gw.request("GET", "/api/traces")
                assert status == 503 and body["error"]["code"] == "store_unavailable"
                time.sleep(1.0)
                server.start()
                assert list(pool.map(ask, range(80, 100))) == [200] * 20
            rows = traces(gw, 100, timeout=30)
            assert {r["id"] for r in rows} == set(sent), "every trace reached Postgres"
        finally:
            gw.stop()
