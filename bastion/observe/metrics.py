"""Prometheus metrics at ``GET /metrics``, aggregated over every worker process.

Hot path: :meth:`Metrics.observe` runs once per finished request, on the event loop. It
adds the request to one row of floats, keyed by (operation, model, provider, deployment,
status, error type): counter slots, and for each histogram a count per bucket (found with
``bisect``) and the sum. No locks, no I/O, no prometheus_client objects; every request
family is a projection of the rows, computed at scrape time (``bench/metrics_observer.py``
measures the cost, one run: 0.43 µs a request with the observer in C (``_rowsc.c``, where
it is built), 1.99 µs in Python, 24.5 µs for prometheus_client doing the same in one
process).

Names follow the OpenTelemetry GenAI semantic conventions translated to Prometheus
(``gen_ai.client.operation.duration`` → ``gen_ai_client_operation_duration_seconds``,
attributes' dots → underscores), with their advised bucket boundaries; Bastion's own
series are ``bastion_*``.

Several workers (``server.workers`` > 1): every worker writes a snapshot of its state to
``<metrics.dir>/sup-<supervisor pid>/<pid>.json`` about once a second (temp file +
``os.replace``, from a thread). A scrape, answered by any worker, takes the directory's
lock, writes its own snapshot, folds the files of dead workers into ``retired.json``
(counters and histograms only; idempotent, by snapshot id), and merges the snapshots of
the live workers with the retired totals. Semantics:

- counters and histograms cover every worker since the supervisor started, restarted
  ones included, and never go backwards between scrapes: whatever a scrape reported had
  been written to disk first. A worker killed outright loses what it counted since its
  last snapshot and that no scrape had reported yet (at most about a second);
- gauges (queue depth, in flight, breakers, resources) cover the live workers only
  (summed, or the worst of them for breakers and readiness), as of their last snapshot;
- a new supervisor starts a new directory: counters restart from zero, which Prometheus
  reads as a counter reset.

One process (``server.workers: 1``) writes no files: a scrape renders its live state.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from bastion.errors import NotFound
from bastion.observe.families import (  # the families and the rows' layout
    _BREAKER,
    _BY_NAME,
    _CACHED,
    _COST,
    _DUR,
    _DUR_SUM,
    _ERROR_TYPES,
    _OPERATIONS,
    _OVH,
    _OVH_SUM,
    _REQUESTS,
    _RETRIES,
    _STATUS,
    _TIN,
    _TIN_SUM,
    _TOUT,
    _TOUT_SUM,
    _TPOT,
    _TPOT_SUM,
    _TTFT,
    _TTFT_SUM,
    DURATION_BUCKETS,
    ERROR,
    FAMILIES,
    OVERHEAD_BUCKETS,
    ROW_SIZE,
    TOKEN_BUCKETS,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
    Family,
    Labels,
    Merge,
)
from bastion.observe.pricing import PriceBook
from bastion.observe.procs import pid_alive
from bastion.observe.resources import Gpus, sample_process
from bastion.server.types import Request, Response

_CRows: type[RowsObserver] | None
try:  # the observer in C (setup.py builds it; optional)
    from bastion.observe._rowsc import Rows as _CRows
except ImportError:  # pragma: no cover - where it did not compile
    _CRows = None

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.context import RequestContext
    from bastion.observe._rowsc import Rows as RowsObserver
    from bastion.routing.router import Router

log = logging.getLogger("bastion.metrics")

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
SNAPSHOT_INTERVAL = 1.0  # seconds between a worker's snapshots



class GatewayView(Protocol):
    """What the metrics read from the gateway (for gauges and provider names)."""

    @property
    def router(self) -> Router: ...

    @property
    def settings(self) -> Settings: ...


# ---------------------------------------------------------------------- state
Series = dict[Labels, float]
Rows = dict[Labels, list[float]]


class State:
    """One process's (or a merge's) values: the request rows, the other counters and
    the gauges, by family name and label tuple."""

    __slots__ = ("counters", "gauges", "id", "rows")

    def __init__(self, id: str = "") -> None:
        self.id = id
        self.rows: Rows = {}
        self.counters: dict[str, Series] = {}
        self.gauges: dict[str, Series] = {}
        for family in FAMILIES:
            if family.rows is None:
                (self.counters if family.merge == "add" else self.gauges)[family.name] = {}

    def to_json(self, pid: int, gauges: bool = True) -> bytes:
        return orjson.dumps({
            "id": self.id,
            "pid": pid,
            "row_size": ROW_SIZE,
            "rows": list(self.rows.items()),
            "counters": {n: list(s.items()) for n, s in self.counters.items() if s},
            "gauges": {n: list(s.items()) for n, s in self.gauges.items() if s and gauges},
        })

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        state = cls(str(data.get("id", "")))
        if data.get("row_size") == ROW_SIZE:  # else written by another version: left out
            state.rows = {tuple(key): row for key, row in data.get("rows", [])}
        for part, into in (("counters", state.counters), ("gauges", state.gauges)):
            for name, pairs in data.get(part, {}).items():
                if name in into:  # a family this version knows
                    into[name] = {tuple(key): value for key, value in pairs}
        return state

    def add(self, other: State, gauges: bool = True) -> None:
        """Adds ``other`` in: rows and counters summed, gauges by their family's merge."""
        rows = self.rows
        for key, row in other.rows.items():
            have = rows.get(key)
            rows[key] = (list(row) if have is None
                         else [a + b for a, b in zip(have, row, strict=True)])
        for name, series in other.counters.items():
            mine = self.counters[name]
            for key, value in series.items():
                mine[key] = mine.get(key, 0) + value
        if gauges:
            for name, series in other.gauges.items():
                _merge_gauges(self.gauges[name], series, _BY_NAME[name].merge)


