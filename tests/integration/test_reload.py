"""Zero-downtime configuration reload: API, SIGHUP and file watch; no request lost."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.config import ServerSettings, Settings, load_settings
from bastion.errors import ConfigError
from bastion.gateway.app import Gateway
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import RunningGateway
from tests.integration.test_lifecycle import free_port, start_bastion, stop_process, wait_ready

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture()
def ups() -> Iterator[list[FakeUpstream]]:
    servers = [FakeUpstream().start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def config(*models: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"server": {"port": 0, **extra}, "models": list(models)}


def up_model(name: str, up: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {"name": name, "backend": "openai", "base_url": up.base_url, **extra}


class Reloadable:
    def __init__(self, path: Path, cfg: dict[str, Any]) -> None:
        self.path = path
        self.write(cfg)
        self.gw = RunningGateway(self.load(), loader=self.load).start()

    def load(self) -> Settings:
        return load_settings(self.path, env={})

    def write(self, cfg: dict[str, Any]) -> None:
        self.path.write_text(yaml.safe_dump(cfg))

    def reload(self, **body: Any) -> tuple[int, Any]:
        return self.gw.request("POST", "/api/config/reload", body or None)

    def models(self) -> list[str]:
        return sorted(m["id"] for m in self.gw.request("GET", "/v1/models")[1]["data"])


@pytest.fixture()
def live(tmp_path: Path, ups: list[FakeUpstream]) -> Iterator[Reloadable]:
    r = Reloadable(tmp_path / "bastion.yaml", config(up_model("a", ups[0], alias="chat")))
    yield r
    r.gw.stop()


def chat(gw: RunningGateway, model: str = "chat") -> int:
    return gw.request("POST", "/v1/chat/completions", {"model": model, "messages": MSG})[0]


def test_reload_adds_and_removes_models(live: Reloadable, ups: list[FakeUpstream]) -> None:
    live.write(config(up_model("a", ups[0], alias="chat"), up_model("solo", ups[1])))
    status, body = live.reload()
    assert status == 200, body
    assert body["applied"] and body["added"] == ["solo"] and body["unchanged"] == ["a"]
    assert live.models() == ["chat", "solo"]
    assert chat(live.gw, "solo") == 200
    live.write(config(up_model("solo", ups[1])))
    status, body = live.reload()
    assert body["removed"] == ["a"]
    assert live.models() == ["solo"]
    assert chat(live.gw, "chat") == 404


def test_dry_run_changes_nothing(live: Reloadable, ups: list[FakeUpstream]) -> None:
    live.write(config(up_model("a", ups[0], alias="chat"), up_model("solo", ups[1])))
    status, body = live.reload(dry_run=True)
    assert status == 200 and body["applied"] is False and body["added"] == ["solo"]
    assert live.models() == ["chat"]


def test_invalid_config_is_refused_and_the_old_one_keeps_serving(live: Reloadable, ups: list[FakeUpstream]) -> None:
    live.path.write_text("models:\n  - {name: x, backend: openai}\n")
    status, body = live.reload()
    assert status == 400 and body["error"]["code"] == "invalid_config"
    assert "base_url" in body["error"]["message"]
    live.write(config(up_model("a", ups[0], alias="chat"), {"name": "p", "backend": "nonesuch"}))
    status, body = live.reload()
    assert status == 400 and "nonesuch" in body["error"]["message"]
    assert chat(live.gw) == 200


def test_unchanged_deployment_keeps_its_live_state(live: Reloadable, ups: list[FakeUpstream]) -> None:
    for _ in range(3):
        assert chat(live.gw) == 200
    live.write(config(up_model("a", ups[0], alias="chat", weight=2.0), up_model("b", ups[1], alias="chat")))
    assert live.reload()[0] == 200
    state = {d["name"]: d for d in live.gw.request("GET", "/api/deployments")[1]["data"]}
    assert state["a"]["successes"] == 3 and state["a"]["weight"] == 2.0
    assert state["b"]["successes"] == 0


def test_port_change_is_reported_as_needing_a_restart(live: Reloadable, ups: list[FakeUpstream]) -> None:
    live.write(config(up_model("a", ups[0], alias="chat"), port=free_port()))
    status, body = live.reload()
    assert status == 200 and body["restart_required"] == ["server.port"]


def test_reloads_under_load_lose_no_request(live: Reloadable, ups: list[FakeUpstream]) -> None:
    ups[0].behaviour.delay_ms = ups[1].behaviour.delay_ms = 20
    stop = threading.Event()
    statuses: list[int] = []

    def hammer() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", live.gw.port, timeout=30)
        body = json.dumps({"model": "chat", "messages": MSG})
        while not stop.is_set():
            conn.request("POST", "/v1/chat/completions", body=body)
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        conn.close()

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        configs = [
            config(up_model("a", ups[0], alias="chat"), up_model("b", ups[1], alias="chat")),
            config(up_model("b", ups[1], alias="chat")),
            config(up_model("a2", ups[0], alias="chat"), up_model("b", ups[1], alias="chat", weight=3)),
            config(up_model("a", ups[0], alias="chat")),
        ]
        for cfg in configs:
            time.sleep(0.3)
            live.write(cfg)
            assert live.reload()[0] == 200
        time.sleep(0.3)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert len(statuses) > 50
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}


def test_sighup_and_file_watch_reload_a_running_process(tmp_path: Path, ups: list[FakeUpstream]) -> None:
    port = free_port()
    first = {"models": [up_model("a", ups[0])]}
    proc = start_bastion(tmp_path, first, port)
    path = tmp_path / "bastion.yaml"

    def models() -> list[str]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1/models")
        data = json.loads(conn.getresponse().read())
        conn.close()
        return sorted(m["id"] for m in data["data"])

    def wait_for(expected: list[str]) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and models() != expected:
            time.sleep(0.1)
        assert models() == expected

    try:
        wait_ready(port, proc)
        path.write_text(yaml.safe_dump({"models": [up_model("a", ups[0]), up_model("b", ups[1])]}))
        wait_for(["a", "b"])  # the file watch
        path.write_text(yaml.safe_dump({"models": [up_model("b", ups[1])]}))
        proc.send_signal(signal.SIGHUP)
        wait_for(["b"])
    finally:
        stop_process(proc, graceful=True)


def test_reload_cannot_drop_the_key_of_a_public_listener(tmp_path: Path, ups: list[FakeUpstream]) -> None:
    public = Settings(
        server=ServerSettings(host="0.0.0.0", master_key="sk-reload-k7Qz9wX2"),  # type: ignore[arg-type]
        models=[],
    )
    gateway = Gateway(public)
    no_key = Settings(server=ServerSettings(), models=[])
    with pytest.raises(ConfigError, match=r"cannot remove server\.master_key"):
        asyncio.run(gateway.reload(no_key))


def test_guard_policies_reload_and_a_bad_one_is_refused(live: Reloadable, ups: list[FakeUpstream]) -> None:
    secret = "sk-proj-" + "Zk3Q9xR2vL7mN4pT8wY1bC6d"
    base = config(up_model("a", ups[0], alias="chat"))

    def sent(content: str) -> str:
        status, _ = live.gw.request("POST", "/v1/chat/completions", {
            "model": "chat", "messages": [{"role": "user", "content": content}]})
        assert status == 200
        return str(ups[0].requests[-1]["json"]["messages"][0]["content"])

    assert sent(f"key {secret}") == f"key {secret}"  # no guards yet
    bad = {**base, "guards": {"default": "p", "policies": {"p": {"input": [{"scanner": "nope"}]}}}}
    live.write(bad)
    status, body = live.reload(dry_run=True)
    assert status == 400 and "no scanner 'nope'" in body["error"]["message"]
    status, body = live.reload()
    assert status == 400 and "no scanner 'nope'" in body["error"]["message"]
    assert sent(f"key {secret}") == f"key {secret}"  # the old configuration serves on
    good = {**base, "guards": {"default": "p", "policies": {"p": {"input": [
        {"scanner": "secrets", "action": "redact"}]}}}}
    live.write(good)
    status, body = live.reload()
    assert status == 200, body
    assert sent(f"key {secret}") == "key [SECRET]"
    live.write(base)
    assert live.reload()[0] == 200
    assert sent(f"key {secret}") == f"key {secret}"
