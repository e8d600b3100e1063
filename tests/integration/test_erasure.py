"""Data subject requests through a real gateway, on SQLite and Postgres: a user's traces,
bodies, text index entries and feedback erased (verified by counting what is left, and on
SQLite by reading the database files' bytes), nobody else's touched; exports; who may do
either; awkward user names; a trace still in the spool when the erasure runs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from bastion.cli import main
from bastion.config import StoreSettings, load_settings
from bastion.hookspecs import hookimpl
from bastion.plugins import plugin_manager
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, traced_gateway, traces
from tests.store_helpers import fresh_database, psql

ALICE = "alice-subject-7f3a"
BOB = "bob-subject-91c2"
ZERO = {"traces": 0, "bodies": 0, "text_index": 0, "feedback": 0}


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path / "home") as database:
        yield database


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream().start() as server:
        yield server


def gateway(up: FakeUpstream, tmp_path: Path, url: str | None = None,
            pm: Any = None, plaintext: bool = False) -> RunningGateway:
    """``plaintext``: bodies stored unencrypted (where the store can encrypt them), so a
    read of the files' bytes would find the words if the erasure left them behind."""
    sections: dict[str, Any] = {"server.master_key": MASTER_KEY,
                                "tracing": {"content": "full", "flush_interval": 0.05}}
    store: dict[str, Any] = {} if url is None else {"url": url}
    if plaintext and "encrypt_bodies" in StoreSettings.model_fields:
        store["encrypt_bodies"] = False
    if store:
        sections["store"] = store
    if pm is None:
        return traced_gateway(up, tmp_path, **sections)
    overrides = {
        "server.port": 0, "home": str(tmp_path / "home"),
        "models": [{"name": "chat", "backend": "openai", "base_url": up.base_url}],
        **sections,
    }
    return RunningGateway(load_settings(env={}, overrides=overrides), pm).start()


def ask(gw: RunningGateway, user: str, words: str, key: str = MASTER_KEY) -> str:
    status, headers, body = gw.request_full("POST", "/v1/chat/completions", {
        "model": "chat", "user": user,
        "messages": [{"role": "user", "content": words}]}, key=key)
    assert status == 200, body
    return headers["x-request-id"]


def path(user: str, action: str) -> str:
    return f"/api/users/{quote(user, safe='')}/{action}"


def erase(gw: RunningGateway, user: str, key: str = MASTER_KEY) -> tuple[int, Any]:
    return gw.request("POST", path(user, "erase"), key=key)


def export(gw: RunningGateway, user: str, key: str = MASTER_KEY) -> tuple[int, Any]:
    return gw.request("GET", path(user, "export"), key=key)


def feedback(gw: RunningGateway, request_id: str, **extra: Any) -> None:
    status, body = gw.request("POST", "/api/feedback", {"request_id": request_id,
                                                        "value": "up", **extra})
    assert status in (200, 201), body


def raw_files(gw: RunningGateway) -> bytes:
    home = Path(gw.settings.home)
    return b"".join(p.read_bytes() for p in home.glob("bastion.db*") if p.is_file())


def audit(gw: RunningGateway) -> list[dict[str, Any]]:
    status, page = gw.request("GET", "/api/audit?limit=1000")
    assert status == 200, page
    return list(page["data"])


