"""server.tls: the pair is checked at config load (errors name the field, never the key),
the context's settings, and the certificate reloader's decisions (no network)."""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from bastion.config import gateway_url, load_settings
from bastion.errors import ConfigError
from bastion.server.tls import ServerTls, TlsError, fingerprint, server_context

PASSPHRASE = "a-long-key-passphrase-7f3c"


def write_pair(cert: trustme.LeafCert, cert_path: Path, key_path: Path) -> None:
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_path.write_bytes(cert.private_key_pem.bytes())


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture()
def pair(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path, trustme.LeafCert]:
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_pair(leaf, cert, key)
    return cert, key, leaf


def load(tls: dict[str, Any], path: Path | None = None) -> Any:
    return load_settings(path, env={}, overrides={"server.tls": tls})


def key_body(leaf: trustme.LeafCert) -> str:
    """A line from the middle of the private key's base64: must never be in a message."""
    return leaf.private_key_pem.bytes().decode().splitlines()[3]


def test_a_valid_pair_loads_into_the_settings(pair: tuple[Path, Path, Any]) -> None:
    cert, key, _ = pair
    tls = load({"cert": str(cert), "key": str(key)}).server.tls
    assert tls is not None and tls.reload_interval == 5.0 and tls.min_version == "1.2"


@pytest.mark.parametrize("field", ["cert", "key"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_path_is_refused_naming_the_field(
    pair: tuple[Path, Path, Any], field: str, value: str
) -> None:
    cert, key, _ = pair
    with pytest.raises(ConfigError, match=rf"server\.tls\.{field}.*empty"):
        load({"cert": str(cert), "key": str(key), field: value})


def test_both_files_are_required(pair: tuple[Path, Path, Any]) -> None:
    cert, _, _ = pair
    with pytest.raises(ConfigError, match=r"server\.tls\.key"):
        load({"cert": str(cert)})


@pytest.mark.parametrize("field", ["cert", "key"])
def test_a_missing_file_is_refused_naming_the_field(
    pair: tuple[Path, Path, Any], tmp_path: Path, field: str
) -> None:
    cert, key, _ = pair
    paths = {"cert": str(cert), "key": str(key), field: str(tmp_path / "nope.pem")}
    with pytest.raises(ConfigError, match=rf"server\.tls\.{field}: cannot read .*nope\.pem"):
        load(paths)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key_is_refused(pair: tuple[Path, Path, Any]) -> None:
    cert, key, _ = pair
    key.chmod(0)
    with pytest.raises(ConfigError, match=r"server\.tls\.key: cannot read"):
        load({"cert": str(cert), "key": str(key)})


def test_a_key_of_another_certificate_is_refused_without_showing_it(
    ca: trustme.CA, pair: tuple[Path, Path, Any], tmp_path: Path
) -> None:
    cert, _, _ = pair
    other = ca.issue_cert("other.test")
    other_key = tmp_path / "other-key.pem"
    other_key.write_bytes(other.private_key_pem.bytes())
    with pytest.raises(ConfigError, match=r"server\.tls\.key: .* is not the private key") as err:
        load({"cert": str(cert), "key": str(other_key)})
    assert key_body(other) not in str(err.value)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"not a certificate\n",
                                     b"-----BEGIN CERTIFICATE-----\nbad!\n"
                                     b"-----END CERTIFICATE-----\n"])
def test_a_cert_file_that_is_not_a_pem_certificate_is_refused(
    pair: tuple[Path, Path, Any], content: bytes
) -> None:
    cert, key, _ = pair
    cert.write_bytes(content)
    with pytest.raises(ConfigError, match=r"server\.tls\.cert"):
        load({"cert": str(cert), "key": str(key)})


def test_a_half_written_key_is_refused(pair: tuple[Path, Path, Any]) -> None:
    cert, key, leaf = pair
    key.write_bytes(leaf.private_key_pem.bytes()[:200])
    with pytest.raises(ConfigError, match=r"server\.tls\.key: .* no usable PEM private key") as err:
        load({"cert": str(cert), "key": str(key)})
    assert key_body(leaf) not in str(err.value)


def test_the_key_given_as_the_certificate_is_refused(pair: tuple[Path, Path, Any]) -> None:
    _, key, _ = pair
    with pytest.raises(ConfigError, match=r"server\.tls\.cert"):
        load({"cert": str(key), "key": str(key)})


@pytest.fixture()
def encrypted_key(pair: tuple[Path, Path, Any], tmp_path: Path) -> Path:
    _, _, leaf = pair
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    path = tmp_path / "key-enc.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode())))
    return path


