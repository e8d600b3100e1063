"""Budgets through a real gateway: 50 concurrent requests against a small budget overshoot
by at most one reservation; the settled spend is the sum of the traces' costs; soft and
hard limits reach the webhook and the audit log; a restart reads the spend back."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bastion.cli import main
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, traced_gateway
from tests.gateway_harness import traces as stored_traces

PRICING = {"input": 1000.0, "output": 2000.0}  # per 1M tokens: cents a request
MAX_TOKENS = 20


class Webhook:
    """A loopback HTTP server that keeps what is POSTed to it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        events = self.events

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                events.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream().start() as fake:
        yield fake


@pytest.fixture(scope="module")
def hook() -> Iterator[Webhook]:
    wh = Webhook()
    yield wh
    wh.server.shutdown()
    wh.server.server_close()


def start(up: FakeUpstream, home: Path, hook: Webhook) -> RunningGateway:
    return traced_gateway(up, home, **{
        "server.master_key": MASTER_KEY,
        "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url,
                    "pricing": PRICING}],
        "budgets": {"teams": {"capped": {"limit": 0.2, "soft": 0.1, "period": "daily"}},
                    "webhook": hook.url},
    })


def ask(gw: RunningGateway, key: str, delay_ms: int = 0, user: str | None = None
        ) -> tuple[int, dict[str, str], Any]:
    body: dict[str, Any] = {"model": "chat", "max_tokens": MAX_TOKENS,
                            "messages": [{"role": "user", "content": "tell me a story"}]}
    if user is not None:
        body["user"] = user
    return gw.request_full("POST", "/v1/chat/completions", body,
                           {"x-fake-delay-ms": str(delay_ms)}, key=key)


def budgets(gw: RunningGateway, key: str = MASTER_KEY) -> dict[tuple[str, str], Any]:
    status, listed = gw.request("GET", "/api/budgets", key=key)
    assert status == 200, listed
    return {(b["scope"], b["name"]): b for b in listed["data"]}


def test_fifty_at_once_overshoot_by_at_most_one_reservation(
        up: FakeUpstream, hook: Webhook, tmp_path: Path) -> None:
    gw = start(up, tmp_path, hook)
    try:
        status, key = gw.request("POST", "/api/keys", {
            "name": "capped-key", "team": "open", "budget": {"limit": 1.0,
                                                              "period": "daily"}})
        assert status == 201, key
        assert key["budget"] == {"limit": 1.0, "period": "daily", "soft": None}
        token = key["key"]
        # the worst case of one request, as the gateway reserves it
        body_bytes = len(json.dumps({"model": "chat", "max_tokens": MAX_TOKENS, "messages": [
            {"role": "user", "content": "tell me a story"}]}, separators=(",", ":")))
        reservation = (body_bytes / 4 * PRICING["input"]
                       + MAX_TOKENS * PRICING["output"]) / 1e6
        answered = refused = 0
        with ThreadPoolExecutor(50) as pool:
            for _ in range(40):  # rounds of 50 long requests at once, until all refused
                results = list(pool.map(lambda _: ask(gw, token, delay_ms=300), range(50)))
                ok = sum(1 for s, _, _ in results if s == 200)
                answered += ok
                for status, _, body in results:
                    if status != 200:
                        assert status == 402, body
                        err = body["error"]
                        assert err["code"] == "budget_exceeded"
                        assert err["type"] == "insufficient_quota"
                        assert "this key's budget (daily)" in err["message"]
                        refused += 1
                if ok == 0:
                    break
        assert refused and answered > 1
        account = budgets(gw)[("key", key["id"])]
        assert account["reserved"] == 0.0 and account["exceeded"]
        assert 1.0 <= account["spent"] <= 1.0 + reservation, (account, reservation)
        traces = stored_traces(gw, answered + refused, f"&key_id={key['id']}", 20.0)
        ok_traces = [t for t in traces if t["status"] == 200]
        assert len(ok_traces) == answered
        assert sum(t["cost"] or 0.0 for t in traces) == pytest.approx(account["spent"], abs=1e-9)
        assert all(t["status"] in (200, 402) for t in traces)
    finally:
        gw.stop()
    # a restart reads the spend back from the traces: still spent
    gw = start(up, tmp_path, hook)
    try:
        deadline = time.monotonic() + 10
        while ("key", key["id"]) not in budgets(gw) and time.monotonic() < deadline:
            time.sleep(0.05)
        again = budgets(gw)[("key", key["id"])]
        assert again["spent"] == pytest.approx(account["spent"], abs=1e-9)
        status, _, body = ask(gw, token)
        assert status == 402, body
    finally:
        gw.stop()


