"""Sample the hardware use of a process tree while it runs: CPU, memory and GPU.

A Sampler watches a process and all its descendants from a daemon thread, appends one
line per sample to a steps file ({"step": null, "time": ..., "values": {...}}) and
returns a summary when stopped. GPU figures come from nvidia-smi and are whole-device:
they include every process on the visible GPUs, not only the sampled tree.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil  # type: ignore[import-untyped]

DEFAULT_INTERVAL = 2.0
MIN_INTERVAL = 0.05
FIRST_SAMPLE = 0.5  # seconds from the first look at the tree to the first sample, at most
START_DELAY = 0.25  # before the first look at a child's tree
GPU_TIMEOUT = 5.0  # seconds nvidia-smi may take
GPU_MAX_FAILURES = 3  # consecutive failed nvidia-smi readings after which it is no longer asked
GPU_QUERY = ("--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits")
MB = 10**6
MB_PER_MIB = 1.048576
MAXRSS_BYTES = 1 if sys.platform == "darwin" else 1024  # unit of ru_maxrss: bytes on macOS, KiB on Linux


@dataclass(frozen=True)
class _GpuReading:
    util: float  # mean utilisation (%) of the visible GPUs
    busy: float  # summed utilisation, in GPUs (1.0 = one GPU fully used)
    mem_mb: float  # summed memory used


class Sampler:
    """Samples CPU, RSS and GPU use of the process tree rooted at pid, every interval seconds.

    include_self: the tree is this process and its children (the in-process API); this
    process's own rusage then counts too, and the sampler's own thread and nvidia-smi
    calls are left out. RSS is summed over the tree (pages shared between processes count
    once per process). GPU figures are whole-device, not per-process.
    """

    def __init__(self, pid: int, out: Path, interval: float = DEFAULT_INTERVAL, *, include_self: bool = False) -> None:
        self._pid = pid
        self._out = out
        self._interval = max(interval, MIN_INTERVAL)
        self._include_self = include_self
        self._own_tree = pid == os.getpid()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started: float | None = None  # time.monotonic() at start()
        self._usage0: tuple[resource.struct_rusage, resource.struct_rusage] | None = None
        self._spawn_rss_mb = 0.0
        self._summary: dict[str, float] | None = None
        self._tree: _Tree | None = None
        self._last = 0.0  # time.monotonic() of the last tree reading
        self._nvidia: str | None = None
        self._cuda_visible: str | None = None  # CUDA_VISIBLE_DEVICES of the sampled process
        self._gpu_failures = 0
        self._thread_cpu = 0.0  # CPU seconds of the sampling thread so far
        self._helper_cpu = 0.0  # CPU seconds of the nvidia-smi calls
        self._helper_maxrss = 0  # largest ru_maxrss of an nvidia-smi call
        self._overhead_counted = 0.0
        self._cpu_total = 0.0  # CPU seconds of the tree, summed over readings
        self._rss: list[float] = []  # MB, one per sample
        self._first_rss = 0.0  # MB, at the baseline reading
        self._gpu_util: list[float] = []
        self._gpu_seconds = 0.0
        self._gpu_peak_mb = 0.0

    def start(self) -> None:
        """Begin sampling in a daemon thread and return at once; never raises."""
        if self._started is not None:
            return
        self._started = time.monotonic()
        self._usage0 = _rusage()
        self._spawn_rss_mb = self._usage0[1].ru_maxrss * MAXRSS_BYTES / MB  # our own peak so far
        self._nvidia = shutil.which("nvidia-smi")
        if self._own_tree:  # here, not in the thread: there our own busy caller would slow the import down
            with contextlib.suppress(ImportError):
                importlib.import_module("psutil")
        thread = threading.Thread(target=self._run, name="gitexp-sampler", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: the rusage figures will still be there
            return
        self._thread = thread

    def stop(self, child_usage: resource.struct_rusage | None = None) -> dict[str, float]:
        """Stop the thread, take a last reading, and return the summary of the whole run.

        Keys: cpu_seconds, cpu_percent, peak_rss_mb, mean_rss_mb, samples, and, when a GPU
        was read, gpu_util_mean, gpu_seconds (GPU-seconds of full use) and peak_gpu_mem_mb.
        Call it after the sampled process was waited for: its reaped tree's rusage then counts.
        child_usage: that process's rusage from os.wait4, if the caller has it; it gives the
        exact CPU time and peak RSS of its tree, whatever other children this process reaped.
        """
        if self._summary is not None:
            return self._summary
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(Exception):  # a last reading is a bonus: the summary stands without it
            if self._tree is not None and (not self._rss or time.monotonic() - self._last >= MIN_INTERVAL):
                self._sample()
        usage = _rusage()
        self._summary = self._summarise(time.monotonic(), usage, child_usage)
        return self._summary

    def _run(self) -> None:
        cpu0 = time.thread_time()
        try:
            with contextlib.suppress(Exception):  # sampling must never disturb the run: stop quietly
                self._loop(cpu0)
        finally:
            self._thread_cpu = time.thread_time() - cpu0

    def _loop(self, cpu0: float) -> None:
        # A command that ends within the delay costs nothing: psutil is not even imported (gitexp run -- true).
        if not self._own_tree and self._stopping.wait(min(START_DELAY, self._interval / 2)):
            return
        import psutil

        try:
            root = psutil.Process(self._pid)
        except psutil.Error:
            return
        if not self._own_tree:
            try:
                self._cuda_visible = root.environ().get("CUDA_VISIBLE_DEVICES")
            except psutil.Error:  # an environment we may not read: assume it is ours
                self._cuda_visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        tree = _Tree(root)
        baseline = tree.read()  # what the tree used before now is not counted; its RSS is a first glimpse
        self._first_rss = baseline[1] / MB if baseline is not None else 0.0
        self._last = time.monotonic()
        self._tree = tree
        next_at = self._last + min(FIRST_SAMPLE, self._interval)
        while not self._stopping.wait(max(0.0, next_at - time.monotonic())):
            self._thread_cpu = time.thread_time() - cpu0
            self._sample()
            next_at += self._interval
            if next_at < time.monotonic():  # a slow reading (a busy GIL in the in-process API): skip a beat
                next_at = time.monotonic() + self._interval

    def _sample(self) -> None:
        """Read the tree (and GPUs), and append one line to the steps file; nothing if the tree is gone."""
        assert self._tree is not None
        reading = self._tree.read()
        if reading is None:
            return
        cpu, rss = reading
        now = time.monotonic()
        wall, self._last = now - self._last, now
        if self._own_tree:  # our thread and nvidia-smi calls are part of this process: leave them out
            overhead = self._thread_cpu + self._helper_cpu
            cpu = max(0.0, cpu - (overhead - self._overhead_counted))
            self._overhead_counted = overhead
        self._cpu_total += cpu
        self._rss.append(rss / MB)
        values = {"cpu_percent": round(cpu / wall * 100, 1) if wall > 0 else 0.0, "rss_mb": round(rss / MB, 1)}
        gpu = self._read_gpu()
        if gpu is not None:
            values["gpu_util"] = round(gpu.util, 1)
            values["gpu_mem_mb"] = round(gpu.mem_mb, 1)
            self._gpu_util.append(gpu.util)
            self._gpu_seconds += gpu.busy * wall
            self._gpu_peak_mb = max(self._gpu_peak_mb, gpu.mem_mb)
        line = json.dumps({"step": None, "time": round(time.time(), 3), "values": values}, separators=(",", ":"))
        with open(self._out, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _read_gpu(self) -> _GpuReading | None:
        if self._nvidia is None or self._gpu_failures >= GPU_MAX_FAILURES:
            return None
        cuda_visible = os.environ.get("CUDA_VISIBLE_DEVICES") if self._own_tree else self._cuda_visible
        visible = _visible_gpus(cuda_visible)
        if visible is not None and not visible:
            return None  # the process sees no GPU
        output = self._helper([self._nvidia, *GPU_QUERY])
        reading = None if output is None else _parse_gpus(output, visible)
        self._gpu_failures = 0 if reading is not None else self._gpu_failures + 1
        return reading

    def _helper(self, argv: list[str]) -> str | None:
        """The output of a short command (None if it fails or takes over GPU_TIMEOUT); its cost is noted."""
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:
            return None
        assert proc.stdout is not None
        deadline = time.monotonic() + GPU_TIMEOUT
        with proc.stdout:
            output = _read_all(proc.stdout.fileno(), deadline)
        try:
            # Reaped with wait4 for its rusage: the tree's and the summary's CPU and maxrss must not include it.
            status, usage = _reap(proc.pid, deadline if output is not None else 0.0)
        except ChildProcessError:  # reaped by someone else (os.wait() in the user's code)
            return None
        proc.returncode = os.waitstatus_to_exitcode(status)
        self._helper_cpu += usage.ru_utime + usage.ru_stime
        self._helper_maxrss = max(self._helper_maxrss, usage.ru_maxrss)
        if output is None or proc.returncode != 0:
            return None
        return output.decode("utf-8", "replace")

    def _own(self, child_peak_mb: float) -> float:
        """A child's peak RSS, unless it may be ours: a forked child's high-water mark starts at its parent's
        size before exec replaces it, so a peak below what this process had at spawn tells nothing (0)."""
        return child_peak_mb if child_peak_mb > self._spawn_rss_mb * 1.02 else 0.0

    def _summarise(
        self,
        ended: float,
        usage: tuple[resource.struct_rusage, resource.struct_rusage],
        child_usage: resource.struct_rusage | None,
    ) -> dict[str, float]:
        wall = 0.0 if self._started is None else ended - self._started
        cpu = self._cpu_total
        peak = max([self._first_rss, *self._rss])
        if self._usage0 is not None:
            (children0, self0), (children1, self1) = self._usage0, usage
            counted = _cpu(children1) - _cpu(children0) - self._helper_cpu
            # ru_maxrss of RUSAGE_CHILDREN is a lifetime maximum over every child ever reaped:
            # it tells about this run only if it grew during it (and not by an nvidia-smi call).
            if children1.ru_maxrss > max(children0.ru_maxrss, self._helper_maxrss):
                peak = max(peak, self._own(children1.ru_maxrss * MAXRSS_BYTES / MB))
            if self._include_self:
                counted += _cpu(self1) - _cpu(self0) - self._thread_cpu
                if self1.ru_maxrss > self0.ru_maxrss:
                    peak = max(peak, self1.ru_maxrss * MAXRSS_BYTES / MB)
            cpu = max(cpu, counted)
        if child_usage is not None:
            cpu = max(cpu, _cpu(child_usage))
            peak = max(peak, self._own(child_usage.ru_maxrss * MAXRSS_BYTES / MB))
        cpu = max(cpu, 0.0)
        summary: dict[str, float] = {
            "cpu_seconds": round(cpu, 2),
            "cpu_percent": round(cpu / wall * 100, 1) if wall > 0 else 0.0,
            "peak_rss_mb": round(peak, 1),
            "mean_rss_mb": round(sum(self._rss) / len(self._rss) if self._rss else peak, 1),
            "samples": len(self._rss),
        }
        if peak <= 0:  # ended before any reading, too small to tell from what it inherited: unknown, not 0
            del summary["peak_rss_mb"], summary["mean_rss_mb"]
        if self._gpu_util:
            summary["gpu_util_mean"] = round(sum(self._gpu_util) / len(self._gpu_util), 1)
            summary["gpu_seconds"] = round(self._gpu_seconds, 1)
            summary["peak_gpu_mem_mb"] = round(self._gpu_peak_mb, 1)
        return summary


def summarise_samples(system: bytes) -> dict[str, float]:
    """The summary of a run from its system.jsonl alone, for a run whose recorder died before stop().

    The same keys as Sampler.stop(), read off the samples: CPU-seconds and GPU-seconds are the
    percentages integrated over the time between samples, so they are estimates.
    """
    from gitexp.series import parse

    series = parse(system)
    rss = [p.value for p in series.get("rss_mb", [])]
    if not rss:
        return {}

    def integral(name: str) -> float:
        points = series.get(name, [])
        return sum(b.value / 100 * (b.time - a.time) for a, b in itertools.pairwise(points) if b.time > a.time)

    cpu = [p.value for p in series.get("cpu_percent", [])]
    summary: dict[str, float] = {
        "cpu_seconds": round(integral("cpu_percent"), 2),
        "cpu_percent": round(sum(cpu) / len(cpu), 1) if cpu else 0.0,
        "peak_rss_mb": round(max(rss), 1),
        "mean_rss_mb": round(sum(rss) / len(rss), 1),
        "samples": len(rss),
    }
    gpu = [p.value for p in series.get("gpu_util", [])]
    if gpu:
        summary["gpu_util_mean"] = round(sum(gpu) / len(gpu), 1)
        summary["gpu_seconds"] = round(integral("gpu_util"), 1)
        summary["peak_gpu_mem_mb"] = round(max(p.value for p in series.get("gpu_mem_mb", [])), 1)
    return summary


class _Tree:
    """A process and its descendants, with what each used at the last reading."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.procs: dict[int, psutil.Process] = {}  # kept across readings: one object per process
        self.totals: dict[int, float] = {}  # CPU seconds: its own plus its reaped children's
        self.reaped: dict[int, float] = {}  # CPU seconds of its reaped children
        self.parents: dict[int, int] = {}

    def read(self) -> tuple[float, int] | None:
        """(CPU seconds the tree used since the last reading, summed RSS in bytes); None if nothing was readable."""
        import psutil

        try:
            found = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            found = []
        procs: dict[int, psutil.Process] = {}
        totals: dict[int, float] = {}
        reaped: dict[int, float] = {}
        parents: dict[int, int] = {}
        rss = 0
        for new in found:
            known = self.procs.get(new.pid)
            proc = known if known is not None and known == new else new
            procs[proc.pid] = proc
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    mem = proc.memory_info().rss
                    ppid = proc.ppid()
            except psutil.Error:
                continue
            if proc is not known:  # a new process, or a new one under a reused pid
                self.totals.pop(proc.pid, None)
                self.reaped.pop(proc.pid, None)
            reaped[proc.pid] = getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
            totals[proc.pid] = times.user + times.system + reaped[proc.pid]
            parents[proc.pid] = ppid
            rss += mem
        if not totals:
            self.procs = procs
            return None
        used = sum(total - self.totals.get(pid, 0.0) for pid, total in totals.items())
        # A member that was reaped by another member moved its CPU time into that one's children
        # counters: take back what was already counted for it, once.
        budget = {pid: value - self.reaped.get(pid, 0.0) for pid, value in reaped.items()}
        for pid, last in self.totals.items():
            if pid not in procs:
                owner = self._reaper(pid, totals)
                if owner is not None:
                    take = min(last, budget[owner])
                    budget[owner] -= take
                    used -= take
        for pid in procs.keys() - totals.keys():  # listed but unreadable this time: keep what we knew
            if pid in self.totals:
                totals[pid], reaped[pid] = self.totals[pid], self.reaped[pid]
                parents[pid] = self.parents[pid]
        self.procs, self.totals, self.reaped, self.parents = procs, totals, reaped, parents
        return max(used, 0.0), rss

    def _reaper(self, pid: int, present: dict[int, float]) -> int | None:
        """The nearest ancestor of a vanished member that is still in the tree."""
        parent = self.parents.get(pid)
        for _ in range(len(self.parents) + 1):
            if parent is None or parent in present:
                return parent
            parent = self.parents.get(parent)
        return None


