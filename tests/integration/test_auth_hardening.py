"""Secrets that are empty, blank, short or placeholders are refused wherever they are read
(start, reload, ``config check``); an empty bearer token is no key; ``/metrics`` needs the
key; refused requests are counted, not traced."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.config import load_settings, read_secret_env
from bastion.errors import ConfigError
from bastion.gateway.app import Gateway
from bastion.secret_values import weak_secret
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway

WEAK_KEYS = [
    "", " ", "\t\n", "short", "sk-1234", "sk-123456789012345678",
    "changeme-changeme-changeme", "your-master-key-here-123", "aaaaaaaaaaaaaaaaaaaaaaaa",
    "sk-xxxxxxxxxxxxxxxxxxxxxxxx", "a real key with spaces", " sk-k7Qz9wX2mP4vL8nR ",
]
GOOD_KEY = "sk-k7Qz9wX2mP4vL8nR"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("key", WEAK_KEYS)
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_weak_master_key_is_refused_from_env_and_file(tmp_path: Path, key: str, host: str) -> None:
    with pytest.raises(ConfigError, match=r"server\.master_key: .*the master key") as info:
        load_settings(env={"BASTION_MASTER_KEY": key, "BASTION_HOST": host})
    if key.strip():
        assert key.strip() not in str(info.value)  # the message never echoes the secret
    path = tmp_path / "bastion.yaml"
    path.write_text(yaml.safe_dump({"server": {"host": host, "master_key": key}}))
    with pytest.raises(ConfigError, match="the master key"):
        load_settings(path, env={})


def test_good_key_and_no_key_on_loopback_are_accepted() -> None:
    assert weak_secret(GOOD_KEY) is None
    assert weak_secret(MASTER_KEY) is None
    assert load_settings(env={}).server.master_key is None
    settings = load_settings(env={"BASTION_MASTER_KEY": GOOD_KEY, "BASTION_HOST": "0.0.0.0"})
    assert settings.server.master_key is not None


def test_serve_refuses_an_empty_key_beyond_loopback(tmp_path: Path) -> None:
    env = {**os.environ, "BASTION_MASTER_KEY": "", "BASTION_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bastion", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "master key is empty" in proc.stderr


def _check(tmp_path: Path, config: dict[str, Any], env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(config))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    return subprocess.run(
        [sys.executable, "-m", "bastion", "config", "check", str(path)],
        env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )


def test_config_check_refuses_weak_keys_missing_files_and_unset_key_variables(tmp_path: Path) -> None:
    weak = _check(tmp_path, {"server": {"master_key": "   "}})
    assert weak.returncode == 1 and "master key is blank" in weak.stderr
    from_env = _check(tmp_path, {}, {"BASTION_MASTER_KEY": ""})
    assert from_env.returncode == 1 and "master key is empty" in from_env.stderr
    missing = _check(tmp_path, {"models": [
        {"name": "m", "backend": "llama_cpp", "path": str(tmp_path / "nope.gguf")}]})
    assert missing.returncode == 1 and "model file not found" in missing.stderr
    assert "nope.gguf" in missing.stderr
    emb = _check(tmp_path, {"models": [
        {"name": "e", "backend": "local_embedding", "path": str(tmp_path / "gone.onnx")}]})
    assert emb.returncode == 1 and "gone.onnx" in emb.stderr
    upstream = {"models": [{"name": "u", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
                            "api_key_env": "BASTION_TEST_UNSET_KEY"}]}
    unset = _check(tmp_path, upstream)
    assert unset.returncode == 1 and "BASTION_TEST_UNSET_KEY" in unset.stderr
    blank = _check(tmp_path, upstream, {"BASTION_TEST_UNSET_KEY": "  "})
    assert blank.returncode == 1 and "not set or empty" in blank.stderr
    ok = _check(tmp_path, upstream, {"BASTION_TEST_UNSET_KEY": "sk-upstream-1"})
    assert ok.returncode == 0, ok.stderr
    default = _check(tmp_path, {"server": {"master_key": GOOD_KEY}})
    assert default.returncode == 0, default.stderr


@pytest.mark.parametrize("value", ["", "   ", "bm90IGJhc2U2NA==", "not base64!", "AAAA" * 11])
def test_weak_vault_key_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="vault key"):
        load_settings(env={}, overrides={"guards": {"vault_key": value}})


def test_a_random_vault_key_is_accepted() -> None:
    import base64

    key = base64.b64encode(os.urandom(32)).decode()
    assert load_settings(env={}, overrides={"guards": {"vault_key": key}}).guards.vault_key


@pytest.mark.parametrize("value", ["", "Bearer", "Bearer ", "  "])
def test_credential_headers_without_a_credential_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="carries no credential"):
        load_settings(env={}, overrides={"otel": {"headers": {"Authorization": value}}})
    with pytest.raises(ConfigError, match="carries no credential"):
        load_settings(env={}, overrides={"models": [{
            "name": "u", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
            "headers": {"x-api-key": value}}]})
    # a header that is not a credential may be empty
    load_settings(env={}, overrides={"otel": {"headers": {"x-tenant": value}}})


def test_an_empty_api_key_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_TEST_EMPTY_KEY", " ")
    assert read_secret_env("BASTION_TEST_EMPTY_KEY") is None
    settings = load_settings(env={}, overrides={"models": [{
        "name": "u", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "BASTION_TEST_EMPTY_KEY"}]})
    with pytest.raises(ConfigError, match="not set or empty"):
        Gateway(settings)


# ---------------------------------------------------------------------------- the server
def start(up: FakeUpstream, tmp_path: Path, **sections: Any) -> RunningGateway:
    overrides: dict[str, Any] = {
        "server": {"port": 0, "master_key": MASTER_KEY},
        "home": str(tmp_path / "home"),
        "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}],
        "tracing": {"flush_interval": 0.05},
        **sections,
    }
    return RunningGateway(load_settings(env={}, overrides=overrides)).start()


@pytest.mark.parametrize("header", [
    "Bearer ", "Bearer", "Bearer    ", "bearer \t", "Basic " + MASTER_KEY, MASTER_KEY, "",
    "Bearer " + MASTER_KEY[:-1], "Bearer " + MASTER_KEY + "x",
])
def test_empty_or_wrong_bearer_is_refused_everywhere(up: FakeUpstream, tmp_path: Path,
                                                     header: str) -> None:
    gw = start(up, tmp_path)
    try:
        for method, path in [("GET", "/v1/models"), ("GET", "/api/traces"), ("GET", "/metrics"),
                             ("POST", "/v1/chat/completions"), ("GET", "/api/deployments")]:
            status, headers, body = gw.request_full(
                method, path, {"model": "chat", "messages": []} if method == "POST" else None,
                headers={"authorization": header}, key=None)
            assert status == 401, (path, header, body)
            assert body["error"]["type"] == "authentication_error"
            assert headers["www-authenticate"].startswith("Bearer")
        status, _ = gw.request("GET", "/v1/models")
        assert status == 200
    finally:
        gw.stop()


def test_metrics_requires_the_key_unless_opted_out(up: FakeUpstream, tmp_path: Path) -> None:
    gw = start(up, tmp_path / "a")
    try:
        status, _ = gw.request("GET", "/metrics", key=None)
        assert status == 401
        status, body = gw.request("GET", "/metrics")
        assert status == 200 and b"bastion_requests_total" in body
        assert gw.request("GET", "/health/live", key=None)[0] == 200  # probes stay open
    finally:
        gw.stop()
    gw = start(up, tmp_path / "b", metrics={"auth": False})
    try:
        status, body = gw.request("GET", "/metrics", key=None)
        assert status == 200 and b"bastion_requests_total" in body
    finally:
        gw.stop()


def test_refused_requests_are_counted_not_traced(up: FakeUpstream, tmp_path: Path) -> None:
    gw = start(up, tmp_path)
    secret_body = {"model": "chat", "messages": [{"role": "user", "content": "leak-me-4417"}]}
    try:
        for header in [None, "Bearer ", "Bearer wrong-key-0123456789"] * 5:
            status, _ = gw.request("POST", "/v1/chat/completions", secret_body, key=None,
                                   headers={"authorization": header} if header else None)
            assert status == 401
        status, headers, _ = gw.request_full("POST", "/v1/chat/completions", {
            "model": "chat", "messages": [{"role": "user", "content": "hello"}]})
        assert status == 200
        deadline = time.monotonic() + 10
        while True:
            _, body = gw.request("GET", "/api/traces?limit=100")
            if body["data"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        ids = [t["id"] for t in body["data"]]
        assert ids == [headers["x-request-id"]], body  # the 15 refusals left no trace
        _, metrics = gw.request("GET", "/metrics")
        text = metrics.decode()
        assert 'bastion_auth_failures_total{reason="missing"} 5' in text
        assert 'bastion_auth_failures_total{reason="malformed"} 5' in text
        assert 'bastion_auth_failures_total{reason="invalid"} 5' in text
    finally:
        gw.stop()
    for path in Path(tmp_path / "home").rglob("*"):  # nor any byte of their bodies
        if path.is_file():
            assert b"leak-me-4417" not in path.read_bytes(), path


def test_reload_refuses_a_weak_key_and_keeps_the_old_one(up: FakeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    config = {"server": {"port": 0, "master_key": MASTER_KEY}, "home": str(tmp_path / "home"),
              "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}]}
    path.write_text(yaml.safe_dump(config))

    def loader() -> Any:
        return load_settings(path, env={})

    gw = RunningGateway(loader(), loader=loader).start()
    try:
        config["server"]["master_key"] = " "  # type: ignore[index]
        path.write_text(yaml.safe_dump(config))
        status, body = gw.request("POST", "/api/config/reload", {})
        assert status == 400 and "master key is blank" in body["error"]["message"], body
        assert gw.request("GET", "/v1/models", headers={"authorization": "Bearer  "},
                          key=None)[0] == 401
        assert gw.request("GET", "/v1/models")[0] == 200
    finally:
        gw.stop()
