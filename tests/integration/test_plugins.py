"""A third-party backend registers through the same hook the built-ins use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from click.testing import CliRunner

from bastion.backends.base import Backend, Completion, Result
from bastion.cli import main
from bastion.config import ServerSettings, Settings, load_settings
from bastion.errors import ConfigError
from bastion.gateway.app import Gateway
from bastion.gateway.context import RequestContext
from bastion.hookspecs import RegisterBackend, hookimpl
from bastion.plugins import plugin_manager
from tests.gateway_harness import RunningGateway


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


class EchoPlugin:
    @hookimpl
    def register_backends(self, register: RegisterBackend) -> None:
        register("echo", EchoBackend)


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
