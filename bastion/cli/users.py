"""``bastion users erase|export``: data subject requests through a running gateway's
``/api/users`` (erase: the master key or an admin key; export: also a developer's key, for
its team's traces)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
from rich.console import Console
from rich.table import Table

from bastion.cli.api import call, connection, gateway_options

ERASE_TIMEOUT = 600.0  # a large store's erasure (the text index merge) takes a while
EXPORT_PAGE = 500


def _path(user: str, action: str) -> str:
    return f"/api/users/{quote(user, safe='')}/{action}"


def erasure_table(result: dict[str, Any]) -> Table:
    """Rows erased and rows still tied to the user (the verification), by table."""
    table = Table(header_style="bold", pad_edge=False,
                  title=f"subject {result['subject']}", title_justify="left")
    for column in ("table", "erased", "remaining"):
        table.add_column(column, no_wrap=True, justify="left" if column == "table" else "right")
    for name, count in result["erased"].items():
        left = result["remaining"].get(name, 0)
        table.add_row(name, str(count), str(left) if not left else f"[red]{left}[/]")
    for name, count in (result.get("erasers") or {}).items():
        table.add_row(f"{name} (in memory)", str(count), "-")
    return table


def register(main: click.Group) -> None:
    @main.group()
    @gateway_options
    @click.pass_context
    def users(ctx: click.Context, url: str | None, key: str | None) -> None:
        """Data subject requests: erase or export everything tied to a user."""
        ctx.obj = connection(url, key)

    @users.command("erase")
    @click.argument("user")
    @click.option("--yes", is_flag=True, help="do not ask for confirmation")
    @click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
    @click.pass_obj
    def erase(obj: dict[str, Any], user: str, yes: bool, as_json: bool) -> None:
        """Erases every trace, body, text index entry, feedback and in-memory entry tied
        to USER (the requests' `user` field), then prints the counts and the verification
        (rows still tied to USER, by table); exit 1 unless every count left is 0."""
        if not yes:
            click.confirm(f"Erase everything tied to user {user!r}? This cannot be undone",
                          abort=True)
        result = call(obj["url"], obj["key"], "POST", _path(user, "erase"),
                      timeout=ERASE_TIMEOUT)
        if as_json:
            click.echo(json.dumps(result))
        else:
            Console().print(erasure_table(result))
            click.echo("verified: nothing left" if result["verified"] else
                       "NOT VERIFIED: rows are still tied to the user (run it again)")
        if not result["verified"]:
            sys.exit(1)

    @users.command("export")
    @click.argument("user")
    @click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
                  help="write the JSON here (0600) instead of standard output")
    @click.pass_obj
    def export(obj: dict[str, Any], user: str, output: str | None) -> None:
        """Writes USER's data as one JSON document: their traces (bodies as stored, with
        their feedback), the feedback they gave and their keys."""
        document: dict[str, Any] = {}
        cursor = None
        while True:
            page = call(obj["url"], obj["key"], "GET", _path(user, "export"),
                        {"cursor": cursor, "limit": EXPORT_PAGE})
            if not document:
                document = {k: v for k, v in page.items() if k != "next_cursor"}
            else:
                document["traces"] += page["traces"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if output is None:
            click.echo(text, nl=False)
            return
        path = Path(output)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"{path}: {len(document.get('traces', []))} traces, "
                   f"{len(document.get('feedback', []))} feedback given, "
                   f"{len(document.get('keys', []))} keys", err=True)