# ---------------------------------------------------------------------- erasure
def test_erasure_removes_everything_of_the_user_and_nothing_of_others(
        up: FakeUpstream, tmp_path: Path, url: str) -> None:
    gw = gateway(up, tmp_path, url, plaintext=True)
    try:
        alice = [ask(gw, ALICE, f"zanzibarquokka question {i} xylophonic") for i in range(3)]
        bob = [ask(gw, BOB, f"bobwordling question {i}") for i in range(2)]
        assert len(traces(gw, 5)) == 5
        feedback(gw, alice[0], comment="quokkafeedbacknote")
        feedback(gw, bob[0], comment="bob keeps this")
        feedback(gw, bob[1], key="by-alice", user=ALICE, comment="alicesaidthisonbob")

        status, page = export(gw, ALICE)
        assert status == 200, page
        dumped = json.dumps(page)
        assert {t["id"] for t in page["traces"]} == set(alice)
        assert all("zanzibarquokka" in json.dumps(t["input"]) for t in page["traces"])
        assert "quokkafeedbacknote" in dumped and "alicesaidthisonbob" in dumped
        assert "bobwordling" not in dumped and "bob keeps this" not in dumped
        assert [f["request_id"] for f in page["feedback"]] == [bob[1]], "hers, on his"

        status, done = erase(gw, ALICE)
        assert status == 200, done
        assert done["erased"] == {"traces": 3, "bodies": 3, "text_index": 3, "feedback": 2}
        assert done["remaining"] == ZERO and done["verified"] is True
        status, left = export(gw, ALICE)
        assert status == 200 and left["traces"] == [] and left["feedback"] == []

        kept = traces(gw, 2)
        assert {t["id"] for t in kept} == set(bob)
        status, one = gw.request("GET", f"/api/traces/{bob[0]}")
        assert [f["comment"] for f in one["feedback"]] == ["bob keeps this"]
        status, other = gw.request("GET", f"/api/traces/{bob[1]}")
        assert other["feedback"] == [], "the feedback alice gave is hers: erased"

        if url.startswith("sqlite"):
            assert done["storage"]["wal_truncated"] is True
            raw = raw_files(gw)
            for word in (b"zanzibarquokka", b"xylophonic", b"quokkafeedbacknote",
                         b"alicesaidthisonbob", ALICE.encode()):
                assert word not in raw, f"{word!r} is still in the database files"
            for word in (b"bobwordling", b"bob keeps this", BOB.encode()):
                assert word in raw, f"the check can fail: bob's {word!r} is there"
        else:
            pg = url.replace("postgresql+psycopg", "postgresql")
            assert psql(pg, 'SELECT count(*) FROM traces WHERE "user" = %s', (ALICE,)) == [(0,)]
            assert psql(pg, "SELECT count(*) FROM trace_bodies WHERE search LIKE "
                            "'%%zanzibarquokka%%'") == [(0,)]
            assert psql(pg, "SELECT count(*) FROM feedback WHERE comment LIKE "
                            "'%%quokka%%' OR comment LIKE '%%alicesaid%%'") == [(0,)]
            assert psql(pg, 'SELECT count(*) FROM traces WHERE "user" = %s', (BOB,)) == [(2,)]
            assert "feedback" in done["storage"]["vacuumed"], done["storage"]

        status, again = erase(gw, ALICE)
        assert status == 200 and again["erased"] == ZERO and again["verified"] is True

        entries = audit(gw)
        erasures = [e for e in entries if e["action"].startswith("user.")]
        assert [e["action"] for e in erasures] == [
            "user.export", "user.erase.start", "user.erase", "user.export",
            "user.erase.start", "user.erase"]
        assert {e["target"] for e in erasures} == {done["subject"]}
        assert erasures[2]["detail"]["erased"] == done["erased"]
        assert erasures[2]["detail"]["verified"] is True
        logged = json.dumps(entries)
        assert ALICE not in logged and "zanzibarquokka" not in logged, "no name, no content"
        status, verdict = gw.request("GET", "/api/audit/verify")
        assert verdict["ok"], verdict
    finally:
        gw.stop()


def test_erasing_a_user_with_no_data_reports_zeros(up: FakeUpstream, tmp_path: Path) -> None:
    gw = gateway(up, tmp_path)
    try:
        ask(gw, BOB, "someone else's words")
        assert len(traces(gw, 1)) == 1
        status, done = erase(gw, "nobody-at-all")
        assert status == 200, done
        assert done["erased"] == ZERO and done["remaining"] == ZERO and done["verified"]
        assert len(traces(gw, 1)) == 1
        status, page = export(gw, "nobody-at-all")
        assert status == 200 and page["traces"] == [] and page["keys"] == []
    finally:
        gw.stop()


