"""The audit log: admin actions through a real gateway land in a hash chain with signed
heads; every edit, deletion, reordering and truncation is found, on SQLite and Postgres."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from bastion.cli import main
from bastion.config import load_settings
from bastion.governance.audit import entry_hash, read_anchor, signer_of, verify, write_anchor
from bastion.store import Store, open_store
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, traced_gateway
from tests.store_helpers import fresh_database


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path / "home") as database:
        yield database


def settings_for(tmp_path: Path, url: str) -> Any:
    return load_settings(env={}, overrides={"home": str(tmp_path / "home"),
                                            "store": {"url": url}})


def written(tmp_path: Path, url: str, n: int = 6) -> tuple[Any, Store]:
    settings = settings_for(tmp_path, url)
    store = open_store(url, settings.home)
    signer = signer_of(settings)
    for i in range(n):
        _, head = store.audit.append("master-key", "key.create", f"key_{i}",
                                     {"role": "user", "i": i}, signer, entry_hash)
        write_anchor(settings.home, head)
    return settings, store


def check(settings: Any, store: Store) -> list[str]:
    return verify(store.audit.entries(), store.audit.heads(), signer_of(settings).public_key,
                  read_anchor(settings.home)).problems


def sql(url: str, statement: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


TAMPERING: dict[str, Callable[[str], None]] = {
    "edit": lambda u: sql(u, "UPDATE audit_log SET target = 'key_x' WHERE seq = 3"),
    "edit-detail": lambda u: sql(u, "UPDATE audit_log SET actor = 'someone' WHERE seq = 5"),
    "delete": lambda u: sql(u, "DELETE FROM audit_log WHERE seq = 2"),
    "delete-with-its-head": lambda u: (sql(u, "DELETE FROM audit_log WHERE seq = 4"),
                                       sql(u, "DELETE FROM audit_heads WHERE seq = 4")),
    "reorder": lambda u: (sql(u, "UPDATE audit_log SET seq = 100 WHERE seq = 2"),
                          sql(u, "UPDATE audit_log SET seq = 2 WHERE seq = 3"),
                          sql(u, "UPDATE audit_log SET seq = 3 WHERE seq = 100")),
    "truncate": lambda u: sql(u, "DELETE FROM audit_log WHERE seq >= 5"),
    "truncate-with-heads": lambda u: (sql(u, "DELETE FROM audit_log WHERE seq >= 5"),
                                      sql(u, "DELETE FROM audit_heads WHERE seq >= 5")),
    "forged-head": lambda u: sql(u, "UPDATE audit_heads SET hash = '" + "1" * 64
                                    + "' WHERE seq = 6"),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_every_kind_of_tampering_is_found(tmp_path: Path, url: str, how: str) -> None:
    settings, store = written(tmp_path, url)
    try:
        assert check(settings, store) == [], "the untouched log verifies"
        TAMPERING[how](url)
        problems = check(settings, store)
        assert problems, f"{how} went unnoticed"
    finally:
        store.close()


def test_a_truncated_log_and_heads_are_found_by_the_head_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/home/bastion.db"
    settings, store = written(tmp_path, url)
    try:
        TAMPERING["truncate-with-heads"](url)
        problems = check(settings, store)
        assert any("truncated" in p for p in problems), problems
        without_file = verify(store.audit.entries(), store.audit.heads(),
                              signer_of(settings).public_key, None)
        assert without_file.ok, "consistent in the database alone: the file is the anchor"
    finally:
        store.close()


def test_another_deployments_key_cannot_sign(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/home/bastion.db"
    _, store = written(tmp_path, url, 2)
    try:
        other = load_settings(env={}, overrides={"home": str(tmp_path / "elsewhere")})
        result = verify(store.audit.entries(), store.audit.heads(),
                        signer_of(other).public_key, None)
        assert any("another key" in p for p in result.problems), result.problems
    finally:
        store.close()


def test_admin_actions_through_the_gateway_are_audited_and_verify(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with FakeUpstream().start() as up:
        gw = traced_gateway(up, tmp_path, **{"server.master_key": MASTER_KEY})
        try:
            _, made = gw.request("POST", "/api/keys", {"team": "ops", "role": "developer"})
            dev = made["key"]
            _, child = gw.request("POST", "/api/keys", {"role": "user"}, key=dev)
            gw.request("POST", f"/api/keys/{child['id']}/rotate", {"grace_seconds": 5},
                       key=dev)
            gw.request("POST", f"/api/keys/{child['id']}/revoke")
            status, page = gw.request("GET", "/api/audit?limit=3")
            assert status == 200 and [e["seq"] for e in page["data"]] == [1, 2, 3]
            assert page["next_after"] == 3
            status, rest = gw.request("GET", "/api/audit?after=3")
            assert [e["action"] for e in rest["data"]] == ["role.grant", "key.rotate",
                                                           "key.revoke"]
            assert rest["next_after"] is None
            status, newest = gw.request("GET", "/api/audit?order=desc&limit=4")
            assert [e["seq"] for e in newest["data"]] == [6, 5, 4, 3]
            assert newest["next_before"] == 3 and newest["next_after"] is None
            status, older = gw.request("GET", "/api/audit?before=3&limit=4")
            assert [e["seq"] for e in older["data"]] == [2, 1] and older["next_before"] is None
            status, last = gw.request("GET", "/api/audit?before=2&limit=1")
            assert [e["seq"] for e in last["data"]] == [1] and last["next_before"] is None
            assert rest["data"][0]["target"] == child["id"]
            assert rest["data"][0]["detail"] == {"role": "user", "team": "ops"}
            assert gw.request("GET", "/api/audit", key=dev)[0] == 403, "admins only"
            status, verdict = gw.request("GET", "/api/audit/verify")
            assert status == 200 and verdict["ok"] and verdict["entries"] == 6, verdict
        finally:
            gw.stop()
    config = tmp_path / "bastion.yaml"
    config.write_text(yaml.safe_dump({"home": str(home)}))
    runner = CliRunner()
    listed = runner.invoke(main, ["audit", "list", "--config", str(config), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("master-key", "key.create"), ("master-key", "role.grant"),
        (made["id"], "key.create"), (made["id"], "role.grant"),
        (made["id"], "key.rotate"), ("master-key", "key.revoke")]
    assert rows[1]["detail"] == {"role": "developer", "team": "ops"}
    assert rows[2]["detail"]["team"] == "ops" and "key" not in json.dumps(rows[2]["detail"])
    assert dev not in listed.stdout, "no key in the log"
    table = runner.invoke(main, ["audit", "list", "--config", str(config)],
                          env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "key.rotate" in table.stdout
    ok = runner.invoke(main, ["audit", "verify", "--config", str(config)])
    assert ok.exit_code == 0 and "ok: 6 entries" in ok.stdout, ok.output
    sql(f"sqlite:///{home}/bastion.db", "UPDATE audit_log SET actor = 'nobody' WHERE seq = 2")
    bad = runner.invoke(main, ["audit", "verify", "--config", str(config), "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["problems"] == ["entry 2 was changed after it was written"]


def test_failed_key_uses_are_audited_once_a_window_with_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from bastion.governance import authfail
    from bastion.governance.keys import new_token

    monkeypatch.setattr(authfail, "WINDOW_S", 0.2)
    with FakeUpstream().start() as up:
        gw = traced_gateway(up, tmp_path, **{"server.master_key": MASTER_KEY})
        try:
            _, made = gw.request("POST", "/api/keys", {"role": "user"})
            _, short = gw.request("POST", "/api/keys", {"role": "user", "expires_in": 1})
            gw.request("POST", f"/api/keys/{made['id']}/revoke")
            unknown = new_token()
            sent = {("invalid", f"bst-...{unknown[-4:]}"): 20, ("revoked", made["id"]): 3,
                    ("invalid", None): 4}
            for _ in range(20):
                assert gw.request("GET", "/v1/models", key=unknown)[0] == 401
            for _ in range(3):
                assert gw.request("GET", "/v1/models", key=made["key"])[0] == 401
            for _ in range(4):
                assert gw.request("GET", "/v1/models", key="sk-a-guess-at-the-master")[0] == 401
            assert gw.request("GET", "/v1/models", key=None,
                              headers={"authorization": "Basic x"})[0] == 401
            while time.time() < short["expires_at"]:
                time.sleep(0.05)
            assert gw.request("GET", "/v1/models", key=short["key"])[0] == 401
            sent[("expired", short["id"])] = 1
            deadline = time.monotonic() + 30
            while True:
                _, page = gw.request("GET", "/api/audit?limit=1000")
                failures = [e for e in page["data"] if e["action"] == "auth.failure"]
                counted: dict[tuple[str, str | None], int] = {}
                for e in failures:
                    group = (e["detail"]["reason"], e["target"])
                    counted[group] = counted.get(group, 0) + e["detail"]["count"]
                if counted == sent or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert counted == sent, "every refused key use counted, in its group"
            assert all(e["actor"] == "unauthenticated" and e["detail"]["source"] == "127.0.0.1"
                       for e in failures)
            assert len(failures) < sum(sent.values()), "aggregated, not one entry a request"
            logged = json.dumps(page["data"])
            assert unknown not in logged and made["key"] not in logged
            assert "sk-a-guess-at-the-master" not in logged
            assert gw.request("GET", "/api/audit/verify")[1]["ok"]
        finally:
            gw.stop()
