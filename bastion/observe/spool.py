"""The trace spool: the gateway's side of tracing, a couple of microseconds per request.

::

    gateway process (request path)            ingest process (bastion.observe.ingest)
    ──────────────────────────────            ───────────────────────────────────────
    observe(ctx) ─► encode: one JSON line     scans <spool>/<pid>/*.jsonl, oldest first
      (in C, _spoolc.c; bodies embedded as    ─► open (decrypt) ─► decode ─► build records
      they were sent), sealed (AES-GCM) and       (parse, redact, price) ─► insert(batch)
      written through to <name>.open before   ─► delete the file once all of it is in
      the response goes out; every            store down: files wait (they are the journal)
      flush_interval renamed <name>.jsonl     (runs at SCHED_IDLE: only on idle CPU)

Everything expensive about a trace (parsing bodies, redaction, pricing, SQL) happens in a
separate process, so it costs the gateway's event loop almost nothing and survives a
store outage, a crash of the ingest process, or a SIGKILL of the gateway (every answered
request's line is in the page cache before its answer's last byte is sent).
The spool files are the spill journal: nothing is dropped while the store is down, and
what is there when a process starts is ingested then.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bastion.context import RequestContext, Span
from bastion.observe.spool_crypto import FileSealer, write_sealed
from bastion.routing.fairqueue import Claim

if TYPE_CHECKING:
    from bastion.observe._spoolc import Lines

_CLines: type[Lines] | None
try:  # the C encoder (setup.py builds it; optional)
    from bastion.observe._spoolc import Lines as _CLines
except ImportError:  # pragma: no cover - where it did not compile
    _CLines = None

log = logging.getLogger("bastion.spool")
_FRAGMENT = orjson.Fragment
# Field order of an encoded event (the first element is the format's version).
_FIELDS = (
    "request_id", "record_id", "endpoint", "received_at", "model", "backend", "fallback",
    "stream", "status", "attempts", "error", "usage", "backend_started_at",
    "backend_headers_at", "backend_done_at", "first_token_at", "last_token_at",
    "finished_at", "wall_time", "operation", "provider", "key_id", "team", "user", "session",
    "trace_id", "span_id", "queued_s", "stream_events",
    "authenticated_at", "admitted_at", "parsed_at",
    "guard_policy", "guards", "guard_action", "guarded_body",
)
VERSION = 3
# 4: the C encoder's (times as nanoseconds since received_at); 2: before the guards;
# 1: before the stage marks
_FIELDS_BY_VERSION = {4: _FIELDS, 3: _FIELDS, 2: _FIELDS[:-4], 1: _FIELDS[:-7]}
C_VERSION = 4
# the marks that version 4 writes as integer nanoseconds since received_at
_TIMES = (
    "backend_started_at", "backend_headers_at", "backend_done_at", "first_token_at",
    "last_token_at", "finished_at", "authenticated_at", "admitted_at", "parsed_at",
)


def encode(ctx: RequestContext, bodies: bool = True) -> bytes:
    """One finished request as a JSON line (its bodies embedded verbatim; with ``bodies``
    false, content mode metadata, none of them): the reference encoder, and the fallback
    of the C one (:func:`c_lines`).

    About 1.5 µs here; written for the interpreter (attribute loads are specialised, a
    function call is not free). Bodies go in as ``orjson.Fragment``, unparsed, unless they
    span lines (``10 in raw``, not ``b"\\n" in raw``: bytes' ``in`` first tries its
    argument as an integer, and the failed try raises and clears a TypeError, ~9x the
    time)."""
    c = ctx
    spans: Any = c.spans
    if spans:
        if len(spans) == 1:  # the common case, without a comprehension's function call
            s = spans[0]
            spans = ((s.name, s.start, s.end, s.attrs),)
        else:
            spans = [(s.name, s.start, s.end, s.attrs) for s in spans]
    else:
        spans = None
    chunks = b"".join(c.chunks).decode("utf-8", "replace") if c.chunks else None
    body: Any = c.body
    if body is not None:  # a bare \r may stay: the ingest splits lines at \n only
        raw = c.raw_body
        body = _FRAGMENT(raw) if raw and 10 not in raw else _embed(raw, body)
    response: Any = c.response_body
    if response:
        response = _FRAGMENT(response) if 10 not in response else _embed(response, None)
    else:
        response = None
    claim = c.claim
    if not bodies:
        return orjson.dumps([
            VERSION, c.request_id, c.record_id, c.endpoint, c.received_at, c.model,
            c.backend, c.fallback, c.stream, c.status, c.attempts, c.error, c.usage,
            c.backend_started_at, c.backend_headers_at, c.backend_done_at, c.first_token_at,
            c.last_token_at, c.finished_at, c.wall_time, c.operation, c.provider, c.key_id,
            c.team, c.user, c.session, c.trace_id, c.span_id, c.queued_s, c.stream_events,
            c.authenticated_at, c.admitted_at, c.parsed_at,
            c.guard_policy, c.guards, c.guard_action, None,
            claim.priority, claim.tenant, spans, None, None, None,
        ], default=str, option=orjson.OPT_APPEND_NEWLINE)
    return orjson.dumps([
        VERSION, c.request_id, c.record_id, c.endpoint, c.received_at, c.model, c.backend,
        c.fallback, c.stream, c.status, c.attempts, c.error, c.usage, c.backend_started_at,
        c.backend_headers_at, c.backend_done_at, c.first_token_at, c.last_token_at,
        c.finished_at, c.wall_time, c.operation, c.provider, c.key_id, c.team, c.user,
        c.session, c.trace_id, c.span_id, c.queued_s, c.stream_events,
        c.authenticated_at, c.admitted_at, c.parsed_at,
        c.guard_policy, c.guards, c.guard_action, c.guarded_body,
        claim.priority, claim.tenant, spans, body, response, chunks,
    ], default=str, option=orjson.OPT_APPEND_NEWLINE)


# traced: every /v1/* call, the model list included (README); UNTRACED: none ("")
TRACED, UNTRACED = "/v1/", ""


BODY_FIELDS = ("guarded_body",)  # of _FIELDS: content, left out with bodies=False


def c_lines(**hooks: Any) -> Lines | None:
    """A buffer of lines that the C encoder fills, or None where the extension is not
    built. ``add(ctx)`` returns the lines it now holds, or 0 for a line it leaves to
    :func:`encode`; ``take()`` returns them and starts over. With ``python=``,
    ``on_full=`` and ``full=`` (the :class:`Spool`'s), ``observe(ctx)`` is the whole
    observer in C: the endpoint check, the line, ``on_full()`` at ``full`` lines, and
    ``python(ctx)`` for a line it leaves to Python.

    Its lines (version 4) decode to what :func:`encode`'s do, times within a few
    nanoseconds: received_at to nine decimals, the later marks as integer nanoseconds
    since it. Under callgrind (bench/instructions_per_request.py) tracing cost the gateway
    +22.7k instructions a request with Python's encoder, +11.8k with this one: Python's
    took 15.4k a line, mostly the interpreter reading 43 attributes and orjson."""
    if _CLines is None:
        return None
    return _CLines(C_VERSION, RequestContext, _FIELDS, _TIMES, Span, Claim, prefix=TRACED,
                   skip=UNTRACED, **hooks)


def _embed(raw: bytes | None, parsed: Any) -> Any:
    """JSON bytes that span lines (pretty-printed), re-encoded on one line."""
    if parsed is not None:
        return parsed
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def decode(line: bytes) -> RequestContext:
    """The context :func:`encode` wrote (enough of it to build the trace record)."""
    data: list[Any] = orjson.loads(line)
    fields = _FIELDS_BY_VERSION.get(data[0]) if data and isinstance(data[0], int) else None
    if fields is None:
        raise ValueError(f"unknown spool event version {data[0] if data else None!r}")
    n = len(fields)
    values = dict(zip(fields, data[1 : n + 1], strict=True))
    priority, tenant, spans, body, response, chunks = data[n + 1 :]
    received_at = values.pop("received_at")
    ctx = RequestContext(values.pop("request_id"), values.pop("endpoint"), received_at)
    if data[0] == C_VERSION:  # marks in nanoseconds since received_at
        for name in _TIMES:
            if values[name] is not None:
                values[name] = received_at + values[name] / 1e9
        spans = [(n_, received_at + s / 1e9, received_at + e / 1e9, a)
                 for n_, s, e, a in spans or []]
    for name, value in values.items():
        setattr(ctx, name, value)
    ctx.claim = Claim(priority=priority, tenant=tenant)
    ctx.spans = [Span(n_, s, e, a or {}) for n_, s, e, a in spans or []]
    ctx.body = body if isinstance(body, dict) else None
    ctx.response_body = orjson.dumps(response) if response is not None else None
    ctx.chunks = [chunks.encode()] if chunks else None
    return ctx


_IOV_MAX = 1024  # buffers per writev(2) call (Linux's IOV_MAX)
CHUNK_LINES = 64  # lines of the backlog joined into one chunk
FILE_BYTES = 4 << 20  # a spool file is closed (handed to the ingest) at this size
MAX_PENDING = 256 << 20  # bytes held while the files cannot be written, then drops
OPEN = ".open"  # the file being written (the ingest takes it only once its writer is gone)
_WRITE = os.write  # a global: one lookup, not two (and a seam for the disk-full tests)


def _write_file(path: Path, chunks: list[bytes]) -> None:
    """The chunks into a new file with writev: no joined copy."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for i in range(0, len(chunks), _IOV_MAX):
            part = chunks[i : i + _IOV_MAX]
            size = sum(map(len, part))
            done = os.writev(fd, part)
            if done < size:  # a short write: the rest the plain way
                os.write(fd, b"".join(part)[done:])
    finally:
        os.close(fd)


def file_name(seq: int) -> str:
    """A spool file's name (without ``.jsonl``): written-at nanoseconds first, so names
    sort oldest first and :func:`spooled_ago` can read the age back without a stat."""
    return f"{time.time_ns():020d}-{os.getpid()}-{seq:08d}"


def spooled_ago(name: str) -> float:
    """Seconds since the spool file ``name`` was written (0 for a name not of ours)."""
    stamp = name.partition("-")[0]
    return max(0.0, time.time() - int(stamp) / 1e9) if stamp.isdigit() else 0.0


def keep_freed_memory(trim: int = 64 << 20, mmap: int = 32 << 20) -> bool:
    """Asks glibc's malloc not to give freed heap back to the kernel below ``trim`` bytes,
    and to serve blocks below ``mmap`` bytes from the heap. The spool's chunks are
    allocated for a flush interval and freed together; with the default 128 kB trim
    threshold the heap shrinks after every flush and grows again page fault by page
    fault. Setting one threshold turns glibc's dynamic mmap threshold off, which left every
    block of 128 kB or more to a fresh mmap (and its page faults): 2 % of throughput with
    tracing otherwise idle, side by side. 32 MB is where the dynamic threshold tops out.
    False where there is no glibc ``mallopt``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_trim_threshold, trim)) and bool(mallopt(m_mmap_threshold, mmap))


class Spool:
    """Writes finished requests' lines to the spool file before their answers go out.

    Durability: a trace reaches the file (``write(2)``: the page cache, which survives a
    SIGKILL of the gateway, not a power cut) before its response's last byte is sent.
    Lines are encoded as requests finish (in C, into one buffer); the first one of a loop
    iteration schedules :meth:`write_pending` with ``call_soon``, and the gateway awaits
    :meth:`written` before it writes the response (a stream: before its terminating
    chunk), so all the requests finished in one iteration share one record and one
    ``write``. Buffering lines for a flush thread lost the traces answered in the last
    flush interval before a SIGKILL (4 of 300); a ``write`` per line instead cost 8 % of
    throughput side by side (syscalls on a shared core). With ``key`` the record is
    sealed first (AES-256-GCM, one call per record, :mod:`bastion.observe.spool_crypto`),
    so no request body is on disk in the clear; with ``bodies`` false (content mode
    metadata everywhere) no body is encoded at all.

    The file being written is ``<name>.open``; every ``flush_interval`` (when it holds
    anything) or at ``file_bytes`` the loop's thread closes it and renames it
    ``<name>.jsonl``, for the ingest. A gateway killed mid-file leaves a ``.open`` file:
    the ingest takes it once that gateway is gone, its torn last line skipped. When the
    file cannot be written (disk full or gone) lines wait in memory (``max_pending``
    bytes at most, then new ones are dropped, counted), and the writer thread retries them
    into whole files every flush interval; answers do not wait for that.
    """

    def __init__(self, root: str | os.PathLike[str], flush_interval: float = 0.2,
                 chunk_lines: int = CHUNK_LINES, file_bytes: int = FILE_BYTES,
                 fast: bool = True, max_pending: int = MAX_PENDING,
                 key: bytes | None = None, bodies: bool = True) -> None:
        self.root = Path(root)
        self.dir = self.root / str(os.getpid())
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # bodies: private
        self.dir.mkdir(exist_ok=True, mode=0o700)
        self.flush_interval = flush_interval
        self.chunk_lines = chunk_lines
        self.file_bytes = file_bytes
        self.max_pending = max_pending
        self.key = key
        self.bodies = bodies
        self.dropped = 0  # lines dropped: the files could not be written, memory was full
        self.on_drop: Callable[[int], None] | None = None  # told how many, as it happens
        self._warned_at = self._write_warned_at = -1e9
        # the file being written: the loop's thread only
        self._fd = -1
        self._name = ""
        self._size = 0
        self._file_lines = 0
        self._sealer: FileSealer | None = None
        self._retry_at = 0.0  # after a write error, the next try at a file (monotonic)
        # the C encoder hands over each line as it is made (full=1); Python's observer
        # stays its fallback (for a line it leaves to Python)
        self._lines: list[bytes] = []  # lines of Python's encoder, not yet written
        self._fast = c_lines(python=self.observe, on_full=self.write_pending,
                             full=chunk_lines, bodies=bodies,
                             omit=None if bodies else BODY_FIELDS) if fast else None
        # of the requests waiting for them (one each: a cancelled one cancels only its own)
        self._waiters: list[asyncio.Future[None]] = []
        if self._fast is not None:
            self.observe = self._fast.observe  # type: ignore[method-assign]
        self._chunks: deque[bytes] = deque()  # lines that could not be written yet
        self._pending = 0  # bytes in _chunks (changed under _handing)
        self._handing = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = threading.Event()
        self._stop = False
        self._seq = 0
        self.written_bytes = 0
        self._thread = threading.Thread(target=self._run, name="bastion-trace-spool",
                                        daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Starts the writer; ``loop``: the event loop whose thread calls :meth:`observe`
        (without one, files are handed to the ingest only by :meth:`flush` and
        :meth:`close`)."""
        self._loop = loop
        keep_freed_memory()
        if self._fast is None:
            log.info("trace spool: Python's encoder (the C one is %s)",
                     "off" if _CLines is not None else "not built")
        self._thread.start()

    def observe(self, ctx: RequestContext) -> None:
        """Spools the trace of a ``/v1/*`` call (not health, admin or the metrics).
        Where the C encoder is built, an instance's ``observe`` is the C one's (the
        Python part of it cost ~2k instructions a call under callgrind)."""
        endpoint = ctx.endpoint  # slices, not str.startswith (~190 instructions each in
        if endpoint[:4] != TRACED or endpoint[:10] == UNTRACED:  # 3.11: arg parsing)
            return
        lines = self._lines
        lines.append(encode(ctx, self.bodies))
        if len(lines) >= self.chunk_lines:
            self.write_pending()

    def written(self) -> asyncio.Future[None] | None:
        """A future resolved once the lines spooled so far are in the file (None: they
        are). The gateway awaits it before it sends a response, so every request finished
        in one loop iteration shares one sealed record and one ``write``: the lines are
        written by a ``call_soon`` callback, which runs before the callbacks that resume
        the waiting requests. The event loop's thread only."""
        waiters = self._waiters
        if not waiters:
            fast = self._fast
            if not self._lines and (fast is None or not len(fast)):
                return None
            (self._loop or asyncio.get_running_loop()).call_soon(self.write_pending)
        waiter = (self._loop or asyncio.get_running_loop()).create_future()
        waiters.append(waiter)
        return waiter

    def write_pending(self) -> None:
        """Writes the lines encoded so far (one record, one ``write``), then resolves the
        waiter of :meth:`written`. The loop's thread (or the only thread)."""
        waiters, self._waiters = self._waiters, []
        fast = self._fast
        lines = self._lines
        if fast is not None and len(fast):
            lines.append(fast.take())
        if lines:
            self._lines = []
            self._put(lines[0] if len(lines) == 1 else b"".join(lines))
        for waiter in waiters:  # written, or held in memory (the answer never waits)
            if not waiter.done():  # (cancelled: its client is gone)
                waiter.set_result(None)

    def _put(self, lines: bytes) -> None:
        """Writes ``lines`` (whole lines) through to the open file (the loop's thread, or
        the only thread); what cannot be written waits in memory."""
        fd = self._fd
        if fd < 0:
            fd = self._open()
            if fd < 0:
                self._hold(lines)
                return
        sealer = self._sealer
        record = sealer.seal(lines) if sealer is not None else lines
        try:
            done = _WRITE(fd, record)
        except OSError as exc:
            done = -1
            error: OSError | str = exc
        else:
            error = "short write"
        if done != len(record):  # the file ends in a torn record: close it, keep the lines
            self._warn_write(error)
            self._retry_at = time.monotonic() + self.flush_interval
            self._rotate()
            self._hold(lines)
            return
        self._size += done
        self._file_lines += lines.count(10)
        if self._size >= self.file_bytes:
            self._rotate()

    def _open(self) -> int:
        """A new ``.open`` file (its header first, when sealed); -1 while writes fail."""
        if self._retry_at and time.monotonic() < self._retry_at:
            return -1
        self._seq += 1
        name = file_name(self._seq)
        sealer = FileSealer(self.key) if self.key is not None else None
        try:
            fd = os.open(self.dir / f"{name}{OPEN}",
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        except OSError as exc:
            self._warn_write(exc)
            self._retry_at = time.monotonic() + self.flush_interval
            return -1
        if sealer is not None:
            try:
                if os.write(fd, sealer.header) != len(sealer.header):
                    raise OSError("short write")
            except OSError as exc:
                os.close(fd)
                with contextlib.suppress(OSError):
                    (self.dir / f"{name}{OPEN}").unlink()
                self._warn_write(exc)
                self._retry_at = time.monotonic() + self.flush_interval
                return -1
        self._retry_at = 0.0
        self._fd, self._name, self._sealer = fd, name, sealer
        self._size, self._file_lines = 0, 0
        return fd

    def _rotate(self) -> int:
        """Closes the open file and hands it to the ingest (``.jsonl``); returns its
        lines. The loop's thread (or the only thread)."""
        fd = self._fd
        if fd < 0:
            return 0
        self._fd = -1
        lines = self._file_lines
        self.written_bytes += self._size
        with contextlib.suppress(OSError):
            os.close(fd)
        try:
            (self.dir / f"{self._name}{OPEN}").rename(self.dir / f"{self._name}.jsonl")
        except OSError as exc:  # stays .open: the ingest takes it once this process is gone
            self._warn_write(exc)
        return lines

    def _hold(self, lines: bytes) -> None:
        """Lines that could not be written: kept in memory for the writer's retry, up to
        ``max_pending`` bytes."""
        with self._handing:
            if self._pending + len(lines) > self.max_pending:
                self._drop(lines)
                return
            self._chunks.append(lines)
            self._pending += len(lines)

    def _warn_write(self, exc: OSError | str) -> None:
        now = time.monotonic()
        if now - self._write_warned_at >= 10.0:  # at most every 10 s
            self._write_warned_at = now
            log.error("cannot write the trace spool in %s (%s); %d MB wait in memory, "
                      "retrying", self.dir, exc, self._pending >> 20)

    def _drop(self, chunk: bytes) -> None:
        """The files have not been written for a while (disk full or gone) and memory is
        at ``max_pending``: this chunk's traces are dropped, so the gateway keeps serving
        instead of growing without bound. Counted, and logged at most every 10 s."""
        lines = chunk.count(10)
        self.dropped += lines
        if self.on_drop is not None:
            self.on_drop(lines)
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            self._warned_at = now
            log.error("trace spool: %d MB waiting to be written to %s; dropping new traces "
                      "(%d so far) until the files can be written", self._pending >> 20,
                      self.dir, self.dropped)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._fd >= 0 or self._lines or (self._fast is not None and len(self._fast)):
                self._ask_rotate()  # racy reads: at worst a pass late
            self._write()

    def _ask_rotate(self) -> None:
        """Has the loop hand the open file to the ingest, waiting a flush interval at most
        (a late one is handed over next time)."""
        loop = self._loop
        if loop is None:
            return
        done = threading.Event()

        def rotate() -> None:
            self.write_pending()  # lines of answers that did not wait (a stream cut off)
            self._rotate()
            done.set()

        try:
            loop.call_soon_threadsafe(rotate)
        except RuntimeError:  # the loop is closed
            return
        done.wait(self.flush_interval)

    def _write(self) -> int:
        """Writes the lines held in memory (after write errors) to new files, each whole
        or absent; returns the bytes written."""
        queue = self._chunks
        written = 0
        while queue:
            part: list[bytes] = [queue.popleft()]
            size = len(part[0])
            while queue and size + len(queue[0]) <= self.file_bytes:
                part.append(queue.popleft())
                size += len(part[-1])
            self._seq += 1
            name = file_name(self._seq) + "-w"
            tmp = self.dir / f".{name}.tmp"
            try:
                if self.key is not None:
                    write_sealed(tmp, self.key, b"".join(part))
                else:
                    _write_file(tmp, part)
                tmp.rename(self.dir / f"{name}.jsonl")
            except OSError as exc:  # disk full or gone: keep them in memory, retry
                with contextlib.suppress(OSError):
                    tmp.unlink()
                self._warn_write(exc)
                queue.extendleft(reversed(part))
                break
            with self._handing:
                self._pending -= size
            written += size
        self.written_bytes += written
        return written

    def flush(self) -> int:
        """Hands the open file to the ingest and writes out what waits in memory; returns
        the lines handed over. Only from the thread that calls :meth:`observe`, or once
        nothing does."""
        self.write_pending()
        lines = self._rotate()
        held = sum(chunk.count(10) for chunk in self._chunks)
        self._write()
        return lines + held - sum(chunk.count(10) for chunk in self._chunks)

    def close(self) -> None:
        """Stops the writer and writes out the rest; once no request can finish any more
        (after the server's drain)."""
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.flush()
