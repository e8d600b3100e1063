"""A key's own handling, unit by unit: its priority in admission, its guard policy before
any attached one (and refused, never skipped, once it is gone), its content mode only ever
stricter than its team's."""

from __future__ import annotations

import asyncio

import pytest

from bastion.config import AdmissionSettings, GuardSettings
from bastion.guards.engine import GuardEngine
from bastion.guards.stage import GuardFailed, GuardStage
from bastion.observe.keymodes import KeyModes, stricter_mode
from bastion.routing.admission import Admission


def no_headers(name: bytes) -> bytes | None:
    return None


def asking(priority: str):  # type: ignore[no-untyped-def]
    return {b"x-bastion-priority": priority.encode()}.get


def test_a_keys_priority_is_its_default_and_its_best_within_its_tenant() -> None:
    admission = Admission(AdmissionSettings.model_validate({
        "best_priority": 1, "tenants": {"gold": {"best_priority": 0}, "slow": {"priority": 8}}}))
    assert admission.claim(no_headers, "team", 7).priority == 7
    assert admission.claim(asking("9"), "team", 7).priority == 9
    assert admission.claim(asking("3"), "team", 7).priority == 7
    assert admission.claim(no_headers, "team", 0).priority == 1, "the global best caps it"
    assert admission.claim(no_headers, "gold", 0).priority == 0
    assert admission.claim(no_headers, "slow", 3).priority == 3, "the key's, not the tenant's"
    assert admission.claim(no_headers, "slow", None).priority == 8
    # cached per (tenant, asked, own): one key's priority is not another's
    assert admission.claim(no_headers, "team", None).priority == 5


def test_a_keys_own_policy_comes_before_every_attached_one() -> None:
    g = GuardSettings.model_validate({
        "policies": {"a": {}, "b": {}}, "default": "a", "attach": {"teams": {"red": "a"}}})
    e = GuardEngine(g, {})
    assert e.resolve(team="red", own="b").name == "b"
    assert e.resolve(team="red", own="none") is None
    assert e.resolve(team="red").name == "a"


def test_a_key_whose_policy_is_gone_is_refused() -> None:
    stage = GuardStage(GuardEngine(GuardSettings.model_validate({"policies": {"a": {}}}), {}),
                       "no")
    try:
        asyncio.run(stage.prepare("a"))
        asyncio.run(stage.prepare("none"))
        with pytest.raises(GuardFailed) as failed:
            asyncio.run(stage.prepare("removed"))
        assert failed.value.status == 503 and "removed" in failed.value.message
    finally:
        stage.close()


@pytest.mark.parametrize(("team", "key", "kept"), [
    ("full", None, "full"), ("full", "metadata", "metadata"), ("full", "redacted", "redacted"),
    ("redacted", "full", "redacted"), ("metadata", "full", "metadata"),
    ("metadata", "redacted", "metadata"), ("redacted", "bogus", "redacted"),
])
def test_the_stricter_content_mode_wins(team: str, key: str | None, kept: str) -> None:
    assert stricter_mode(team, key) == kept


class Rows:
    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []
        self.asked: list[float] = []

    def changed_since(self, stamp: float) -> list[dict[str, object]]:
        self.asked.append(stamp)
        return [r for r in self.rows if float(r["updated_at"]) > stamp]  # type: ignore[arg-type]


class Sink:
    def __init__(self) -> None:
        self.keys = Rows()


def test_key_modes_follow_the_stores_changes() -> None:
    sink, modes = Sink(), KeyModes()
    sink.keys.rows.append({"id": "k1", "content_mode": "metadata", "updated_at": 1.0})
    modes.refresh(sink)
    assert modes.mode("full", "k1") == "metadata" and modes.mode("full", "k2") == "full"
    sink.keys.rows.append({"id": "k1", "content_mode": None, "updated_at": 2.0})
    modes.refresh(sink)
    assert modes.mode("full", "k1") == "full"
    assert sink.keys.asked == [0.0, 1.0], "only what changed since is read"
    modes.refresh(object())  # a sink without keys: nothing to read