AWKWARD = [
    "o'brien\"; DROP TABLE traces; --",
    "100%_",
    "ünï©ødé 名前 🦘",
    "a/b?c=d&e#f",
    "x" * 256,
    " leading and trailing ",
]


def test_awkward_user_names_are_erased_exactly(up: FakeUpstream, tmp_path: Path,
                                               url: str) -> None:
    gw = gateway(up, tmp_path, url)
    try:
        for user in AWKWARD:
            ask(gw, user, "awkward words")
        ask(gw, "100%_x", "a near miss of a LIKE pattern")
        ask(gw, "1000", "another near miss")
        assert len(traces(gw, len(AWKWARD) + 2)) == len(AWKWARD) + 2
        for user in AWKWARD:
            status, page = export(gw, user)
            assert status == 200 and [t["user"] for t in page["traces"]] == [user], user
            status, done = erase(gw, user)
            assert status == 200, (user, done)
            assert done["erased"]["traces"] == 1 and done["verified"], (user, done)
        left = {t["user"] for t in traces(gw, 2)}
        assert left == {"100%_x", "1000"}, "only the exact names were erased"
        for bad, code in ((path("x" * 257, "erase"), 400), ("/api/users/a%00b/erase", 400),
                          ("/api/users/%ff%fe/erase", 400), ("/api/users//erase", 404),
                          ("/api/users/a/b/erase", 404), ("/api/users/%20/erase", 400),
                          ("/api/users/a/forget", 404), (path("a", "erase") + "?x=1", 400)):
            status, body = gw.request("POST", bad)
            assert status == code and "error" in body, (bad, status, body)
        status, body = gw.request("GET", path("a", "erase"))
        assert status == 405, body
        status, body = gw.request("GET", path("a", "export") + "?cursor=nonsense")
        assert status == 400 and body["error"]["param"] == "cursor", body
        assert len(traces(gw, 2)) == 2
    finally:
        gw.stop()


# ------------------------------------------------------------------------- RBAC
def test_who_may_erase_and_export(up: FakeUpstream, tmp_path: Path) -> None:
    gw = gateway(up, tmp_path)
    try:
        def make(**body: Any) -> str:
            status, made = gw.request("POST", "/api/keys", body)
            assert status == 201, made
            return str(made["key"])

        caller = make(team="ops", role="user")
        viewer = make(team="ops", role="viewer")
        developer = make(team="ops", role="developer")
        outsider = make(team="other", role="developer")
        theirs = ask(gw, ALICE, "ops team words", key=caller)
        elsewhere = ask(gw, ALICE, "other team words", key=make(team="other", role="user"))
        assert len(traces(gw, 2)) == 2

        for key in (viewer, caller):
            assert export(gw, ALICE, key)[0] == 403
        stranger = make(team="third", role="developer")
        assert export(gw, ALICE, stranger)[0] == 404, "not the developer's team's user"
        status, page = export(gw, ALICE, developer)
        assert status == 200 and [t["id"] for t in page["traces"]] == [theirs], page
        assert elsewhere not in json.dumps(page), "nothing of another team's traces"
        status, page = export(gw, ALICE, outsider)
        assert status == 200 and [t["id"] for t in page["traces"]] == [elsewhere], page
        status, page = export(gw, "nobody", developer)
        assert status == 404, page
        for key in (viewer, caller, developer, outsider, stranger):
            status, body = erase(gw, ALICE, key)
            assert status == 403, body
        assert len(traces(gw, 2)) == 2, "nothing was erased by those refused"
        status, done = erase(gw, ALICE)
        assert status == 200 and done["erased"]["traces"] == 2
    finally:
        gw.stop()


