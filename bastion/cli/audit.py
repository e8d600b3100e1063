"""``bastion audit verify|list``: the audit log, read straight from the store."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.table import Table


@contextmanager
def _opened(config_path: str | None) -> Iterator[tuple[Any, Any]]:
    from bastion.config import config_path as default_path
    from bastion.config import load_settings
    from bastion.errors import ConfigError
    from bastion.store import StoreUnavailable, open_store

    try:
        settings = load_settings(config_path or default_path())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        store = open_store(settings.store.url, settings.home)
    except StoreUnavailable as exc:
        raise click.ClickException(f"the store is unavailable: {exc}") from exc
    try:
        yield settings, store
    except StoreUnavailable as exc:
        raise click.ClickException(f"the store is unavailable: {exc}") from exc
    finally:
        store.close()


_CONFIG = click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
                       default=None, help="config (default: as `serve`)")


def register(main: click.Group) -> None:
    @main.group()
    def audit() -> None:
        """The tamper-evident audit log of admin actions."""

    @audit.command("verify")
    @_CONFIG
    @click.option("--json", "as_json", is_flag=True)
    def verify(config_path: str | None, as_json: bool) -> None:
        """Checks every link of the chain, every signed head and the head file; exit 1
        when an entry was changed, deleted, reordered or cut off."""
        from bastion.governance.audit import read_anchor, signer_of
        from bastion.governance.audit import verify as check

        with _opened(config_path) as (settings, store):
            verdict = check(store.audit.entries(), store.audit.heads(),
                            signer_of(settings).public_key, read_anchor(settings.home))
        if as_json:
            click.echo(json.dumps({"ok": verdict.ok, "entries": verdict.entries,
                                   "last_seq": verdict.last_seq, "heads": verdict.heads,
                                   "problems": verdict.problems}))
        elif verdict.ok:
            click.echo(f"ok: {verdict.entries} entries, every link and head checked")
        else:
            for problem in verdict.problems:
                click.echo(f"TAMPERED: {problem}", err=True)
        if not verdict.ok:
            sys.exit(1)

    @audit.command("list")
    @_CONFIG
    @click.option("--after", type=click.IntRange(0), default=0, help="entries after this seq")
    @click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="print JSON lines")
    def list_(config_path: str | None, after: int, limit: int, as_json: bool) -> None:
        """Entries in order: when, who, what, on what."""
        with _opened(config_path) as (_, store):
            rows = list(store.audit.entries(after, limit))
        if as_json:
            for row in rows:
                click.echo(json.dumps(row))
            return
        table = Table(header_style="bold", pad_edge=False)
        for column in ("seq", "time", "actor", "action", "target", "detail"):
            table.add_column(column, no_wrap=column != "detail")
        for r in rows:
            table.add_row(str(r["seq"]), time.strftime("%Y-%m-%d %H:%M:%S",
                                                       time.localtime(r["ts"])),
                          r["actor"], r["action"], r["target"] or "-",
                          json.dumps(r["detail"]) if r["detail"] else "")
        Console().print(table)
