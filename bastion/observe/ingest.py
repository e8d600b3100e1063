"""The ingest process: spool files in, trace records into the store, nothing lost.

Runs beside each gateway process (``python -m bastion.observe.ingest``, started by the
gateway, its settings on the first line of stdin). It takes the spool files of its gateway
(``<spool>/<gateway pid>/``) and of gateways that are gone (moved into its own folder by
an atomic rename, so two ingest processes never take the same file), oldest first, builds
the trace records (parsing, redaction, pricing: :mod:`bastion.observe.record`) and inserts
them in batches; a file is deleted once all of it is in the store. Inserting a batch twice
is harmless (the store ignores a trace id it has). Sealed files (request bodies held
encrypted, :mod:`bastion.observe.spool_crypto`) are opened with the spool key the gateway
passes on stdin; a record that fails authentication is counted and skipped, and the torn
last line a SIGKILL leaves is skipped too (its response never went out whole).

When the store is down or locked the files simply stay where they are (they are the spill
journal) and are retried every ``retry_interval``. A record the store refuses is kept,
never dropped: sealed with the spool key in ``<spool>/rejected-<ns>-<pid>.sealed`` (it holds
the bodies), in ``<spool>/rejected.jsonl`` only when there is no key. While the spool is
empty it re-encrypts bodies under the current data key (:meth:`Store.reencrypt_bodies`).
Control lines on stdin: ``{"prices": ...}`` after a reload, ``{"cmd": "drain"}`` at
shutdown (ingest everything, then exit); stdin closing (the gateway died) means drain
too. SIGTERM and SIGINT are ignored: the gateway says when, after its last flush.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson

from bastion.governance.subjects import Tombstones
from bastion.observe import redact
from bastion.observe.datadir import private_umask
from bastion.observe.keymodes import KeyModes
from bastion.observe.logs import TEXT_FORMAT, JsonFormatter
from bastion.observe.pricing import Price, PriceBook
from bastion.observe.priority import IdleUnlessBehind
from bastion.observe.procs import pid_alive
from bastion.observe.record import build_record
from bastion.observe.spool import OPEN, decode, spooled_ago
from bastion.observe.spool_crypto import is_sealed, open_file, write_sealed

log = logging.getLogger("bastion.ingest")
RESEAL_BUDGET_S = 0.25  # re-encryption per idle pass
RESEAL_CHECK_S = 2.0  # between looks for bodies to re-encrypt, when none were left
ROLLUP_BUDGET_S = 0.25  # rolling up the stats per idle pass
ROLLUP_CHECK_S = 30.0  # between looks for half hours to roll, when none were left
ROLLUP_DRAIN_S = 5.0  # how long a drain waits for a rolling pass under way


class TraceSink(Protocol):
    def insert_traces(self, records: list[dict[str, Any]]) -> int: ...
    def ping(self) -> None: ...
    @property
    def subjects(self) -> Any: ...  # tombstones(after), delete_traces(ids): with tombstones


class Ingest:
    def __init__(
        self,
        spool_root: str | os.PathLike[str],
        owner: int,
        store: Callable[[], TraceSink],
        *,
        unavailable: tuple[type[BaseException], ...],
        content: str = "redacted",
        content_by_tenant: dict[str, str] | None = None,
        max_chars: int = 32_768,
        prices: PriceBook | None = None,
        batch_size: int = 500,
        retry_interval: float = 1.0,
        retention_days: float | None = None,
        retention_by_team: dict[str, float] | None = None,
        on_lag: Callable[[float], None] | None = None,
        key: bytes | None = None,
        tombstones: Tombstones | None = None,
    ) -> None:
        """``owner``: the gateway's pid, whose folder this ingests. ``store``: opens the
        store (retried until it works); ``unavailable``: the errors meaning "store down";
        ``on_lag``: told, before each file, how many seconds ago it was spooled (0 once
        none is left); ``key``: the spool key, for sealed files; ``tombstones``: erased
        users, whose spooled traces are not stored (:mod:`bastion.governance.subjects`)."""
        self.root = Path(spool_root)
        self.dir = self.root / str(owner)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # bodies: private
        self.dir.mkdir(exist_ok=True, mode=0o700)
        self.key = key
        self.unauthenticated = 0  # sealed records that failed authentication: skipped
        self.torn = 0  # incomplete last lines or records (a writer killed mid-write)
        self._open = store
        self._store: TraceSink | None = None
        self._healthy = False
        self._unavailable = unavailable
        self.content = content
        self.content_by_tenant = content_by_tenant or {}
        self.key_modes = KeyModes()  # keys' own modes (stricter than their team's)
        self.max_chars = max_chars
        self.prices = prices
        self.batch_size = batch_size
        self.retry_interval = retry_interval
        self._next_try = 0.0
        self.retention_days = retention_days
        self.retention_by_team = retention_by_team or {}
        self._next_retention = 0.0
        self.tombstones = tombstones
        self.erased = 0  # records of erased users not stored (or erased once stored)
        self.written = 0
        self.resealed = 0  # bodies re-encrypted under the current data key (rows looked at)
        self._next_reseal = 0.0
        self.rolled = 0  # half hours rolled up (or rolled again after a change)
        self._next_rollup = 0.0
        self._rolling: threading.Thread | None = None
        self.roll_in_thread = False  # run() rolls in a thread; run_once() alone, inline
        self.rejected = 0
        self.deleted = 0
        self.on_lag = on_lag

    # ------------------------------------------------------------------ one pass
    def run_once(self) -> bool:
        """Ingests every file there is now. False if the store is unavailable (the rest
        waits for the next pass)."""
        self._adopt_orphans()
        done = all(self._ingest_file(path) for path in sorted(self.dir.glob("*.jsonl")))
        if done and self.on_lag is not None:
            self.on_lag(0.0)
        retains = self.retention_days or self.retention_by_team
        if done and retains and time.monotonic() >= self._next_retention:
            self._retain()
        if done and time.monotonic() >= self._next_reseal:
            self._reseal()
        if done and time.monotonic() >= self._next_rollup:
            self._roll_up()
        return done

    def _roll_up(self) -> None:
        """The stats' half-hourly rollups, brought up to date (in :meth:`run`, in a thread
        of their own: a busy half hour takes a while to read, and the spool must not wait
        for it): one pass of at most ``ROLLUP_BUDGET_S`` (or one half hour) at a time, again in a
        second while some are left, else after ``ROLLUP_CHECK_S``
        (:mod:`bastion.store.rollups`)."""
        if self._rolling is not None and self._rolling.is_alive():
            return
        store = self._ready()
        roll = getattr(store, "roll_up", None)
        if roll is None:
            self._next_rollup = math.inf
            return
        self._next_rollup = math.inf  # until the pass says when the next one is due
        if not self.roll_in_thread:  # one pass now (run_once's callers: tests, tools)
            self._roll_pass(roll)
            return
        self._rolling = threading.Thread(target=self._roll_pass, args=(roll,),
                                         name="bastion-rollups", daemon=True)
        self._rolling.start()

    def _roll_pass(self, roll: Callable[..., int]) -> None:
        rolled = 0
        try:
            rolled = roll(budget_s=ROLLUP_BUDGET_S)
        except self._unavailable as exc:  # the ingest's own writes notice it too
            log.debug("rolling up the stats waits for the store: %s", exc)
        except Exception:  # a bug here must not stop the ingest; the next pass retries
            log.exception("rolling up the stats failed")
        self.rolled += rolled
        self._next_rollup = time.monotonic() + (1.0 if rolled else ROLLUP_CHECK_S)

    def wait_rolled(self, timeout: float | None = None) -> None:
        """Waits for the rolling pass under way, if any (tests, and the drain)."""
        if self._rolling is not None:
            self._rolling.join(timeout)

    def _reseal(self) -> None:
        """Background re-encryption (after ``bastion keys rotate-data-key``, or of bodies
        stored before they were encrypted): batches of bodies sealed again under the
        current data key, for at most ``RESEAL_BUDGET_S`` a pass and only when the spool
        is empty; once none are left, looked for again every ``RESEAL_CHECK_S``."""
        store = self._ready()
        reseal = getattr(store, "reencrypt_bodies", None)
        if reseal is None:
            self._next_reseal = math.inf
            return
        deadline = time.monotonic() + RESEAL_BUDGET_S
        try:
            while time.monotonic() < deadline:
                count = reseal(self.batch_size)
                self.resealed += count
                if count == 0:
                    self._next_reseal = time.monotonic() + RESEAL_CHECK_S
                    return
        except self._unavailable as exc:
            self._down(exc)

    def _retain(self) -> None:
        """Deletes traces past ``retention_days``, and each team's past its own
        ``retention_by_team`` (hourly; a failure waits an hour too)."""
        self._next_retention = time.monotonic() + 3600
        store = self._ready()
        delete = getattr(store, "delete_before", None)
        teams = getattr(store, "retention", None)
        now = time.time()
        try:
            if delete is not None and self.retention_days is not None:
                self.deleted += delete(now - self.retention_days * 86400)
            for team, days in sorted(self.retention_by_team.items()):
                if teams is None or (self.retention_days is not None
                                     and days >= self.retention_days):
                    continue  # the global TTL covers it
                self.deleted += teams.delete_team_before(team, now - days * 86400)
        except self._unavailable as exc:
            self._down(exc)

    def _ingest_file(self, path: Path) -> bool:
        if self.on_lag is not None:
            self.on_lag(spooled_ago(path.name))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return True
        store = self._ready()  # the keys' content modes first: read from the store
        if store is None:
            return False
        try:
            self.key_modes.refresh(store)
        except self._unavailable as exc:
            self._down(exc)
            return False
        opened = open_file(data, self.key)
        if opened.failed:
            self.unauthenticated += opened.failed
            log.error("%s: %d sealed records failed authentication (another key, or "
                      "altered): skipped; the file is kept in %s", path.name,
                      opened.failed, self.root / "unreadable")
        if opened.torn:
            self.torn += opened.torn
            log.warning("%s: its last line is incomplete (the gateway was killed while "
                        "writing it): skipped", path.name)
        sealed = is_sealed(data)
        records = [r for r in (self._record(line, sealed) for line in opened.lines) if r]
        for start in range(0, len(records), self.batch_size):
            if not self._insert(records[start : start + self.batch_size]):
                return False
        if opened.failed:  # still sealed: readable again with the right key
            aside = self.root / "unreadable"
            aside.mkdir(exist_ok=True, mode=0o700)
            with contextlib.suppress(OSError):
                path.rename(aside / path.name)
        path.unlink(missing_ok=True)  # taken over meanwhile: stored already, harmlessly
        return True

    def _record(self, line: bytes, sealed: bool = False) -> dict[str, Any] | None:
        try:
            ctx = decode(line)
        except (ValueError, TypeError) as exc:
            self._reject(line, f"undecodable spool line: {exc}", sealed)
            return None
        mode = self.content
        for name in (ctx.team, ctx.claim.tenant):
            if name and name in self.content_by_tenant:
                mode = self.content_by_tenant[name]
                break
        mode = self.key_modes.mode(mode, ctx.key_id)
        try:
            return build_record(ctx, mode, self.max_chars, self.prices)
        except Exception:  # telemetry: a record that cannot be built keeps its basics
            log.exception("trace %s: building its record failed; keeping the basics",
                          ctx.trace_key)
            return {"id": ctx.trace_key, "ts": ctx.wall_time, "endpoint": ctx.endpoint,
                    "model": ctx.model, "status": ctx.status, "error": ctx.error,
                    "content_mode": "metadata", "metadata": {"record_error": True}}

    def _insert(self, batch: list[dict[str, Any]]) -> bool:
        store = self._ready()
        if store is None:
            return False
        try:
            batch = self._unerased(store, batch)
            if not batch:
                return True
            try:
                store.insert_traces(batch)
            except self._unavailable:
                raise
            except Exception:  # a record the store refuses: find it, keep it aside
                log.exception("the store refused a batch of %d traces", len(batch))
                if not self._one_by_one(store, batch):
                    return False
            else:
                self.written += len(batch)
            self._erase_late(store, batch)
        except self._unavailable as exc:
            self._down(exc)
            return False
        return True

    def _unerased(self, store: TraceSink, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The batch without the records of erased users (read the tombstones first).
        Those dropped are erased from the store too: a try that stored them and failed
        before its second read of the tombstones is retried here."""
        if self.tombstones is None:
            return batch
        self.tombstones.refresh(store.subjects)
        dropped = [r["id"] for r in batch if self.tombstones.erased(r)]
        if dropped:
            store.subjects.delete_traces(dropped)
            self.erased += len(dropped)
            log.info("%d spooled traces of erased users: not stored", len(dropped))
            return [r for r in batch if not self.tombstones.erased(r)]
        return batch

    def _erase_late(self, store: TraceSink, batch: list[dict[str, Any]]) -> None:
        """After the commit: a user erased while the batch was stored loses it now (the
        erasure's own deletes may have run before the commit)."""
        if self.tombstones is None or not self.tombstones.refresh(store.subjects):
            return
        late = [r["id"] for r in batch if self.tombstones.erased(r)]
        if late:
            store.subjects.delete_traces(late)
            self.erased += len(late)

    def _one_by_one(self, store: TraceSink, batch: list[dict[str, Any]]) -> bool:
        for record in batch:
            try:
                store.insert_traces([record])
            except self._unavailable as exc:
                self._down(exc)
                return False
            except Exception as exc:  # noqa: BLE001 - kept in the dead-letter file, logged
                self._reject(orjson.dumps(record, default=str), f"refused by the store: {exc}")
            else:
                self.written += 1
        return True

    def _ready(self) -> TraceSink | None:
        """The store if it is usable now (opened once; after a failure, re-checked at most
        every ``retry_interval``)."""
        if self._healthy:
            return self._store
        now = time.monotonic()
        if now < self._next_try:
            return None
        try:
            if self._store is None:
                self._store = self._open()
            self._store.ping()
        except self._unavailable as exc:
            self._down(exc)
            return None
        self._healthy = True
        log.info("trace store available")
        return self._store

    def _down(self, exc: BaseException) -> None:
        if self._healthy or self._next_try == 0.0:
            log.warning("trace store unavailable; traces wait in the spool: %s", exc)
        self._healthy = False
        self._next_try = time.monotonic() + self.retry_interval

    def _reject(self, line: bytes, why: str, sealed: bool = False) -> None:
        """Keeps a line aside, sealed with the spool key whenever there is one (a spool
        line or a refused record holds the request's body), in a file of its own; plain
        ``rejected.jsonl`` only without a key (a spool that keeps no bodies)."""
        self.rejected += 1
        if self.key is not None:
            path = self.root / f"rejected-{time.time_ns()}-{os.getpid()}.sealed"
            write_sealed(path, self.key, line.rstrip(b"\n") + b"\n")
        else:
            path = self.root / "rejected.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "ab") as fh:
                fh.write(line.rstrip(b"\n") + b"\n")
        log.error("%s: kept in %s", why, path)

    def _adopt_orphans(self) -> None:
        """Takes over the files of gateways that are gone (crashed, killed, restarted)."""
        for folder in self.root.iterdir():
            if not folder.is_dir() or folder == self.dir or not folder.name.isdigit():
                continue
            if pid_alive(int(folder.name)):
                continue
            for path in folder.glob("*.jsonl"):
                with contextlib.suppress(OSError):  # another ingest took it first
                    path.rename(self.dir / path.name)
            for path in folder.glob(f"*{OPEN}"):  # the file it was writing when it died
                with contextlib.suppress(OSError):
                    path.rename(self.dir / f"{path.name[: -len(OPEN)]}.jsonl")
            with contextlib.suppress(OSError):
                folder.rmdir()

    # ------------------------------------------------------------------ the loop
    def run(self, draining: threading.Event, poll: float = 0.1,
            on_drain: Callable[[], None] | None = None) -> None:
        """Ingests until ``draining`` is set, then (after ``on_drain``) once more, then
        returns."""
        self.roll_in_thread = True
        while not draining.is_set():
            self.run_once()
            draining.wait(poll)
        self._next_rollup = math.inf  # none started now; one under way gets a moment (if
        # cut off, its transaction rolls back and the next start rolls that half hour)
        self.wait_rolled(ROLLUP_DRAIN_S)
        if on_drain is not None:
            on_drain()
        self.run_once()