def _merge_gauges(into: Series, series: Series, how: Merge) -> None:
    for key, value in series.items():
        have = into.get(key)
        if have is None:
            into[key] = value
        elif how == "max":
            into[key] = max(have, value)
        elif how == "min":
            into[key] = min(have, value)
        else:
            into[key] = have + value


def merge(live: Iterable[State], retired: State | None = None) -> State:
    """Live workers' states (gauges included) plus the retired counters."""
    total = State()
    for state in live:
        total.add(state)
    if retired is not None:
        total.add(retired, gauges=False)
    return total


def project(family: Family, rows: Rows) -> Rows:
    """A request family's series from the rows: label tuple → its slice of the row (a
    histogram section, or one counter slot)."""
    spec = family.rows
    assert spec is not None
    width = len(family.buckets) + 2 if family.kind == "histogram" else 1
    out: Rows = {}
    for key, row in rows.items():
        if spec.errors_only and not key[ERROR]:
            continue
        base = tuple(key[i] for i in spec.labels)
        for offset, extra in spec.parts:
            values = row[offset : offset + width]
            if not any(values[:-1] if width > 1 else values):
                continue  # no observation (e.g. no stream, no output tokens)
            labels = base + extra
            have = out.get(labels)
            out[labels] = values if have is None else [
                a + b for a, b in zip(have, values, strict=True)]
    return out


# ---------------------------------------------------------------------- exposition
def render(state: State, families: Iterable[Family] = FAMILIES) -> bytes:
    """Prometheus text exposition (format 0.0.4) of ``state``."""
    out: list[str] = []
    for family in families:
        name = family.name
        out.append(f"# HELP {name} {_escape_help(family.help)}\n# TYPE {name} {family.kind}\n")
        if family.rows is not None:
            projected = project(family, state.rows)
            if family.kind == "histogram":
                _render_histogram(out, family, projected)
                continue
            series = {key: values[0] for key, values in projected.items()}
        else:
            series = (state.counters if family.merge == "add" else state.gauges)[name]
        for key in sorted(series):
            out.append(f"{name}{_braces(_labels(family.labels, key))} {_num(series[key])}\n")
    return "".join(out).encode()


