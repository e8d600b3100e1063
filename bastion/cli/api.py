"""The command line's client of a running gateway's admin API (``bastion traces``,
``bastion keys``): one JSON request, the OpenAI error envelope's message on failure."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import click


class ApiError(click.ClickException):
    pass


def call(url: str, key: str | None, method: str, path: str,
         params: dict[str, Any] | None = None, body: dict[str, Any] | None = None,
         timeout: float = 30) -> Any:
    if not url.startswith(("http://", "https://")):
        raise ApiError(f"--url must be an http(s) URL, not {url!r}")
    query = urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
    full = url.rstrip("/") + path + (f"?{query}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(full, data=data, method=method)  # noqa: S310 - http(s)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise ApiError(f"{exc.code}: {message}") from exc
    except urllib.error.URLError as exc:
        raise ApiError(f"cannot reach the gateway at {url}: {exc.reason}") from exc


def gateway_options(fn: Any) -> Any:
    """``--url`` and ``--key`` for a command group that talks to a running gateway."""
    fn = click.option("--key", envvar="BASTION_MASTER_KEY", default=None,
                      help="API key (default: $BASTION_MASTER_KEY)")(fn)
    return click.option(
        "--url", default=None,
        help="the gateway's base URL (default: where `bastion serve` listens with the same "
             "config and $BASTION_HOST/$BASTION_PORT, else http://127.0.0.1:8080)")(fn)


def connection(url: str | None, key: str | None) -> dict[str, Any]:
    from bastion.config import gateway_url

    return {"url": url or gateway_url(), "key": key}
