"""Errors that reach a client, each rendered as one OpenAI error envelope.

The HTTP status lives on the class. Client errors and server errors are separate branches::

    BastionError                      500 server_error
    ├── ClientError                   400 invalid_request_error
    │   ├── InvalidRequest            400
    │   ├── AuthenticationFailed      401 authentication_error
    │   ├── PermissionDenied          403 permission_error
    │   ├── BudgetExceeded            402 insufficient_quota (a budget is spent)
    │   ├── NotFound                  404 not_found_error
    │   │   └── ModelNotFound         404 code=model_not_found
    │   ├── MethodNotAllowed          405
    │   ├── PayloadTooLarge           413
    │   ├── UnsupportedMediaType      415
    │   └── RateLimited               429 rate_limit_error (+ Retry-After)
    └── ServerError                   500 server_error
        ├── UpstreamError             502 upstream_error (carries the upstream's message)
        ├── UpstreamTimeout           504 timeout
        ├── Overloaded                503 overloaded (+ Retry-After)
        └── StoreUnavailableError     503 store_unavailable (admin API reads)

Every ``/v1/*`` failure, whatever raised it, leaves the gateway as
``{"error": {"message", "type", "param", "code"}}`` with the class's status.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


def envelope(message: str, type_: str, code: str | None, param: str | None = None
             ) -> dict[str, Any]:
    """The OpenAI error envelope: the one builder of it (responses, stream error events and
    the HTTP server's own 4xx/5xx all use it)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_body(status: int, message: str, code: str) -> bytes:
    """An envelope's bytes for a status with no exception class behind it (the HTTP
    server's 400/408/413/431/500): ``invalid_request_error`` below 500, else ``server_error``."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return orjson.dumps(envelope(message, kind, code))


class BastionError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status  # type: ignore[misc]
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after

    def envelope(self) -> dict[str, Any]:
        return envelope(self.message, self.type, self.code, self.param)

    def body(self) -> bytes:
        return orjson.dumps(self.envelope())

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after is None:
            return []
        seconds = max(1, int(self.retry_after + 0.999))
        return [(b"retry-after", str(seconds).encode())]


class ClientError(BastionError):
    status = 400
    type = "invalid_request_error"


class InvalidRequest(ClientError):
    pass


class AuthenticationFailed(ClientError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"

    def __init__(self, message: str, *, reason: str = "invalid", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason  # missing, malformed or invalid: the metric's label

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [*super().headers(), (b"www-authenticate", b'Bearer realm="bastion"')]


class PermissionDenied(ClientError):
    status = 403
    type = "permission_error"


class BudgetExceeded(ClientError):
    """A hard budget is spent: 402, which clients do not retry (OpenAI's SDKs retry a 429),
    typed as OpenAI types an exhausted quota."""

    status = 402
    type = "insufficient_quota"
    default_code = "budget_exceeded"


class NotFound(ClientError):
    status = 404
    type = "not_found_error"


class ModelNotFound(NotFound):
    type = "invalid_request_error"
    default_code = "model_not_found"


class MethodNotAllowed(ClientError):
    status = 405
    default_code = "method_not_allowed"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [*super().headers(), (b"allow", self.allow.encode())]


class PayloadTooLarge(ClientError):
    status = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    status = 415
    default_code = "unsupported_media_type"


class RateLimited(ClientError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class ServerError(BastionError):
    pass


class UpstreamError(ServerError):
    status = 502
    type = "upstream_error"
    default_code = "upstream_error"


class UpstreamTimeout(ServerError):
    status = 504
    type = "timeout"
    default_code = "upstream_timeout"


class Overloaded(ServerError):
    status = 503
    type = "overloaded"
    default_code = "overloaded"


class QueueFull(Overloaded):
    """Our own queue (a model's, an alias's) is at its bound: the client is told at once,
    with Retry-After. The router may try another deployment but does not wait and retry
    the same one: that would queue the request a second, invisible way."""


class StoreUnavailableError(ServerError):
    status = 503
    default_code = "store_unavailable"


class ConfigError(ValueError):
    """Raised at start-up for an invalid configuration; never reaches a client."""


class IntegrityError(ValueError):
    """A model file's SHA-256 does not match the configured checksum."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(f"SHA-256 mismatch for {path}: expected {expected}, got {actual}")
        self.path = path
        self.expected = expected
        self.actual = actual
