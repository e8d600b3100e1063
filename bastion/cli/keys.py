"""``bastion keys create|list|show|rotate|revoke``: virtual keys through a running
gateway's ``/api/keys`` (the master key, or a developer's key for its team); and
``bastion keys rotate-data-key|data-keys|drop-data-key``: the data keys trace bodies are
encrypted under, through ``/api/data-keys`` (admins)."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import quote

import click
from rich.console import Console
from rich.table import Table

from bastion.cli.api import call, connection, gateway_options

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(value: str | None, name: str) -> float | None:
    """``90``, ``15m``, ``12h``, ``30d``: seconds."""
    if value is None:
        return None
    match = _DURATION.match(value)
    if match is None:
        raise click.BadParameter(f"expected a duration like 3600, 15m, 12h or 30d, not "
                                 f"{value!r}", param_hint=name)
    return float(match.group(1)) * _UNITS[match.group(2)]


def _metadata(pairs: tuple[str, ...]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, not {pair!r}", param_hint="--meta")
        out[key] = value
    return out or None


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _table(keys: list[dict[str, Any]]) -> Table:
    table = Table(header_style="bold", pad_edge=False)
    for column in ("id", "hint", "name", "team", "user", "role", "models", "status",
                   "created", "expires"):
        table.add_column(column, no_wrap=True)
    for k in keys:
        status = k["status"]
        table.add_row(
            k["id"], k["hint"], k.get("name") or "-", k.get("team") or "-",
            k.get("user") or "-", k["role"], ",".join(k.get("models") or []) or "all",
            status if status == "active" else f"[red]{status}[/]",
            _when(k.get("created_at")), _when(k.get("expires_at")),
        )
    return table


def _show_new(made: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(made))
        return
    console = Console()
    console.print(_table([made]))
    click.echo(f"key: {made['key']}")
    click.echo("This is the only time the key is shown: store it now.", err=True)


def register(main: click.Group) -> None:
    @main.group()
    @gateway_options
    @click.pass_context
    def keys(ctx: click.Context, url: str | None, key: str | None) -> None:
        """Create, list, rotate and revoke virtual keys."""
        ctx.obj = connection(url, key)

    @keys.command("create")
    @click.option("--name", default=None, help="a label (letters, digits, . _ : @ -)")
    @click.option("--team", default=None, help="the key's team (its tenant; what it may read)")
    @click.option("--user", default=None, help="the user the key belongs to")
    @click.option("--role", type=click.Choice(["user", "viewer", "developer", "admin"]),
                  default="user", show_default=True)
    @click.option("--model", "models", multiple=True,
                  help="a model the key may use, repeatable (default: all)")
    @click.option("--rpm", type=click.IntRange(1), default=None, help="requests per minute")
    @click.option("--tpm", type=click.IntRange(1), default=None, help="tokens per minute")
    @click.option("--max-parallel", type=click.IntRange(1), default=None,
                  help="requests in flight at once")
    @click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=None,
                  help="spend limit (budgets.currency) per --budget-period")
    @click.option("--budget-period", type=click.Choice(["daily", "weekly", "monthly",
                                                        "total"]), default="monthly",
                  show_default=True)
    @click.option("--budget-soft", type=click.FloatRange(min=0, min_open=True),
                  default=None, help="notify at this spend")
    @click.option("--guard-policy", default=None,
                  help="guard policy of its requests (admins only; 'none': no guards)")
    @click.option("--content-mode", type=click.Choice(["metadata", "redacted", "full"]),
                  default=None, help="what its traces keep (never more than its team's)")
    @click.option("--priority", type=click.IntRange(0, 9), default=None,
                  help="admission priority, 0 most urgent (within its team's best)")
    @click.option("--expires-in", default=None, help="lifetime: 3600, 12h, 30d ...")
    @click.option("--meta", "meta", multiple=True, metavar="KEY=VALUE", help="metadata")
    @click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
    @click.pass_obj
    def create(obj: dict[str, Any], /, name: str | None, team: str | None, user: str | None,
               role: str, models: tuple[str, ...], rpm: int | None, tpm: int | None,
               max_parallel: int | None, budget: float | None, budget_period: str,
               budget_soft: float | None, guard_policy: str | None,
               content_mode: str | None, priority: int | None, expires_in: str | None,
               meta: tuple[str, ...], as_json: bool) -> None:
        """A new key; it is printed once (the gateway keeps only its digest)."""
        body: dict[str, Any] = {"role": role}
        if budget is not None:
            body["budget"] = {"limit": budget, "period": budget_period, "soft": budget_soft}
        elif budget_soft is not None:
            raise click.BadParameter("needs --budget", param_hint="--budget-soft")
        limits = {k: v for k, v in (("rpm", rpm), ("tpm", tpm), ("max_parallel", max_parallel))
                  if v is not None}
        if limits:
            body["limits"] = limits
        for field, value in (("name", name), ("team", team), ("user", user),
                             ("models", list(models) or None),
                             ("guard_policy", guard_policy), ("content_mode", content_mode),
                             ("priority", priority),
                             ("expires_in", seconds(expires_in, "--expires-in")),
                             ("metadata", _metadata(meta))):
            if value is not None:
                body[field] = value
        _show_new(call(obj["url"], obj["key"], "POST", "/api/keys", body=body), as_json)

    @keys.command("list")
    @click.option("--team", default=None)
    @click.option("--status", type=click.Choice(["active", "expired", "revoked"]),
                  default=None)
    @click.option("--json", "as_json", is_flag=True, help="print JSON lines")
    @click.pass_obj
    def list_(obj: dict[str, Any], /, team: str | None, status: str | None,
              as_json: bool) -> None:
        """The keys you may see, newest first."""
        page = call(obj["url"], obj["key"], "GET", "/api/keys",
                    {"team": team, "status": status})
        if as_json:
            for k in page["data"]:
                click.echo(json.dumps(k))
            return
        Console().print(_table(page["data"]))

    @keys.command("show")
    @click.argument("key_id")
    @click.pass_obj
    def show(obj: dict[str, Any], key_id: str) -> None:
        """One key's attributes (never the key)."""
        row = call(obj["url"], obj["key"], "GET", f"/api/keys/{quote(key_id, safe='')}")
        Console().print_json(json.dumps(row))

    @keys.command("rotate")
    @click.argument("key_id")
    @click.option("--grace", default="0", show_default=True,
                  help="how long the old key keeps working: 0, 15m, 24h ...")
    @click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
    @click.pass_obj
    def rotate(obj: dict[str, Any], key_id: str, grace: str, as_json: bool) -> None:
        """A new key with the same attributes; the old one ends after --grace."""
        made = call(obj["url"], obj["key"], "POST", f"/api/keys/{quote(key_id, safe='')}/rotate",
                    body={"grace_seconds": seconds(grace, "--grace")})
        _show_new(made, as_json)

    register_data_keys(keys)

    @keys.command("revoke")
    @click.argument("key_id")
    @click.pass_obj
    def revoke(obj: dict[str, Any], key_id: str) -> None:
        """Stops a key at once (in every worker within a second)."""
        row = call(obj["url"], obj["key"], "POST", f"/api/keys/{quote(key_id, safe='')}/revoke")
        click.echo(f"{row['id']}: {row['status']}")


