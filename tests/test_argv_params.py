"""Params on the command line: `{name}` placeholders, -S typos refused, log_params, reproduce, -j's share."""

from __future__ import annotations

import json
import os
import sys

from conftest import Workspace

PY = sys.executable
ECHO = "import json, sys; open('argv.json', 'w').write(json.dumps(sys.argv[1:]))\n"


def _project(ws: Workspace, params: str | None = "epochs: 3\n") -> None:
    ws.write("main.py", ECHO)
    if params is not None:
        ws.write("params.yaml", params)
    ws.write(".gitignore", "argv.json\n")
    ws.commit_all()


def _argv(ws: Workspace) -> list[str]:
    return json.loads((ws.root / "argv.json").read_text())  # type: ignore[no-any-return]


def test_placeholders_take_s_values_and_params_file_defaults_and_both_are_recorded(ws: Workspace) -> None:
    _project(ws)
    ws.freeze("argv.json")
    ws.run("-n", "t", "-S", "lr=1e-3", "--", PY, "main.py", "--lr", "{lr}", "--epochs", "{epochs}", "--x={{lr}}")
    assert _argv(ws) == ["--lr", "0.001", "--epochs", "3", "--x={lr}"]
    meta = ws.record("t", "run.json")
    assert meta["command"] == [PY, "main.py", "--lr", "{lr}", "--epochs", "{epochs}", "--x={{lr}}"]  # type: ignore[index]
    assert meta["argv"] == [PY, "main.py", "--lr", "0.001", "--epochs", "3", "--x={lr}"]  # type: ignore[index]
    assert ws.record("t", "params.json") == {"epochs": 3, "lr": 0.001}
    assert ws.tree("refs/experiments/t")["params.yaml"][1] == "epochs: 3\n", "a command-line param is not written into the file"


def test_a_command_without_placeholders_runs_verbatim_braces_and_all(ws: Workspace) -> None:
    _project(ws)
    ws.run("-n", "v", "--", PY, "main.py", "{}", "}}")
    assert _argv(ws) == ["{}", "}}"] and "argv" not in ws.record("v", "run.json")  # type: ignore[operator]


def test_an_argument_with_whitespace_is_code_and_never_a_template(ws: Workspace) -> None:
    _project(ws)
    code = "import json, sys; d = {'a': {'b': 1}}; open('argv.json', 'w').write(json.dumps([f'{d}'] + sys.argv[1:]))"
    ws.run("-n", "code", "-S", "lr=0.5", "--", PY, "-c", code, "{lr}", "{{x}}")
    assert _argv(ws) == ["{'a': {'b': 1}}", "0.5", "{x}"]


def test_a_placeholder_without_a_value_is_refused_before_the_command_starts(ws: Workspace) -> None:
    _project(ws)
    ws.freeze()
    result = ws.gitexp("run", "-S", "lr=0.1", "--", PY, "main.py", "--lr", "{lr}", "--e", "{epoch}")
    assert result.code == 1 and "{epoch} but no value" in result.err and "did you mean epochs" in result.err
    assert not (ws.root / "argv.json").exists() and not ws.runs()


def test_a_sweep_and_seed_repeats_fill_the_placeholders_of_each_run(ws: Workspace) -> None:
    _project(ws)
    ws.run("-S", "lr=0.1,0.01", "--repeat", "2", "--seed-param", "seed", "--", PY, "main.py", "--lr", "{lr}", "--seed", "{seed}")
    runs = json.loads(ws.gitexp("list", "--json").out)
    assert sorted(r["params"]["lr"] for r in runs) == [0.01, 0.01, 0.1, 0.1]
    for run in runs:
        meta = ws.record(run["name"], "run.json")
        argv = meta["argv"]  # type: ignore[index]
        assert argv[-4:] == ["--lr", json.dumps(run["params"]["lr"]), "--seed", str(run["params"]["seed"])]
    assert (ws.root / "params.yaml").read_text() == "epochs: 3\n"


def test_random_draws_fill_the_placeholders(ws: Workspace) -> None:
    _project(ws)
    ws.run("--random", "2", "--random-seed", "7", "-S", "lr=loguniform(1e-4,1e-1)", "-S", "bs=randint(1,8)",
           "--", PY, "main.py", "--lr", "{lr}", "--bs", "{bs}")
    for run in json.loads(ws.gitexp("list", "--json").out):
        lr, bs = run["params"]["lr"], run["params"]["bs"]
        assert 1e-4 <= lr <= 1e-1 and 1 <= bs <= 8
        assert ws.record(run["name"], "run.json")["argv"][-4:] == ["--lr", json.dumps(lr), "--bs", str(bs)]  # type: ignore[index]