def test_an_encrypted_key_needs_its_passphrase_env(
    pair: tuple[Path, Path, Any], encrypted_key: Path
) -> None:
    cert, _, _ = pair
    with pytest.raises(ConfigError, match=r"server\.tls\.key: .* is encrypted.*key_password_env"):
        load({"cert": str(cert), "key": str(encrypted_key)})


def test_an_encrypted_key_loads_with_the_passphrase_from_the_environment(
    pair: tuple[Path, Path, Any], encrypted_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, _, _ = pair
    monkeypatch.setenv("BASTION_TEST_TLS_PASS", PASSPHRASE)
    tls = load({"cert": str(cert), "key": str(encrypted_key),
                "key_password_env": "BASTION_TEST_TLS_PASS"}).server.tls
    assert tls is not None and tls.password() == PASSPHRASE


@pytest.mark.parametrize("value", [None, "", "  \n"])
def test_an_unset_or_blank_passphrase_env_is_refused(
    pair: tuple[Path, Path, Any], encrypted_key: Path, monkeypatch: pytest.MonkeyPatch,
    value: str | None,
) -> None:
    cert, _, _ = pair
    if value is None:
        monkeypatch.delenv("BASTION_TEST_TLS_PASS", raising=False)
    else:
        monkeypatch.setenv("BASTION_TEST_TLS_PASS", value)
    with pytest.raises(ConfigError, match=r"key_password_env.*BASTION_TEST_TLS_PASS.*not set"):
        load({"cert": str(cert), "key": str(encrypted_key),
              "key_password_env": "BASTION_TEST_TLS_PASS"})


def test_a_wrong_passphrase_is_refused_without_showing_it(
    pair: tuple[Path, Path, Any], encrypted_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, _, _ = pair
    monkeypatch.setenv("BASTION_TEST_TLS_PASS", "the-wrong-passphrase-91")
    with pytest.raises(ConfigError, match=r"server\.tls\.key: .*wrong passphrase") as err:
        load({"cert": str(cert), "key": str(encrypted_key),
              "key_password_env": "BASTION_TEST_TLS_PASS"})
    assert "the-wrong-passphrase-91" not in str(err.value)


@pytest.mark.parametrize("extra", [{"min_version": "1.1"}, {"reload_interval": 0},
                                   {"unknown": 1}, {"key_password_env": ""}])
def test_bad_options_are_refused(pair: tuple[Path, Path, Any], extra: dict[str, Any]) -> None:
    cert, key, _ = pair
    with pytest.raises(ConfigError, match=r"server\.tls"):
        load({"cert": str(cert), "key": str(key), **extra})


@pytest.mark.parametrize("version, expected", [("1.2", ssl.TLSVersion.TLSv1_2),
                                               ("1.3", ssl.TLSVersion.TLSv1_3)])
def test_the_context_is_a_modern_server_context(
    pair: tuple[Path, Path, Any], version: str, expected: ssl.TLSVersion
) -> None:
    cert, key, _ = pair
    ctx = server_context(str(cert), str(key), min_version=version)
    assert ctx.protocol == ssl.PROTOCOL_TLS_SERVER and ctx.minimum_version == expected
    assert ctx.options & ssl.OP_NO_COMPRESSION and ctx.options & ssl.OP_NO_RENEGOTIATION
    assert not ctx.check_hostname and ctx.verify_mode == ssl.CERT_NONE  # no client certs


@pytest.mark.parametrize("server_min, served", [("1.2", True), ("1.3", False)])
def test_min_version_refuses_older_clients(
    pair: tuple[Path, Path, Any], server_min: str, served: bool
) -> None:
    cert, key, leaf = pair
    ctx = server_context(str(cert), str(key), min_version=server_min)
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    if served:
        assert handshake_der(ctx, leaf, client) == der(leaf)
    else:
        with pytest.raises(ssl.SSLError):
            handshake_der(ctx, leaf, client)


def test_gateway_url_is_https_with_tls_without_reading_the_files(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("server:\n  port: 8443\n  tls:\n    cert: /nonexistent/cert.pem\n"
                      "    key: /nonexistent/key.pem\n")
    assert gateway_url(config, env={}) == "https://127.0.0.1:8443"
    with pytest.raises(ConfigError, match=r"server\.tls\.cert"):  # serving does read them
        load_settings(config, env={})
    config.write_text("server:\n  port: 8443\n")
    assert gateway_url(config, env={}) == "http://127.0.0.1:8443"


# ------------------------------------------------------------------ reloading
class Results(list[str]):
    def __call__(self, result: str) -> None:
        self.append(result)


@pytest.fixture()
def served(pair: tuple[Path, Path, Any]) -> tuple[ServerTls, Results]:
    cert, key, _ = pair
    results = Results()
    return ServerTls(str(cert), str(key), interval=0.1, on_result=results), results


def der(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def test_unchanged_files_are_not_reloaded(served: tuple[ServerTls, Results]) -> None:
    tls, results = served
    assert tls.check() is None and tls.check() is None and results == []


def test_a_replaced_pair_is_loaded_into_the_same_context(
    ca: trustme.CA, pair: tuple[Path, Path, Any], served: tuple[ServerTls, Results]
) -> None:
    cert, key, leaf = pair
    tls, results = served
    context = tls.context
    assert tls.fingerprint == fingerprint(leaf.cert_chain_pems[0].bytes())
    new = ca.issue_cert("127.0.0.1", "renewed.test")
    write_pair(new, cert, key)
    assert tls.check() is True and results == ["ok"]
    assert tls.context is context
    assert tls.fingerprint == fingerprint(new.cert_chain_pems[0].bytes()) != fingerprint(
        leaf.cert_chain_pems[0].bytes())
    assert tls.check() is None


def test_a_broken_pair_keeps_the_old_one_warns_once_and_is_retried(
    ca: trustme.CA, pair: tuple[Path, Path, Any], served: tuple[ServerTls, Results],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert, key, leaf = pair
    tls, results = served
    old = tls.fingerprint
    new = ca.issue_cert("127.0.0.1", "renewed.test")
    cert.write_bytes(new.cert_chain_pems[0].bytes())  # the new cert, the old key: mismatched
    with caplog.at_level(logging.DEBUG, logger="bastion.tls"):
        assert tls.check() is False
        assert tls.check() is False  # unchanged, still broken: retried, not warned again
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "old certificate keeps serving" in warnings[0].getMessage()
    assert all(key_body(leaf) not in r.getMessage() and key_body(new) not in r.getMessage()
               for r in caplog.records)
    assert results == ["failed"] and tls.fingerprint == old
    assert handshake_der(tls.context, leaf) == der(leaf)  # the live context is untouched
    key.write_bytes(new.private_key_pem.bytes())  # the rest of the rotation lands
    assert tls.check() is True and results == ["failed", "ok"]
    assert tls.fingerprint == fingerprint(new.cert_chain_pems[0].bytes())


@pytest.mark.parametrize("damage", ["garbage", "truncated", "deleted"])
def test_a_damaged_cert_file_keeps_the_context_serving_the_old_certificate(
    pair: tuple[Path, Path, Any], served: tuple[ServerTls, Results], damage: str
) -> None:
    cert, _, leaf = pair
    tls, results = served
    if damage == "garbage":
        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    elif damage == "truncated":
        cert.write_bytes(leaf.cert_chain_pems[0].bytes()[:150])
    else:
        cert.unlink()
    assert tls.check() is False and results == ["failed"]
    # the live context still holds a working pair: a handshake in memory presents the old one
    assert handshake_der(tls.context, leaf) == der(leaf)


def handshake_der(server_ctx: ssl.SSLContext, leaf: trustme.LeafCert,
                  client_ctx: ssl.SSLContext | None = None) -> bytes:
    """A handshake in memory; the certificate the server presented (DER)."""
    if client_ctx is None:
        client_ctx = ssl.create_default_context()
        client_ctx.check_hostname, client_ctx.verify_mode = False, ssl.CERT_NONE
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    got = client.getpeercert(binary_form=True)
    assert got is not None
    return got


def test_a_tls_error_is_a_config_error() -> None:
    assert issubclass(TlsError, ConfigError)


def test_turning_tls_on_or_moving_its_files_needs_a_restart(
        pair: tuple[Path, Path, trustme.LeafCert]) -> None:
    from bastion.gateway.reload import plan

    cert, key, _ = pair
    plain = load_settings(env={}, overrides={})
    secure = load_settings(env={}, overrides={"server.tls": {"cert": str(cert),
                                                             "key": str(key)}})
    assert "server.tls" in plan(plain, secure).restart_required
    assert "server.tls" in plan(secure, plain).restart_required
    assert "server.tls" not in plan(secure, secure).restart_required
    more = load_settings(env={}, overrides={"server.workers": 2})
    assert "server.workers" in plan(plain, more).restart_required
