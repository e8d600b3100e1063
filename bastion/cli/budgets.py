"""``bastion budgets list``: the budgets in use and their spend this period, through a
running gateway's ``/api/budgets`` (an admin sees all; a team's key, its team's)."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bastion.cli.api import call, connection, gateway_options


def _table(budgets: list[dict[str, Any]]) -> Table:
    currency = budgets[0]["currency"] if budgets else ""
    table = Table(header_style="bold", pad_edge=False)
    for column in ("scope", "name", "period", f"spent {currency}".strip(), "limit", "used",
                   "resets"):
        table.add_column(column, no_wrap=column != "name",
                         justify="right" if column in ("limit", "used") or column.startswith(
                             "spent") else "left")
    for b in budgets:
        used = b["spent"] / b["limit"] if b["limit"] else 0.0
        shown = f"{used:.0%}"
        if b["exceeded"]:
            shown = f"[red]{shown}[/]"
        elif b.get("soft") is not None and b["spent"] >= b["soft"]:
            shown = f"[yellow]{shown}[/]"
        resets = b.get("resets_at")
        table.add_row(
            b["scope"], b["name"], b["period"], f"{b['spent']:.4f}", f"{b['limit']:.2f}",
            shown, "never" if resets is None else time.strftime("%m-%d %H:%M",
                                                                time.localtime(resets)))
    return table


def register(main: click.Group) -> None:
    @main.group()
    @gateway_options
    @click.pass_context
    def budgets(ctx: click.Context, url: str | None, key: str | None) -> None:
        """Budgets (spend limits) and what they have spent."""
        ctx.obj = connection(url, key)

    @budgets.command("list")
    @click.option("--scope", type=click.Choice(["key", "team", "user"]), default=None)
    @click.option("--exceeded", is_flag=True, help="only budgets that are spent")
    @click.option("--json", "as_json", is_flag=True, help="print JSON lines")
    @click.pass_obj
    def list_(obj: dict[str, Any], /, scope: str | None, exceeded: bool,
              as_json: bool) -> None:
        """The budgets you may see, with this period's spend (every replica's when budgets
        are shared through Redis, else the answering worker's)."""
        page = call(obj["url"], obj["key"], "GET", "/api/budgets",
                    {"scope": scope, "exceeded": "true" if exceeded else None})
        if as_json:
            for b in page["data"]:
                click.echo(json.dumps(b))
            return
        table = _table(page["data"])
        if page["data"]:
            table.caption = ("shared by every replica (Redis)" if page["data"][0].get("shared")
                             else "this worker's ledger")
        Console().print(table)
