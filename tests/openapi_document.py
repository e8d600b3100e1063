"""The gateway's OpenAPI document as the code builds it, from a real (unstarted) gateway's
endpoint table: what ``GET /openapi.json`` serves, without a server."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bastion.api import openapi
from bastion.config import load_settings
from bastion.gateway import routes
from bastion.gateway.app import Endpoint, Gateway

MODELS = ("chat", "other")


def built_gateway(home: Path | str | None = None) -> Gateway:
    """A gateway with two upstream models (nothing listens there: it is never started)."""
    home = home if home is not None else tempfile.mkdtemp(prefix="bastion-openapi-")
    settings = load_settings(env={}, overrides={
        "home": str(home),
        "server.master_key": "sk-test-master-key",
        "models": [{"name": n, "backend": "openai", "base_url": "http://127.0.0.1:9"}
                   for n in MODELS],
    })
    return Gateway(settings)


def route_tables(gw: Gateway) -> tuple[dict[str, dict[str, Endpoint]],
                                       list[tuple[str, dict[str, Endpoint]]]]:
    return routes.table(gw), routes.prefixed(gw)


def built_document() -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix="bastion-openapi-")
    gw = built_gateway(home)
    try:
        return openapi.document(*route_tables(gw))
    finally:
        asyncio.run(gw.close())
        shutil.rmtree(home, ignore_errors=True)
