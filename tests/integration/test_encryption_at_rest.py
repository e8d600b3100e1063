"""Encryption at rest through a real gateway: after traced requests (a virtual key, the
master key, a stream) and a graceful stop, no file under the data directory (but the
generated key file) and no Postgres row holds a prompt, the completion, the virtual key or
the master key; the API still reads the bodies and finds traces by a word. Data key
rotation through the CLI (re-encrypted in the background), a tampered body, another
deployment secret, and the control: with ``store.encrypt_bodies: false`` the same scan
finds the prompt."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bastion.cli import main
from tests.fakes.upstream import FakeUpstream
from tests.gateway_harness import MASTER_KEY, RunningGateway, trace_of, traced_gateway, traces
from tests.integration.test_store_encryption import raw_contents
from tests.store_helpers import free_port, fresh_database

PROMPTS = ("Summarise the vermilion zeppelin manifest", "Translate the ochre gondola ledger")
COMPLETION = "The cerulean marmoset ascends at dawn"
SECRET = "enc-at-rest-deployment-secret-7f3a9c"


@pytest.fixture()
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream().start() as server:
        server.behaviour.content = COMPLETION
        yield server


def start(up: FakeUpstream, tmp_path: Path, **sections: Any) -> RunningGateway:
    return traced_gateway(up, tmp_path, tracing={"content": "full"},
                          **{"server.master_key": MASTER_KEY, **sections})


def make_key(gw: RunningGateway, **body: Any) -> str:
    status, made = gw.request("POST", "/api/keys", {"name": "enc", **body})
    assert status == 201, made
    return str(made["key"])


def send(gw: RunningGateway, key: str) -> list[str]:
    """Three traced requests (a virtual key's, a stream, the master key's): their ids."""
    ids = []
    for prompt, stream, who in ((PROMPTS[0], False, key), (PROMPTS[1], True, key),
                                (PROMPTS[0], False, MASTER_KEY)):
        status, headers, _ = gw.request_full(
            "POST", "/v1/chat/completions",
            {"model": "chat", "stream": stream,
             "messages": [{"role": "user", "content": prompt}]}, key=who)
        assert status == 200
        ids.append(headers["x-request-id"])
    return ids


def check_api_reads_bodies(gw: RunningGateway, ids: list[str]) -> None:
    first = trace_of(gw, ids[0])
    assert first["input"] == [{"role": "user", "content": PROMPTS[0]}]
    assert first["output"]["content"] == COMPLETION and "body_error" not in first
    streamed = trace_of(gw, ids[1])
    assert streamed["output"]["content"] == COMPLETION, "the stream's chunks, joined"
    listed = {t["id"]: t for t in traces(gw, 3)}
    assert listed[ids[1]]["preview"] == {"input": PROMPTS[1], "output": COMPLETION}
    found = {t["id"] for t in traces(gw, 1, "&q=gondola")}
    assert found == {ids[1]}, "a word finds its trace"
    assert {t["id"] for t in traces(gw, 3, "&q=marmoset%20ZEPPELIN")} == {ids[0], ids[2]}
    status, body = gw.request("GET", "/api/traces?q=gondol")
    assert status == 200 and body["data"] == [], "no prefix search over the blind index"


def files_under(home: Path) -> dict[str, bytes]:
    """Every file under ``home`` but the generated key file (one ingested meanwhile, a
    spool file, is gone: skipped)."""
    out = {}
    for path in sorted(home.rglob("*")):
        if path.is_file() and path.name != "encryption.key":
            try:
                out[str(path.relative_to(home))] = path.read_bytes()
            except FileNotFoundError:
                continue
    return out


def assert_nothing_in_clear(raw: bytes, where: str, *secrets: str) -> None:
    for text in (*PROMPTS, COMPLETION, *secrets):
        for needle in (text, *(w for w in text.split() if len(w) >= 6)):  # and its words
            for form in (needle.encode(), needle.encode().hex().encode()):
                assert form not in raw, f"{needle!r} in {where}"


def wait_reencrypted(gw: RunningGateway, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = gw.request("GET", "/api/data-keys")
        assert status == 200, body
        if body["to_reencrypt"] == 0 or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.2)


def cli(gw: RunningGateway, *args: str) -> str:
    result = CliRunner().invoke(main, ["keys", "--url", gw.base_url, "--key", MASTER_KEY,
                                       *args])
    assert result.exit_code == 0, result.output
    return result.output


# ------------------------------------------------------------------------------- SQLite
def test_no_file_under_the_data_directory_holds_a_prompt_or_a_key(
    up: FakeUpstream, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    gw = start(up, tmp_path)
    try:
        key = make_key(gw)
        ids = send(gw, key)
        check_api_reads_bodies(gw, ids)
        home = Path(gw.settings.home)
        live = files_under(home)  # while it runs: the spool, the WAL
    finally:
        gw.stop()
    after = files_under(home)
    assert {"bastion.db"} <= set(after), after.keys()
    for name, data in {**live, **after}.items():
        assert_nothing_in_clear(data, name, key, key[4:], MASTER_KEY)
    logs = capfd.readouterr()  # the gateway's and its ingest process's
    assert "trace store available" in logs.err, "the ingest's log was captured"
    assert_nothing_in_clear((logs.out + logs.err).encode(), "the logs", key, key[4:],
                            MASTER_KEY)


def test_spool_files_waiting_for_a_store_that_is_down_are_sealed(
    up: FakeUpstream, tmp_path: Path
) -> None:
    down = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    gw = start(up, tmp_path, store={"url": down})
    try:
        for prompt in PROMPTS:
            status, _, _ = gw.request_full("POST", "/v1/chat/completions", {
                "model": "chat", "messages": [{"role": "user", "content": prompt}]})
            assert status == 200
        home = Path(gw.settings.home)
        deadline = time.monotonic() + 10
        while not list((home / "spool").rglob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.05)
        spooled = files_under(home)
    finally:
        gw.stop()
    assert any(name.endswith(".jsonl") for name in spooled), spooled.keys()
    for name, data in {**spooled, **files_under(home)}.items():
        assert_nothing_in_clear(data, name, MASTER_KEY)


def test_bodies_in_the_clear_when_turned_off_the_same_scan_finds_them(
    up: FakeUpstream, tmp_path: Path
) -> None:
    gw = start(up, tmp_path, store={"encrypt_bodies": False})
    try:
        ids = send(gw, make_key(gw))
        trace_of(gw, ids[2])
        status, body = gw.request("GET", "/api/traces?q=gondol")
        assert status == 200 and len(body["data"]) == 1, "plaintext: prefixes match"
    finally:
        gw.stop()
    raw = b"".join(files_under(Path(gw.settings.home)).values())
    assert PROMPTS[0].encode() in raw and COMPLETION.encode() in raw


def test_rotation_re_encrypts_in_the_background_then_the_old_key_goes(
    up: FakeUpstream, tmp_path: Path
) -> None:
    gw = start(up, tmp_path)
    try:
        ids = send(gw, make_key(gw))
        trace_of(gw, ids[2])
        developer = make_key(gw, role="developer", team="alpha")
        status, body = gw.request("POST", "/api/data-keys/rotate", key=developer)
        assert status == 403, "admins only"
        out = cli(gw, "rotate-data-key", "--wait", "--timeout", "60")
        assert "data key 2 is now current" in out
        assert "data key(s) 1 may now be dropped" in out
        db = Path(gw.settings.home) / "bastion.db"
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT DISTINCT body_key FROM trace_bodies").fetchall() == [
                (2,)]
        later = send(gw, make_key(gw))  # written under key 2
        status, body = gw.request("DELETE", "/api/data-keys/2")
        assert status == 409 and body["error"]["code"] == "data_key_in_use"
        assert "dropped" in cli(gw, "drop-data-key", "1")
        status, body = gw.request("DELETE", "/api/data-keys/1")
        assert status == 404 and body["error"]["code"] == "data_key_not_found"
        for trace_id in (*ids, *later):
            trace = trace_of(gw, trace_id)
            assert trace["output"]["content"] == COMPLETION and "body_error" not in trace
        assert "can be dropped" not in cli(gw, "data-keys")
        status, audit = gw.request("GET", "/api/audit")
        actions = [e["action"] for e in audit["data"]]
        assert "data_key.rotate" in actions and "data_key.drop" in actions
    finally:
        gw.stop()
    again = start(up, tmp_path)  # key 1 gone for good: all still readable
    try:
        assert wait_reencrypted(again)["keys"][0]["id"] == 2
        assert trace_of(again, ids[0])["input"][0]["content"] == PROMPTS[0]
        assert len(traces(again, 6, "&q=marmoset")) == 6
    finally:
        again.stop()


def test_a_tampered_body_is_reported_unreadable_not_a_500(
    up: FakeUpstream, tmp_path: Path
) -> None:
    gw = start(up, tmp_path)
    try:
        ids = send(gw, make_key(gw))
        trace_of(gw, ids[2])
        with sqlite3.connect(Path(gw.settings.home) / "bastion.db") as conn:
            [(seq, sealed)] = conn.execute(
                "SELECT b.seq, b.sealed FROM trace_bodies b JOIN traces t ON t.seq = b.seq "
                "WHERE t.id = ?", (ids[0],)).fetchall()
            altered = bytearray(sealed)
            altered[-3] ^= 0x10
            conn.execute("UPDATE trace_bodies SET sealed = ? WHERE seq = ?",
                         (bytes(altered), seq))
        status, trace = gw.request("GET", f"/api/traces/{ids[0]}")
        assert status == 200, trace
        assert trace["input"] is None and trace["output"] is None
        assert "failed authentication" in trace["body_error"]
        assert trace_of(gw, ids[1])["output"]["content"] == COMPLETION, "others intact"
        status, page = gw.request("GET", "/api/traces")
        assert status == 200 and len(page["data"]) == 3
    finally:
        gw.stop()


def test_another_deployment_secret_is_a_clear_503(up: FakeUpstream, tmp_path: Path) -> None:
    gw = start(up, tmp_path, store={"encryption_key": SECRET})
    try:
        trace_of(gw, send(gw, make_key(gw))[2])
    finally:
        gw.stop()
    other = start(up, tmp_path, store={"encryption_key": SECRET[::-1]})
    try:
        status, body = other.request("GET", "/api/traces")
        assert status == 503 and body["error"]["code"] == "store_unavailable"
        assert "store.encryption_key does not open data key 1" in body["error"]["message"]
        assert SECRET not in str(body) and SECRET[::-1] not in str(body)
    finally:
        other.stop()


# ----------------------------------------------------------------------------- Postgres
@pytest.fixture()
def pg_store(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", tmp_path) as url:
        yield url


def test_postgres_rows_hold_no_prompt_or_key(
    up: FakeUpstream, tmp_path: Path, pg_store: str
) -> None:
    gw = start(up, tmp_path, store={"url": pg_store, "encryption_key": SECRET})
    try:
        key = make_key(gw)
        ids = send(gw, key)
        check_api_reads_bodies(gw, ids)
    finally:
        gw.stop()
    assert_nothing_in_clear(raw_contents(pg_store), "the Postgres rows", key, key[4:],
                            MASTER_KEY, SECRET)
    for name, data in files_under(Path(gw.settings.home)).items():
        assert_nothing_in_clear(data, name, key, key[4:], MASTER_KEY, SECRET)
