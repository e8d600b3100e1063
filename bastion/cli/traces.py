"""``bastion traces list|show|tail``: the trace store through a running gateway's API."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bastion.cli.api import call, connection, gateway_options

_FILTERS = ("model", "deployment", "key_id", "team", "user", "session", "status", "q",
            "since", "until", "min_latency_ms", "max_latency_ms", "min_confidence",
            "max_confidence", "guard")


def _when(ts: float | None) -> str:  # for `show`
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def one_line(row: Mapping[str, Any]) -> str:
    """A trace on one line: the input's start, an arrow, the output's start (or the
    error); whitespace runs, newlines included, become one space."""
    given = row.get("preview")
    parts: list[str] = []
    if isinstance(given, Mapping):
        parts = [str(given[k]) for k in ("input", "output") if given.get(k)]
    elif given:
        parts = [str(given)]
    if row.get("error") and len(parts) < 2:
        parts.append(f"error: {row['error']}")
    return " → ".join(" ".join(p.split()) for p in parts)


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _table(rows: list[dict[str, Any]], width: int = 200) -> Table:
    """The traces as a table for a ``width``-column console: every column but the preview
    as wide as its widest cell, the preview cut to what is left (rich would squeeze every
    column to fit a long preview, down to nothing)."""
    cells = []
    for r in rows:
        code = r.get("status") or 0
        status = f"[red]{code}[/]" if code >= 400 else str(code)
        tokens = f"{_num(r.get('input_tokens'), '{}')}/{_num(r.get('output_tokens'), '{}')}"
        cells.append((
            time.strftime("%H:%M:%S", time.localtime(r.get("ts") or 0)), r.get("id", ""),
            r.get("model") or "-", status, _num(r.get("latency_ms")), tokens,
            _num(r.get("cost"), "{:.6f}"), one_line(r),
        ))
    columns = [("time", "left"), ("id", "left"), ("model", "left"), ("status", "left"),
               ("ms", "right"), ("tokens", "right"), ("cost $", "right")]
    widest = [max([len(name), *(len(Text.from_markup(c[i]).plain) for c in cells)])
              for i, (name, _) in enumerate(columns)]
    keep = list(range(len(columns)))
    # each column takes its width, its padding and a rule; the preview wants 16 at least
    while len(keep) > 4 and width - sum(widest[i] + 3 for i in keep) - 2 < 16:
        keep.pop()  # too narrow: cost, then tokens, then ms go
    room = max(10, width - sum(widest[i] + 3 for i in keep) - 2)
    table = Table(show_lines=False, header_style="bold", pad_edge=False)
    for i in keep:
        name, justify = columns[i]
        table.add_column(name, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                         min_width=widest[i])
    table.add_column("preview", no_wrap=True)
    for *fixed, preview in cells:
        cut = preview if len(preview) <= room else preview[: room - 1] + "…"
        table.add_row(*(fixed[i] for i in keep), Text(cut))
    return table


def register(main: click.Group) -> None:
    @main.group()
    @gateway_options
    @click.pass_context
    def traces(ctx: click.Context, url: str | None, key: str | None) -> None:
        """List, show and follow request traces."""
        ctx.obj = connection(url, key)

    def filters(fn: Any) -> Any:
        for name in reversed(_FILTERS):
            fn = click.option(f"--{name.replace('_', '-')}", name, default=None,
                              help=f"filter: {name}")(fn)
        return fn

    @traces.command("list")
    @filters
    @click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
    @click.option("--cursor", default=None,
                  help="the next page: the cursor the previous page printed")
    @click.option("--json", "as_json", is_flag=True, help="print JSON lines")
    @click.pass_obj
    def list_(obj: dict[str, Any], /, limit: int, cursor: str | None, as_json: bool,
              **params: Any) -> None:
        """The newest traces, matching the filters (newest first; --cursor pages on)."""
        page = call(obj["url"], obj["key"], "GET", "/api/traces",
                    {**params, "limit": limit, "cursor": cursor})
        if as_json:
            for row in page["data"]:
                click.echo(json.dumps(row))
        else:
            console = Console()
            console.print(_table(page["data"], console.width))
        if page.get("next_cursor"):  # on stderr: the listing on stdout stays parseable
            click.echo(f"more: --cursor {page['next_cursor']} (with the same filters)",
                       err=True)

    @traces.command("show")
    @click.argument("trace_id")
    @click.pass_obj
    def show(obj: dict[str, Any], trace_id: str) -> None:
        """One trace in full: timings, tokens, spans, input, output, feedback."""
        row = call(obj["url"], obj["key"], "GET", f"/api/traces/{quote(trace_id, safe='')}")
        console = Console()
        summary = Table(show_header=False, box=None)
        for key in ("id", "ts", "endpoint", "model", "deployment", "provider",
                    "model_version", "status", "error", "finish_reason", "latency_ms",
                    "ttft_ms", "tpot_ms", "overhead_ms", "queue_ms", "input_tokens",
                    "output_tokens", "cached_tokens", "cost", "attempts", "fallback", "user",
                    "session", "team", "key_id", "content_mode", "trace_id"):
            value = row.get(key)
            if value is not None:
                summary.add_row(f"[bold]{key}[/]", _when(value) if key == "ts" else str(value))
        console.print(summary)
        for key in ("params", "spans", "input", "output", "guards", "feedback", "metadata"):
            if row.get(key):
                console.rule(key)
                console.print_json(json.dumps(row[key], default=str))

    @traces.command("reprice")
    @click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False),
                  default=None, help="config whose prices to apply (default: as `serve`)")
    @click.option("--since", default="30d", show_default=True,
                  help="epoch seconds, ISO 8601, or relative (24h, 7d)")
    @click.option("--until", default=None, help="default: now")
    def reprice(config_path: str | None, since: str, until: str | None) -> None:
        """Recomputes stored traces' cost with the configuration's price table (straight
        in the store, not through a gateway)."""
        from bastion.api.traces import parse_time
        from bastion.config import config_path as default_path
        from bastion.config import load_settings
        from bastion.errors import ConfigError, InvalidRequest
        from bastion.observe.pricing import PriceBook
        from bastion.store import StoreUnavailable, open_store

        try:
            settings = load_settings(config_path or default_path())
            start = parse_time(since, "since", 0.0)
            end = parse_time(until, "until", time.time())
        except (ConfigError, InvalidRequest) as exc:
            raise click.ClickException(str(exc)) from exc
        book = PriceBook.from_settings(settings)

        def cost(row: Mapping[str, Any]) -> float | None:
            if row["deployment"] is None:
                return None
            return book.cost(row["deployment"], row["input_tokens"] or 0,
                             row["output_tokens"] or 0, row["cached_tokens"] or 0,
                             (row["latency_ms"] or 0.0) / 1000)

        try:
            store = open_store(settings.store.url, settings.home)
            try:
                count = store.reprice(start, end, cost, book.version)
            finally:
                store.close()
        except StoreUnavailable as exc:
            raise click.ClickException(f"the store is unavailable: {exc}") from exc
        click.echo(f"repriced {count} traces with price table {book.version}")

    @traces.command("tail")
    @filters
    @click.option("--interval", type=float, default=1.0, show_default=True)
    @click.option("--count", type=int, default=None, help="stop after this many traces")
    @click.pass_obj
    def tail(obj: dict[str, Any], /, interval: float, count: int | None, **params: Any) -> None:
        """Follows new traces as they are stored (Ctrl-C stops)."""
        seen: set[str] = set()
        since = time.time() - 5
        shown = 0
        console = Console()
        try:
            while count is None or shown < count:
                page = call(obj["url"], obj["key"], "GET", "/api/traces",
                            {**params, "since": since, "limit": 200})
                fresh = [r for r in reversed(page["data"]) if r["id"] not in seen]
                if count is not None:
                    fresh = fresh[: count - shown]
                if fresh:
                    console.print(_table(fresh, console.width))
                    shown += len(fresh)
                    seen.update(r["id"] for r in fresh)
                    since = max(since, min(r["ts"] for r in fresh) - 5)
                    if len(seen) > 10_000:
                        seen = {r["id"] for r in fresh}
                if count is not None and shown >= count:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            sys.exit(0)
