"""What a virtual key carries besides its limits: its requests' guard policy, the content
mode its traces keep, its admission priority. Through a real gateway and its store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, trace_of, traced_gateway

SECRET = "sk-proj-" + "Zk3Q9xR2vL7mN4pT8wY1bC6d"


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream().start() as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(up: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    gateway = traced_gateway(
        up, tmp_path_factory.mktemp("handling"),
        tracing={"content": "full", "content_by_tenant": {"quiet": "metadata"}}, **{
            "server.master_key": MASTER_KEY,
            # a named policy that nothing attaches: only a key that names it applies it
            "guards": {"policies": {"r": {"input": [{"scanner": "secrets",
                                                     "action": "redact"}]}}},
            "admission": {"tenants": {"alpha": {"best_priority": 2}}},
        })
    yield gateway
    gateway.stop()


def make(gw: RunningGateway, key: str | None = MASTER_KEY, **body: Any) -> dict[str, Any]:
    status, made = gw.request("POST", "/api/keys", body, key=key)
    assert status == 201, made
    return dict(made)


def ask(gw: RunningGateway, token: str, text: str = "hi",
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    return gw.request_full("POST", "/v1/chat/completions", {
        "model": "chat", "messages": [{"role": "user", "content": text}]}, key=token,
        headers=headers)


def test_a_keys_guard_policy_applies_to_its_requests_only(
        gw: RunningGateway, up: FakeUpstream) -> None:
    guarded = make(gw, team="alpha", guard_policy="r")
    assert guarded["guard_policy"] == "r"
    status, headers, body = ask(gw, guarded["key"], f"my key is {SECRET}")
    assert status == 200, body
    assert up.requests[-1]["json"]["messages"][0]["content"] == "my key is [SECRET]"
    assert trace_of(gw, headers["x-request-id"])["metadata"]["guard_policy"] == "r"
    plain = make(gw, team="alpha")
    status, headers, _ = ask(gw, plain["key"], f"my key is {SECRET}")
    assert status == 200
    assert up.requests[-1]["json"]["messages"][0]["content"] == f"my key is {SECRET}"
    assert "guard_policy" not in trace_of(gw, headers["x-request-id"])["metadata"]


def test_only_an_admin_sets_a_guard_policy_and_only_a_configured_one(
        gw: RunningGateway) -> None:
    dev = make(gw, team="alpha", role="developer")["key"]
    status, body = gw.request("POST", "/api/keys", {"team": "alpha", "guard_policy": "none"},
                              key=dev)
    assert status == 403 and body["error"]["code"] == "insufficient_permissions"
    status, body = gw.request("POST", "/api/keys", {"guard_policy": "missing"})
    assert status == 400 and body["error"]["param"] == "guard_policy"
    for bad in ({"content_mode": "all"}, {"priority": 10}, {"priority": -1},
                {"priority": True}, {"priority": "1"}, {"guard_policy": 3}):
        status, body = gw.request("POST", "/api/keys", bad)
        assert status == 400, (bad, body)
        assert body["error"]["param"] == next(iter(bad)), body
    # a developer rotates a key an admin gave a policy: the policy stays
    made = make(gw, team="alpha", guard_policy="r", content_mode="redacted", priority=6)
    status, rotated = gw.request("POST", f"/api/keys/{made['id']}/rotate", {}, key=dev)
    assert status == 201 or status == 200, rotated
    assert (rotated["guard_policy"], rotated["content_mode"], rotated["priority"]) == (
        "r", "redacted", 6)


def test_a_keys_content_mode_is_kept_only_where_it_is_stricter(gw: RunningGateway) -> None:
    quiet = make(gw, team="alpha", content_mode="metadata")["key"]
    status, headers, _ = ask(gw, quiet, "a private question")
    assert status == 200
    trace = trace_of(gw, headers["x-request-id"])
    assert trace["content_mode"] == "metadata" and trace["input"] is None
    # a key cannot keep more than its team's mode: team 'quiet' keeps metadata only
    loud = make(gw, team="quiet", content_mode="full")["key"]
    status, headers, _ = ask(gw, loud, "another private question")
    trace = trace_of(gw, headers["x-request-id"])
    assert trace["content_mode"] == "metadata" and trace["input"] is None
    plain = make(gw, team="alpha")["key"]
    status, headers, _ = ask(gw, plain, "an open question")
    trace = trace_of(gw, headers["x-request-id"])
    assert trace["content_mode"] == "full" and "an open question" in str(trace["input"])


def test_a_keys_priority_is_its_default_and_its_best(gw: RunningGateway) -> None:
    def priority(token: str, asked: str | None = None) -> int:
        status, headers, body = ask(gw, token, headers={"x-bastion-priority": asked}
                                    if asked is not None else None)
        assert status == 200, body
        return int(trace_of(gw, headers["x-request-id"])["priority"])

    slow = make(gw, team="beta", priority=7)["key"]
    assert priority(slow) == 7
    assert priority(slow, "9") == 9, "less urgent may be asked for"
    assert priority(slow, "1") == 7, "more urgent than the key's may not"
    eager = make(gw, team="alpha", priority=0)["key"]
    assert priority(eager) == 2, "never above the team's best_priority"
    assert priority(make(gw, team="beta")["key"]) == 5, "the default without one"


def test_the_command_line_sets_them(gw: RunningGateway) -> None:
    import json

    from click.testing import CliRunner

    from bastion.cli import main

    result = CliRunner().invoke(main, [
        "keys", "--url", gw.base_url, "--key", MASTER_KEY, "create", "--team", "alpha",
        "--guard-policy", "r", "--content-mode", "redacted", "--priority", "4", "--json"])
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert (made["guard_policy"], made["content_mode"], made["priority"]) == ("r", "redacted", 4)


def test_a_keys_user_is_not_replaced_by_the_requests_user_field(gw: RunningGateway) -> None:
    """Budgets and limits per user follow the key's user: naming another in the body does
    not escape them (a key without a user takes the body's)."""
    owned = make(gw, team="alpha", user="u-owner")["key"]
    status, headers, _ = gw.request_full("POST", "/v1/chat/completions", {
        "model": "chat", "user": "someone-else",
        "messages": [{"role": "user", "content": "hi"}]}, key=owned)
    assert status == 200 and trace_of(gw, headers["x-request-id"])["user"] == "u-owner"
    free = make(gw, team="alpha")["key"]
    status, headers, _ = gw.request_full("POST", "/v1/chat/completions", {
        "model": "chat", "user": "end-user-9",
        "messages": [{"role": "user", "content": "hi"}]}, key=free)
    assert status == 200 and trace_of(gw, headers["x-request-id"])["user"] == "end-user-9"
