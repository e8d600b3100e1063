"""A third-party backend registers through the same hook the built-ins use."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from click.testing import CliRunner

from bastion.backends.base import Backend, Completion, Result
from bastion.cli import main
from bastion.config import ServerSettings, Settings, load_settings
from bastion.context import RequestContext
from bastion.errors import ConfigError
from bastion.gateway.app import Gateway
from bastion.hookspecs import RegisterBackend, hookimpl
from bastion.observe.logs import JsonFormatter
from bastion.plugins import plugin_manager
from tests.gateway_harness import RunningGateway, trace_of


class EchoBackend(Backend):
    kind = "echo"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec.name)
        self.prefix = spec.model_extra.get("prefix", "")

    async def chat(self, body: dict[str, Any], stream: bool, ctx: RequestContext) -> Result:
        text = self.prefix + body["messages"][-1]["content"]
        return Completion(
            orjson.dumps(
                {
                    "id": "chatcmpl-echo",
                    "object": "chat.completion",
                    "created": 0,
                    "model": self.name,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                }
            )
        )


class BrokenBackend(EchoBackend):
    """A plugin with a bug: any exception, not one of Bastion's errors."""

    kind = "broken"

    async def chat(self, body: dict[str, Any], stream: bool, ctx: RequestContext) -> Result:
        raise KeyError(body["messages"][-1]["content"])  # quotes the request, as bugs do


class EchoPlugin:
    @hookimpl
    def register_backends(self, register: RegisterBackend) -> None:
        register("echo", EchoBackend)
        register("broken", BrokenBackend)


def settings_with_echo(tmp_path: Path) -> Settings:
    path = tmp_path / "bastion.yaml"
    path.write_text("models:\n  - {name: parrot, backend: echo, prefix: 'echo: '}\n")
    return load_settings(path, env={}, overrides={"server.port": 0})


def test_plugin_backend_serves_requests(tmp_path: Path) -> None:
    pm = plugin_manager()
    pm.register(EchoPlugin())
    gw = RunningGateway(settings_with_echo(tmp_path), pm).start()
    try:
        client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="parrot", messages=[{"role": "user", "content": "hello"}]
        )
        assert reply.choices[0].message.content == "echo: hello"
    finally:
        gw.stop()


def test_a_plugin_bug_is_a_traced_500_with_the_clients_request_id(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pm = plugin_manager()
    pm.register(EchoPlugin())
    settings = load_settings(env={}, overrides={
        "server.port": 0, "home": str(tmp_path / "home"), "tracing": {"flush_interval": 0.05},
        "models": [{"name": "bad", "backend": "broken"}]})
    gw = RunningGateway(settings, pm).start()
    try:
        with caplog.at_level(logging.ERROR):
            status, headers, body = gw.request_full("POST", "/v1/chat/completions", {
                "model": "bad", "messages": [{"role": "user", "content": "private words"}]})
        assert status == 500
        assert body["error"]["code"] == "internal_error" and body["error"]["type"] == "server_error"
        assert "KeyError" in body["error"]["message"] and "private" not in body["error"]["message"]
        request_id = headers["x-request-id"]
        assert request_id in body["error"]["message"]
        trace = trace_of(gw, request_id)
        assert trace["status"] == 500 and trace["error"] == "internal error (KeyError)"
        (record,) = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
        line = json.loads(JsonFormatter().format(record))
        assert line["request_id"] == request_id and line["error_type"] == "KeyError"
        assert "KeyError" in line["exc_info"] and line["level"] == "ERROR"
        status, _, text = gw.request_full("GET", "/metrics")
        assert 'bastion_requests_total{' in text.decode() and 'status="500"' in text.decode()
        client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="bad", messages=[{"role": "user", "content": "x"}])
        assert caught.value.response.headers["x-request-id"]
    finally:
        gw.stop()


class Recorder:
    """A plugin observer, registered through the hook the spool, metrics, OTel and the
    access log use; and one that fails, which must not break a request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str | None]] = []

    @hookimpl
    def register_observers(self, register: Any) -> None:
        register("recorder", lambda gw: lambda ctx: self.seen.append(
            (ctx.request_id, ctx.status, ctx.model)) if ctx.endpoint.startswith("/v1/") else None)
        register("broken", lambda gw: lambda ctx: 1 / 0)
        register("off", lambda gw: None)


def test_a_plugin_observer_sees_every_finished_request(tmp_path: Path) -> None:
    pm = plugin_manager()
    pm.register(EchoPlugin())
    recorder = Recorder()
    pm.register(recorder)
    gw = RunningGateway(settings_with_echo(tmp_path), pm).start()
    try:
        status, headers, _ = gw.request_full("POST", "/v1/chat/completions", {
            "model": "parrot", "messages": [{"role": "user", "content": "hello"}]})
        assert status == 200  # the broken observer is logged, not the client's problem
        status, missing, _ = gw.request_full("POST", "/v1/chat/completions", {
            "model": "nope", "messages": [{"role": "user", "content": "hello"}]})
        assert status == 404
        assert recorder.seen == [(headers["x-request-id"], 200, "parrot"),
                                 (missing["x-request-id"], 404, "nope")]
    finally:
        gw.stop()
    names = list(__import__("bastion.plugins", fromlist=["x"]).observer_factories(pm))
    assert names[-4:] == ["spool", "metrics", "otel", "access_log"]  # the built-ins, last
    assert {"recorder", "broken", "off"} <= set(names)


def test_unknown_backend_kind_is_a_clear_start_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no installed plugin provides backend 'echo'"):
        Gateway(settings_with_echo(tmp_path))
    assert Settings(server=ServerSettings()).models  # built-ins need no plugin


def test_config_check_reports_unknown_backend(tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text("models:\n  - {name: parrot, backend: echo}\n")
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert "no installed plugin provides backend 'echo'" in result.output


def test_the_access_log_follows_a_reload(tmp_path: Path) -> None:
    from bastion.observe.builtin import log_access

    on = load_settings(env={}, overrides={"server.port": 0, "home": str(tmp_path / "h"),
                                          "server.access_log": True, "tracing.enabled": False})
    gw = Gateway(on)
    assert log_access in gw.observers and gw.metrics.observe in gw.observers
    off = on.model_copy(update={"server": on.server.model_copy(update={"access_log": False})})
    gw.apply(off, gw.backends, gw.router, gw.guards)
    assert log_access not in gw.observers and gw.metrics.observe in gw.observers
    gw.apply(on, gw.backends, gw.router, gw.guards)
    assert gw.observers.count(log_access) == 1
