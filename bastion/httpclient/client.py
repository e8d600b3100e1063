"""``HTTPClient``: pooled HTTP/1.1 client on asyncio + httptools."""

from __future__ import annotations

import asyncio
import ssl
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from .connection import ClientResponse
from .errors import HTTPClientError, RemoteProtocolError
from .pool import Pool

__all__ = ["HTTPClient"]

_URL_CACHE_MAX = 4096
_INLINE_BODY_MAX = 64 * 1024  # bodies up to this size are joined with the head: one write
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_SAFE_TARGET = "/?&=%:@!$'()*+,;~-._[]"
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_METHODS: dict[str, bytes] = {}  # validated method -> its bytes


def _method_bytes(method: str) -> bytes:
    mb = _METHODS.get(method)
    if mb is None:
        if not method or not _TCHAR.issuperset(method):
            raise ValueError(f"invalid HTTP method {method!r}")
        mb = method.encode("ascii")
        if len(_METHODS) < 64:
            _METHODS[method] = mb
    return mb


class _Target(NamedTuple):
    pool_key: tuple[str, str, int]
    https: bool
    host: str
    port: int
    request_target: bytes  # b" /path?query HTTP/1.1\r\n"
    host_line: bytes  # b"Host: example.com:8080\r\n"


def _parse_url(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"invalid URL {url!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    else:
        raise ValueError(f"unsupported URL scheme in {url!r} (only http and https)")
    host = parts.hostname
    if not host:
        raise ValueError(f"URL without host: {url!r}")
    if port is None:
        port = default_port
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        target = path.encode("ascii")
    except UnicodeEncodeError:
        target = quote(path, safe=_SAFE_TARGET).encode("ascii")
    if b" " in target or b"\r" in target or b"\n" in target:
        target = quote(path, safe=_SAFE_TARGET).encode("ascii")
    host_hdr = f"[{host}]" if ":" in host else host
    if port != default_port:
        host_hdr = f"{host_hdr}:{port}"
    return _Target(
        (scheme, host, port),
        scheme == "https",
        host,
        port,
        b" " + target + b" HTTP/1.1\r\n",
        b"Host: " + host_hdr.encode("idna" if not host_hdr.isascii() else "ascii") + b"\r\n",
    )


class HTTPClient:
    """A pool of keep-alive HTTP/1.1 connections per (scheme, host, port).

    Must be used from one event loop (the first one that sends a request).
    """

    def __init__(
        self,
        *,
        max_connections_per_host: int = 256,
        connect_timeout: float = 5.0,
        read_timeout: float = 600.0,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_per_host = max_connections_per_host
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._pools: dict[tuple[str, str, int], Pool] = {}
        self._targets: dict[str, tuple[_Target, Pool]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def _resolve(self, url: str) -> tuple[_Target, Pool]:
        if self._closed:
            raise HTTPClientError("HTTP client is closed")
        target = _parse_url(url)
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise HTTPClientError("HTTPClient used from a different event loop")
        pool = self._pools.get(target.pool_key)
        if pool is None:
            ctx: ssl.SSLContext | None = None
            if target.https:
                ctx = self._ssl_context
                if ctx is None:
                    ctx = self._ssl_context = ssl.create_default_context()
            pool = Pool(
                loop, target.host, target.port, ctx, self._max_per_host, self._keepalive_expiry
            )
            self._pools[target.pool_key] = pool
        if len(self._targets) >= _URL_CACHE_MAX:
            self._targets.clear()
        entry = (target, pool)
        self._targets[url] = entry
        return entry

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> ClientResponse:
        """Send the request; return once the status line and headers have arrived.

        The body is streamed: consume it with ``read()`` or ``iter_chunks()``, or
        ``aclose()`` the response.
        """
        entry = self._targets.get(url)
        if entry is None:
            entry = self._resolve(url)
        target, pool = entry

        # ---- prebuilt request head
        parts = [_method_bytes(method), target.request_target]
        has_host = has_conn = has_len = req_close = False
        if headers:
            for name, value in headers:
                parts.append(name + b": " + value + b"\r\n")
                lname = name.lower()
                if lname == b"host":
                    has_host = True
                elif lname == b"connection":
                    has_conn = True
                    req_close = b"close" in value.lower()
                elif lname == b"content-length" or lname == b"transfer-encoding":
                    has_len = True
        if not has_host:
            parts.append(target.host_line)
        if not has_conn:
            parts.append(b"Connection: keep-alive\r\n")
        if not has_len:
            if body is not None:
                parts.append(b"Content-Length: %d\r\n" % len(body))
            elif method in _BODY_METHODS:
                parts.append(b"Content-Length: 0\r\n")
        parts.append(b"\r\n")
        req_head = b"".join(parts)
        # every part but the method ends in exactly one CRLF: any other CR or LF came
        # from a caller's header (header injection / request smuggling) -> refuse
        n_lines = len(parts) - 1
        if req_head.count(b"\n") != n_lines or req_head.count(b"\r") != n_lines:
            raise ValueError("CR or LF inside a request header")
        data: bytes | list[bytes]
        if not body:
            data = req_head
        elif len(body) > _INLINE_BODY_MAX:
            data = [req_head, body]
        else:
            data = req_head + body
        head = method == "HEAD"

        ct = self._connect_timeout if connect_timeout is None else connect_timeout
        rt = self._read_timeout if read_timeout is None else read_timeout
        fresh = False
        while True:
            conn = None if fresh or pool._closed else pool.take_idle()
            if conn is None:
                conn = await pool.acquire(ct, fresh)
            reused = conn._nreq > 0
            fut = conn._send(data, head, req_close, rt)
            try:
                return await fut
            except asyncio.CancelledError:
                conn._cancel_request(fut)
                raise
            except RemoteProtocolError:
                # the server closed an idle keep-alive connection while we were sending
                # on it: retry once on a new connection (nothing of the response came)
                if reused and not fresh and conn._closed_early:
                    fresh = True
                    continue
                raise

    async def aclose(self) -> None:
        """Close every pooled connection (in-flight responses fail)."""
        self._closed = True
        pools = list(self._pools.values())
        self._pools.clear()
        self._targets.clear()
        for pool in pools:
            await pool.aclose()

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
