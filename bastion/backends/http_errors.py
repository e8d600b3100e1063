"""Failures of remote backends, translated at the boundary into Bastion's errors."""

from __future__ import annotations

from typing import Any

import orjson

from bastion.errors import BastionError, UpstreamError, UpstreamTimeout
from bastion.httpclient import (
    ClientResponse,
    ConnectError,
    ConnectTimeout,
    HTTPClientError,
    ReadTimeout,
)


def translate(exc: HTTPClientError, upstream: str) -> BastionError:
    """``upstream`` names the server in the message, e.g. "upstream 10.0.0.5:8000"."""
    if isinstance(exc, ConnectTimeout):
        return UpstreamTimeout(f"Timed out connecting to {upstream}")
    if isinstance(exc, ReadTimeout):
        return UpstreamTimeout(f"{upstream[:1].upper()}{upstream[1:]} did not answer in time")
    if isinstance(exc, ConnectError):
        return UpstreamError(f"Could not connect to {upstream}: {exc}")
    return UpstreamError(f"{upstream[:1].upper()}{upstream[1:]} broke the connection: {exc}")


async def error_body(response: ClientResponse) -> bytes:
    """The body of an error response, or b"" if even that fails to arrive."""
    try:
        return await response.read()
    except HTTPClientError:
        return b""


def retry_after(response: ClientResponse) -> float | None:
    """Retry-After in seconds (the delay form; an HTTP date is ignored)."""
    value = response.header(b"retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def read_json(response: ClientResponse, upstream: str) -> tuple[bytes, Any]:
    """A successful response's body, raw and parsed; failures as Bastion errors."""
    try:
        data = await response.read()
    except HTTPClientError as exc:
        raise translate(exc, upstream) from exc
    try:
        return data, orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"{upstream[:1].upper()}{upstream[1:]} returned invalid JSON") from exc