def test_a_team_budget_notifies_at_soft_and_hard_and_names_no_amount(
        up: FakeUpstream, hook: Webhook, tmp_path: Path) -> None:
    gw = start(up, tmp_path, hook)
    try:
        status, key = gw.request("POST", "/api/keys", {"team": "capped", "role": "developer"})
        assert status == 201, key
        statuses = []
        for _ in range(200):
            status, _, body = ask(gw, key["key"])
            statuses.append(status)
            if status != 200:
                break
        assert statuses[-1] == 402 and statuses.count(200) > 2
        message = body["error"]["message"]
        assert "the team budget 'capped' (daily)" in message and "resets at" in message
        assert "0." not in message  # no amounts
        deadline = time.monotonic() + 10
        while len([e for e in hook.events if e["name"] == "capped"]) < 2:
            assert time.monotonic() < deadline, hook.events
            time.sleep(0.05)
        mine = [e for e in hook.events if e["name"] == "capped"]
        assert [e["type"] for e in mine] == ["budget.soft", "budget.exceeded"]
        assert mine[0]["spent"] >= 0.1 and mine[1]["spent"] >= 0.2
        assert mine[0]["currency"] == "USD" and mine[0]["scope"] == "team"
        status, audit = gw.request("GET", "/api/audit?limit=1000")
        actions = [(e["action"], e["target"]) for e in audit["data"]]
        assert ("budget.soft", "team:capped") in actions
        assert ("budget.exceeded", "team:capped") in actions
        # the team's developer sees its team's budget, not another's
        mine_listed = budgets(gw, key["key"])
        assert set(mine_listed) == {("team", "capped")}
        status, other = gw.request("POST", "/api/keys", {"team": "elsewhere",
                                                         "role": "viewer"})
        assert status == 201
        assert budgets(gw, other["key"]) == {}
        runner = CliRunner()
        base = ["budgets", "--url", gw.base_url, "--key", MASTER_KEY]
        out = runner.invoke(main, [*base, "list", "--json", "--exceeded"])
        assert out.exit_code == 0, out.output
        rows = [json.loads(line) for line in out.output.splitlines() if line]
        assert [(r["scope"], r["name"]) for r in rows] == [("team", "capped")]
        table = runner.invoke(main, [*base, "list"])
        assert table.exit_code == 0 and "capped" in table.output, table.output
        made = runner.invoke(main, ["keys", "--url", gw.base_url, "--key", MASTER_KEY,
                                    "create", "--budget", "5", "--budget-period", "weekly",
                                    "--budget-soft", "4", "--json"])
        assert made.exit_code == 0, made.output
        assert json.loads(made.output)["budget"] == {"limit": 5.0, "period": "weekly",
                                                     "soft": 4.0}
        status, metrics = gw.request("GET", "/metrics")
        assert status == 200
        text = metrics.decode() if isinstance(metrics, bytes) else str(metrics)
        assert 'bastion_budget_events_total{scope="team",event="exceeded"} 1' in text
    finally:
        gw.stop()


@pytest.mark.parametrize("budget", [
    {"limit": 0}, {"limit": -1}, {"limit": "ten"}, {"limit": 1, "period": "hourly"},
    {"limit": 1, "soft": 2}, {"limit": 1, "extra": True}, [], "10", {"period": "daily"}])
def test_a_bad_budget_is_a_400_naming_it(up: FakeUpstream, hook: Webhook, tmp_path: Path,
                                         budget: Any) -> None:
    gw = start(up, tmp_path, hook)
    try:
        status, body = gw.request("POST", "/api/keys", {"budget": budget})
        assert status == 400, body
        assert body["error"]["param"].startswith("budget"), body
        status, body = gw.request("POST", "/api/keys", {"limits": {"budget": budget}})
        assert status == 400 and body["error"]["param"].startswith("limits.budget"), body
    finally:
        gw.stop()