def prices_from(spec: dict[str, list[float]]) -> PriceBook:
    return PriceBook({name: Price(*values) for name, values in spec.items()})


def _control(stream: Iterator[bytes], ingest: Ingest, draining: threading.Event) -> None:
    """Reads control lines until ``drain`` or end of input (the gateway is gone)."""
    for line in stream:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(message, dict) and "prices" in message:
            ingest.prices = prices_from(message["prices"])
        if isinstance(message, dict) and message.get("cmd") == "drain":
            break
    draining.set()


def main() -> int:
    private_umask()  # the SQLite database it may create, the files it keeps aside: 0600
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # the gateway says when (after its last flush)
    stdin = sys.stdin.buffer
    spec = orjson.loads(stdin.readline())
    handler = logging.StreamHandler(sys.stderr)  # like the gateway's logs
    handler.setFormatter(JsonFormatter() if spec.get("log_format") == "json"
                         else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    from bastion.store import StoreUnavailable, open_store
    from bastion.store.crypto import StoreKeys

    store_spec = spec["store"]

    store_key = StoreKeys(bytes.fromhex(spec["store_key"])) if spec.get("store_key") else None

    def open_() -> TraceSink:
        return open_store(store_spec["url"], spec["home"],
                          pool_size=store_spec["pool_size"],
                          partition_days=store_spec["partition_days"],
                          keys=store_key, encrypt_bodies=store_spec.get("encrypt_bodies", True))

    tracing = spec["tracing"]
    redact.configure(ner=tracing.get("redact_ner", True))  # what `redacted` mode removes
    if tracing.get("ingest_nice"):
        os.nice(tracing["ingest_nice"])  # background work yields to serving requests
    main_thread = threading.get_native_id()
    priority = (IdleUnlessBehind(main_thread, tracing["ingest_max_lag"])
                if tracing.get("ingest_idle") else None)
    if tracing.get("ingest_cpus"):
        try:
            os.sched_setaffinity(0, tracing["ingest_cpus"])
        except (OSError, ValueError) as exc:
            log.warning("cannot run on CPUs %s: %s", tracing["ingest_cpus"], exc)
    ingest = Ingest(
        spec["spool"], spec["owner"], open_, unavailable=(StoreUnavailable,),
        content=tracing["content"], content_by_tenant=tracing["content_by_tenant"],
        max_chars=tracing["max_body_chars"], prices=prices_from(spec["prices"]),
        batch_size=tracing["batch_size"], retention_days=tracing.get("retention_days"),
        retention_by_team=tracing.get("retention_by_team"),
        on_lag=priority.lag if priority is not None else None,
        key=bytes.fromhex(spec["spool_key"]) if spec.get("spool_key") else None,
        tombstones=Tombstones(bytes.fromhex(spec["subject_key"]))
        if spec.get("subject_key") else None,
    )
    draining = threading.Event()
    threading.Thread(target=_control, args=(iter(stdin.readline, b""), ingest, draining),
                     daemon=True).start()
    ingest.run(draining, poll=min(tracing["flush_interval"], 0.5),
               on_drain=priority.normal if priority is not None else None)
    log.info("drained: %d traces written, %d rejected", ingest.written, ingest.rejected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