def _visible_gpus(value: str | None) -> frozenset[int] | None:
    """GPU indexes allowed by a CUDA_VISIBLE_DEVICES value: None for all (unset, or not a list of integers)."""
    if value is None:
        return None
    if not value.strip():
        return frozenset()
    try:
        return frozenset(int(item) for item in value.split(","))
    except ValueError:
        return None


def _parse_gpus(text: str, visible: frozenset[int] | None) -> _GpuReading | None:
    """nvidia-smi's 'index, utilization %, memory MiB' lines, over the visible GPUs; None if unreadable."""
    utils: list[float] = []
    mems: list[float] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 3:
            return None
        try:
            index, util, mem = int(fields[0]), float(fields[1]), float(fields[2])
        except ValueError:
            return None
        if not (math.isfinite(util) and math.isfinite(mem)):
            return None
        if visible is None or index in visible:
            utils.append(util)
            mems.append(mem)
    if not utils:
        return None
    return _GpuReading(util=sum(utils) / len(utils), busy=sum(utils) / 100, mem_mb=sum(mems) * MB_PER_MIB)


def _rusage() -> tuple[resource.struct_rusage, resource.struct_rusage]:
    return resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _read_all(fd: int, deadline: float) -> bytes | None:
    """Everything until end of file, or None at the deadline."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int, deadline: float) -> tuple[int, resource.struct_rusage]:
    """Wait for a child until the deadline, then kill it; its wait status and rusage."""
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return status, usage
        time.sleep(0.005)
