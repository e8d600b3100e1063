"""The trace spool: the gateway's side of tracing, a couple of microseconds per request.

::

    gateway process (request path)            ingest process (bastion.observe.ingest)
    ──────────────────────────────            ───────────────────────────────────────
    observe(ctx) ─► encode: one JSON line     scans <spool>/<pid>/*.jsonl, oldest first
      (in C, _spoolc.c; bodies embedded as    ─► decode ─► build records (parse, redact,
      they were sent), 64 to a chunk              price) ─► store.insert_traces(batch)
    every flush_interval, a thread writes       ─► delete the file once all of it is in
      the chunks to a new file, then renames    store down: files wait (they are the journal)
      it into place: files are whole or absent  (runs at SCHED_IDLE: only on idle CPU)

Everything expensive about a trace (parsing bodies, redaction, pricing, SQL) happens in a
separate process, so it costs the gateway's event loop almost nothing and survives a
store outage, a crash of the ingest process, or a SIGKILL of the gateway after a flush.
The spool files are the spill journal: nothing is dropped while the store is down, and
what is there when a process starts is ingested then.
"""

from __future__ import annotations

import asyncio
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

from bastion.gateway.context import RequestContext, Span
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


def encode(ctx: RequestContext) -> bytes:
    """One finished request as a JSON line (its bodies embedded verbatim): the reference
    encoder, and the fallback of the C one (:func:`c_lines`).

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


# traced: the /v1/* calls, but not the model list
TRACED, UNTRACED = "/v1/", "/v1/models"


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
CHUNK_LINES = 64  # lines joined into one chunk for the writer thread
FILE_BYTES = 4 << 20  # a spool file holds whole chunks, this much at most (one at least)
MAX_PENDING = 256 << 20  # bytes held while the files cannot be written, then drops


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
    """Encodes finished requests on the event loop; a thread writes them out in files.

    Every ``chunk_lines`` lines are joined into one chunk (while they are still in the
    cache) and freed, not kept as thousands of separate objects until the flush: measured
    side by side (bench/tracing_side_by_side.py), holding each line as its own object for
    a flush interval cost 1-2 % of throughput, cache misses and all. (Appending each line
    to a ``bytearray`` instead copied the chunk over and over as it grew, by 1/8 at a time:
    +4.6k instructions a request, under callgrind.) Only the event loop's thread touches
    the lines of the current chunk; chunks go on a deque the writer thread takes from, and
    every ``flush_interval`` the writer asks the loop (with ``call_soon_threadsafe``) to
    hand over a partial one.
    """

    def __init__(self, root: str | os.PathLike[str], flush_interval: float = 0.2,
                 chunk_lines: int = CHUNK_LINES, file_bytes: int = FILE_BYTES,
                 fast: bool = True, max_pending: int = MAX_PENDING) -> None:
        self.root = Path(root)
        self.dir = self.root / str(os.getpid())
        self.dir.mkdir(parents=True, exist_ok=True)
        self.flush_interval = flush_interval
        self.chunk_lines = chunk_lines
        self.file_bytes = file_bytes
        self.max_pending = max_pending
        self.dropped = 0  # lines dropped: the files could not be written, memory was full
        self.on_drop: Callable[[int], None] | None = None  # told how many, as it happens
        self._warned_at = self._write_warned_at = -1e9
        # the current chunk's lines, the loop's thread only: the C encoder's (fast) and
        # the ones it left to Python's
        self._lines: list[bytes] = []
        # Python's observer stays the C one's fallback (for a line it leaves to Python)
        self._fast = c_lines(python=self.observe, on_full=self._handover,
                             full=chunk_lines) if fast else None
        if self._fast is not None:
            self.observe = self._fast.observe  # type: ignore[method-assign]
        self._chunks: deque[bytes] = deque()  # handed over, taken by the writer
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
        (without one, lines are written only by :meth:`flush` and :meth:`close`)."""
        self._loop = loop
        keep_freed_memory()
        if self._fast is None:
            log.info("trace spool: Python's encoder (the C one is %s)",
                     "off" if _CLines is not None else "not built")
        self._thread.start()

    def observe(self, ctx: RequestContext) -> None:
        """Spools the trace of a ``/v1/*`` call (not the model list, health or admin).
        Where the C encoder is built, an instance's ``observe`` is the C one's (the
        Python part of it cost ~2k instructions a call under callgrind)."""
        endpoint = ctx.endpoint  # slices, not str.startswith (~190 instructions each in
        if endpoint[:4] != TRACED or endpoint[:10] == UNTRACED:  # 3.11: arg parsing)
            return
        lines = self._lines
        lines.append(encode(ctx))
        if len(lines) >= self.chunk_lines:
            self._handover()

    def _handover(self) -> None:
        """The current chunk to the writer (the loop's thread, or the only thread)."""
        with self._handing:
            lines = self._lines
            fast = self._fast
            if fast is not None and len(fast):
                lines.append(fast.take())
            if not lines:
                return
            self._lines = []
            chunk = lines[0] if len(lines) == 1 else b"".join(lines)
            if self._pending + len(chunk) > self.max_pending:
                self._drop(chunk)
                return
            self._chunks.append(chunk)
            self._pending += len(chunk)
        if self._pending >= self.file_bytes:
            self._wake.set()

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
            if self._pending < self.file_bytes:
                self._ask_handover()
            self._write()

    def _ask_handover(self) -> None:
        """Has the loop hand over its partial chunk, waiting a flush interval at most (a
        late handover is written next time)."""
        loop = self._loop
        if loop is None:
            return
        done = threading.Event()

        def handover() -> None:
            self._handover()
            done.set()

        try:
            loop.call_soon_threadsafe(handover)
        except RuntimeError:  # the loop is closed
            return
        done.wait(self.flush_interval)

    def _write(self) -> int:
        """Writes the handed-over chunks to new files (each whole, or absent); returns
        the bytes written."""
        queue = self._chunks
        written = 0
        while queue:
            part: list[bytes] = [queue.popleft()]
            size = len(part[0])
            while queue and size + len(queue[0]) <= self.file_bytes:
                part.append(queue.popleft())
                size += len(part[-1])
            self._seq += 1
            name = file_name(self._seq)
            tmp = self.dir / f".{name}.tmp"
            try:
                _write_file(tmp, part)
                tmp.rename(self.dir / f"{name}.jsonl")
            except OSError as exc:  # disk full or gone: keep them in memory, retry
                now = time.monotonic()
                if now - self._write_warned_at >= 10.0:  # every flush: at most every 10 s
                    self._write_warned_at = now
                    log.error("cannot write the trace spool in %s (%s); %d MB wait in "
                              "memory, retrying", self.dir, exc, self._pending >> 20)
                queue.extendleft(reversed(part))
                break
            with self._handing:
                self._pending -= size
            written += size
        self.written_bytes += written
        return written

    def flush(self) -> int:
        """Hands over the current chunk and writes everything out; returns the lines
        written. Only from the thread that calls :meth:`observe`, or once nothing does."""
        self._handover()
        lines = sum(chunk.count(10) for chunk in self._chunks)
        self._write()
        return lines - sum(chunk.count(10) for chunk in self._chunks)

    def close(self) -> None:
        """Stops the writer and writes out the rest; once no request can finish any more
        (after the server's drain)."""
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.flush()
