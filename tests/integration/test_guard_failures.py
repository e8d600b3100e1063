"""A guard scanner that fails never gives a 500: through the gateway, a rule that fails
closed answers 503 ``guard_error`` (a stream ends with an error event), one that fails open
lets the request through flagged; both are traced, counted and logged. And the reported
crash (a newline before a key-shaped token) passes the standard policy."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bastion.cli import main
from bastion.config import load_settings
from bastion.guards.base import Finding, ScanContext
from bastion.hookspecs import hookimpl
from bastion.plugins import plugin_manager
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import RunningGateway, trace_of

CRASH = "\nX9fQ2mZ7pLk4Rt8WvN3sHj6YdF1gEa0b"


class Flaky:
    """Raises on any text with BOOM in it (its message quotes the text, as bugs do)."""

    kinds = ("X",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.name = "flaky"

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        if "BOOM" in text:
            raise IndexError(f"list index out of range near {text!r}")
        return []


class FlakyPlugin:
    @hookimpl
    def register_scanners(self, register: Callable[[str, Callable[..., Any]], None]) -> None:
        register("flaky", Flaky)


def _start(up: FakeUpstream, tmp_path: Path, policy: dict[str, Any]) -> RunningGateway:
    pm = plugin_manager()
    pm.register(FlakyPlugin())
    overrides: dict[str, Any] = {
        "server.port": 0, "home": str(tmp_path / "home"),
        "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}],
        "tracing": {"flush_interval": 0.05},
        "guards": {"default": "p", "policies": {"p": policy}},
    }
    return RunningGateway(load_settings(env={}, overrides=overrides), pm).start()


def _chat(gw: RunningGateway, content: str, stream: bool = False) -> tuple[int, dict[str, str], Any]:
    return gw.request_full("POST", "/v1/chat/completions", {
        "model": "chat", "stream": stream, "messages": [{"role": "user", "content": content}]})


def _errors_metric(gw: RunningGateway) -> dict[str, float]:
    status, _, text = gw.request_full("GET", "/metrics")
    assert status == 200
    body = text.decode() if isinstance(text, bytes) else str(text)
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in body.splitlines()
            if line.startswith("bastion_guard_errors_total{")}


def test_input_rule_that_fails_closed_is_a_503_traced_and_counted(
        up: FakeUpstream, tmp_path: Path) -> None:
    gw = _start(up, tmp_path, {"input": [{"scanner": "flaky", "action": "block"}]})
    try:
        sent = len(up.requests)
        status, headers, body = _chat(gw, "please BOOM now")
        assert status == 503, body
        assert body["error"]["code"] == "guard_error" and body["error"]["type"] == "server_error"
        assert "flaky" in body["error"]["message"] and "BOOM" not in body["error"]["message"]
        assert len(up.requests) == sent  # nothing unchecked went upstream
        trace = trace_of(gw, headers["x-request-id"])
        assert trace["status"] == 503
        (decision,) = trace["guards"]
        assert decision["error"] == "IndexError" and decision["kinds"] == ["SCANNER_ERROR"]
        assert decision["action"] == "block"
        assert _errors_metric(gw) == {'bastion_guard_errors_total{scanner="flaky",fails="closed"}': 1}
        status, _, _ = _chat(gw, "a calm request")
        assert status == 200  # the scanner is not disabled by one failure
    finally:
        gw.stop()


def test_flag_rule_fails_open(up: FakeUpstream, tmp_path: Path) -> None:
    gw = _start(up, tmp_path, {"input": [{"scanner": "flaky", "action": "flag"},
                                         {"scanner": "secrets", "action": "redact"}]})
    try:
        status, headers, body = _chat(gw, "BOOM sk-proj-Zk3Q9xR2vL7mN4pT8wY1bC6d")
        assert status == 200, body
        assert up.requests[-1]["json"]["messages"][0]["content"] == "BOOM [SECRET]"
        trace = trace_of(gw, headers["x-request-id"])
        assert [d["action"] for d in trace["guards"]] == ["flag", "redact"]
        assert trace["guards"][0]["error"] == "IndexError"
        assert _errors_metric(gw) == {'bastion_guard_errors_total{scanner="flaky",fails="open"}': 1}
    finally:
        gw.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_output_rule_that_fails_closed_withholds_the_answer(
        up: FakeUpstream, tmp_path: Path, stream: bool) -> None:
    gw = _start(up, tmp_path, {"output": [{"scanner": "flaky", "action": "block"}]})
    try:
        up.behaviour.content = "the answer is BOOM. More text."
        status, headers, body = _chat(gw, "hi", stream=stream)
        if not stream:
            assert status == 503 and body["error"]["code"] == "guard_error", body
            assert "BOOM" not in json.dumps(body)
        else:
            raw = body.decode() if isinstance(body, bytes) else str(body)
            assert status == 200 and "BOOM" not in raw
            errors = [json.loads(line[6:]) for line in raw.splitlines()
                      if line.startswith("data: {") and '"error"' in line]
            assert errors and errors[-1]["error"]["code"] == "guard_error", raw
        trace = trace_of(gw, headers["x-request-id"])
        assert any(d.get("error") == "IndexError" for d in trace["guards"])
    finally:
        gw.stop()


def test_the_reported_crash_passes_the_standard_policy(up: FakeUpstream, tmp_path: Path) -> None:
    overrides: dict[str, Any] = {
        "server.port": 0, "home": str(tmp_path / "home"),
        "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}],
        "tracing": {"enabled": False}, "guards": {"default": "standard"},
    }
    gw = RunningGateway(load_settings(env={}, overrides=overrides)).start()
    try:
        status, _, body = _chat(gw, "my token is" + CRASH)
        assert status == 200, body
        assert up.requests[-1]["json"]["messages"][0]["content"] == "my token is\n[SECRET]"
    finally:
        gw.stop()


def test_guard_scan_cli_on_the_reported_crash(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("guards: {default: standard}\n")
    result = CliRunner().invoke(main, ["guard", "scan", "--config", str(config), "--json", CRASH])
    assert result.exit_code == 0 and result.exception is None, result.output
    verdict = json.loads(result.output)
    assert verdict["text"] == "\n[SECRET]" and verdict["failed"] is None


def test_guard_scan_cli_says_a_scanner_failed(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import bastion.plugins

    original = bastion.plugins.plugin_manager

    def with_flaky(load_entry_points: bool = True) -> Any:
        pm = original(load_entry_points)
        pm.register(FlakyPlugin())
        return pm

    monkeypatch.setattr(bastion.plugins, "plugin_manager", with_flaky)
    config = tmp_path / "bastion.yaml"
    config.write_text("guards: {default: p, policies: {p: {input: [{scanner: flaky, "
                      "action: block}]}}}\n")
    result = CliRunner().invoke(main, ["guard", "scan", "--config", str(config), "BOOM"])
    assert result.exit_code == 3, result.output
    assert "flaky scanner failed (IndexError)" in result.output
