"""The hardware sampler measures a real process tree: CPU, memory, and GPU through nvidia-smi."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gitexp import sampler
from gitexp.sampler import Sampler

REPO = Path(__file__).resolve().parents[1]
HOLD_250MB = "import time\nb = bytearray(250 * 10**6)\nfor i in range(0, len(b), 4096): b[i] = 1\ntime.sleep(1.5)\n"
BUSY_GRANDCHILD = (
    "import subprocess, sys\n"
    "subprocess.run([sys.executable, '-c', 'import time\\nt = time.process_time()\\nwhile time.process_time() - t < 1: pass'])\n"
)
SLEEP = "import time\ntime.sleep(0.8)\n"


def sampled(
    code: str, out: Path, interval: float, env: dict[str, str] | None = None
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Run python code as a child under a Sampler, as `gitexp run` does; (summary, lines of out)."""
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    s = Sampler(proc.pid, out, interval)
    s.start()
    proc.wait()
    summary = s.stop()
    lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return summary, lines


def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return script


@pytest.fixture(autouse=True)
def no_real_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only a fake nvidia-smi is ever found, so results do not depend on the machine."""
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not _has_nvidia(p)))


def _has_nvidia(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, "nvidia-smi"))


def test_samples_the_memory_of_a_running_child_as_steps_lines(tmp_path: Path) -> None:
    out = tmp_path / "hw.jsonl"
    summary, lines = sampled(HOLD_250MB, out, interval=0.2)
    assert summary["peak_rss_mb"] >= 200
    assert summary["samples"] >= 2 and summary["samples"] == len(lines)
    assert 0 < summary["mean_rss_mb"] <= summary["peak_rss_mb"]
    assert max(line["values"]["rss_mb"] for line in lines) >= 200
    for line in lines:
        assert set(line) == {"step", "time", "values"} and line["step"] is None
        assert isinstance(line["time"], float) and abs(line["time"] - time.time()) < 60
        assert round(line["time"], 3) == line["time"]
        assert set(line["values"]) == {"cpu_percent", "rss_mb"}
    assert out.read_text().startswith('{"step":null,"time":')


# A process's ru_maxrss starts at its parent's size when forked and survives exec, so a sampler
# started straight from a big test runner (a pytest-xdist worker holds hundreds of MB) inherits a
# peak that hides its child's. Started from a small sh instead (which does not exec it), it starts
# as small as `gitexp run` does.
SMALL_PARENT = ["/bin/sh", "-c", '"$0" "$@"; status=$?; exit $status']


def test_a_child_too_short_to_sample_still_reports_its_peak_memory(tmp_path: Path) -> None:
    # In a fresh process, as under `gitexp run`: ru_maxrss of reaped children is a lifetime
    # maximum, which a bigger child reaped earlier by the test process would hide.
    code = (
        "import json, subprocess, sys\n"
        "from pathlib import Path\n"
        "from gitexp.sampler import Sampler\n"
        "proc = subprocess.Popen([sys.executable, '-c', 'b = b\"x\" * (220 * 10**6)'])\n"
        "s = Sampler(proc.pid, Path(sys.argv[1]), 5.0)\n"
        "s.start()\n"
        "proc.wait()\n"
        "print(json.dumps(s.stop()))\n"
    )
    result = subprocess.run(
        [*SMALL_PARENT, sys.executable, "-c", code, str(tmp_path / "hw.jsonl")],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    summary = json.loads(result.stdout)
    assert summary.get("peak_rss_mb", 0) >= 200, summary  # (seen once without the key, under xdist and load)
    assert summary["cpu_seconds"] > 0


def test_the_callers_wait4_rusage_gives_the_exact_peak(tmp_path: Path) -> None:
    # An earlier, bigger child keeps RUSAGE_CHILDREN's maxrss above this run's: only wait4's figures tell.
    # In a fresh interpreter: a child's peak counts only above its parent's own size (the fork's inheritance).
    code = (
        "import json, os, subprocess, sys\n"
        "from pathlib import Path\n"
        "from gitexp.sampler import Sampler\n"
        "subprocess.run([sys.executable, '-c', \"b = b'x' * (150 * 10**6)\"], check=True)\n"
        "proc = subprocess.Popen([sys.executable, '-c', \"b = b'x' * (60 * 10**6)\"])\n"
        "s = Sampler(proc.pid, Path(sys.argv[1]), 5.0)\n"
        "s.start()\n"
        "_, status, usage = os.wait4(proc.pid, 0)\n"
        "proc.returncode = os.waitstatus_to_exitcode(status)\n"
        "print(json.dumps([s.stop(usage), round(usage.ru_utime + usage.ru_stime, 2), s._spawn_rss_mb, usage.ru_maxrss]))\n"
    )
    result = subprocess.run([*SMALL_PARENT, sys.executable, "-c", code, str(tmp_path / "hw.jsonl")], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=True)
    summary, cpu, spawn, child = json.loads(result.stdout)
    child_mb = child * 1024 / 10**6
    if child_mb <= spawn * 1.02:  # the parent was as big as the child: wait4's peak cannot be told from inheritance
        # (a live reading of the child, when the machine was slow enough for one, is a true figure)
        assert "peak_rss_mb" not in summary or 60 <= summary["peak_rss_mb"] < 150, (summary, spawn, child)
    else:
        assert 60 <= summary["peak_rss_mb"] < 150, (summary, spawn, child)
    assert summary["cpu_seconds"] == pytest.approx(cpu, abs=0.05), (summary, cpu)  # a reading of the live tree may round it up


def test_cpu_time_of_a_grandchild_counts(tmp_path: Path) -> None:
    started = time.monotonic()
    summary, lines = sampled(BUSY_GRANDCHILD, tmp_path / "hw.jsonl", interval=0.2)
    wall = time.monotonic() - started
    assert summary["cpu_seconds"] >= 0.7
    # The share of a core the tree really had: all of one when the machine is idle, less when it is busy.
    share = summary["cpu_seconds"] / wall * 100
    assert summary["cpu_percent"] == pytest.approx(share, rel=0.2)
    assert summary["cpu_percent"] <= 100 * (os.cpu_count() or 1) + 10
    assert max(line["values"]["cpu_percent"] for line in lines) > 50 * min(1.0, share / 100)


def test_the_current_process_can_sample_itself(tmp_path: Path) -> None:
    out = tmp_path / "hw.jsonl"
    s = Sampler(os.getpid(), out, 0.1, include_self=True)
    s.start()
    data = bytes(10**6)
    # This thread's own time: the process's would count the sampler thread too, which the summary leaves out
    # (on a loaded machine its psutil import and readings took 0.14 s of the 0.6).
    t, started = time.thread_time(), time.monotonic()
    while time.thread_time() - t < 0.6:
        hashlib.sha256(data).digest()  # busy, but without the GIL, like numerical code
    share = (time.thread_time() - t) / (time.monotonic() - started)  # of a core: 1 when the machine is idle
    summary = s.stop()
    assert summary["cpu_seconds"] >= 0.5
    assert summary["samples"] >= 3
    assert summary["peak_rss_mb"] > 1
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert max(line["values"]["cpu_percent"] for line in lines) > 50 * min(1.0, share)


def test_a_block_too_short_to_sample_still_gets_one_reading(tmp_path: Path) -> None:
    s = Sampler(os.getpid(), tmp_path / "hw.jsonl", 5.0, include_self=True)
    s.start()
    summary = s.stop()
    assert summary["samples"] == 1 and summary["peak_rss_mb"] > 1  # the reading taken by stop()


def test_gpu_use_is_read_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, 'echo "0, 40, 1000"\necho "1, 60, 3000"\n')
    summary, lines = sampled(SLEEP, tmp_path / "hw.jsonl", interval=0.2)
    assert lines
    for line in lines:
        values = line["values"]
        assert values["gpu_util"] == 50.0
        assert values["gpu_mem_mb"] == 4194.3  # 4000 MiB
    assert summary["gpu_util_mean"] == 50.0
    assert summary["peak_gpu_mem_mb"] == 4194.3
    assert summary["gpu_seconds"] > 0  # two GPUs at 40% and 60%: one GPU-second per second


def test_only_the_gpus_visible_to_the_sampled_process_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, 'echo "0, 40, 1000"\necho "1, 60, 3000"\n')
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "1"}  # the child's environment, not ours
    summary, lines = sampled(SLEEP, tmp_path / "hw.jsonl", interval=0.2, env=env)
    assert lines and {line["values"]["gpu_util"] for line in lines} == {60.0}
    assert summary["gpu_util_mean"] == 60.0
    assert summary["peak_gpu_mem_mb"] == 3145.7


def test_a_failing_nvidia_smi_gives_no_gpu_figures_and_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    calls = tmp_path / "calls"
    fake_nvidia_smi(tmp_path, monkeypatch, f'echo x >> "{calls}"\necho "NVIDIA-SMI has failed"\nexit 1\n')
    summary, lines = sampled(SLEEP, tmp_path / "hw.jsonl", interval=0.1)
    assert len(lines) >= 4
    assert all(set(line["values"]) == {"cpu_percent", "rss_mb"} for line in lines)
    assert not any(key.startswith("gpu") or "gpu" in key for key in summary)
    assert calls.read_text().count("x") == sampler.GPU_MAX_FAILURES
    assert capfd.readouterr().err == ""


def test_a_hanging_nvidia_smi_is_killed_at_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, "exec sleep 30\n")
    monkeypatch.setattr(sampler, "GPU_TIMEOUT", 0.2)
    started = time.monotonic()
    summary, lines = sampled(SLEEP, tmp_path / "hw.jsonl", interval=0.1)
    assert time.monotonic() - started < 5
    assert lines and "gpu_util" not in summary


@pytest.mark.parametrize("pid", ["exited", "nonexistent"])
def test_a_process_that_is_gone_is_no_error(tmp_path: Path, pid: str, capfd: pytest.CaptureFixture[str]) -> None:
    if pid == "exited":
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        target = proc.pid
    else:
        target = 2**22 + 12345  # above Linux's largest pid_max
    out = tmp_path / "hw.jsonl"
    s = Sampler(target, out, 0.05)
    s.start()
    time.sleep(0.2)
    summary = s.stop()
    assert summary["samples"] == 0 and "peak_rss_mb" not in summary  # unknown, not 0
    assert not out.exists()
    assert s.stop() == summary  # stopping twice is harmless
    assert capfd.readouterr().err == ""


def test_stop_without_start_is_harmless(tmp_path: Path) -> None:
    summary = Sampler(os.getpid(), tmp_path / "hw.jsonl").stop()
    assert summary == {"cpu_seconds": 0.0, "cpu_percent": 0.0, "samples": 0}  # no peak: unknown, not 0
