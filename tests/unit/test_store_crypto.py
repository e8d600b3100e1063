"""The store's body codec: sealed values bound to their trace and purpose, data keys
wrapped under the store key, the blind index's words; and the encryption key's config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.config import load_settings
from bastion.errors import ConfigError
from bastion.observe.ingest import Ingest
from bastion.observe.spool_crypto import open_file
from bastion.store import StoreUnavailable
from bastion.store.crypto import (
    BODY,
    PREVIEW,
    BodyUnreadable,
    Codec,
    DataKeyError,
    StoreKeys,
    key_id_of,
    new_data_key,
    unwrap,
    words,
    wrap,
)

KEYS = StoreKeys.from_deployment_secret(b"deployment-secret-for-tests-0123")


def codec(*ids: int) -> Codec:
    return Codec({i: new_data_key() for i in ids or (1,)}, KEYS.index_key())


def test_a_sealed_body_opens_only_for_its_trace_and_purpose() -> None:
    c = codec()
    sealed = c.seal(BODY, "trace-a", b'{"input": "the secret prompt"}')
    assert b"secret prompt" not in sealed
    assert key_id_of(sealed) == 1
    assert c.open(BODY, "trace-a", sealed) == b'{"input": "the secret prompt"}'
    with pytest.raises(BodyUnreadable, match="moved from another trace"):
        c.open(BODY, "trace-b", sealed)  # moved to another row
    with pytest.raises(BodyUnreadable):
        c.open(PREVIEW, "trace-a", sealed)  # a body passed off as a preview
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(BodyUnreadable, match="failed authentication"):
        c.open(BODY, "trace-a", bytes(tampered))
    forged_key = bytearray(sealed)
    forged_key[4] = 2  # the header is authenticated too
    with pytest.raises(BodyUnreadable, match="data key 2"):
        c.open(BODY, "trace-a", bytes(forged_key))
    with pytest.raises(BodyUnreadable, match="damaged"):
        c.open(BODY, "trace-a", b"\x01short")
    assert c.seal(BODY, "trace-a", b"x") != c.seal(BODY, "trace-a", b"x"), "random nonces"


def test_the_newest_key_seals_and_older_ones_still_open() -> None:
    keys = {1: new_data_key(), 2: new_data_key()}
    old = Codec({1: keys[1]}, KEYS.index_key())
    sealed = old.seal(BODY, "t", b"before the rotation")
    both = Codec(keys, KEYS.index_key())
    assert both.current == 2
    assert both.open(BODY, "t", sealed) == b"before the rotation"
    resealed = both.reseal(BODY, "t", sealed)
    assert resealed is not None and key_id_of(resealed) == 2
    only_new = Codec({2: keys[2]}, KEYS.index_key())
    assert only_new.open(BODY, "t", resealed) == b"before the rotation"
    with pytest.raises(BodyUnreadable, match="not in the store's keyring"):
        only_new.open(BODY, "t", sealed)


def test_a_data_key_unwraps_only_under_the_store_key_it_was_wrapped_under() -> None:
    key = new_data_key()
    wrapped = wrap(KEYS.kek(), 3, key)
    assert key not in wrapped
    assert unwrap(KEYS.kek(), 3, wrapped) == key
    other = StoreKeys.from_deployment_secret(b"another-deployment-secret-456789")
    with pytest.raises(DataKeyError, match="does not open data key 3") as err:
        unwrap(other.kek(), 3, wrapped)
    assert isinstance(err.value, StoreUnavailable)  # the API's 503, the ingest's wait
    with pytest.raises(DataKeyError):
        unwrap(KEYS.kek(), 4, wrapped)  # the id is bound to the key


def test_blind_index_hashes_normalised_words() -> None:
    c = codec()
    assert list(words("Quantum CAFÉ, café_au-lait 42x")) == [
        "quantum", "cafe", "cafe", "au", "lait", "42x"]
    blind = c.blind("Quantum café Quantum")
    assert blind is not None
    tokens = blind.split()
    assert len(tokens) == 2, "each distinct word once"
    assert all(len(t) == 13 and t.isalpha() and t.islower() for t in tokens)
    assert "quantum" not in blind and "cafe" not in blind
    assert c.query_tokens("QUANTUM Cafe") == tokens  # case and accents folded
    assert c.query_tokens("quant") != tokens[:1], "a prefix is another word"
    assert c.blind("") is None and c.blind("!!! ...") is None
    other = Codec({1: new_data_key()}, StoreKeys.from_deployment_secret(
        b"another-deployment-secret-456789").index_key())
    assert other.query_tokens("quantum") != c.query_tokens("quantum"), "keyed"


@pytest.mark.parametrize("value", ["", "   ", "short-key", "changeme-changeme-changeme"])
def test_an_empty_blank_short_or_placeholder_encryption_key_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="encryption_key"):
        load_settings(env={"BASTION_ENCRYPTION_KEY": value})
    with pytest.raises(ConfigError, match="encryption_key"):
        load_settings(env={}, overrides={"store": {"encryption_key": value}})


def test_bodies_are_encrypted_unless_turned_off() -> None:
    assert load_settings(env={}).store.encrypt_bodies is True
    assert load_settings(env={"BASTION_STORE__ENCRYPT_BODIES": "false"}).store.encrypt_bodies \
        is False


class RefusingStore:
    """A store that refuses every record (a bug, bad data): the dead letters' source."""

    def insert_traces(self, records: list[dict[str, object]]) -> int:
        raise ValueError("refused")

    def ping(self) -> None:
        pass


def test_a_refused_record_is_kept_sealed_never_in_the_clear(tmp_path: Path) -> None:
    key = os.urandom(32)
    ingest = Ingest(tmp_path / "spool", os.getpid(), RefusingStore,
                    unavailable=(StoreUnavailable,), key=key, retry_interval=0.0)
    assert ingest._insert([{"id": "t1", "ts": 1.0, "input": "a dead-letter prompt"}])
    assert ingest.rejected == 1
    assert not (tmp_path / "spool" / "rejected.jsonl").exists()
    [kept] = (tmp_path / "spool").glob("rejected-*.sealed")
    raw = kept.read_bytes()
    assert b"dead-letter prompt" not in raw
    assert kept.stat().st_mode & 0o077 == 0
    opened = open_file(raw, key)
    assert len(opened.lines) == 1 and b"dead-letter prompt" in opened.lines[0]
