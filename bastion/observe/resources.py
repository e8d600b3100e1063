"""Resource sampling for the metrics: this process's CPU, memory and file descriptors, and
the host's GPUs through NVML when ``pynvml`` is importable and finds a GPU.

Nothing here runs per request: the metrics sample it about once a second (off the hot
path) and at each scrape. Where a figure is not available (no ``/proc``, no GPU), it is
left out rather than reported as zero.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger("bastion.metrics")

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True, slots=True)
class ProcessSample:
    cpu_seconds: float  # user + system, this process only
    rss_bytes: int | None  # resident set size (None: unknown on this platform)
    open_fds: int | None


def sample_process(proc: Path = Path("/proc/self")) -> ProcessSample:
    times = os.times()
    return ProcessSample(times.user + times.system, _rss(proc), _open_fds(proc))


def _rss(proc: Path) -> int | None:
    try:
        fields = (proc / "statm").read_text().split()
    except OSError:
        return None
    return int(fields[1]) * _PAGE_SIZE


def _open_fds(proc: Path) -> int | None:
    try:
        return len(os.listdir(proc / "fd"))
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class GpuSample:
    index: int
    name: str
    utilization: float | None  # 0..1 over NVML's last sample period
    memory_used: int | None  # bytes
    memory_total: int | None


class Gpus:
    """The host's NVIDIA GPUs, or none: ``pynvml`` missing, no driver or no device leaves
    ``available`` False and ``sample()`` empty, for good (checked once, on first use)."""

    def __init__(self, load: Callable[[str], ModuleType] = importlib.import_module) -> None:
        self._load = load
        self._nvml: Any = None
        self._error: type[BaseException] = OSError
        self._count = 0
        self._checked = False

    @property
    def available(self) -> bool:
        self._check()
        return self._count > 0

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        try:
            nvml = self._load("pynvml")
        except ImportError:
            return  # no pynvml: no GPU metrics
        error = getattr(nvml, "NVMLError", None)
        self._error = error if isinstance(error, type) else OSError
        try:
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
        except (self._error, OSError) as exc:  # no driver, no device
            log.info("no GPU metrics: NVML unavailable (%s)", exc)
            return
        self._nvml, self._count = nvml, count

    def sample(self) -> list[GpuSample]:
        self._check()
        nvml = self._nvml
        out: list[GpuSample] = []
        for index in range(self._count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
            except self._error:
                continue
            out.append(GpuSample(
                index,
                name.decode() if isinstance(name, bytes) else str(name),
                self._query(lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu / 100, handle),
                self._query(lambda h: int(nvml.nvmlDeviceGetMemoryInfo(h).used), handle),
                self._query(lambda h: int(nvml.nvmlDeviceGetMemoryInfo(h).total), handle),
            ))
        return out

    def _query(self, read: Callable[[Any], Any], handle: Any) -> Any:
        try:
            return read(handle)
        except self._error:  # e.g. not supported on this device
            return None
