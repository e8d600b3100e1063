"""HTTPS (server.tls) on a real gateway, with a CA and certificates made by trustme: the
official SDK over TLS, clients that do not speak or do not trust it, handshakes that never
finish or end early, the certificate reloaded when its files change (and kept when the new
ones are broken), and two worker processes on one HTTPS port."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import trustme
import yaml

from bastion.config import load_settings
from tests.fakes.upstream import DEFAULT_CONTENT, FakeUpstream
from tests.gateway_harness import RunningGateway, read_until_eof
from tests.integration.test_lifecycle import free_port, stop_process

MESSAGES = [{"role": "user", "content": "hi over TLS"}]


class TlsGateway(RunningGateway):
    """A RunningGateway whose requests go over HTTPS, trusting ``client_ctx`` (made for
    ``ca``, the CA of its first certificate)."""

    ca: trustme.CA
    client_ctx: ssl.SSLContext

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def request_full(self, method: str, path: str, body: Any = None,
                     headers: dict[str, str] | None = None, raw: bytes | None = None,
                     key: str | None = None) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30,
                                           context=self.client_ctx)
        try:
            payload = raw if raw is not None else (
                json.dumps(body).encode() if body is not None else None)
            conn.request(method, path, body=payload,
                         headers={"content-type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            data = resp.read()
            try:
                parsed: Any = json.loads(data)
            except ValueError:
                parsed = data
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed
        finally:
            conn.close()


def write_pair(leaf: trustme.LeafCert, cert: Path, key: Path, atomic: bool = True) -> None:
    """Writes the chain and key the way a renewal tool does (a new file renamed over the
    old one), or in place."""
    for path, data in ((cert, b"".join(b.bytes() for b in leaf.cert_chain_pems)),
                       (key, leaf.private_key_pem.bytes())):
        if atomic:
            tmp = path.with_suffix(".new")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        else:
            path.write_bytes(data)


def der(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def client_context(*cas: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=None)
    ctx.load_verify_locations(cadata="".join(ca.cert_pem.bytes().decode() for ca in cas))
    return ctx


def tls_gateway(up: FakeUpstream, tmp_path: Path, ca: trustme.CA,
                tls: dict[str, Any] | None = None,
                **server: Any) -> tuple[TlsGateway, Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_pair(ca.issue_cert("127.0.0.1", "localhost"), cert, key)
    settings = load_settings(env={}, overrides={
        "server": {"port": 0, "tls": {"cert": str(cert), "key": str(key), **(tls or {})},
                   **server},
        "home": str(tmp_path / "home"),
        "tracing": {"enabled": False},
        "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}],
    })
    gw = TlsGateway(settings)
    gw.ca, gw.client_ctx = ca, client_context(ca)
    gw.start()
    return gw, cert, key


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream().start() as server:
        yield server


@pytest.fixture(scope="module")
def gw(up: FakeUpstream, ca: trustme.CA,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    # a short header timeout: the handshake that never starts is bounded by it too
    gateway, _, _ = tls_gateway(up, tmp_path_factory.mktemp("tls"), ca, header_timeout=1.0)
    yield gateway
    gateway.stop()


def test_the_openai_sdk_chats_over_https(gw: TlsGateway, ca: trustme.CA) -> None:
    with ca.cert_pem.tempfile() as ca_file:  # the CA file, as a deployment would pass it
        # the SDK's own client class (httpx, or the httpx2 that newer SDKs are built on)
        http_client = openai.DefaultHttpxClient(
            verify=ssl.create_default_context(cafile=ca_file), timeout=30)
    with openai.OpenAI(base_url=gw.base_url + "/v1", api_key="unused", max_retries=0,
                       http_client=http_client) as client:
        reply = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi over TLS"}])
        assert reply.choices[0].message.content == DEFAULT_CONTENT
        text = ""
        for chunk in client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi over TLS"}],
                stream=True):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        assert text == DEFAULT_CONTENT


def test_the_connection_is_tls_with_alpn_http11(gw: TlsGateway) -> None:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw:
        ctx = client_context(gw.ca)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_a_tls_1_2_client_is_served(gw: TlsGateway) -> None:
    ctx = client_context(gw.ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.2"


def test_a_client_that_does_not_trust_the_ca_fails_verification(gw: TlsGateway) -> None:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    with openai.OpenAI(base_url=gw.base_url + "/v1", api_key="unused", max_retries=0) as client, \
            pytest.raises(openai.APIConnectionError):
        client.models.list()
    assert gw.request("GET", "/health/live")[0] == 200


def test_the_cli_verifies_against_the_system_store_or_ssl_cert_file(
    gw: TlsGateway, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.cli.api import ApiError, call

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(ApiError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        call(gw.base_url, None, "GET", "/health/live")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    assert call(gw.base_url, None, "GET", "/health/live")["status"] == "ok"


def quiet(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records at warning level or above (the server's, uvloop's and asyncio's)."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]


def test_plain_http_on_the_https_port_is_closed_and_the_server_keeps_serving(
    gw: TlsGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(5):  # a few, to see that none logs a line
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw:
            raw.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            reply = read_until_eof(raw)
            assert not reply.startswith(b"HTTP/")  # at most a TLS alert, then the close
    with pytest.raises((http.client.HTTPException, OSError)):
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        conn.request("GET", "/health/live")
        conn.getresponse()
    assert gw.request("GET", "/health/live")[0] == 200
    assert quiet(caplog) == []


def test_a_connection_that_never_sends_a_client_hello_is_closed(
    gw: TlsGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw:
        assert read_until_eof(raw) == b""  # closed by the handshake (= header) timeout
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01\x00")  # the first bytes of a ClientHello, then nothing
        assert read_until_eof(raw) == b""
    client = BioClient(gw.port, gw.client_ctx)  # a handshake, then no request: the idle
    assert client.read_until_close_notify() == b""  # timeout closes it (TLS close_notify)
    client.sock.close()
    assert gw.request("GET", "/health/live")[0] == 200
    assert quiet(caplog) == []


class BioClient:
    """A TLS client over a raw socket, whose TLS close_notify and TCP half-close are
    separate steps."""

    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                data = self.sock.recv(65536)
                assert data, "the server closed during the handshake"
                self.incoming.write(data)
        self.flush()

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.flush()

    def close_notify(self) -> None:
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.unwrap()
        self.flush()

    def read_until_close_notify(self) -> bytes:
        """What the server sends until its TLS close (its close_notify, or the TCP close)."""
        received = b""
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                chunk = None
            except ssl.SSLZeroReturnError:
                return received
            if chunk == b"":  # the server's close_notify
                return received
            if chunk is not None:
                received += chunk
                continue
            data = read_some(self.sock)
            if not data:
                return received
            self.incoming.write(data)


def read_some(sock: socket.socket, timeout: float = 20.0) -> bytes:
    sock.settimeout(timeout)
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""
    except TimeoutError:
        pytest.fail("the server neither answered nor closed")


def chat_request() -> bytes:
    body = json.dumps({"model": "chat", "messages": MESSAGES}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body))


@pytest.mark.parametrize("how", ["close_notify", "tcp_half_close", "close_notify_idle"])
def test_a_client_that_closes_its_side_does_not_disturb_the_server(
    gw: TlsGateway, up: FakeUpstream, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.DEBUG)
    client = BioClient(gw.port, gw.client_ctx)
    up.behaviour.delay_ms = 300  # the request is being answered when the close arrives
    try:
        if how != "close_notify_idle":
            client.send(chat_request())
        if how == "tcp_half_close":
            client.sock.shutdown(socket.SHUT_WR)
        else:
            client.close_notify()
        read_until_eof(client.sock)  # the server closes (TLS has no half-open connection)
        client.sock.close()
    finally:
        up.behaviour.delay_ms = 0
    assert gw.request("GET", "/health/live")[0] == 200
    assert quiet(caplog) == []


def test_an_idle_keep_alive_client_does_not_hold_the_shutdown(
    up: FakeUpstream, ca: trustme.CA, tmp_path: Path
) -> None:
    gw, _, _ = tls_gateway(up, tmp_path, ca, graceful_timeout=120)
    idle = http.client.HTTPSConnection("127.0.0.1", gw.port, timeout=30, context=gw.client_ctx)
    idle.request("GET", "/health/live")
    assert idle.getresponse().read()
    # it never reads again, so never answers the server's close_notify: uvloop would wait
    # 30 s for it (then the 120 s grace), where a plain-HTTP close is immediate
    try:
        gw.stop(timeout=20)
        assert not gw._thread.is_alive(), "the drain waited on an idle TLS connection"
    finally:
        idle.close()


# ------------------------------------------------------------------ reloading
def fingerprint_of_new_connection(port: int, ctx: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        cert = tls.getpeercert(binary_form=True)
        assert cert is not None
        return cert


def wait_for(what: str, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def reloads(gw: TlsGateway, result: str) -> float:
    status, _, text = gw.request_full("GET", "/metrics")
    assert status == 200
    prefix = f'bastion_tls_reloads_total{{result="{result}"}} '
    for line in text.decode().splitlines() if isinstance(text, bytes) else []:
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return 0.0


@pytest.fixture()
def reloading(up: FakeUpstream, ca: trustme.CA,
              tmp_path: Path) -> Iterator[tuple[TlsGateway, Path, Path]]:
    gw, cert, key = tls_gateway(up, tmp_path, ca, tls={"reload_interval": 0.1})
    yield gw, cert, key
    gw.stop()


def test_a_renewed_certificate_serves_new_connections_and_old_ones_keep_working(
    reloading: tuple[TlsGateway, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    gw, cert, key = reloading
    first = fingerprint_of_new_connection(gw.port, gw.client_ctx)
    kept = http.client.HTTPSConnection("127.0.0.1", gw.port, timeout=30, context=gw.client_ctx)
    kept.request("GET", "/health/live")
    assert kept.getresponse().read() and kept.sock is not None

    other_ca = trustme.CA()  # a different CA: only a client trusting it accepts the new one
    renewed = other_ca.issue_cert("127.0.0.1", "renewed.test")
    write_pair(renewed, cert, key)
    both = client_context(gw.ca, other_ca)
    new = wait_for("the renewed certificate",
                   lambda: (fp := fingerprint_of_new_connection(gw.port, both)) != first and fp)
    assert new == der(renewed)
    with pytest.raises(ssl.SSLCertVerificationError):  # the old CA does not vouch for it
        fingerprint_of_new_connection(gw.port, gw.client_ctx)

    kept.request("GET", "/health/live")  # the keep-alive connection from before
    assert kept.getresponse().status == 200
    assert hashlib.sha256(kept.sock.getpeercert(binary_form=True) or b"").digest() == \
        hashlib.sha256(first).digest()
    kept.close()
    gw.client_ctx = both
    assert reloads(gw, "ok") == 1 and reloads(gw, "failed") == 0
    assert quiet(caplog) == []


@pytest.mark.parametrize("broken", ["garbage", "mismatched"])
def test_a_broken_replacement_keeps_the_old_certificate_serving(
    reloading: tuple[TlsGateway, Path, Path], ca: trustme.CA, caplog: pytest.LogCaptureFixture,
    broken: str,
) -> None:
    gw, cert, key = reloading
    first = fingerprint_of_new_connection(gw.port, gw.client_ctx)
    renewed = ca.issue_cert("127.0.0.1", "renewed.test")
    if broken == "garbage":
        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                         b"-----END CERTIFICATE-----\n")
    else:  # the new certificate with the old key: a rotation caught half-way
        cert.write_bytes(renewed.cert_chain_pems[0].bytes())
    wait_for("the failed reload", lambda: reloads(gw, "failed") == 1)
    assert fingerprint_of_new_connection(gw.port, gw.client_ctx) == first
    assert gw.request("GET", "/health/live")[0] == 200
    warnings = quiet(caplog)
    assert len(warnings) == 1 and "old certificate keeps serving" in warnings[0], warnings
    key_line = renewed.private_key_pem.bytes().decode().splitlines()[3]
    assert all(key_line not in r.getMessage() for r in caplog.records)

    write_pair(renewed, cert, key)  # the rotation completes: picked up on a later check
    wait_for("the repaired pair",
             lambda: fingerprint_of_new_connection(gw.port, gw.client_ctx) == der(renewed))
    assert reloads(gw, "ok") == 1


# ------------------------------------------------------------------ two workers
def test_two_workers_serve_https_on_one_port(
    up: FakeUpstream, ca: trustme.CA, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_pair(ca.issue_cert("127.0.0.1"), cert, key)
    port = free_port()
    config = {"server": {"workers": 2, "log_format": "text",
                         "tls": {"cert": str(cert), "key": str(key)}},
              "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}]}
    path = tmp_path / "bastion.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["BASTION_HOME"] = str(tmp_path / "home")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion", "serve", "--config", str(path), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ctx = client_context(ca)

    def get(path: str) -> tuple[int, Any]:
        assert proc.poll() is None, "bastion serve exited"
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ctx)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        except OSError:  # not listening yet
            return 0, None
        finally:
            conn.close()

    seen: set[int] = set()

    def both_workers() -> bool:
        status, body = get("/health/live")
        if status == 200:
            seen.add(body["pid"])
        return len(seen) == 2

    try:
        wait_for("the gateway", lambda: get("/health/ready")[0] == 200, timeout=60)
        wait_for("both workers", both_workers, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert proc.stderr is not None
        log = proc.stderr.read().decode()
        assert f"2 workers on https://127.0.0.1:{port}" in log, log[-2000:]
        assert "Traceback" not in log, log[-4000:]
    finally:
        stop_process(proc)