# ----------------------------------------------------------------- spool and ingest
def ingest_children() -> list[int]:
    """The ingest processes this test process started (the running gateway's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"bastion.observe.ingest" in cmdline:
            found.append(int(entry.name))
    return found


@contextmanager
def ingest_paused(others: list[int]) -> Iterator[None]:
    """SIGSTOPs the ingest of the gateway started after ``others`` were listed (a session
    gateway of another test module may have its own running)."""
    pids = [pid for pid in ingest_children() if pid not in others]
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pids[0], signal.SIGCONT)


def test_a_trace_still_in_the_spool_is_not_stored_after_the_erasure(
        up: FakeUpstream, tmp_path: Path, url: str) -> None:
    others = ingest_children()
    gw = gateway(up, tmp_path, url, plaintext=True)
    try:
        ask(gw, ALICE, "stored before the erasure")
        assert len(traces(gw, 1)) == 1  # the ingest is idle now: paused between passes
        with ingest_paused(others):
            spooled = ask(gw, ALICE, "spooledquokka waiting in the spool")
            status, done = erase(gw, ALICE)
            assert status == 200 and done["erased"]["traces"] == 1 and done["verified"]
        after = ask(gw, BOB, "stored once the ingest goes on")  # spooled after alice's
        stored = traces(gw, 1, f"&user={BOB}")
        assert [t["id"] for t in stored] == [after]
        status, page = export(gw, ALICE)
        assert page["traces"] == [], "the spooled trace of an erased user is not stored"
        assert gw.request("GET", f"/api/traces/{spooled}")[0] == 404
        later = ask(gw, ALICE, "a request after the erasure is new data")
        assert [t["id"] for t in traces(gw, 1, f"&user={quote(ALICE)}")] == [later]
        if url.startswith("sqlite"):
            assert b"spooledquokka" not in raw_files(gw)
            assert b"stored once the ingest goes on" in raw_files(gw), "the check can fail"
    finally:
        gw.stop()


# ---------------------------------------------------------------------- erasers
class Recorder:
    def __init__(self) -> None:
        self.subjects: list[Any] = []

    @hookimpl
    def register_erasers(self, register: Any) -> None:
        def factory(gateway: Any) -> Any:
            async def erase(subject: Any) -> int:
                self.subjects.append(subject)
                return 7

            return erase

        register("test-cache", factory)


def test_a_registered_eraser_gets_the_subject_and_its_recent_traces(
        up: FakeUpstream, tmp_path: Path) -> None:
    recorder = Recorder()
    pm = plugin_manager()
    pm.register(recorder)
    gw = gateway(up, tmp_path, pm=pm)
    try:
        ids = {ask(gw, ALICE, "cached words") for _ in range(2)}
        assert len(traces(gw, 2)) == 2
        status, done = erase(gw, ALICE)
        assert status == 200 and done["erasers"] == {"test-cache": 7}, done
        (subject,) = recorder.subjects
        assert subject.user == ALICE and subject.subject_id == done["subject"]
        assert {r[0] for r in subject.recent} == ids
    finally:
        gw.stop()


# -------------------------------------------------------------------------- CLI
def test_cli_erase_prints_the_verification_and_export_writes_json(
        up: FakeUpstream, tmp_path: Path) -> None:
    gw = gateway(up, tmp_path)
    try:
        ask(gw, ALICE, "cli words")
        assert len(traces(gw, 1)) == 1
        runner = CliRunner()
        common = ["users", "--url", gw.base_url, "--key", MASTER_KEY]
        out = tmp_path / "alice.json"
        result = runner.invoke(main, [*common, "export", ALICE, "-o", str(out)])
        assert result.exit_code == 0, result.output
        document = json.loads(out.read_text())
        assert len(document["traces"]) == 1 and "cli words" in out.read_text()
        assert out.stat().st_mode & 0o077 == 0, "personal data: owner only"
        refused = runner.invoke(main, [*common, "erase", ALICE], input="n\n")
        assert refused.exit_code != 0 and len(traces(gw, 1)) == 1
        result = runner.invoke(main, [*common, "erase", ALICE, "--yes"],
                               env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        assert "traces" in result.output and "verified: nothing left" in result.output
        as_json = runner.invoke(main, [*common, "erase", ALICE, "--yes", "--json"])
        assert json.loads(as_json.output)["remaining"] == ZERO
        denied = runner.invoke(main, ["users", "--url", gw.base_url, "--key", "wrong",
                                      "erase", ALICE, "--yes"])
        assert denied.exit_code != 0 and "401" in denied.output
    finally:
        gw.stop()
