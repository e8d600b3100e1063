"""Teams and organisations: registered through the API and the CLI, listed and shown as
each role may see them, changed and unregistered by admins only, audited; the rows on
both engines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.store import open_store
from bastion.store.teams import TeamExists
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, traced_gateway
from tests.store_helpers import fresh_database


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with FakeUpstream().start() as up:
        gateway = traced_gateway(up, tmp_path_factory.mktemp("teams"), {
            "retention_by_team": {"alpha": 7}}, **{
            "server.master_key": MASTER_KEY,
            "budgets": {"teams": {"alpha": {"limit": 5, "period": "monthly"},
                                  "configured-only": {"limit": 1}}},
        })
        yield gateway
        gateway.stop()


def key(gw: RunningGateway, role: str, team: str) -> dict[str, Any]:
    status, made = gw.request("POST", "/api/keys", {"role": role, "team": team})
    assert status == 201, made
    return dict(made)


def test_admins_register_teams_in_organisations(gw: RunningGateway) -> None:
    for name, org in (("alpha", "acme"), ("beta", "acme"), ("gamma", "other")):
        status, team = gw.request("POST", "/api/teams", {"name": name, "org": org,
                                                         "description": f"team {name}"})
        assert status == 201, team
        assert (team["name"], team["org"], team["registered"]) == (name, org, True)
    status, body = gw.request("POST", "/api/teams", {"name": "alpha"})
    assert status == 409 and body["error"]["code"] == "team_exists"
    for bad, param in (({"name": "a b"}, "name"), ({}, "name"), ({"name": "x", "color": 1},
                       "color"), ({"name": "x", "org": ""}, "org"),
                       ({"name": "x", "metadata": [1]}, "metadata")):
        status, body = gw.request("POST", "/api/teams", bad)
        assert status == 400 and body["error"]["param"] == param, (bad, body)
    key(gw, "user", "delta")  # a team that only a key names
    status, page = gw.request("GET", "/api/teams")
    names = {t["name"]: t for t in page["data"]}
    assert {"alpha", "beta", "gamma", "delta", "configured-only"} <= set(names)
    assert names["delta"]["registered"] is False and names["delta"]["keys"] == {"user": 1}
    status, page = gw.request("GET", "/api/teams?org=acme")
    assert [t["name"] for t in page["data"]] == ["alpha", "beta"]
    status, orgs = gw.request("GET", "/api/orgs")
    assert {o["name"]: o["teams"] for o in orgs["data"]} == {
        "acme": ["alpha", "beta"], "other": ["gamma"]}


def test_each_role_sees_its_own_team_only(gw: RunningGateway) -> None:
    gw.request("POST", "/api/teams", {"name": "alpha", "org": "acme"})
    dev, viewer, user = (key(gw, r, "alpha")["key"] for r in ("developer", "viewer", "user"))
    other = key(gw, "developer", "beta")["key"]
    for token in (dev, viewer):
        status, page = gw.request("GET", "/api/teams", key=token)
        assert status == 200 and [t["name"] for t in page["data"]] == ["alpha"]
        status, team = gw.request("GET", "/api/teams/alpha", key=token)
        assert status == 200 and team["settings"]["budget"]["limit"] == 5
        assert team["settings"]["retention_days"] == 7
        assert team["keys"]["developer"] >= 1 and team["keys"]["viewer"] >= 1
        status, orgs = gw.request("GET", "/api/orgs", key=token)
        assert [o["name"] for o in orgs["data"]] == ["acme"]
    status, body = gw.request("GET", "/api/teams/alpha", key=other)
    assert status == 404 and body["error"]["code"] == "team_not_found"
    assert gw.request("GET", "/api/teams", key=user)[0] == 403
    for method, path, body in (("POST", "/api/teams", {"name": "mine"}),
                               ("PATCH", "/api/teams/alpha", {"org": "x"}),
                               ("DELETE", "/api/teams/alpha", None)):
        status, answer = gw.request(method, path, body, key=dev)
        assert status == 403 and answer["error"]["code"] == "insufficient_permissions"
    status, body = gw.request("GET", "/api/teams/nobody")
    assert status == 404 and body["error"]["code"] == "team_not_found"
    status, body = gw.request("GET", "/api/teams/a%20b")
    assert status == 400 and body["error"]["param"] == "name"


def test_changes_and_unregistering_are_admins_and_audited(gw: RunningGateway) -> None:
    gw.request("POST", "/api/teams", {"name": "epsilon", "org": "acme"})
    status, team = gw.request("PATCH", "/api/teams/epsilon", {"org": "other",
                                                              "description": "moved"})
    assert status == 200 and (team["org"], team["description"]) == ("other", "moved")
    status, body = gw.request("PATCH", "/api/teams/epsilon", {"name": "renamed"})
    assert status == 400 and body["error"]["param"] == "name"
    status, body = gw.request("PATCH", "/api/teams/unregistered", {"org": "x"})
    assert status == 404
    made = key(gw, "user", "epsilon")
    status, body = gw.request("DELETE", "/api/teams/epsilon")
    assert status == 409 and body["error"]["code"] == "team_has_keys"
    assert gw.request("POST", f"/api/keys/{made['id']}/revoke")[0] == 200
    status, body = gw.request("DELETE", "/api/teams/epsilon")
    assert status == 200 and body["deleted"] is True
    assert gw.request("DELETE", "/api/teams/epsilon")[0] == 404
    status, audit = gw.request("GET", "/api/audit?limit=1000")
    assert status == 200, audit
    actions = [e["action"] for e in audit["data"] if e["target"] == "epsilon"]
    assert {"team.create", "team.update", "team.delete"} <= set(actions), actions


def test_the_teams_command_line(gw: RunningGateway) -> None:
    from click.testing import CliRunner

    from bastion.cli import main

    base = ["teams", "--url", gw.base_url, "--key", MASTER_KEY]
    runner = CliRunner()
    made = runner.invoke(main, [*base, "create", "zeta", "--org", "cli-org", "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["org"] == "cli-org"
    shown = runner.invoke(main, [*base, "show", "zeta", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["settings"]["content_mode"]
    listed = runner.invoke(main, [*base, "list", "--org", "cli-org"])
    assert listed.exit_code == 0 and "zeta" in listed.output
    orgs = runner.invoke(main, [*base, "orgs"])
    assert orgs.exit_code == 0 and "cli-org" in orgs.output
    assert runner.invoke(main, [*base, "update", "zeta", "--org", ""]).exit_code == 0
    gone = runner.invoke(main, [*base, "delete", "zeta"])
    assert gone.exit_code == 0 and "unregistered" in gone.output
    again = runner.invoke(main, [*base, "delete", "zeta"])
    assert again.exit_code != 0 and "No team named 'zeta'" in again.output


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_team_rows_on_both_engines(engine: str, tmp_path: Path) -> None:
    with fresh_database(engine, tmp_path) as url:
        store = open_store(url, tmp_path)
        try:
            store.teams.insert({"name": "t1", "org": "o", "metadata": {"a": "b"}})
            with pytest.raises(TeamExists):
                store.teams.insert({"name": "t1"})
            store.teams.insert({"name": "t2"})
            assert [r["name"] for r in store.teams.list("o")] == ["t1"]
            assert store.teams.get("t1")["metadata"] == {"a": "b"}  # type: ignore[index]
            assert store.teams.update("t2", {"org": "o"})["org"] == "o"  # type: ignore[index]
            assert store.teams.update("none", {"org": "o"}) is None
            assert store.teams.delete("t1") and not store.teams.delete("t1")
        finally:
            store.close()
