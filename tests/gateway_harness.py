"""Runs a real Bastion gateway on loopback in a background thread (its own uvloop loop)."""

from __future__ import annotations

import asyncio
import http.client
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pluggy
import uvloop

from bastion.config import Settings
from bastion.gateway.runner import serve

MASTER_KEY = "sk-test-master-key"


class RunningGateway:
    def __init__(
        self,
        settings: Settings,
        pm: pluggy.PluginManager | None = None,
        loader: Callable[[], Settings] | None = None,
    ) -> None:
        # Each gateway keeps its traces in its own temporary home, not the checkout's
        # ./.bastion (a test that names a home keeps it).
        self.home = settings.home
        if settings.home == Settings.model_fields["home"].default:
            self.home = tempfile.mkdtemp(prefix="bastion-test-home-")
            settings = settings.model_copy(update={"home": self.home})
            if loader is not None:
                original = loader

                def loader() -> Settings:
                    return original().model_copy(update={"home": self.home})

        self.settings = settings
        self.pm = pm
        self.loader = loader
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bastion-test")
        self.error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        loop = uvloop.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._stop = asyncio.Event()

        def listening(port: int) -> None:
            self.port = port
            self._listening.set()

        try:
            loop.run_until_complete(serve(
                    self.settings,
                    stop=self._stop,
                    on_listening=listening,
                    pm=self.pm,
                    loader=self.loader,
                ))
        except BaseException as exc:  # surfaced to the test by start()/stop()
            self.error = exc
        finally:
            self._listening.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self, wait_ready: bool = True, timeout: float = 120.0) -> RunningGateway:
        self._thread.start()
        self._listening.wait(timeout)
        if self.error is not None:
            raise self.error
        if wait_ready:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.error is not None:
                    raise self.error
                try:
                    status, _ = self.request("GET", "/health/ready")
                except OSError:  # start-up failed and the server closed: error set next
                    status = 0
                if status == 200:
                    return self
                time.sleep(0.05)
            raise TimeoutError("gateway did not become ready")
        return self

    def stop(self, timeout: float = 60.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        key: str | None = MASTER_KEY,
    ) -> tuple[int, Any]:
        """One raw HTTP request; returns (status, parsed JSON or raw bytes)."""
        status, _, data = self.request_full(method, path, body, headers, raw, key)
        return status, data

    def request_full(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        key: str | None = MASTER_KEY,
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            hdrs = {"content-type": "application/json"}
            if key is not None and self.settings.server.master_key is not None:
                hdrs["authorization"] = f"Bearer {key}"
            hdrs.update(headers or {})
            payload = raw if raw is not None else (
                json.dumps(body).encode() if body is not None else None
            )
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            resp_headers = {k.lower(): v for k, v in resp.getheaders()}
            try:
                parsed: Any = json.loads(data)
            except ValueError:
                parsed = data
            return resp.status, resp_headers, parsed
        finally:
            conn.close()


@contextmanager
def running(settings: Settings, wait_ready: bool = True) -> Iterator[RunningGateway]:
    gw = RunningGateway(settings).start(wait_ready=wait_ready)
    try:
        yield gw
    finally:
        gw.stop()


# ------------------------------------------------------------ traced gateways over a fake
def traced_gateway(up: Any, home: Any, tracing: dict[str, Any] | None = None,
                   **sections: Any) -> RunningGateway:
    """A started gateway with one model, ``chat``, in front of the fake upstream ``up``
    (priced, so traces have a cost), tracing into ``home/home`` with a short flush
    interval; ``sections`` override settings by dotted name (``store``, ``server.port``)."""
    from bastion.config import load_settings

    overrides: dict[str, Any] = {
        "server.port": 0,
        "home": str(home / "home"),
        "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url,
                    "upstream_model": "fake-upstream-model",
                    "pricing": {"input": 1.0, "output": 2.0}}],
        "tracing": {"flush_interval": 0.05, **(tracing or {})},
        **sections,
    }
    return RunningGateway(load_settings(env={}, overrides=overrides)).start()


def chat(gw: RunningGateway, content: str = "hi", stream: bool = False,
         headers: dict[str, str] | None = None, **extra: Any) -> tuple[int, dict[str, str], Any]:
    """One chat completion to the ``chat`` model: (status, headers, body)."""
    body = {"model": "chat", "messages": [{"role": "user", "content": content}],
            "stream": stream, **extra}
    return gw.request_full("POST", "/v1/chat/completions", body, headers)


def traces(gw: RunningGateway, n: int, query: str = "",
           timeout: float = 10.0) -> list[dict[str, Any]]:
    """The stored traces (newest first) once there are ``n`` of them, or at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = gw.request("GET", f"/api/traces?limit=500{query}")
        assert status == 200, body
        if len(body["data"]) >= n or time.monotonic() > deadline:
            return list(body["data"])
        time.sleep(0.05)


def trace_of(gw: RunningGateway, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """One request's trace, once it is stored (fails at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = gw.request("GET", f"/api/traces/{request_id}")
        if status == 200:
            return dict(body)
        assert status == 404 and time.monotonic() < deadline, (status, body)
        time.sleep(0.05)


def read_until_eof(sock: Any, timeout: float = 20.0) -> bytes:
    """Everything the server sends until it closes (a reset ends it too); a server that
    neither finishes nor closes within ``timeout`` fails the test."""
    import pytest

    sock.settimeout(timeout)
    reply = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return reply
        except TimeoutError:
            pytest.fail(f"the server neither finished nor closed; got {reply[:300]!r}")
        if not data:
            return reply
        reply += data
