"""Builds tracing from settings: the store handle (admin API reads), the spool (the
gateway's side) and the ingest process beside it."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson

from bastion.config import Settings
from bastion.observe.datadir import secure_data_dir
from bastion.observe.pricing import PriceBook
from bastion.observe.spool import Spool
from bastion.observe.spool_crypto import load_secret, spool_key

if TYPE_CHECKING:
    from bastion.store import Store
    from bastion.store.crypto import StoreKeys

log = logging.getLogger("bastion.traces")


class StoreHandle:
    """Opens the store once, on first use (the admin API, through ``asyncio.to_thread``).
    Opening may fail while the database is down; the next use tries again."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        store = self._store
        if store is not None:
            return store
        from bastion.store import open_store  # SQLAlchemy: imported when first needed

        with self._lock:
            if self._store is None:
                s = self._settings.store
                self._store = open_store(
                    s.url, self._settings.home,
                    pool_size=s.pool_size, partition_days=s.partition_days,
                    keys=store_keys(self._settings), encrypt_bodies=s.encrypt_bodies,
                )
                secure_data_dir(self._settings)  # a new SQLite file: 0600
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def spool_root(settings: Settings) -> Path:
    return Path(settings.tracing.spool_dir or Path(settings.home) / "spool")


def keeps_content(settings: Settings) -> bool:
    """Might any request's content be stored? (Else streams' events are not kept.)"""
    t = settings.tracing
    return t.content != "metadata" or any(m != "metadata" for m in t.content_by_tenant.values())


def deployment_secret(settings: Settings) -> bytes:
    """The one secret the deployment's keys derive from (HKDF, one ``info`` each):
    ``store.encryption_key``, else the key generated once into ``<home>/encryption.key``.
    Replicas sharing a store must share it (set ``BASTION_ENCRYPTION_KEY``)."""
    secret = settings.store.encryption_key
    return load_secret(secret.get_secret_value() if secret is not None else None,
                       settings.home)


def store_keys(settings: Settings) -> StoreKeys:
    """The store key trace bodies' data keys are wrapped under (:mod:`bastion.store.crypto`),
    from the deployment secret."""
    from bastion.store.crypto import StoreKeys

    return StoreKeys.from_deployment_secret(deployment_secret(settings))


def spool_key_of(settings: Settings) -> bytes:
    """The spool's AES-256-GCM key: from ``store.encryption_key``, else from the key
    generated once into ``<home>/encryption.key``."""
    return spool_key(deployment_secret(settings))


def build_spool(settings: Settings) -> Spool:
    """The spool: sealed when bodies may be stored; without bodies (and unsealed: nothing
    of the content is in it) when every content mode is ``metadata``."""
    t = settings.tracing
    bodies = keeps_content(settings)
    return Spool(spool_root(settings), flush_interval=t.flush_interval,
                 max_pending=int(t.spool_memory_mb * (1 << 20)),
                 key=spool_key_of(settings) if bodies else None, bodies=bodies)


def _prices(book: PriceBook) -> dict[str, list[float]]:
    return {n: [p.input, p.output, p.cached, p.per_hour] for n, p in book.prices.items()}


class IngestProcess:
    """The ``bastion.observe.ingest`` child of one gateway process: started with the
    gateway, restarted if it dies, told to drain at shutdown (after the last flush)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _spec(self) -> bytes:
        from bastion.governance.subjects import subject_key_of

        s = self.settings
        return orjson.dumps({
            "spool": str(spool_root(s)), "owner": os.getpid(), "home": str(s.home),
            "store": s.store.model_dump(mode="json"),
            "tracing": s.tracing.model_dump(mode="json"),
            "prices": _prices(PriceBook.from_settings(s)),
            "log_format": s.server.log_format,
            "spool_key": spool_key_of(s).hex(),  # over the pipe, never on disk
            "store_key": store_keys(s).secret.hex(),  # likewise
            "subject_key": subject_key_of(s).hex(),  # erased users' ids (tombstones)
        }) + b"\n"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bastion.observe.ingest"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, close_fds=True,
        )
        self._send(self._spec())

    def _send(self, line: bytes) -> None:
        stdin: IO[bytes] | None = self.proc.stdin if self.proc is not None else None
        if stdin is None:
            return
        try:
            stdin.write(line)
            stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # it died: check() starts another

    def check(self) -> None:
        """Starts a new ingest process if this one died (its files wait meanwhile)."""
        if self.proc is not None and self.proc.poll() is not None:
            log.warning("trace ingest process exited (%s): starting a new one",
                        self.proc.returncode)
            self.restarts += 1
            self._close_pipe()
            self.start()

    def update(self, settings: Settings) -> None:
        self.settings = settings
        self._send(orjson.dumps({"prices": _prices(PriceBook.from_settings(settings))}) + b"\n")

    def drain(self, timeout: float) -> bool:
        """Asks it to ingest everything spooled, then waits (at most ``timeout``)."""
        proc = self.proc
        if proc is None:
            return True
        self._send(b'{"cmd": "drain"}\n')
        self._close_pipe()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("trace ingest still busy after %.0f s: stopped; the rest is "
                        "ingested at the next start", timeout)
            proc.kill()
            proc.wait()
            return False
        return proc.returncode == 0

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