def test_parallel_runs_get_their_values_and_their_share_of_the_cores(ws: Workspace) -> None:
    _project(ws)
    script = ("import json, os, sys; names = ['OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', "
              "'NUMEXPR_NUM_THREADS', 'VECLIB_MAXIMUM_THREADS', 'CUDA_VISIBLE_DEVICES']; "
              "print(json.dumps({'argv': sys.argv[1:], **{n: os.environ.get(n) for n in names}}))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}
    env["MKL_NUM_THREADS"] = "7"  # the user's own setting is kept
    env["CUDA_VISIBLE_DEVICES"] = "3,5"  # two visible GPUs: one each
    result = ws.gitexp("run", "-j", "2", "-S", "lr=0.1,0.2", "--", PY, "-c", script, "{lr}", env=env)
    assert result.code == 0, result.err
    share = str(max(1, (os.cpu_count() or 1) // 2))
    seen = []
    for run in json.loads(ws.gitexp("list", "--json").out):
        out = json.loads(ws.gitexp("logs", run["name"]).out)
        assert out["argv"] == [json.dumps(run["params"]["lr"])]
        assert [out[n] for n in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")] == [share] * 4
        assert out["MKL_NUM_THREADS"] == "7"
        recorded = ws.record(run["name"], "env.json")["env"]  # type: ignore[index]
        assert recorded["OMP_NUM_THREADS"] == share and recorded["CUDA_VISIBLE_DEVICES"] == out["CUDA_VISIBLE_DEVICES"]
        seen.append(out["CUDA_VISIBLE_DEVICES"])
    assert sorted(seen) == ["3", "5"]


def test_a_typo_in_s_is_refused_with_the_closest_key_unless_added_with_plus(ws: Workspace) -> None:
    _project(ws, "lr: 0.1\noptim: {momentum: 0.9}\n")
    ws.freeze()
    typo = ws.gitexp("run", "-S", "lrr=0.2", "--", PY, "main.py")
    assert typo.code == 1 and "did you mean lr?" in typo.err and not ws.runs()
    nested = ws.gitexp("run", "-S", "optim.momentun=0.8", "--", PY, "main.py")
    assert nested.code == 1 and "did you mean optim.momentum?" in nested.err
    sweep = ws.gitexp("run", "-S", "lrr=0.2,0.3", "--", PY, "main.py")
    assert sweep.code == 1 and "did you mean lr?" in sweep.err and not ws.runs()
    ws.may_change |= {"file:params.yaml", "file:argv.json"}
    ws.run("-n", "added", "-S", "+wd=0.01", "-S", "e=2", "--", PY, "main.py", "{e}")
    assert ws.record("added", "params.json") == {"lr": 0.1, "optim": {"momentum": 0.9}, "wd": 0.01, "e": 2}
    assert _argv(ws) == ["2"]


def test_log_params_records_the_scripts_values_over_the_params_files(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\nbatch: 8\n")
    ws.write("train.py", (
        "import argparse, gitexp\n"
        "p = argparse.ArgumentParser(); p.add_argument('--lr', type=float, default=0.5); p.add_argument('--layers', default=[1, 2])\n"
        "args = p.parse_args([])\n"
        "gitexp.log_params(args)\n"
        "gitexp.log_params({'model': {'depth': 4, 'path': __import__('pathlib').Path('m.pt')}})\n"
    ))
    ws.commit_all()
    result = ws.run("-n", "lp", "-S", "lr=0.2", "--", PY, "train.py")
    assert "-S lr=0.2 but the script logged lr=0.5" in result.err
    assert ws.record("lp", "params.json") == {"lr": 0.5, "batch": 8, "layers": [1, 2], "model": {"depth": 4, "path": "m.pt"}}
    run = json.loads(ws.gitexp("list", "--json").out)[0]
    assert run["params"]["lr"] == 0.5 and run["params"]["model.depth"] == 4


def test_log_params_under_gitexp_start(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\n")
    ws.commit_all()
    script = "import gitexp\nwith gitexp.start(name='s'):\n    gitexp.log_params({'hidden': 64})\n"
    ws.write("s.py", script)
    proc = __import__("subprocess").run([PY, "s.py"], cwd=ws.root, capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 0, proc.stderr
    assert ws.record("s", "params.json") == {"lr": 0.1, "hidden": 64}


def test_reproduce_gives_the_same_call_and_capture_settings_back(ws: Workspace) -> None:
    ws.write("main.py", "import sys\nprint(f'loss={float(sys.argv[1]) * 2}')\n")
    ws.write("params.yaml", "epochs: 3\n")
    ws.write("data/in.txt", "x\n")
    ws.commit_all()
    ws.run("-n", "orig", "--scalars", "--sample-interval", "0", "-d", "data", "-o", "out.txt", "-S", "lr=0.25",
           "--", PY, "main.py", "{lr}", "{epochs}")
    assert ws.record("orig", "metrics.json") == {"loss": 0.5}
    result = ws.gitexp("reproduce", "orig", "--yes")
    assert result.code == 0, result.err
    meta = ws.record("orig-repro-1", "run.json")
    assert meta["argv"] == [PY, "main.py", "0.25", "3"]  # type: ignore[index]
    assert meta["scalars"] == "default" and meta["sample_interval"] == 0  # type: ignore[index]
    assert meta["data"] == ["data"] and meta["outputs"] == ["out.txt"]  # type: ignore[index]
    assert ws.record("orig-repro-1", "metrics.json") == {"loss": 0.5}
    assert "inputs" in ws.record("orig-repro-1", "data.json")  # type: ignore[operator]


def test_log_params_takes_a_resolved_omegaconf_dictconfig(ws: Workspace) -> None:
    import pytest

    pytest.importorskip("omegaconf", reason="omegaconf (Hydra's config) is not installed")
    ws.write("conf/config.yaml", "lr: 0.1\nmodel: {depth: 2, width: '${model.depth}'}\n")
    ws.write(".gitexp.yaml", "params: [conf/config.yaml]\n")
    ws.write("train.py", (
        "import gitexp\nfrom omegaconf import OmegaConf\n"
        "cfg = OmegaConf.load('conf/config.yaml')\n"
        "gitexp.log_params(cfg)\n"
    ))
    ws.commit_all()
    ws.run("-n", "hydra", "-S", "model.depth=5", "--", PY, "train.py")
    assert ws.record("hydra", "params.json") == {"lr": 0.1, "model": {"depth": 5, "width": 5}}
