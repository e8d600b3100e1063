"""HTTPS on the gateway's port (``server.tls``): the server's SSL context, and its
certificate reloaded when the files change.

:class:`ServerTls` builds one ``ssl.SSLContext`` (``PROTOCOL_TLS_SERVER``, TLS 1.2 or 1.3 at
least, ALPN ``http/1.1``, no compression, Python's default ciphers) and, every
``reload_interval`` s, compares the files' mtime, size and inode with the last look. On a
change it reads both files once and loads them into a scratch context first: a half-written
or mismatched pair fails there, a warning is logged and the old certificate keeps serving
(the next check tries again). A pair that loads goes into the live context with
``load_cert_chain`` on the same object, so new handshakes present the new certificate and
open connections keep theirs. Both loads read the same bytes (anonymous in-memory files where
the platform has them), so a file rewritten between the two cannot leave the live context
half-updated. Errors name the setting, the file and OpenSSL's reason, never key material.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

from bastion.errors import ConfigError

log = logging.getLogger("bastion.tls")

MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_CERT_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_Stamp = tuple[tuple[int, int, int, int] | None, ...]


class TlsError(ConfigError):
    """A certificate or key that cannot be used; the message names the setting and the
    file, never key material."""


class _NoPassphrase(Exception):
    pass


def new_context(min_version: str = "1.2") -> ssl.SSLContext:
    """An HTTPS server context without a certificate yet."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MIN_VERSIONS[min_version]
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def server_context(cert: str, key: str, password: str | None = None,
                   min_version: str = "1.2") -> ssl.SSLContext:
    """The context serving ``cert`` (a PEM chain) with ``key``; raises :class:`TlsError`."""
    ctx = new_context(min_version)
    load_pair([ctx], cert, key, password)
    return ctx


def load_pair(contexts: list[ssl.SSLContext], cert: str, key: str,
              password: str | None) -> str:
    """Reads both files once and loads them into each context in turn (a scratch one
    first, to leave the live one untouched by a broken pair); returns the SHA-256
    fingerprint of the leaf certificate."""
    cert_pem = _read(cert, "server.tls.cert")
    key_pem = _read(key, "server.tls.key")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
            cadata=cert_pem.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError):
        raise TlsError(f"server.tls.cert: {cert} holds no readable PEM certificate "
                       "(half-written, or not PEM?)") from None

    def passphrase() -> str:
        if password is None:
            raise _NoPassphrase()
        return password

    with _snapshot(cert_pem, key_pem, cert, key) as (cert_file, key_file):
        for ctx in contexts:
            try:
                ctx.load_cert_chain(cert_file, key_file, password=passphrase)
            except _NoPassphrase:
                raise TlsError(f"server.tls.key: {key} is encrypted: name the environment "
                               "variable holding its passphrase in "
                               "server.tls.key_password_env") from None
            except ssl.SSLError as exc:
                raise _key_error(exc, cert, key, password is not None) from None
            except OSError as exc:
                raise TlsError(f"server.tls: cannot load {cert} and {key}: "
                               f"{exc.strerror or type(exc).__name__}") from None
    return fingerprint(cert_pem)


def _key_error(exc: ssl.SSLError, cert: str, key: str, has_password: bool) -> TlsError:
    if exc.reason == "KEY_VALUES_MISMATCH":
        return TlsError(f"server.tls.key: {key} is not the private key of the certificate "
                        f"in server.tls.cert ({cert})")
    hint = "a wrong passphrase, or " if has_password else ""
    return TlsError(f"server.tls.key: {key} holds no usable PEM private key ({hint}"
                    f"half-written or not PEM?; OpenSSL: {exc.reason or exc.library or 'error'})")


def _read(path: str, name: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"{name}: cannot read {path}: "
                       f"{exc.strerror or type(exc).__name__}") from None
    if not data.strip():
        raise TlsError(f"{name}: {path} is empty")
    return data


@contextlib.contextmanager
def _snapshot(cert_pem: bytes, key_pem: bytes, cert: str, key: str) -> Iterator[tuple[str, str]]:
    """Paths that hold exactly these bytes: anonymous in-memory files (Linux), which no
    rewrite of the real files can change between two loads; elsewhere the files."""
    create = getattr(os, "memfd_create", None)
    if create is None or not os.path.isdir("/proc/self/fd"):
        yield cert, key
        return
    fds: list[int] = []
    try:
        for data in (cert_pem, key_pem):
            fd = create("bastion-tls", os.MFD_CLOEXEC)
            fds.append(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
    finally:
        for fd in fds:
            os.close(fd)


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the first certificate's DER bytes, hex (public: fine to log)."""
    match = _CERT_BLOCK.search(cert_pem)
    if match is None:
        return "?"
    try:
        der = ssl.PEM_cert_to_DER_cert(match.group(0).decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return "?"
    return hashlib.sha256(der).hexdigest()


class ServerTls:
    """The live context for ``server.tls`` and the task that reloads its certificate.

    ``on_result`` hears "ok" for a reload and "failed" for a change that could not be
    loaded (once per change; the retries that follow are logged at debug level only)."""

    def __init__(self, cert: str, key: str, password: str | None = None, *,
                 min_version: str = "1.2", interval: float = 5.0,
                 on_result: Callable[[str], None] | None = None) -> None:
        self.cert = cert
        self.key = key
        self.interval = interval
        self.on_result = on_result
        self._password = password
        self._stamp = self._stat()  # before loading: a change while it loads is seen next
        self.context = new_context(min_version)
        self.fingerprint = load_pair([self.context], cert, key, password)
        self._failing = False

    def _stat(self) -> _Stamp:
        stamps: list[tuple[int, int, int, int] | None] = []
        for path in (self.cert, self.key):
            try:
                st = os.stat(path)
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev))
        return tuple(stamps)

    def check(self) -> bool | None:
        """One look at the files: True when a changed pair was loaded, False when a change
        (or the one that failed before) does not load, None when nothing changed."""
        stamp = self._stat()
        changed = stamp != self._stamp
        if not changed and not self._failing:
            return None
        self._stamp = stamp
        scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            digest = load_pair([scratch, self.context], self.cert, self.key, self._password)
        except TlsError as exc:
            if changed:
                log.warning("server.tls: the changed certificate files do not load; the old "
                            "certificate keeps serving (retried every %g s): %s",
                            self.interval, exc)
                if self.on_result is not None:
                    self.on_result("failed")
            else:
                log.debug("server.tls: still not loadable: %s", exc)
            self._failing = True
            return False
        self._failing = False
        self.fingerprint = digest
        log.info("server.tls: certificate reloaded from %s (sha256 %s)", self.cert, digest)
        if self.on_result is not None:
            self.on_result("ok")
        return True

    async def run(self) -> None:
        """Checks every ``interval`` s until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.check()
