"""Redis for tests: the machine's shared server (skipped when unreachable, failed in CI)
and a throwaway ``redis-server`` of a test's own, for tests that stop or break it."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from bastion.governance.shared_limits import window_key
from tests.integration.test_lifecycle import free_port
from tests.store_helpers import skip_or_fail

if TYPE_CHECKING:
    from tests.gateway_harness import RunningGateway

REDIS = "redis://127.0.0.1:6379/0"
REDIS_SERVER = Path("/usr/bin/redis-server")


def shared_redis_client() -> Iterator[redis.Redis]:
    """The body of a ``shared_redis`` fixture: a client of the shared server."""
    client = redis.Redis.from_url(REDIS, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis is not reachable at {REDIS}: {exc}")
    yield client
    client.close()


class ThrowawayRedis:
    def __init__(self) -> None:
        if not REDIS_SERVER.exists():
            skip_or_fail(f"no {REDIS_SERVER} for a throwaway Redis")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bastion-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ThrowawayRedis:
        self.proc = subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the throwaway redis-server started"
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def has_window(self, key_id: str) -> bool:
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            return bool(client.exists(window_key(key_id, "rpm")))
        finally:
            client.close()


def backend_errors(gw: RunningGateway, family: str, mode: str) -> float:
    """``bastion_<family>_backend_errors_total{mode=...}`` on a gateway's /metrics
    (``family``: limit or budget): how often Redis did not answer it."""
    status, text = gw.request("GET", "/metrics")
    assert status == 200
    raw = text if isinstance(text, bytes) else str(text).encode()
    for line in raw.decode().splitlines():
        if line.startswith(f'bastion_{family}_backend_errors_total{{mode="{mode}"}}'):
            return float(line.split()[-1])
    return 0.0
