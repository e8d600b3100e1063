"""``bastion serve``'s entry: one process (:func:`bastion.gateway.runner.serve`), or
``server.workers`` of them under the supervisor (:mod:`bastion.gateway.supervisor`, which
runs ``serve`` in each). Both import ``runner``; neither imports this module, so the
process-running code has no import loop."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import uvloop

from bastion.config import Settings
from bastion.gateway.runner import serve
from bastion.gateway.supervisor import run_workers
from bastion.observe.logs import configure_logging

log = logging.getLogger("bastion")


def run(
    settings: Settings,
    loader: Callable[[], Settings] | None = None,
    watch: Path | None = None,
) -> int:
    """Serves until stopped; returns the exit code (1: it could not start)."""
    configure_logging(settings, json=settings.server.log_format == "json")
    try:
        if settings.server.workers > 1:
            return run_workers(settings, loader, watch)
        uvloop.run(serve(settings, loader=loader, watch=watch))
    except Exception as exc:  # noqa: BLE001 - start-up failure: report it plainly, exit 1
        log.error("Bastion failed to start: %s", exc)
        return 1
    return 0
