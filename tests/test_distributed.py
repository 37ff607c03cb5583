"""Distributed training under `gitexp run`: rank 0 makes the series; other ranks only with all_ranks=True."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import Workspace

from gitexp.tracking import process_rank

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
SCRIPT = """\
import sys
import torch
import torch.distributed as dist
import gitexp

dist.init_process_group("gloo")
rank = dist.get_rank()
every = len(sys.argv) > 1
t = torch.ones(1)
for step in range(5):
    dist.all_reduce(t)
    gitexp.log({"loss": 1.0 / (step + 1) + rank}, step=step, all_ranks=every)
gitexp.summary({"rank_of_summary": rank})
dist.barrier()
dist.destroy_process_group()
"""


def _torchrun(ws: Workspace, name: str, *extra: str) -> dict[str, list[dict[str, object]]]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    result = ws.gitexp(
        "run", "-n", name, "--sample-interval", "0", "--", str(TORCHRUN), "--nproc_per_node", "2", "--standalone",
        "ddp.py", *extra, env=env, timeout=300,
    )
    assert result.code == 0, result.err
    series: dict[str, list[dict[str, object]]] = {}
    for line in ws.git("show", f"refs/experiments/{name}:.gitexp/steps.jsonl").splitlines():
        item = json.loads(line)
        for key, value in item["values"].items():
            series.setdefault(key, []).append({"step": item["step"], "value": value})
    return series


@pytest.mark.skipif(TORCHRUN is None, reason="torch (torchrun) is not installed: pip install torch==2.13.0")
def test_torchrun_two_ranks_make_one_series_of_rank_0s_points(ws: Workspace) -> None:
    ws.write("ddp.py", SCRIPT)
    ws.commit_all()
    series = _torchrun(ws, "ddp")
    assert list(series) == ["loss"]
    assert [p["step"] for p in series["loss"]] == [0, 1, 2, 3, 4]
    assert [p["value"] for p in series["loss"]] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert ws.record("ddp", "metrics.json") == {"loss": 0.2, "rank_of_summary": 0}
    every = _torchrun(ws, "ddp-all", "all")
    assert sorted(every) == ["loss", "loss@rank1"]
    assert len(every["loss"]) == 5 and [p["value"] for p in every["loss@rank1"]] == [2.0, 1.5, 1 + 1 / 3, 1.25, 1.2]


@pytest.mark.parametrize(
    ("env", "rank"),
    [({}, 0), ({"RANK": "3", "LOCAL_RANK": "1"}, 3), ({"LOCAL_RANK": "1"}, 1), ({"LOCAL_RANK": "1", "NODE_RANK": "1", "WORLD_SIZE": "4"}, 5), ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, 1),
     ({"RANK": "x"}, 0)],
)
def test_the_rank_comes_from_rank_else_local_rank_on_node_0(env: dict[str, str], rank: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert process_rank() == rank


PRINTING = """\
import os, torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
for step in range(3):
    print(f"step {step} loss={step + 10 * rank}", flush=True)
dist.barrier()
dist.destroy_process_group()
"""


@pytest.mark.skipif(TORCHRUN is None, reason="torch (torchrun) is not installed: pip install torch==2.13.0")
def test_printed_scalars_of_prefixed_ranks_are_taken_from_rank_0(ws: Workspace) -> None:
    ws.write("ddp.py", PRINTING)
    ws.commit_all()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    result = ws.gitexp(
        "run", "-n", "printed", "--scalars", "--sample-interval", "0", "--", str(TORCHRUN), "--nproc_per_node", "2",
        "--standalone", "--tee", "3", "ddp.py", env={**env, "OMP_NUM_THREADS": "1"}, timeout=300,
    )
    assert result.code == 0, result.err
    steps = [json.loads(line) for line in ws.git("show", "refs/experiments/printed:.gitexp/steps.jsonl").splitlines()]
    assert [(p["step"], p["values"]) for p in steps] == [(0, {"loss": 0.0}), (1, {"loss": 1.0}), (2, {"loss": 2.0})]


def test_rank_prefixes_keep_rank_0s_lines_only(tmp_path: Path) -> None:
    from gitexp.scalars import DEFAULT, ScalarCapture, compile_pattern

    out = tmp_path / "steps.jsonl"
    capture = ScalarCapture(compile_pattern(DEFAULT), out)
    capture.feed(b"[default1]:step 1 loss=9\n[default0]:step 1 loss=0.5\n[rank1]:step 2 loss=8\n[rank0]:step 2 loss=0.25\n", 1.0)
    capture.close(2.0)
    points = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(p["step"], p["values"]) for p in points] == [(1, {"loss": 0.5}), (2, {"loss": 0.25})]
