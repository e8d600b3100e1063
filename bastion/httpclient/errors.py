"""Exception hierarchy of :mod:`bastion.httpclient`."""

from __future__ import annotations

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "HTTPClientError",
    "ReadTimeout",
    "RemoteProtocolError",
]


class HTTPClientError(Exception):
    """Base class of every error raised by the HTTP client."""


class ConnectError(HTTPClientError):
    """The connection could not be established (refused, DNS, TLS handshake failure)."""


class ConnectTimeout(ConnectError):
    """Connecting (TCP connect + TLS handshake) took longer than ``connect_timeout``."""


class ReadTimeout(HTTPClientError):
    """No byte arrived for ``read_timeout`` seconds while waiting for headers or body."""


class RemoteProtocolError(HTTPClientError):
    """Malformed response, or the connection closed before the response was complete."""