def _render_histogram(out: list[str], family: Family, series: Rows) -> None:
    name = family.name
    bounds = [*(repr(float(b)) for b in family.buckets), "+Inf"]
    for key in sorted(series):
        values = series[key]
        labels = _labels(family.labels, key)
        prefix = f"{labels}," if labels else ""
        cumulative = 0.0
        for le, count in zip(bounds, values[:-1], strict=True):
            cumulative += count
            out.append(f'{name}_bucket{{{prefix}le="{le}"}} {_num(cumulative)}\n')
        out.append(f"{name}_sum{_braces(labels)} {_num(values[-1])}\n")
        out.append(f"{name}_count{_braces(labels)} {_num(cumulative)}\n")


def _labels(names: Labels, values: Labels) -> str:
    return ",".join(f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True))


def _braces(labels: str) -> str:
    return f"{{{labels}}}" if labels else ""


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value in (_INF, -_INF):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # counts are kept as floats
    return repr(value)


_INF = float("inf")


# ---------------------------------------------------------------------- shared directory


_RETIRED = "retired.json"
_KEEP_FOLDED = 512  # snapshot ids remembered in retired.json (a fold interrupted midway)


class SharedDir:
    """The snapshot files of one supervisor's workers. Reads and writes happen in a
    worker thread, never on the event loop."""

    def __init__(
        self, path: Path, pid: int, alive: Callable[[int], bool] = pid_alive
    ) -> None:
        self.path = path
        self.pid = pid
        self._alive = alive
        self._own = threading.Lock()  # this process's writers: the snapshot task, scrapes
        self._seq = -1

    def prepare(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._remove_dead_groups()

    def _remove_dead_groups(self) -> None:
        """Directories of supervisors that are gone (``sup-<pid>``)."""
        for entry in self.path.parent.glob("sup-*"):
            pid = entry.name[4:]
            if entry != self.path and pid.isdigit() and not self._alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)

    def write(self, blob: bytes, seq: int | None = None) -> None:
        """Replaces this worker's snapshot in one step (readers see old or new). ``seq``
        orders the snapshots: one older than what is on disk is dropped (a periodic write
        that a scrape overtook must not undo what the scrape reported)."""
        with self._own:
            if seq is not None:
                if seq <= self._seq:
                    return
                self._seq = seq
            _atomic_write(self.path / f"{self.pid}.json", blob)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def collect(self, blob: bytes, seq: int | None = None) -> tuple[list[State], State]:
        """Writes this worker's snapshot ``blob``, folds dead workers' files into the
        retired totals, and returns (live workers' states, retired totals)."""
        with self._locked():
            self.write(blob, seq)
            retired_path = self.path / _RETIRED
            retired_data = _read_json(retired_path) or {}
            retired = State.from_json(retired_data)
            folded: list[str] = list(retired_data.get("folded", []))
            live: list[State] = []
            changed: list[Path] = []
            for path in sorted(self.path.glob("*.json")):
                if not path.stem.isdigit():
                    continue
                data = _read_json(path)
                pid = int(path.stem)
                if pid == self.pid or self._alive(pid):
                    if data is not None:
                        live.append(State.from_json(data))
                    continue
                if data is not None and str(data.get("id", "")) not in folded:
                    retired.add(State.from_json(data), gauges=False)
                    folded.append(str(data.get("id", "")))
                changed.append(path)
            if changed:
                _atomic_write(retired_path, _retired_json(retired, folded[-_KEEP_FOLDED:]))
                for path in changed:  # after the retired totals hold them
                    path.unlink(missing_ok=True)
        return live, retired


def _retired_json(state: State, folded: list[str]) -> bytes:
    data = orjson.loads(state.to_json(0, gauges=False))
    data["folded"] = folded
    return orjson.dumps(data)


