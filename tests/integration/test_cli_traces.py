"""``bastion traces list|show|tail`` against a running gateway."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from bastion.cli import main
from bastion.config import load_settings
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway


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


def test_unreachable_gateway_is_a_clear_error() -> None:
    out = CliRunner().invoke(main, ["traces", "--url", "http://127.0.0.1:9", "list"])
    assert out.exit_code == 1 and "cannot reach the gateway" in out.output
