"""Metrics: the observer's counting, histogram buckets, the exposition text (read back with
prometheus_client's parser), and the merge of worker snapshots, a dead worker's included."""

from __future__ import annotations

import shutil
import types
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bastion.config import Settings, load_settings
from bastion.context import RequestContext
from bastion.observe import metrics as m
from bastion.observe.resources import Gpus, sample_process


def settings(**overrides: Any) -> Settings:
    models = [{"name": "gpu-a", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
               "alias": "chat"}]
    return load_settings(env={}, overrides={"models": models, **overrides})


def parse(text: bytes) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    families = text_string_to_metric_families(text.decode())
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in families}


def value(parsed: dict[str, Any], family: str, sample: str | None = None, **labels: str) -> float:
    names = (sample,) if sample else (family, family + "_total")
    found = [v for name, lab, v in parsed[family]
             if name in names and all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, (family, labels, parsed[family])
    return float(found[0])


def chat(t: float = 100.0, *, duration: float = 0.3, stream: bool = False, status: int = 200,
         prompt: int | None = 10, completion: int | None = 20, model: str = "chat",
         attempts: int = 1, **fields: Any) -> RequestContext:
    ctx = RequestContext("r", "/v1/chat/completions", t, model=model, backend="gpu-a",
                         stream=stream, status=status, attempts=attempts, **fields)
    ctx.backend_started_at = t + 0.001
    if stream:
        ctx.backend_headers_at = t + 0.01
    else:
        ctx.backend_done_at = t + duration - 0.0005
    ctx.finished_at = t + duration
    usage: dict[str, Any] = {}
    if prompt is not None:
        usage["prompt_tokens"] = prompt
    if completion is not None:
        usage["completion_tokens"] = completion
    ctx.usage = usage or None
    return ctx


def scrape(metrics: m.Metrics) -> dict[str, Any]:
    return parse(metrics.scrape_from(metrics.snapshot()))


def test_observer_counts_requests_tokens_errors_and_retries() -> None:
    metrics = m.Metrics(settings())
    metrics.observe(chat(prompt=10, completion=20))
    metrics.observe(chat(prompt=5, completion=7, attempts=3))
    failed = RequestContext("e", "/v1/chat/completions", 100.0, model="chat", status=502,
                            error="upstream said no", attempts=2)
    failed.finished_at = 100.02
    metrics.observe(failed)
    got = scrape(metrics)
    assert value(got, "bastion_requests", model="chat", deployment="gpu-a", status="200") == 2
    assert value(got, "bastion_requests", model="chat", deployment="", status="502") == 1
    assert value(got, "bastion_tokens", model="chat", type="input") == 15
    assert value(got, "bastion_tokens", model="chat", type="output") == 27
    assert value(got, "bastion_errors", model="chat", error_type="upstream_error") == 1
    assert [lab for _, lab, _ in got["bastion_errors"]] == [
        {"model": "chat", "error_type": "upstream_error"}], "successes are not errors"
    assert value(got, "bastion_retries", model="chat") == 2 + 1
    duration = "gen_ai_client_operation_duration_seconds"
    assert value(got, duration, duration + "_count", gen_ai_operation_name="chat",
                 gen_ai_provider_name="openai", deployment="gpu-a", error_type="") == 2
    assert value(got, duration, duration + "_count", error_type="upstream_error") == 1
    usage = "gen_ai_client_token_usage"
    assert value(got, usage, usage + "_sum", gen_ai_token_type="input",
                 gen_ai_request_model="chat") == 15
    assert value(got, "bastion_gateway_overhead_seconds", "bastion_gateway_overhead_seconds_count",
                 gen_ai_operation_name="chat") == 3


def test_operation_and_provider_from_the_context_win() -> None:
    metrics = m.Metrics(settings())
    metrics.observe(chat(operation="text_completion", provider="vllm"))
    got = scrape(metrics)
    name = "gen_ai_client_operation_duration_seconds"
    assert value(got, name, name + "_count", gen_ai_operation_name="text_completion",
                 gen_ai_provider_name="vllm") == 1


def test_requests_that_are_not_genai_operations_are_not_counted() -> None:
    metrics = m.Metrics(settings())
    for path in ("/health/live", "/metrics", "/v1/models", "/api/deployments"):
        ctx = RequestContext("r", path, 1.0)
        ctx.finished_at = 1.001
        metrics.observe(ctx)
    assert scrape(metrics)["bastion_requests"] == []


def test_histogram_buckets_are_inclusive_and_cumulative() -> None:
    metrics = m.Metrics(settings())
    for duration in (0.005, 0.01, 0.015, 0.3, 100.0):  # 0.01 is a bound: le is inclusive
        metrics.observe(chat(0.0, duration=duration, prompt=None, completion=None))
    got = scrape(metrics)
    name = "gen_ai_client_operation_duration_seconds"
    buckets = {lab["le"]: v for s, lab, v in got[name] if s == name + "_bucket"}
    assert buckets["0.01"] == 2
    assert buckets["0.02"] == 3
    assert buckets["0.32"] == 4
    assert buckets["81.92"] == 4
    assert buckets["+Inf"] == 5 == value(got, name, name + "_count")
    assert list(buckets) == [*(repr(float(b)) for b in m.DURATION_BUCKETS), "+Inf"]
    assert value(got, name, name + "_sum") == pytest.approx(0.005 + 0.01 + 0.015 + 0.3 + 100)


def test_stream_timings_use_the_first_and_last_token() -> None:
    metrics = m.Metrics(settings())
    ctx = chat(stream=True, duration=2.0, completion=11)
    ctx.first_token_at = 100.05
    ctx.last_token_at = 101.05  # 10 tokens after the first in 1 s
    metrics.observe(ctx)
    broken = chat(stream=True, error="upstream dropped")
    broken.first_token_at = 100.01
    metrics.observe(broken)  # a broken stream has no token timings
    got = scrape(metrics)
    ttft, tpot = ("gen_ai_server_time_to_first_token_seconds",
                  "gen_ai_server_time_per_output_token_seconds")
    assert value(got, ttft, ttft + "_count") == 1
    assert value(got, ttft, ttft + "_sum") == pytest.approx(0.05)
    assert value(got, tpot, tpot + "_sum") == pytest.approx(0.1)
    assert value(got, tpot, tpot + "_bucket", le="0.1") == 1
    assert value(got, tpot, tpot + "_bucket", le="0.075") == 0
    assert value(got, "bastion_errors", model="chat", error_type="stream_error") == 1
    overhead = "bastion_gateway_overhead_seconds"
    # a stream's overhead is its time less the backend's, until the last event relayed
    # (or the headers, when none was): the generation is not the gateway's time
    assert value(got, overhead, overhead + "_sum") == pytest.approx(
        (2.0 - (101.05 - 100.001)) + (0.3 - (100.01 - 100.001)))


def test_cached_tokens_and_cost_from_the_deployments_price() -> None:
    models = [{"name": "gpu-a", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
               "alias": "chat", "pricing": {"input": 10.0, "output": 30.0, "cached": 1.0}},
              {"name": "free", "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
               "alias": "chat"}]
    metrics = m.Metrics(load_settings(env={}, overrides={"models": models}))
    ctx = RequestContext("r", "/v1/chat/completions", 1.0, model="chat", backend="gpu-a")
    ctx.finished_at = 1.2
    ctx.usage = {"prompt_tokens": 100, "completion_tokens": 3,
                 "prompt_tokens_details": {"cached_tokens": 64}}
    metrics.observe(ctx)
    free = chat()
    free.backend = "free"
    metrics.observe(free)  # no price: no cost
    got = scrape(metrics)
    # (100 - 64) * 10 + 64 * 1 + 3 * 30 = 514 USD per 1M tokens; the free one adds 0
    assert value(got, "bastion_cost_usd", model="chat") == pytest.approx(514e-6)
    assert value(got, "bastion_cached_tokens", model="chat") == 64


def test_label_values_are_escaped() -> None:
    metrics = m.Metrics(settings())
    odd = 'a "quoted"\\back\nslash'
    metrics.observe(chat(model=odd))
    text = metrics.scrape_from(metrics.snapshot())
    assert b'model="a \\"quoted\\"\\\\back\\nslash"' in text
    assert value(parse(text), "bastion_requests", model=odd) == 1
    assert m.escape_label('x"y') == 'x\\"y'


def test_guard_and_cache_families_exist_before_any_hit() -> None:
    metrics = m.Metrics(settings())
    text = metrics.scrape_from(metrics.snapshot())
    assert b"# TYPE bastion_guard_decisions_total counter" in text
    assert b"# TYPE bastion_cache_requests_total counter" in text
    got = parse(text)
    assert got["bastion_guard_decisions"] == [] and got["bastion_cache_requests"] == []
    metrics.guard_hit("pii", "redact")
    metrics.guard_hit("pii", "redact")
    metrics.cache("hit")
    got = scrape(metrics)
    assert value(got, "bastion_guard_decisions", scanner="pii", action="redact") == 2
    assert value(got, "bastion_cache_requests", result="hit") == 1


def test_process_resources_are_reported() -> None:
    metrics = m.Metrics(settings())
    got = scrape(metrics)
    me = str(metrics.pid)
    assert value(got, "bastion_process_resident_memory_bytes", worker=me) > 1 << 20
    assert value(got, "bastion_process_open_fds", worker=me) >= 3
    assert value(got, "bastion_process_cpu_seconds", worker=me) > 0
    assert value(got, "bastion_workers") == 1
    sample = sample_process()
    assert sample.cpu_seconds > 0 and sample.rss_bytes and sample.open_fds


def test_resources_missing_from_proc_are_left_out(tmp_path: Path) -> None:
    sample = sample_process(tmp_path)  # no statm, no fd/
    assert sample.rss_bytes is None and sample.open_fds is None and sample.cpu_seconds > 0


class FakeRouter:
    def __init__(self) -> None:
        backend = types.SimpleNamespace(ready=True)
        self.deployments = [
            types.SimpleNamespace(name="gpu-a", in_flight=3, state="open", backend=backend),
            types.SimpleNamespace(name="gpu-b", in_flight=1, state="half_open",
                                  backend=types.SimpleNamespace(ready=False)),
        ]
        self.routes = {"chat": types.SimpleNamespace(queue=[1, 2], deployments=self.deployments)}


def test_gauges_come_from_the_router() -> None:
    gw = types.SimpleNamespace(router=FakeRouter(), settings=settings())
    metrics = m.Metrics(settings(), gw)
    got = scrape(metrics)
    assert value(got, "bastion_queue_depth", model="chat") == 2
    assert value(got, "bastion_deployment_in_flight", deployment="gpu-a") == 3
    assert value(got, "bastion_deployment_breaker_state", deployment="gpu-a") == 2
    assert value(got, "bastion_deployment_breaker_state", deployment="gpu-b") == 1
    assert value(got, "bastion_deployment_ready", deployment="gpu-b") == 0


# ---------------------------------------------------------------------- GPUs
def test_no_pynvml_means_no_gpu_metrics() -> None:
    def missing(name: str) -> types.ModuleType:
        raise ImportError(name)

    gpus = Gpus(missing)
    assert not gpus.available and gpus.sample() == []
    metrics = m.Metrics(settings(), gpus=gpus)
    assert scrape(metrics)["bastion_gpu_utilization_ratio"] == []


def test_this_machine_without_a_gpu_reports_none() -> None:
    assert Gpus().sample() == []  # pynvml absent, or NVML finds no driver/device


class FakeNVMLError(Exception):
    pass


def fake_nvml(devices: int, fail_init: bool = False) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = FakeNVMLError  # type: ignore[attr-defined]

    def init() -> None:
        if fail_init:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def memory(h: int) -> Any:
        return types.SimpleNamespace(used=1 << 30, total=8 << 30)

    def utilization(h: int) -> Any:
        if h == 1:
            raise FakeNVMLError("Not Supported")
        return types.SimpleNamespace(gpu=37)

    nvml.nvmlInit = init  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetCount = lambda: devices  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetName = lambda h: b"Fake GPU"  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetUtilizationRates = utilization  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetMemoryInfo = memory  # type: ignore[attr-defined]
    return nvml


def test_nvml_without_a_driver_means_no_gpu_metrics() -> None:
    gpus = Gpus(lambda name: fake_nvml(1, fail_init=True))
    assert not gpus.available and gpus.sample() == []


def test_gpus_found_by_nvml_are_reported() -> None:
    metrics = m.Metrics(settings(), gpus=Gpus(lambda name: fake_nvml(2)))
    got = scrape(metrics)
    assert value(got, "bastion_gpu_utilization_ratio", gpu="0", name="Fake GPU") == 0.37
    assert [lab["gpu"] for _, lab, _ in got["bastion_gpu_utilization_ratio"]] == ["0"]
    assert value(got, "bastion_gpu_memory_used_bytes", gpu="1") == 1 << 30
    assert value(got, "bastion_gpu_memory_total_bytes", gpu="1") == 8 << 30


# ---------------------------------------------------------------------- several workers
class Workers:
    """Worker metrics sharing one directory; ``alive`` says which pids still run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.alive: set[int] = set()
        self.metrics: dict[int, m.Metrics] = {}

    def start(self, pid: int) -> m.Metrics:
        self.alive.add(pid)
        shared = m.SharedDir(self.path, pid, alive=lambda p: p in self.alive)
        shared.prepare()
        self.metrics[pid] = metrics = m.Metrics(settings(), shared=shared)
        return metrics

    def snapshot(self, pid: int) -> None:
        metrics = self.metrics[pid]
        assert metrics.shared is not None
        metrics.shared.write(metrics.snapshot())


def test_single_process_writes_no_files() -> None:
    assert m.shared_dir_for(settings()) is None
    shared = m.shared_dir_for(settings(server={"workers": 2}, home="/tmp/bastion-x"))
    assert shared is not None and shared.path.parent == Path("/tmp/bastion-x/metrics")


def test_scrape_merges_workers_and_keeps_a_dead_workers_counts(tmp_path: Path) -> None:
    workers = Workers(tmp_path / "sup-1")
    a, b, c = workers.start(101), workers.start(102), workers.start(103)
    for metrics, n in ((a, 1), (b, 2), (c, 4)):
        for _ in range(n):
            metrics.observe(chat(prompt=10, completion=1))
    c.guard_hit("pii", "block")
    workers.snapshot(102)
    workers.snapshot(103)
    got = parse(a.scrape_from(a.snapshot()))
    assert value(got, "bastion_requests", status="200") == 7
    assert value(got, "bastion_tokens", type="input") == 70
    assert value(got, "bastion_workers") == 3
    assert value(got, "bastion_process_open_fds", worker="103") > 0

    workers.alive.discard(103)  # worker 103 dies; its last snapshot is folded in
    for _ in range(2):
        got = parse(b.scrape_from(b.snapshot()))
        assert value(got, "bastion_requests", status="200") == 7, "no count went backwards"
        assert value(got, "bastion_guard_decisions", scanner="pii", action="block") == 1
        assert value(got, "bastion_workers") == 2, "a dead worker's gauges are dropped"
        assert [lab["worker"] for _, lab, _ in got["bastion_process_open_fds"]] == ["101", "102"]
    assert not (tmp_path / "sup-1" / "103.json").exists()
    assert (tmp_path / "sup-1" / "retired.json").exists()
    cpu = value(got, "bastion_cpu_seconds")
    assert cpu >= value(got, "bastion_process_cpu_seconds", worker="101"), "retired CPU kept"

    d = workers.start(104)  # its replacement
    d.observe(chat())
    got = parse(d.scrape_from(d.snapshot()))
    assert value(got, "bastion_requests", status="200") == 8


def test_a_fold_interrupted_before_the_unlink_is_not_counted_twice(tmp_path: Path) -> None:
    workers = Workers(tmp_path / "sup-1")
    a, b = workers.start(201), workers.start(202)
    b.observe(chat())
    workers.snapshot(202)
    saved = (tmp_path / "sup-1" / "202.json").read_bytes()
    workers.alive.discard(202)
    assert value(parse(a.scrape_from(a.snapshot())), "bastion_requests", status="200") == 1
    (tmp_path / "sup-1" / "202.json").write_bytes(saved)  # as if the unlink never happened
    assert value(parse(a.scrape_from(a.snapshot())), "bastion_requests", status="200") == 1


def test_what_a_scrape_reported_survives_the_scraping_workers_death(tmp_path: Path) -> None:
    workers = Workers(tmp_path / "sup-1")
    a, b = workers.start(301), workers.start(302)
    b.observe(chat())
    workers.snapshot(302)
    b.observe(chat())  # counted by b, not yet in its periodic snapshot
    assert value(parse(b.scrape_from(b.snapshot())), "bastion_requests", status="200") == 2
    workers.alive.discard(302)  # b is killed before its next periodic snapshot
    assert value(parse(a.scrape_from(a.snapshot())), "bastion_requests", status="200") == 2


def test_unreadable_snapshots_are_skipped(tmp_path: Path) -> None:
    workers = Workers(tmp_path / "sup-1")
    a = workers.start(401)
    workers.alive.add(402)
    (tmp_path / "sup-1" / "402.json").write_bytes(b"{not json")
    a.observe(chat())
    assert value(parse(a.scrape_from(a.snapshot())), "bastion_requests", status="200") == 1


def test_directories_of_dead_supervisors_are_removed(tmp_path: Path) -> None:
    (tmp_path / "sup-999").mkdir()
    (tmp_path / "sup-999" / "1.json").write_bytes(b"{}")
    (tmp_path / "sup-5").mkdir()
    shared = m.SharedDir(tmp_path / "sup-1", 10, alive=lambda pid: pid == 5)
    shared.prepare()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sup-1", "sup-5"]
    shutil.rmtree(tmp_path / "sup-5")


def test_snapshot_rows_round_trip_through_json() -> None:
    metrics = m.Metrics(settings())
    metrics.observe(chat(stream=True))
    state = m.State.from_json(orjson.loads(metrics.state.to_json(1)))
    assert state.rows == metrics.state.rows
    assert len(next(iter(state.rows.values()))) == m.ROW_SIZE


def test_an_older_snapshot_never_replaces_a_newer_one(tmp_path: Path) -> None:
    shared = m.SharedDir(tmp_path, 7)
    shared.prepare()
    shared.write(b'{"n": 2}', seq=2)  # a scrape's, reported
    shared.write(b'{"n": 1}', seq=1)  # the periodic write it overtook
    assert (tmp_path / "7.json").read_bytes() == b'{"n": 2}'


def test_dropped_traces_are_counted() -> None:
    metrics = m.Metrics(settings())
    metrics.traces_dropped(3)
    metrics.traces_dropped(2)
    assert value(scrape(metrics), "bastion_traces_dropped", "bastion_traces_dropped_total") == 5