def _atomic_write(path: Path, blob: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("metrics snapshot %s unreadable: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def shared_dir_for(settings: Settings) -> SharedDir | None:
    """Worker processes share ``<metrics.dir>/sup-<supervisor pid>``; one process: None."""
    if settings.server.workers <= 1:
        return None
    base = Path(settings.metrics.dir or Path(settings.home) / "metrics")
    return SharedDir(base / f"sup-{os.getppid()}", os.getpid())


# ---------------------------------------------------------------------- the metrics
def _token_prices(settings: Settings) -> dict[str, tuple[float, float, float]]:
    """Deployment -> (input, output, cached) USD per 1M tokens, for the cost counter."""
    return {name: (p.input, p.output, p.cached)
            for name, p in PriceBook.from_settings(settings).prices.items()}


class Metrics:
    """This process's metrics: the request observer, the guard and cache hooks, the
    background snapshot task and the ``/metrics`` endpoint."""

    def __init__(
        self,
        settings: Settings,
        gateway: GatewayView | None = None,
        shared: SharedDir | None = None,
        gpus: Gpus | None = None,
        fast: bool = True,
    ) -> None:
        self.enabled = settings.metrics.enabled
        self.gateway = gateway
        self.shared = shared if shared is not None else shared_dir_for(settings)
        self.gpus = gpus if gpus is not None else Gpus()
        self.pid = self.shared.pid if self.shared is not None else os.getpid()
        self.state = State(os.urandom(8).hex())
        self._rows = self.state.rows
        self._settings = settings
        self._providers = {spec.name: spec.backend for spec in settings.models}
        self._prices = _token_prices(settings)
        self._guard = self.state.counters["bastion_guard_decisions_total"]
        self._guard_errors = self.state.counters["bastion_guard_errors_total"]
        self._cache = self.state.counters["bastion_cache_requests_total"]
        self._dropped = self.state.counters["bastion_traces_dropped_total"]
        self._auth_failures = self.state.counters["bastion_auth_failures_total"]
        self._task: asyncio.Task[None] | None = None
        self.seq = 0  # of the latest snapshot
        # the observer in C where it is built (Python's below stays its fallback)
        self._fast = self._c_rows() if fast else None
        if self._fast is not None:
            self.observe = self._fast.observe  # type: ignore[method-assign]
        elif fast and self.enabled:
            log.info("metrics: Python's observer (the C one is not built)")

    def _c_rows(self) -> RowsObserver | None:
        if _CRows is None:
            return None
        from bastion.context import RequestContext

        sections = ((_DUR, DURATION_BUCKETS), (_OVH, OVERHEAD_BUCKETS), (_TIN, TOKEN_BUCKETS),
                    (_TOUT, TOKEN_BUCKETS), (_TTFT, TTFT_BUCKETS), (_TPOT, TPOT_BUCKETS))
        return _CRows(RequestContext, self._rows, _OPERATIONS, _ERROR_TYPES, _STATUS,
                      self._providers, self._prices, (_REQUESTS, _RETRIES, _COST, _CACHED),
                      sections, ROW_SIZE, self.observe)

    # ------------------------------------------------------------------ hot path
    def observe(self, ctx: RequestContext) -> None:
        """Adds one finished request to its row (see the module docstring). Written for
        the interpreter: locals over attributes, no method calls but ``bisect``. Where
        the C observer is built, an instance's ``observe`` is its (``_rowsc.c``: the same
        updates in the same order; this one is its fallback for what it cannot read)."""
        operation = ctx.operation or _OPERATIONS.get(ctx.endpoint)
        if operation is None:
            return  # health, admin, /metrics: not a GenAI operation
        deployment = ctx.backend or ""
        status = ctx.status
        if status >= 400:
            error = _ERROR_TYPES.get(status) or str(status)
        else:
            error = "" if ctx.error is None else "stream_error"  # a stream that broke
        key = (operation, ctx.model or "", ctx.provider or self._providers.get(deployment, ""),
               deployment, _STATUS.get(status) or str(status), error)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = [0.0] * ROW_SIZE
        received = ctx.received_at
        finished = ctx.finished_at or time.perf_counter()
        row[_REQUESTS] += 1
        duration = finished - received
        row[_DUR + bisect_left(DURATION_BUCKETS, duration)] += 1
        row[_DUR_SUM] += duration
        stream = ctx.stream
        # ctx.overhead(finished), inlined: elapsed less the wait for the backend (for a
        # stream, until its last event: the generation is the backend's time)
        started = ctx.backend_started_at
        if started is None:
            overhead = duration
        else:
            waited = ((ctx.last_token_at or ctx.backend_headers_at) if stream
                      else ctx.backend_done_at) or finished
            overhead = max(0.0, duration - (waited - started))
        row[_OVH + bisect_left(OVERHEAD_BUCKETS, overhead)] += 1
        row[_OVH_SUM] += overhead
        if ctx.attempts > 1:
            row[_RETRIES] += ctx.attempts - 1
        usage = ctx.usage
        if not usage:
            return
        prompt = usage.get("prompt_tokens")
        cached = 0
        if prompt.__class__ is int:
            row[_TIN + bisect_left(TOKEN_BUCKETS, prompt)] += 1
            row[_TIN_SUM] += prompt
            details = usage.get("prompt_tokens_details")
            if details.__class__ is dict and details.get("cached_tokens").__class__ is int:
                cached = min(details["cached_tokens"], prompt)
                row[_CACHED] += cached
        else:
            prompt = 0
        completion = usage.get("completion_tokens")
        if completion.__class__ is int:
            row[_TOUT + bisect_left(TOKEN_BUCKETS, completion)] += 1
            row[_TOUT_SUM] += completion
        else:
            completion = 0
        first = ctx.first_token_at
        if stream and not error and first is not None:
            ttft = first - received
            row[_TTFT + bisect_left(TTFT_BUCKETS, ttft)] += 1
            row[_TTFT_SUM] += ttft
            if completion > 1:
                tpot = max(0.0, (ctx.last_token_at or finished) - first) / (completion - 1)
                row[_TPOT + bisect_left(TPOT_BUCKETS, tpot)] += 1
                row[_TPOT_SUM] += tpot
        price = self._prices.get(deployment)
        if price is not None:  # the token part; a price per hour is the trace's (ingest)
            row[_COST] += ((prompt - cached) * price[0] + cached * price[2]
                           + completion * price[1]) / 1_000_000

    def guard_hit(self, scanner: str, action: str, error: str | None = None) -> None:
        """A guard scanner decided ``action`` (e.g. block, redact, flag); ``error``: it
        failed with that exception class (and ``action`` is what its rule then did)."""
        key = (scanner, action)
        self._guard[key] = self._guard.get(key, 0) + 1
        if error is not None:
            failed = (scanner, "closed" if action == "block" else "open")
            self._guard_errors[failed] = self._guard_errors.get(failed, 0) + 1

    def traces_dropped(self, count: int) -> None:
        """The trace spool dropped ``count`` traces (its files could not be written)."""
        self._dropped[()] = self._dropped.get((), 0) + count

    def auth_failure(self, reason: str) -> None:
        """A request was refused with 401 (``reason``: missing, malformed or invalid)."""
        key = (reason,)
        self._auth_failures[key] = self._auth_failures.get(key, 0) + 1

    def tls_reload(self, result: str) -> None:
        """The server.tls certificate files changed: ``result`` ok (reloaded) or failed."""
        series = self.state.counters["bastion_tls_reloads_total"]
        series[(result,)] = series.get((result,), 0) + 1

    def budget_event(self, scope: str, event: str) -> None:
        """A budget (``scope``: key, team, user) reached its soft limit or its limit."""
        counts = self.state.counters["bastion_budget_events_total"]
        counts[(scope, event)] = counts.get((scope, event), 0) + 1

    def limit_backend_error(self, mode: str) -> None:
        """A rate-limit decision without Redis: ``mode`` open (decided in memory) or closed."""
        counts = self.state.counters["bastion_limit_backend_errors_total"]
        counts[(mode,)] = counts.get((mode,), 0) + 1

    def budget_backend_error(self, mode: str, count: int = 1) -> None:
        """A budget decision without Redis (``mode`` open or closed), or ``count`` requests'
        costs lost on the way to it (``lost``)."""
        counts = self.state.counters["bastion_budget_backend_errors_total"]
        counts[(mode,)] = counts.get((mode,), 0) + count

    def cache(self, result: str) -> None:
        """A response cache lookup: ``result`` is e.g. hit, miss or semantic_hit."""
        key = (result,)
        self._cache[key] = self._cache.get(key, 0) + 1

    # ------------------------------------------------------------------ gauges
    def sample(self) -> None:
        """Refreshes this process's gauges (off the hot path: each snapshot and scrape)."""
        gauges = self.state.gauges
        for series in gauges.values():
            series.clear()
        if self.gateway is not None:
            self._sample_router(self.gateway.router)
            settings = self.gateway.settings
            if settings is not self._settings:  # a reload: new deployments, new prices
                self._settings = settings
                self._providers = {s.name: s.backend for s in settings.models}
                self._prices = _token_prices(settings)
                if self._fast is not None:
                    self._fast.providers, self._fast.prices = self._providers, self._prices
        proc = sample_process()
        me = (str(self.pid),)
        gauges["bastion_workers"][()] = 1
        gauges["bastion_process_cpu_seconds_total"][me] = proc.cpu_seconds
        self.state.counters["bastion_cpu_seconds_total"][()] = proc.cpu_seconds
        if proc.rss_bytes is not None:
            gauges["bastion_resident_memory_bytes"][()] = proc.rss_bytes
            gauges["bastion_process_resident_memory_bytes"][me] = proc.rss_bytes
        if proc.open_fds is not None:
            gauges["bastion_open_fds"][()] = proc.open_fds
            gauges["bastion_process_open_fds"][me] = proc.open_fds

    def _sample_router(self, router: Router) -> None:
        gauges = self.state.gauges
        queue, in_flight = gauges["bastion_queue_depth"], gauges["bastion_deployment_in_flight"]
        breaker = gauges["bastion_deployment_breaker_state"]
        ready = gauges["bastion_deployment_ready"]
        for alias, route in router.routes.items():
            queue[(alias,)] = len(route.queue)
            for d in route.deployments:
                in_flight[(d.name,)] = d.in_flight
                breaker[(d.name,)] = _BREAKER.get(d.state, 2.0)
                ready[(d.name,)] = 1.0 if d.backend.ready else 0.0

    def _sample_gpus(self, state: State) -> None:
        for gpu in self.gpus.sample():
            key = (str(gpu.index), gpu.name)
            for name, value in (("bastion_gpu_utilization_ratio", gpu.utilization),
                                ("bastion_gpu_memory_used_bytes", gpu.memory_used),
                                ("bastion_gpu_memory_total_bytes", gpu.memory_total)):
                if value is not None:
                    state.gauges[name][key] = value

    # ------------------------------------------------------------------ scrape
    def snapshot(self) -> bytes:
        """This process's state as JSON (gauges sampled now); numbered ``self.seq``."""
        self.sample()
        self.seq += 1
        return self.state.to_json(self.pid)

    async def scrape(self) -> bytes:
        """The exposition: this process's state (one process), or every worker's."""
        blob = self.snapshot()  # on the loop: the live state is only touched there
        return await asyncio.to_thread(self.scrape_from, blob, self.seq)

    def scrape_from(self, blob: bytes, seq: int | None = None) -> bytes:
        """The exposition, given this process's snapshot (in a worker thread)."""
        if self.shared is None:
            total = merge([State.from_json(orjson.loads(blob))])
        else:
            live, retired = self.shared.collect(blob, seq)
            total = merge(live, retired)
        self._sample_gpus(total)
        return render(total)

    async def endpoint(self, request: Request, ctx: RequestContext) -> Response:
        """``GET /metrics``."""
        if not self.enabled:
            raise NotFound("Metrics are disabled (metrics.enabled)", code="unknown_url")
        return Response(200, await self.scrape(), [(b"content-type", CONTENT_TYPE)])

    # ------------------------------------------------------------------ lifecycle
    def start(self, background: set[asyncio.Task[None]]) -> None:
        """Starts the snapshot task (workers only), kept in ``background``."""
        if self.shared is None or not self.enabled or self._task is not None:
            return
        self.shared.prepare()
        self._task = task = asyncio.get_running_loop().create_task(self._snapshots())
        background.add(task)
        task.add_done_callback(background.discard)

    async def _snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_INTERVAL)
            await self._write_snapshot()

    async def _write_snapshot(self) -> None:
        if self.shared is None:
            return
        blob = self.snapshot()
        try:
            await asyncio.to_thread(self.shared.write, blob, self.seq)
        except Exception:  # telemetry export: it must never stop the worker
            log.exception("metrics snapshot not written")

    async def close(self) -> None:
        """A last snapshot, so a worker that stops on purpose loses no count."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self._write_snapshot()
