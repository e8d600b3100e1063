"""Small, fast pooled HTTP/1.1 client on asyncio + httptools (the gateway's upstream client)."""

from .client import HTTPClient
from .connection import ClientResponse
from .errors import (
    ConnectError,
    ConnectTimeout,
    HTTPClientError,
    ReadTimeout,
    RemoteProtocolError,
)

__all__ = [
    "ClientResponse",
    "ConnectError",
    "ConnectTimeout",
    "HTTPClient",
    "HTTPClientError",
    "ReadTimeout",
    "RemoteProtocolError",
]
