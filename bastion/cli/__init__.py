"""The ``bastion`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bastion import __version__
from bastion.cli import audit as cli_audit
from bastion.cli import budgets as cli_budgets
from bastion.cli import guard as cli_guard
from bastion.cli import keys as cli_keys
from bastion.cli import teams as cli_teams
from bastion.cli import traces as cli_traces
from bastion.cli import ui as cli_ui
from bastion.cli import users as cli_users
from bastion.config import Settings, gateway_url, load_settings
from bastion.config import config_path as default_config_path
from bastion.errors import ConfigError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bastion")
def main() -> None:
    """Bastion: deploy, watch and guard language models behind one OpenAI-compatible gateway."""


@main.command()
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
              help="YAML config file (default: $BASTION_CONFIG, else ./bastion.yaml if present)")
@click.option("--host", default=None, help="bind address (default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default 8080)")
@click.option("--workers", type=int, default=None, help="worker processes (default 1)")
def serve(
    config_path: str | None, host: str | None, port: int | None, workers: int | None
) -> None:
    """Serve the gateway (with no config: the embedded SmolLM2 model on 127.0.0.1:8080)."""
    from bastion.gateway.launch import run

    path = Path(config_path) if config_path is not None else default_config_path()
    overrides = {"server.host": host, "server.port": port, "server.workers": workers}

    def loader() -> Settings:
        return load_settings(path, overrides=overrides)

    try:
        settings = loader()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sys.exit(run(settings, loader=loader, watch=path))


@main.group()
def config() -> None:
    """Inspect and validate configuration."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Validate FILE (with BASTION_* environment overrides applied); exit 1 if invalid."""
    try:
        settings = load_settings(file)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    from bastion.plugins import backend_factories, plugin_manager
    from bastion.preflight import problems

    found = problems(settings, set(backend_factories(plugin_manager())))
    if found:
        for line in found:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)
    names = ", ".join(f"{m.name} ({m.backend})" for m in settings.models)
    click.echo(f"ok: {file}: listening on {settings.server.host}:{settings.server.port} "
               f"(clients: {gateway_url(file)}); models: {names}")


@config.command("reference")
def config_reference() -> None:
    """Print the configuration reference (Markdown), generated from the settings models."""
    from bastion.config_reference import render

    click.echo(render(), nl=False)


cli_traces.register(main)
cli_keys.register(main)
cli_audit.register(main)
cli_budgets.register(main)
cli_guard.register(main)
cli_users.register(main)
cli_teams.register(main)
cli_ui.register(main)


if __name__ == "__main__":  # pragma: no cover
    main()
