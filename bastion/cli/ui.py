"""``bastion ui url``: the dashboard's address, with a fresh one-time sign-in link when the
gateway has no master key (it reads the same configuration and deployment secret)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bastion.config import config_path as default_config_path
from bastion.config import load_settings
from bastion.errors import ConfigError


def register(main: click.Group) -> None:
    @main.group()
    def ui() -> None:
        """The web dashboard."""

    @ui.command("url")
    @click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
                  help="the gateway's YAML config (default: as bastion serve)")
    @click.option("--port", type=int, default=None, help="the gateway's port")
    def url(config_path: str | None, port: int | None) -> None:
        """Print the dashboard's address (a one-time sign-in link when the gateway runs
        without a master key; valid a day, once)."""
        from bastion.ui.announce import dashboard_url

        path = Path(config_path) if config_path is not None else default_config_path()
        try:
            settings = load_settings(path, overrides={"server.port": port})
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        click.echo(dashboard_url(settings))
