"""The gateway's bounded set of answered request ids (feedback before the trace is stored)."""

from __future__ import annotations

import pytest

from bastion.gateway.recent import RecentIds


def test_keeps_the_newest_ids_up_to_its_size() -> None:
    recent = RecentIds(3)
    for rid in ("a", "b", "c", "a", "d"):  # a repeat is no new entry
        recent.add(rid)
    assert len(recent) == 3
    assert "a" not in recent and all(r in recent for r in ("b", "c", "d"))
    assert 7 not in recent


def test_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RecentIds(0)