def _data_key_table(status: dict[str, Any]) -> Table:
    table = Table(header_style="bold", pad_edge=False)
    for column in ("data key", "created", "traces", "state"):
        table.add_column(column, no_wrap=True)
    for k in status["keys"]:
        state = ("current" if k["current"] else
                 "re-encrypting" if k["traces"] else "can be dropped")
        table.add_row(str(k["id"]), _when(k["created_at"]), str(k["traces"]), state)
    if status["plaintext_traces"]:
        table.add_row("-", "-", str(status["plaintext_traces"]),
                      "plaintext" + (", encrypting" if status["encrypt_bodies"] else ""))
    return table


def _data_key_summary(status: dict[str, Any]) -> str:
    left = status["to_reencrypt"]
    old = [str(k["id"]) for k in status["keys"] if not k["current"]]
    if left:
        return (f"{left} traces are still to be re-encrypted under data key "
                f"{status['current']} (in the background, by the ingest). Keep the old keys "
                "until this says none are left.")
    if old:
        return (f"Re-encryption is finished: data key(s) {', '.join(old)} may now be "
                f"dropped: bastion keys drop-data-key {old[0]}")
    return "Every trace is under the current data key."


def register_data_keys(keys: click.Group) -> None:
    @keys.command("rotate-data-key")
    @click.option("--wait", is_flag=True,
                  help="wait until every trace is re-encrypted under the new key")
    @click.option("--timeout", default=None, help="with --wait: give up after 10m, 2h ...")
    @click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
    @click.pass_obj
    def rotate_data_key(obj: dict[str, Any], wait: bool, timeout: str | None,
                        as_json: bool) -> None:
        """A new data key for trace bodies: current at once; older bodies are re-encrypted
        in the background. Drop an old key only once that has finished."""
        limit = seconds(timeout, "--timeout")
        status = call(obj["url"], obj["key"], "POST", "/api/data-keys/rotate")
        if not as_json:
            click.echo(f"data key {status['current']} is now current for new traces")
        deadline = time.monotonic() + (limit if limit is not None else float("inf"))
        while wait and status["to_reencrypt"] and time.monotonic() < deadline:
            time.sleep(1.0)
            status = call(obj["url"], obj["key"], "GET", "/api/data-keys")
        if as_json:
            click.echo(json.dumps(status))
            return
        click.echo(_data_key_summary(status))

    @keys.command("data-keys")
    @click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
    @click.pass_obj
    def data_keys(obj: dict[str, Any], as_json: bool) -> None:
        """The data keys trace bodies are under, and what re-encryption has left."""
        status = call(obj["url"], obj["key"], "GET", "/api/data-keys")
        if as_json:
            click.echo(json.dumps(status))
            return
        Console().print(_data_key_table(status))
        click.echo(_data_key_summary(status))

    @keys.command("drop-data-key")
    @click.argument("key_id", type=click.IntRange(1))
    @click.pass_obj
    def drop_data_key(obj: dict[str, Any], key_id: int) -> None:
        """Deletes an old data key (refused while any trace is still under it)."""
        call(obj["url"], obj["key"], "DELETE", f"/api/data-keys/{key_id}")
        click.echo(f"data key {key_id} dropped")
