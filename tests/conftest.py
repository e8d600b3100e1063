"""Shared fixtures: a fake OpenAI upstream and a real gateway in front of it and the
embedded models, both on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import yaml

from bastion.config import Settings, load_settings
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway

UPSTREAM_KEY = "sk-upstream-secret"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY).start() as up:
        yield up


@pytest.fixture()
def up() -> Iterator[FakeUpstream]:
    """A fake upstream of the test's own (no API key), for tests that tell it how to
    behave; modules that share one across their tests define a module-scoped ``up``."""
    with FakeUpstream().start() as server:
        yield server


@pytest.fixture()
def fresh_upstream(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


LOCAL_MODELS: list[dict[str, object]] = [
    {"name": "smollm2", "backend": "llama_cpp", "n_ctx": 2048, "queue_size": 8},
    {"name": "minilm", "backend": "local_embedding"},
]


def gateway_settings(upstream: FakeUpstream, local: bool = True) -> dict[str, object]:
    return {
        "server": {"host": "127.0.0.1", "port": 0, "master_key": MASTER_KEY},
        # these fixtures test one request's outcome: no retries behind its back
        "routing": {"default": {"retries": 0}},
        "models": [
            *(LOCAL_MODELS if local else []),
            {
                "name": "fake-model",
                "backend": "openai",
                "base_url": upstream.base_url,
                "api_key_env": "BASTION_TEST_UPSTREAM_KEY",
                "read_timeout": 2.0,
            },
            {
                "name": "renamed",
                "backend": "openai",
                "base_url": upstream.base_url,
                "upstream_model": "upstream-name",
                "api_key_env": "BASTION_TEST_UPSTREAM_KEY",
            },
        ],
    }


def _start(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, local: bool
) -> RunningGateway:
    os.environ["BASTION_TEST_UPSTREAM_KEY"] = UPSTREAM_KEY
    path = tmp_path_factory.mktemp("gw") / "bastion.yaml"
    path.write_text(yaml.safe_dump(gateway_settings(upstream, local)))
    def loader() -> Settings:
        return load_settings(path, env={})

    return RunningGateway(loader(), loader=loader).start()


@pytest.fixture(scope="session")
def gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """The full gateway: embedded chat and embedding models plus the fake upstream."""
    gw = _start(upstream, tmp_path_factory, local=True)
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def api_gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """A gateway in front of the fake upstream only (starts in milliseconds)."""
    gw = _start(upstream, tmp_path_factory, local=False)
    yield gw
    gw.stop()
