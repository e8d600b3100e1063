"""Virtual keys through a real gateway: made, used, limited to models, rotated, revoked,
expired; what each role may do (the RBAC matrix); a team never reads another's data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, chat, trace_of, traced_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with FakeUpstream().start() as up:
        home = tmp_path_factory.mktemp("keys")
        gateway = traced_gateway(up, home, **{
            "server.master_key": MASTER_KEY,
            "models": [{"name": n, "backend": "openai", "base_url": up.base_url}
                       for n in ("chat", "other")],
        })
        yield gateway
        gateway.stop()


def make(gw: RunningGateway, key: str | None = MASTER_KEY, **body: Any) -> dict[str, Any]:
    status, made = gw.request("POST", "/api/keys", body, key=key)
    assert status == 201, made
    return dict(made)


def ask(gw: RunningGateway, key: str, model: str = "chat") -> tuple[int, dict[str, str], Any]:
    return gw.request_full("POST", "/v1/chat/completions", {
        "model": model, "messages": [{"role": "user", "content": "hi"}]}, key=key)


def test_a_key_is_shown_once_and_stored_only_as_a_digest(gw: RunningGateway) -> None:
    made = make(gw, name="svc-a", team="alpha")
    token = made["key"]
    assert token.startswith("bst-") and len(token) == 47, token
    assert made["hint"] == f"bst-...{token[-4:]}" and made["status"] == "active"
    assert "digest" not in made
    status, shown = gw.request("GET", f"/api/keys/{made['id']}")
    assert status == 200 and "key" not in shown and "digest" not in shown
    status, listed = gw.request("GET", "/api/keys")
    assert all("key" not in k and "digest" not in k for k in listed["data"])
    db = Path(gw.settings.home) / "bastion.db"
    raw = b"".join(p.read_bytes() for p in db.parent.glob("bastion.db*"))
    assert token.encode() not in raw and token[4:].encode() not in raw


def test_a_key_calls_models_and_its_trace_names_it(gw: RunningGateway) -> None:
    made = make(gw, name="svc-b", team="alpha", user="u-7")
    status, headers, body = ask(gw, made["key"])
    assert status == 200, body
    trace = trace_of(gw, headers["x-request-id"])
    assert trace["key_id"] == made["id"] and trace["team"] == "alpha"
    assert trace["tenant"] == "alpha", "the key's team is the tenant"


def test_a_key_limited_to_models_sees_and_uses_only_those(gw: RunningGateway) -> None:
    token = make(gw, team="alpha", models=["chat"])["key"]
    assert ask(gw, token)[0] == 200
    status, _, body = ask(gw, token, "other")
    assert status == 403 and body["error"]["code"] == "model_not_allowed"
    assert body["error"]["param"] == "model"
    status, models = gw.request("GET", "/v1/models", key=token)
    assert [m["id"] for m in models["data"]] == ["chat"]
    status, body = gw.request("GET", "/v1/models/other", key=token)
    assert status == 404 and body["error"]["code"] == "model_not_found"


def test_revoked_rotated_and_expired_keys(gw: RunningGateway) -> None:
    made = make(gw, team="alpha")
    status, revoked = gw.request("POST", f"/api/keys/{made['id']}/revoke")
    assert status == 200 and revoked["status"] == "revoked"
    status, _, body = ask(gw, made["key"])
    assert status == 401 and body["error"]["code"] == "invalid_api_key", "at once"
    assert gw.request("POST", f"/api/keys/{made['id']}/revoke")[0] == 200, "idempotent"

    old = make(gw, team="alpha", name="rot")
    status, new = gw.request("POST", f"/api/keys/{old['id']}/rotate", {"grace_seconds": 60})
    assert status == 201 and new["rotated_from"] == old["id"] and new["name"] == "rot"
    assert ask(gw, new["key"])[0] == 200 and ask(gw, old["key"])[0] == 200, "in its grace"
    status, shown = gw.request("GET", f"/api/keys/{old['id']}")
    assert shown["expires_at"] <= time.time() + 61
    status, newest = gw.request("POST", f"/api/keys/{new['id']}/rotate")  # no grace
    assert status == 201
    assert ask(gw, new["key"])[0] == 401 and ask(gw, newest["key"])[0] == 200

    brief = make(gw, team="alpha", expires_in=1)
    assert ask(gw, brief["key"])[0] == 200
    time.sleep(1.1)
    status, _, body = ask(gw, brief["key"])
    assert status == 401 and body["error"]["code"] == "expired_api_key"
    status, listed = gw.request("GET", "/api/keys?status=expired")
    assert brief["id"] in {k["id"] for k in listed["data"]}


@pytest.mark.parametrize("token", [
    "bst-" + "A" * 43, "bst-", "bst-" + "x" * 200, "Bst-" + "A" * 43])
def test_a_made_up_key_is_401(gw: RunningGateway, token: str) -> None:
    status, _, body = ask(gw, token)
    assert status == 401 and body["error"]["code"] == "invalid_api_key", body


# ------------------------------------------------------------------- roles
ROLE_CASES = [  # (method, path, body): one per permission
    ("POST", "/v1/chat/completions", {"model": "chat", "messages": [
        {"role": "user", "content": "hi"}]}),
    ("GET", "/v1/models", None),
    ("GET", "/api/traces", None),
    ("GET", "/api/stats", None),
    ("GET", "/api/deployments", None),
    ("GET", "/api/keys", None),
    ("POST", "/api/config/reload", {"dry_run": True}),
    ("GET", "/metrics", None),
    ("GET", "/api/audit", None),
]
EXPECTED = {  # role -> status per ROLE_CASES
    "user": [200, 200, 403, 403, 403, 403, 403, 403, 403],
    "viewer": [403, 403, 200, 200, 200, 403, 403, 403, 403],
    "developer": [200, 200, 200, 200, 200, 200, 403, 403, 403],
    "admin": [200, 200, 200, 200, 200, 200, 400, 200, 200],  # 400: allowed, but this
}                                                          # gateway has no config file


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_rbac_matrix(gw: RunningGateway, role: str) -> None:
    token = make(gw, role=role, team="alpha")["key"]
    got = [gw.request_full(m, p, b, key=token)[0] for m, p, b in ROLE_CASES]
    assert got == EXPECTED[role], list(zip(ROLE_CASES, got, strict=True))
    status, _, body = gw.request_full("GET", "/api/keys" if role == "user" else "/metrics",
                                      key=token)
    if status == 403:
        assert body["error"]["type"] == "permission_error"
        assert body["error"]["code"] == "insufficient_permissions"


def test_who_may_make_which_key(gw: RunningGateway) -> None:
    dev = make(gw, role="developer", team="alpha")["key"]
    mine = make(gw, dev, role="user")  # its own team by default
    assert mine["team"] == "alpha"
    for body in ({"role": "admin"}, {"role": "user", "team": "beta"}):
        status, answer = gw.request("POST", "/api/keys", body, key=dev)
        assert status == 403 and answer["error"]["code"] == "insufficient_permissions"
    boss = make(gw, role="admin", team="alpha")
    status, _ = gw.request("POST", f"/api/keys/{boss['id']}/revoke", key=dev)
    assert status == 403, "a developer may not revoke an admin key"
    other = make(gw, role="user", team="beta")
    status, body = gw.request("GET", f"/api/keys/{other['id']}", key=dev)
    assert status == 404, "another team's key does not exist for it"
    status, body = gw.request("POST", f"/api/keys/{other['id']}/revoke", key=dev)
    assert status == 404
    status, listed = gw.request("GET", "/api/keys?team=beta", key=dev)
    assert status == 200 and {k["team"] for k in listed["data"]} == {"alpha"}
    narrow = make(gw, role="developer", team="alpha", models=["chat"])["key"]
    assert make(gw, narrow)["models"] == ["chat"], "its own models by default"
    status, answer = gw.request("POST", "/api/keys", {"models": ["chat", "other"]}, key=narrow)
    assert status == 403 and answer["error"]["code"] == "insufficient_permissions"


def test_a_team_reads_its_own_traces_stats_and_feedback_only(gw: RunningGateway) -> None:
    alpha, beta = (make(gw, role="developer", team=t)["key"] for t in ("alpha", "beta"))
    mine = ask(gw, alpha)[1]["x-request-id"]
    theirs = ask(gw, beta)[1]["x-request-id"]
    trace_of(gw, mine)
    trace_of(gw, theirs)
    status, page = gw.request("GET", "/api/traces?limit=500", key=alpha)
    assert status == 200 and page["data"]
    assert {t["team"] for t in page["data"]} == {"alpha"}
    assert gw.request("GET", f"/api/traces/{theirs}", key=alpha)[0] == 404
    assert gw.request("GET", f"/api/traces/{mine}", key=alpha)[0] == 200
    status, body = gw.request("GET", "/api/traces?team=beta", key=alpha)
    assert status == 403 and body["error"]["param"] == "team"
    _, everything = gw.request("GET", "/api/stats?since=1h")
    status, own = gw.request("GET", "/api/stats?since=1h", key=alpha)
    assert status == 200
    assert 0 < own["totals"]["requests"] < everything["totals"]["requests"]
    status, teams = gw.request("GET", "/api/stats/values?dimension=team&since=1h")
    assert status == 200 and {"alpha", "beta"} <= {v["value"] for v in teams["data"]}
    counts = [v["requests"] for v in teams["data"]]
    assert counts == sorted(counts, reverse=True) and all(n > 0 for n in counts)
    status, seen = gw.request("GET", "/api/stats/values?dimension=team&since=1h", key=alpha)
    assert status == 200 and [v["value"] for v in seen["data"]] == ["alpha"]
    status, keys = gw.request("GET", "/api/stats/values?dimension=key_id&limit=1", key=alpha)
    assert status == 200 and len(keys["data"]) == 1
    status, body = gw.request("GET", "/api/stats/values?dimension=user&team=beta", key=alpha)
    assert status == 403 and body["error"]["param"] == "team"
    status, body = gw.request("POST", "/api/feedback", {"request_id": theirs, "value": "up"},
                              key=alpha)
    assert status == 404, body
    status, _ = gw.request("POST", "/api/feedback", {"request_id": mine, "value": "up"},
                           key=alpha)
    assert status == 201


def test_virtual_keys_wait_for_the_store_with_a_503(tmp_path: Path) -> None:
    """A store that cannot be read at start: the master key works, a virtual key is a 503
    (retry), never a 401 that would make a client drop a good key."""
    with FakeUpstream().start() as up:
        gw = traced_gateway(up, tmp_path, {"enabled": False}, **{
            "server.master_key": MASTER_KEY,
            "store": {"url": "postgresql+psycopg://bastion@127.0.0.1:1/none"}})
        try:
            assert chat(gw)[0] == 200
            status, headers, body = ask(gw, "bst-" + "A" * 43)
            assert status == 503 and body["error"]["code"] == "keys_unavailable", body
            assert headers.get("retry-after")
        finally:
            gw.stop()


def test_the_keys_command_line(gw: RunningGateway) -> None:
    import json

    from click.testing import CliRunner

    from bastion.cli import main

    base = ["keys", "--url", gw.base_url, "--key", MASTER_KEY]
    runner = CliRunner()
    made = runner.invoke(main, [*base, "create", "--name", "cli-key", "--team", "gamma",
                                "--model", "chat", "--expires-in", "30d", "--meta", "owner=ops",
                                "--rpm", "100", "--max-parallel", "4", "--json"])
    assert made.exit_code == 0, made.output
    key = json.loads(made.stdout)
    assert key["key"].startswith("bst-") and key["models"] == ["chat"]
    assert key["limits"] == {"rpm": 100, "max_parallel": 4}
    assert key["metadata"] == {"owner": "ops"} and key["expires_at"] > time.time() + 29 * 86400
    assert ask(gw, key["key"])[0] == 200
    table = runner.invoke(main, [*base, "create", "--team", "gamma"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "key: bst-" in table.stdout
    assert "only time" in table.stderr
    listed = runner.invoke(main, [*base, "list", "--team", "gamma", "--json"])
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["team"] for r in rows} == {"gamma"} and len(rows) == 2
    assert all("key" not in r for r in rows)
    shown = runner.invoke(main, [*base, "show", key["id"]])
    assert shown.exit_code == 0 and "cli-key" in shown.stdout and "bst-" in shown.stdout
    rotated = runner.invoke(main, [*base, "rotate", key["id"], "--grace", "1h", "--json"])
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.stdout)
    assert ask(gw, key["key"])[0] == 200 and ask(gw, new["key"])[0] == 200
    revoked = runner.invoke(main, [*base, "revoke", new["id"]])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert ask(gw, new["key"])[0] == 401
    bad = runner.invoke(main, [*base, "create", "--expires-in", "soon"])
    assert bad.exit_code == 2 and "duration" in bad.output
    denied = runner.invoke(main, ["keys", "--url", gw.base_url, "--key", new["key"], "list"])
    assert denied.exit_code == 1 and "401" in denied.output


# ------------------------------------------------------------------- rate limits
def test_a_key_over_its_rpm_gets_429_with_openai_headers(gw: RunningGateway) -> None:
    token = make(gw, team="alpha", limits={"rpm": 3})["key"]
    answers = [ask(gw, token) for _ in range(4)]
    assert [a[0] for a in answers] == [200, 200, 200, 429]
    _, headers, _ = answers[0]
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "2"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    _, headers, body = answers[3]
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert 15 <= int(headers["retry-after"]) <= 21, headers
    assert ask(gw, make(gw, team="alpha", limits={"rpm": 3})["key"])[0] == 200, "per key"


def test_limits_are_checked_when_made(gw: RunningGateway) -> None:
    for limits, param in (({"rpm": 0}, "limits.rpm"), ({"rps": 5}, "limits.rps"),
                          ({"tpm": True}, "limits.tpm"), ([], "limits")):
        status, body = gw.request("POST", "/api/keys", {"limits": limits})
        assert status == 400 and body["error"]["param"] == param, (limits, body)


def test_tokens_per_minute_reserve_and_settle(gw: RunningGateway) -> None:
    token = make(gw, team="alpha", limits={"tpm": 2000})["key"]
    big = {"model": "chat", "max_tokens": 1500, "messages": [{"role": "user", "content": "hi"}]}
    status, headers, _ = gw.request_full("POST", "/v1/chat/completions", big, key=token)
    assert status == 200 and int(headers["x-ratelimit-remaining-tokens"]) < 500
    # settled to the fake's usage (a few dozen tokens): the next big one fits again
    status, headers, _ = gw.request_full("POST", "/v1/chat/completions", big, key=token)
    assert status == 200, headers
    status, _, body = gw.request_full("POST", "/v1/chat/completions",
                                      {**big, "max_tokens": 5000}, key=token)
    assert status == 429 and body["error"]["code"] == "tokens_exceed_limit"


def test_requests_in_flight_per_key(tmp_path: Path) -> None:
    import threading

    with FakeUpstream().start() as up:
        up.behaviour.delay_ms = 400
        gw = traced_gateway(up, tmp_path, **{"server.master_key": MASTER_KEY})
        try:
            token = make(gw, limits={"max_parallel": 1})["key"]
            results: list[int] = []
            first = threading.Thread(target=lambda: results.append(ask(gw, token)[0]))
            first.start()
            time.sleep(0.15)
            status, _, body = ask(gw, token)
            first.join()
            assert status == 429 and "in flight" in body["error"]["message"]
            assert results == [200]
            assert ask(gw, token)[0] == 200, "freed when the first finished"
        finally:
            gw.stop()
