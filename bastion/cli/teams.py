"""``bastion teams list|show|create|update|delete|orgs``: teams and organisations through a
running gateway's ``/api/teams`` and ``/api/orgs`` (an admin sees and changes all; a team's
key sees its own team)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click
from rich.console import Console
from rich.table import Table

from bastion.cli.api import call, connection, gateway_options


def _keys(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {role}" for role, n in counts.items()) or "-"


def _table(teams: list[dict[str, Any]]) -> Table:
    table = Table(header_style="bold", pad_edge=False)
    for column in ("name", "org", "registered", "keys", "description"):
        table.add_column(column, no_wrap=column != "description")
    for t in teams:
        table.add_row(t["name"], t.get("org") or "-", "yes" if t["registered"] else "no",
                      _keys(t.get("keys") or {}), t.get("description") or "")
    return table


def _echo(data: Any, as_json: bool, show: Any) -> None:
    if as_json:
        click.echo(json.dumps(data))
    else:
        show(data)


def register(main: click.Group) -> None:
    @main.group()
    @gateway_options
    @click.pass_context
    def teams(ctx: click.Context, url: str | None, key: str | None) -> None:
        """Teams, their organisations and what the configuration gives them."""
        ctx.obj = connection(url, key)

    @teams.command("list")
    @click.option("--org", default=None, help="only this organisation's teams")
    @click.option("--json", "as_json", is_flag=True, help="print JSON lines")
    @click.pass_obj
    def list_(obj: dict[str, Any], /, org: str | None, as_json: bool) -> None:
        """The teams you may see: registered, or named by a key or the configuration."""
        page = call(obj["url"], obj["key"], "GET", "/api/teams", {"org": org})
        if as_json:
            for t in page["data"]:
                click.echo(json.dumps(t))
            return
        Console().print(_table(page["data"]))

    @teams.command("show")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
    @click.pass_obj
    def show(obj: dict[str, Any], /, name: str, as_json: bool) -> None:
        """A team, its keys by role and its budget, limits, content mode, retention and
        guard policy."""
        team = call(obj["url"], obj["key"], "GET", f"/api/teams/{quote(name, safe='')}")

        def print_it(t: dict[str, Any]) -> None:
            console = Console()
            console.print(_table([t]))
            settings = Table(header_style="bold", pad_edge=False)
            settings.add_column("setting")
            settings.add_column("value")
            for k, v in t["settings"].items():
                settings.add_row(k, "-" if v is None else json.dumps(v) if isinstance(
                    v, dict) else str(v))
            console.print(settings)

        _echo(team, as_json, print_it)

    @teams.command("create")
    @click.argument("name")
    @click.option("--org", default=None, help="its organisation")
    @click.option("--description", default=None)
    @click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
    @click.pass_obj
    def create(obj: dict[str, Any], /, name: str, org: str | None, description: str | None,
               as_json: bool) -> None:
        """Registers a team (admins)."""
        body = {k: v for k, v in (("name", name), ("org", org), ("description", description))
                if v is not None}
        made = call(obj["url"], obj["key"], "POST", "/api/teams", body=body)
        _echo(made, as_json, lambda t: Console().print(_table([t])))

    @teams.command("update")
    @click.argument("name")
    @click.option("--org", default=None, help="its organisation ('' to clear)")
    @click.option("--description", default=None, help="('' to clear)")
    @click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
    @click.pass_obj
    def update(obj: dict[str, Any], /, name: str, org: str | None, description: str | None,
               as_json: bool) -> None:
        """Changes a registered team's organisation or description (admins)."""
        body = {k: (v or None) for k, v in (("org", org), ("description", description))
                if v is not None}
        if not body:
            raise click.UsageError("give --org or --description")
        changed = call(obj["url"], obj["key"], "PATCH", f"/api/teams/{quote(name, safe='')}",
                       body=body)
        _echo(changed, as_json, lambda t: Console().print(_table([t])))

    @teams.command("delete")
    @click.argument("name")
    @click.pass_obj
    def delete(obj: dict[str, Any], /, name: str) -> None:
        """Unregisters a team with no active keys (admins)."""
        call(obj["url"], obj["key"], "DELETE", f"/api/teams/{quote(name, safe='')}")
        click.echo(f"team {name} unregistered")

    @teams.command("orgs")
    @click.option("--json", "as_json", is_flag=True, help="print JSON lines")
    @click.pass_obj
    def orgs(obj: dict[str, Any], /, as_json: bool) -> None:
        """The organisations and their teams."""
        page = call(obj["url"], obj["key"], "GET", "/api/orgs")
        if as_json:
            for o in page["data"]:
                click.echo(json.dumps(o))
            return
        table = Table(header_style="bold", pad_edge=False)
        table.add_column("org", no_wrap=True)
        table.add_column("teams")
        for o in page["data"]:
            table.add_row(o["name"], ", ".join(o["teams"]))
        Console().print(table)
