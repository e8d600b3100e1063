"""``bastion traces list|show|tail`` against a running gateway."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from bastion.cli import main
from bastion.config import gateway_url, load_settings
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, chat, traced_gateway, traces


def test_list_show_and_tail(tmp_path: Path) -> None:
    with FakeUpstream().start() as up:
        settings = load_settings(env={}, overrides={
            "server.port": 0, "server.master_key": MASTER_KEY, "home": str(tmp_path),
            "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}],
            "tracing": {"flush_interval": 0.05, "content": "full"},
        })
        gw = RunningGateway(settings).start()
        try:
            def ask(content: str) -> str:
                _, headers, _ = gw.request_full("POST", "/v1/chat/completions", {
                    "model": "chat", "messages": [{"role": "user", "content": content}]})
                return headers["x-request-id"]

            first = ask("hello there")
            runner = CliRunner()
            base = ["traces", "--url", gw.base_url, "--key", MASTER_KEY]
            deadline = time.monotonic() + 10
            rows: list[dict[str, object]] = []
            while not rows and time.monotonic() < deadline:
                out = runner.invoke(main, [*base, "list", "--json", "--model", "chat"])
                assert out.exit_code == 0, out.output
                rows = [json.loads(line) for line in out.output.splitlines() if line]
                time.sleep(0.05)
            assert [r["id"] for r in rows] == [first]

            table = runner.invoke(main, [*base, "list"])
            assert table.exit_code == 0 and first[:8] in table.output

            shown = runner.invoke(main, [*base, "show", first])
            assert shown.exit_code == 0, shown.output
            assert "hello there" in shown.output and "latency_ms" in shown.output

            missing = runner.invoke(main, [*base, "show", "no-such-trace"])
            assert missing.exit_code == 1 and "404" in missing.output

            bad_key = runner.invoke(main, ["traces", "--url", gw.base_url, "--key", "sk-wrong", "list"])
            assert bad_key.exit_code == 1 and "401" in bad_key.output

            later = threading.Timer(0.5, lambda: [ask("one"), ask("two")])
            later.start()
            tailed = runner.invoke(main, [*base, "tail", "--count", "3", "--interval", "0.1"])
            later.join()
            assert tailed.exit_code == 0, tailed.output
            assert first[:8] in tailed.output
        finally:
            gw.stop()


def test_list_pages_with_cursor_and_previews_on_one_line(tmp_path: Path) -> None:
    with FakeUpstream().start() as up:
        up.behaviour.content = "first line\n\n  second   line"
        gw = traced_gateway(up, tmp_path, {"content": "full"}, **{"server.master_key": MASTER_KEY})
        try:
            for i in range(5):
                chat(gw, f"question\n number {i}")
            traces(gw, 5)
            base = ["traces", "--url", gw.base_url, "--key", MASTER_KEY, "list"]
            runner = CliRunner()
            first = runner.invoke(main, [*base, "--json", "--limit", "3"])
            assert first.exit_code == 0, first.output
            rows = [json.loads(line) for line in first.stdout.splitlines() if line]
            more = first.stderr.strip()
            assert len(rows) == 3 and more.startswith("more: --cursor ")
            cursor = more.split()[2]
            rest = runner.invoke(main, [*base, "--json", "--limit", "3", "--cursor", cursor])
            assert rest.exit_code == 0, rest.output
            later = [json.loads(line) for line in rest.stdout.splitlines() if line]
            assert len(later) == 2 and not rest.stderr.strip(), "the last page"
            assert not {r["id"] for r in rows} & {r["id"] for r in later}
            table = runner.invoke(main, [*base, "--limit", "1"], env={"COLUMNS": "200"})
            assert "question number 4 → first line second line" in table.stdout
            assert "{'input'" not in table.stdout
            bad = runner.invoke(main, [*base, "--cursor", "not-a-cursor"])
            assert bad.exit_code == 1 and "cursor" in bad.output
        finally:
            gw.stop()


def test_the_gateway_is_found_where_serve_listens(tmp_path: Path) -> None:
    """No --url: the same config and BASTION_HOST/BASTION_PORT as `bastion serve`."""
    with FakeUpstream().start() as up:
        gw = traced_gateway(up, tmp_path)
        try:
            env = {"BASTION_PORT": str(gw.port), "BASTION_HOST": "0.0.0.0",
                   "BASTION_MASTER_KEY": MASTER_KEY, "BASTION_CONFIG": str(tmp_path / "none.yaml")}
            assert gateway_url(None, {"BASTION_PORT": str(gw.port)}) == f"http://127.0.0.1:{gw.port}"
            assert gateway_url(None, env).endswith(f"127.0.0.1:{gw.port}"), "a wildcard via loopback"
            config = tmp_path / "bastion.yaml"
            config.write_text(f"server:\n  port: {gw.port}\n")
            assert gateway_url(config, {}) == f"http://127.0.0.1:{gw.port}"
            assert gateway_url(None, {"BASTION_HOST": "::"}) == "http://[::1]:8080"
            out = CliRunner().invoke(main, ["traces", "list"], env={
                "BASTION_PORT": str(gw.port), "BASTION_CONFIG": ""})
            assert out.exit_code == 0, out.output
        finally:
            gw.stop()


def test_unreachable_gateway_is_a_clear_error() -> None:
    out = CliRunner().invoke(main, ["traces", "--url", "http://127.0.0.1:9", "list"])
    assert out.exit_code == 1 and "cannot reach the gateway" in out.output


def test_reprice_recomputes_cost_with_the_current_price_table(tmp_path: Path) -> None:
    import yaml

    from bastion.store import open_store

    now = time.time()
    store = open_store(None, tmp_path)
    rows = [{"id": f"r{i}", "ts": now - 3600 * i, "endpoint": "/v1/chat/completions",
             "model": "chat", "deployment": "chat", "status": 200, "input_tokens": 1000,
             "output_tokens": 500, "cached_tokens": 0, "latency_ms": 100.0, "cost": 9.0,
             "metadata": {"price_version": "old"}} for i in range(3)]
    store.insert_traces([*rows, {**rows[0], "id": "other", "deployment": None}])
    store.close()
    config = tmp_path / "bastion.yaml"
    config.write_text(yaml.safe_dump({"home": str(tmp_path), "models": [
        {"name": "chat", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
         "pricing": {"input": 2.0, "output": 4.0}}]}))
    out = CliRunner().invoke(main, ["traces", "reprice", "--config", str(config), "--since", "90m"])
    assert out.exit_code == 0, out.output
    assert "repriced 3 traces" in out.output  # r0, r1 and "other" are in the last 90 minutes
    store = open_store(None, tmp_path)
    try:
        r0, r2 = store.get_trace("r0"), store.get_trace("r2")
        assert r0 is not None and r2 is not None
        assert r0["cost"] == (1000 * 2.0 + 500 * 4.0) / 1e6
        assert r0["metadata"]["price_version"] != "old"
        assert r2["cost"] == 9.0 and r2["metadata"]["price_version"] == "old", "outside the window"
        other = store.get_trace("other")
        assert other is not None and other["cost"] is None
    finally:
        store.close()


def test_the_table_cuts_the_preview_not_the_columns() -> None:
    from rich.console import Console

    from bastion.cli.traces import _table

    rows = [{"ts": 1_800_000_000, "id": "fb267e18764a00000005", "model": "smollm2",
             "status": 503, "latency_ms": 254.4, "input_tokens": 34, "output_tokens": 16,
             "cost": 0.000123, "preview": "x" * 500}]
    for width, shown in ((80, ("time", "id", "model", "status", "ms")),
                         (200, ("time", "id", "model", "status", "ms", "tokens", "cost $"))):
        console = Console(width=width, record=True, color_system=None)
        console.print(_table(rows, width))
        lines = console.export_text().splitlines()
        assert all(len(line) <= width for line in lines), width
        header = lines[1]
        for name in (*shown, "preview"):
            assert f" {name} " in header or f"{name} " in header, (width, name, header)
        body = lines[3]
        assert "fb267e18764a00000005" in body and "503" in body and "254.4" in body
        assert "…" in body, "the preview is what gets cut"
    narrow = Console(width=80, record=True, color_system=None)
    narrow.print(_table(rows, 80))
    assert "cost $" not in narrow.export_text()  # dropped first when there is no room
