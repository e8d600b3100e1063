"""Request and response objects shared by the HTTP server and the handlers.

Kept deliberately small: headers are raw ``(name, value)`` byte pairs with lower-cased
names, bodies are bytes, and a streamed body is an async iterator of already-framed bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

Headers = list[tuple[bytes, bytes]]


class Request:
    __slots__ = ("body", "client", "headers", "method", "path", "query", "received_at")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        body: bytes,
        client: tuple[str, int] | None,
        received_at: float,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.client = client
        self.received_at = received_at

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: Headers | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []


class StreamingResponse:
    """A response whose body is sent chunk by chunk as the iterator yields.

    ``on_close`` runs once the body is finished or abandoned (client gone), so a handler
    can release what the stream holds and record how it ended.
    """

    __slots__ = ("body", "headers", "on_close", "status")

    def __init__(
        self,
        status: int,
        body: AsyncIterator[bytes],
        headers: Headers | None = None,
        on_close: Callable[[bool], Any] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []
        self.on_close = on_close


Handler = Callable[[Request], Awaitable[Response | StreamingResponse]]


async def aclose(iterator: AsyncIterator[bytes]) -> None:
    """Closes a streamed body if it can be closed (async generators and ClosingStream)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
