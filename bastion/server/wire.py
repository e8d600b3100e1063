"""The HTTP/1.1 wire for :mod:`bastion.server.http`: the server's settings, status lines,
the cached Date header, error bodies, and the framing rules llhttp leaves to us (Host,
Transfer-Encoding), raised as :class:`_BadRequest` (a 400 and a close)."""

from __future__ import annotations

import os
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

_STATUS_LINES: dict[int, bytes] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("latin-1") for s in HTTPStatus
}
_METHODS: dict[bytes, str] = {
    m.encode(): m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
}

# RFC 3986 host / IP-literal / port characters; anything else makes a Host value invalid
_HOST_CHARS = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:[]"
)

_date_cache: list[Any] = [0, b""]


def _date_header() -> bytes:
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    value: bytes = _date_cache[1]
    return value


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} Unknown\r\n".encode()
    return line


_COLON = b": "


def _header_lines(headers: Any) -> bytes:
    """``name: value\r\n`` for each header: joins in C (no format string parsed per
    header, which cost about 400 instructions each)."""
    return b"\r\n".join(map(_COLON.join, headers)) + b"\r\n" if headers else b""


class ServerConfig:
    """``drain_linger``: at shutdown, how long an idle keep-alive connection stays open
    for a request that may already be on its way (answered with ``Connection: close``).

    ``header_timeout``: seconds from a request's first byte to the end of its headers (and
    a new connection's wait for its first byte). ``body_timeout``: seconds from the end of
    the headers to the end of the body, as a total rather than a gap between reads, so a
    client trickling a byte at a time is bounded too. Either answers a partial request with
    408 and closes (nginx's ``client_header_timeout`` / ``client_body_timeout``).

    ``write_timeout``: seconds a response may wait on a client that reads none of it (the
    send buffer full, writing paused), like nginx's ``send_timeout``: the time between two
    successful writes, not the whole transfer, so a slow reader is served; then the
    connection is aborted (its buffered bytes dropped, a stream's backend call cancelled).
    """

    __slots__ = (
        "body_timeout",
        "drain_linger",
        "header_timeout",
        "keepalive_timeout",
        "max_body_bytes",
        "timer_step",
        "write_timeout",
    )

    def __init__(
        self,
        *,
        max_body_bytes: int = 8 << 20,
        keepalive_timeout: float = 75.0,
        drain_linger: float = 1.0,
        header_timeout: float = 60.0,
        body_timeout: float = 60.0,
        write_timeout: float = 60.0,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.write_timeout = write_timeout
        self.keepalive_timeout = keepalive_timeout
        self.drain_linger = drain_linger
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        # the connection timer never sleeps longer than this (see HTTPProtocol._on_timer)
        self.timer_step = min(header_timeout, body_timeout)


class _BodyTooLarge(Exception):
    pass


class _HeadTooLarge(Exception):
    pass


class _BadRequest(Exception):
    """Raised in a parser callback for a request we refuse to frame: a 400 with ``code``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _request_id() -> bytes:
    return os.urandom(8).hex().encode()


def _check_hosts(hosts: int, version: str) -> None:
    """RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, or any with several.

    Which Host a request means must not depend on which of two a hop reads.
    """
    if hosts > 1:
        raise _BadRequest("Multiple Host headers", "invalid_host")
    if version != "1.0":
        raise _BadRequest("Missing Host header (required in HTTP/1.1)", "missing_host")


def _check_coding(coding: bytes, version: str) -> None:
    """Only ``Transfer-Encoding: chunked`` frames a request here.

    llhttp already refuses codings that do not end in chunked; a stacked one (``gzip,
    chunked``) would reach the handler undecoded, and Transfer-Encoding in HTTP/1.0 is
    faulty framing (RFC 9112 §6.1) that another hop may read as a Content-Length body.
    400 rather than RFC's 501: the client sent what cannot be served, the server is fine.
    """
    if version == "1.0":
        raise _BadRequest(
            "Transfer-Encoding is not allowed in an HTTP/1.0 request", "invalid_transfer_encoding"
        )
    if coding.lower() != b"chunked":
        raise _BadRequest(
            "Transfer-Encoding other than chunked is not supported", "invalid_transfer_encoding"
        )
