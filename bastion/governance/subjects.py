"""Data subjects (GDPR/CCPA): who a user is to the audit log, and what else holds their data.

A subject is named in the audit log by ``subject_id(key, user)``: a keyed hash (HMAC-SHA256
under a key derived from the deployment secret), never the name itself, so an erasure
leaves no copy of the name behind, and replicas sharing the deployment secret agree on it.

The store's rows are :mod:`bastion.store.erase`'s. What else may hold a user's data
registers an *eraser* through the ``register_erasers`` hook (:mod:`bastion.hookspecs`):
``factory(gateway) -> eraser | None``, ``eraser(Subject) -> int`` (or an awaitable of it):
how many entries it dropped. The built-in one is the pseudonymization vault's; a response
cache registers its own the same way.

Traces still in the spool when an erasure runs: the erasure first appends its tombstone
to the audit log (``user.erase.start``: the subject id and the time), then deletes. Every
ingest process (:class:`Tombstones`) reads the tombstones before it stores a batch and
drops the records they cover, and reads them again after the batch is committed and
erases whatever it stored of a subject erased meanwhile. One of the two always sees the
tombstone, whatever the interleaving: either it was committed before the second read,
or the batch was committed before the erasure's deletes started, which then find it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol

from bastion.hookspecs import hookimpl

if TYPE_CHECKING:
    from bastion.gateway.app import Gateway

SUBJECT_INFO = b"bastion data subject v1"
MAX_USER_CHARS = 256  # traces keep the request's 'user' to this many characters

Eraser = Callable[["Subject"], "int | Awaitable[int]"]


@dataclass(frozen=True, slots=True)
class Subject:
    """A user being erased: the name, its subject id, and the recent traces' (id, key_id,
    session) — what in-memory state (the vault, a cache) may still hold for them."""

    user: str
    subject_id: str
    recent: tuple[tuple[str, str | None, str | None], ...] = field(default=())


def subject_id(key: bytes, user: str) -> str:
    mac = hmac.new(key, user.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "subj_" + mac.hexdigest()[:32]


def subject_key_of(settings: Any) -> bytes:
    from bastion.observe.setup import deployment_secret
    from bastion.observe.spool_crypto import derive

    return derive(deployment_secret(settings), SUBJECT_INFO)


# ------------------------------------------------------------------------ the vault
def vault_eraser(gateway: Gateway) -> Eraser | None:
    """Forgets the vault tables of the subject's recent sessions and requests, in this
    worker (the vault is in memory, per process; the other workers' tables of them expire
    after ``guards.vault_ttl``, and the vault ties entries to sessions, not to users)."""
    if gateway.guards is None:
        return None
    from bastion.guards.stage import vault_session

    vault = gateway.guards.engine.vault

    def erase(subject: Subject) -> int:
        names = set()
        for trace_id, key_id, session in subject.recent:
            ctx = SimpleNamespace(session=session, key_id=key_id, trace_key=trace_id)
            names.add(vault_session(ctx))  # type: ignore[arg-type]
        before = len(vault)
        for name in names:
            vault.forget(name)
        return before - len(vault)

    return erase


@hookimpl
def register_erasers(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("vault", vault_eraser)


# ------------------------------------------------------------------ tombstones
class TombstoneSource(Protocol):
    def tombstones(self, after: int) -> tuple[list[tuple[str, float]], int]: ...


class Tombstones:
    """The ingest's view of erasures: subject id -> traces up to this ts are erased.
    Read incrementally from the audit log (every tombstone since the start, kept: they
    are few)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._after = 0
        self._before: dict[str, float] = {}
        self._ids: dict[str, str] = {}  # user -> subject id (a user's id, hashed once)

    def refresh(self, source: TombstoneSource) -> bool:
        """Reads the tombstones appended since the last read; True if there were any."""
        found, self._after = source.tombstones(self._after)
        for sid, before in found:
            self._before[sid] = max(before, self._before.get(sid, before))
        return bool(found)

    def erased(self, record: Mapping[str, Any]) -> bool:
        """Whether a trace record belongs to an erasure (its user's, from before it)."""
        user = record.get("user")
        if not self._before or not isinstance(user, str) or not user:
            return False
        sid = self._ids.get(user)
        if sid is None:
            if len(self._ids) > 100_000:
                self._ids.clear()
            sid = self._ids[user] = subject_id(self._key, user)
        before = self._before.get(sid)
        ts = record.get("ts")
        return before is not None and isinstance(ts, int | float) and ts <= before
