"""Params come from the params files and -S; metrics from the files the command writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import Workspace

READ_PARAMS = (
    "import json, yaml\n"
    "p = yaml.safe_load(open('params.yaml'))\n"
    "json.dump({'seen_lr': p['lr'], 'seen_depth': p['model']['depth']}, open('metrics.json', 'w'))\n"
)
PARAMS = "# learning rate, tuned by hand\nlr: 0.1   # keep small\nmodel:\n  depth: 3\n  name: resnet\n"


def test_overrides_reach_the_command_and_the_record_and_the_params_file_is_restored(ws: Workspace) -> None:
    ws.write("params.yaml", PARAMS)
    ws.write("train.py", READ_PARAMS)
    ws.commit_all()
    ws.freeze("metrics.json")
    ws.run("-n", "over", "-S", "lr=0.005", "-S", "model.depth=5", "-S", "+model.act=relu", "--", sys.executable, "train.py")
    assert (ws.root / "params.yaml").read_text() == PARAMS, "the user's params file, comments and all, is restored"
    assert ws.record("over", "params.json") == {"lr": 0.005, "model": {"depth": 5, "name": "resnet", "act": "relu"}}
    assert ws.record("over", "metrics.json") == {"seen_lr": 0.005, "seen_depth": 5}
    snapshot_params = ws.git("show", "refs/experiments/over:params.yaml")
    assert "0.005" in snapshot_params, "the run's tree holds the params file the command saw"
    assert ws.record("over", "run.json")["overrides"] == ["lr=0.005", "model.depth=5", "+model.act=relu"]


def test_override_values_are_parsed_as_yaml_scalars(ws: Workspace) -> None:
    ws.write("params.yaml", "a: 1\n")
    ws.freeze()
    ws.run("-n", "types", "-S", "+i=3", "-S", "+f=1e-3", "-S", "+b=true", "-S", "+s=adam", "-S", "+n=null", "-S", "+q='007'", "--", "true")
    params = ws.record("types", "params.json")
    assert params == {"a": 1, "i": 3, "f": 0.001, "b": True, "s": "adam", "n": None, "q": "007"}


def test_overrides_without_a_params_file_create_it_only_for_the_run(ws: Workspace) -> None:
    ws.freeze()
    ws.run("-n", "created", "-S", "lr=0.3", "--", "cat", "params.yaml")
    assert not (ws.root / "params.yaml").exists()
    assert ws.record("created", "params.json") == {"lr": 0.3}
    assert "lr: 0.3" in ws.git("show", "refs/experiments/created:.gitexp/stdout.log")


def test_params_files_from_the_config_are_merged_and_json_works(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "params: [conf/base.yaml, conf/extra.json]\nmetrics: out/scores.json\n")
    ws.write("conf/base.yaml", "lr: 0.1\nopt: {name: sgd, momentum: 0.9}\n")
    ws.write("conf/extra.json", '{"opt": {"name": "adam"}, "batch": 32}\n')
    ws.write("out/.keep", "")
    ws.freeze("out/scores.json")
    ws.run("-n", "multi", "-S", "batch=64", "-S", "lr=0.2", "--", "sh", "-c", "echo '{\"f1\": 0.5}' > out/scores.json")
    assert ws.record("multi", "params.json") == {"lr": 0.2, "opt": {"name": "adam", "momentum": 0.9}, "batch": 64}
    assert json.loads(ws.git("show", "refs/experiments/multi:conf/extra.json"))["batch"] == 64
    assert ws.record("multi", "metrics.json") == {"f1": 0.5}


def test_nested_metrics_flatten_to_dotted_names_and_yaml_metrics_are_read(ws: Workspace) -> None:
    ws.freeze("metrics.json", "metrics.yaml")
    ws.run(
        "-n", "nested", "--", "sh", "-c",
        "echo '{\"val\": {\"acc\": 0.9, \"loss\": 0.2}, \"epochs\": 3}' > metrics.json; printf 'test:\\n  acc: 0.8\\n' > metrics.yaml",
    )
    assert ws.record("nested", "metrics.json") == {"val.acc": 0.9, "val.loss": 0.2, "epochs": 3, "test.acc": 0.8}
    listed = ws.gitexp("list", "--json").json()
    assert listed[0]["metrics"]["val.acc"] == 0.9  # type: ignore[index]


def test_stale_metrics_from_an_earlier_run_are_not_recorded(ws: Workspace) -> None:
    ws.write("metrics.json", '{"acc": 0.99}\n')
    ws.freeze()
    result = ws.gitexp("run", "-n", "stale", "--", "false")
    assert result.code == 1
    assert ws.record("stale", "metrics.json") == {}
    assert "metrics.json was not updated by this run" in result.err


WRITE_METRICS = "import sys\nopen('metrics.json', 'wb').write(sys.argv[1].encode() + b'\\r\\n')\n"


def test_each_runs_tree_holds_the_metrics_file_its_command_wrote_and_checkout_gives_it_back(ws: Workspace) -> None:
    ws.write("train.py", WRITE_METRICS)
    ws.commit_all()
    ws.run("-n", "first", "--", sys.executable, "train.py", '{"acc":  0.5}')
    ws.run("-n", "second", "--", sys.executable, "train.py", '{"acc":  0.75}')
    assert ws.git("show", "refs/experiments/first:metrics.json") == '{"acc":  0.5}\n'
    assert ws.tree("refs/experiments/second")["metrics.json"][0] == "100644"
    assert ws.record("first", "metrics.json") == {"acc": 0.5}
    result = ws.gitexp("checkout", "first")
    assert result.code == 0, result.err
    assert (ws.root / "metrics.json").read_bytes() == b'{"acc":  0.5}\r\n', "the first run's own bytes, not the second's"


def test_a_metrics_file_the_command_did_not_write_stays_in_the_tree_as_snapshotted(ws: Workspace) -> None:
    ws.write("metrics.json", '{"acc": 0.1}\n', mode=0o755)
    ws.commit_all()
    ws.write("metrics.json", '{"acc": 0.2}\n')  # an uncommitted edit, made before the run
    ws.freeze()
    ws.run("-n", "untouched", "--", "true")
    assert ws.tree("refs/experiments/untouched")["metrics.json"] == ("100755", '{"acc": 0.2}\n')


def test_an_updated_tracked_metrics_file_keeps_its_mode_in_the_tree(ws: Workspace) -> None:
    ws.write("metrics.json", '{"acc": 0.1}\n', mode=0o755)
    ws.commit_all()
    ws.run("-n", "rewrote", "--", "sh", "-c", "echo '{\"acc\": 0.3}' > metrics.json")
    assert ws.tree("refs/experiments/rewrote")["metrics.json"] == ("100755", '{"acc": 0.3}\n')


def test_runs_of_a_parallel_sweep_each_hold_their_own_metrics_file(ws: Workspace) -> None:
    ws.write("params.yaml", "acc: 0\n")
    ws.write("train.py", "import yaml\nopen('scores.yaml', 'w').write(f\"acc: {yaml.safe_load(open('params.yaml'))['acc']}\\n\")\n")
    ws.write(".gitexp.yaml", "metrics: [scores.yaml]\n")
    ws.commit_all()
    ws.freeze()
    ws.run("-j", "2", "-S", "acc=0.25,0.5", "--", sys.executable, "train.py")
    for run in ws.gitexp("list", "--json").json():  # type: ignore[attr-defined]
        assert run["metrics"] == {"acc": run["params"]["acc"]}
        assert ws.git("show", f"{run['commit']}:scores.yaml") == f"acc: {run['params']['acc']}\n"


def test_a_malformed_metrics_file_is_reported_but_the_run_is_kept(ws: Workspace) -> None:
    ws.freeze("metrics.json")
    result = ws.gitexp("run", "-n", "badmetrics", "--", "sh", "-c", "echo 'not json' > metrics.json")
    assert result.code == 0
    assert "could not be read as metrics" in result.err
    assert ws.record("badmetrics", "metrics.json") == {}


def test_params_rewritten_by_a_killed_gitexp_are_restored_by_the_next_run(ws: Workspace) -> None:
    ws.write("params.yaml", PARAMS)
    ws.commit_all()
    ws.freeze()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitexp", "run", "-n", "doomed", "-S", "lr=9", "--", "sleep", "60"],
        cwd=ws.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 20
    while "lr: 9" not in (ws.root / "params.yaml").read_text() and time.time() < deadline:
        time.sleep(0.05)
    assert "lr: 9" in (ws.root / "params.yaml").read_text()
    os.killpg(proc.pid, signal.SIGKILL)  # gitexp and its command die without cleaning up
    proc.wait()
    result = ws.run("-n", "next", "--", "true")
    assert "restored params.yaml" in result.err
    assert (ws.root / "params.yaml").read_text() == PARAMS
    assert ws.record("next", "params.json")["lr"] == 0.1
    assert ws.record("doomed", "run.json")["status"] == "crashed"  # what the killed gitexp was recording
    assert ws.record("doomed", "params.json")["lr"] == 9


def test_an_edit_of_the_params_file_during_the_run_is_kept(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\n")
    ws.freeze("params.yaml")
    result = ws.run("-n", "edited", "-S", "lr=0.5", "--", "sh", "-c", "echo 'lr: 0.7  # my edit' > params.yaml")
    assert (ws.root / "params.yaml").read_text() == "lr: 0.7  # my edit\n"
    assert "your edit was kept" in result.err


def test_params_file_bytes_are_untouched_without_overrides(ws: Workspace) -> None:
    ws.write("params.yaml", PARAMS)
    ws.freeze()
    ws.run("-n", "plain", "--", "true")
    assert ws.record("plain", "params.json")["model"] == {"depth": 3, "name": "resnet"}


def test_runs_without_overrides_never_wait_for_each_other(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\n")
    ws.write(".gitexp.yaml", "metrics: []\n")  # runs sharing a metrics file are refused (test_finalize_faults.py)
    slow = subprocess.Popen(
        [sys.executable, "-m", "gitexp", "run", "-n", "slow", "--", "sleep", "3"], cwd=ws.root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    quick = ws.gitexp("run", "-n", "quick", "--", "true")
    assert quick.code == 0, quick.err
    assert slow.poll() is None, "the quick run did not wait for the slow one"
    assert slow.wait(timeout=30) == 0
    assert {"slow", "quick"} <= set(ws.runs())


def test_a_run_without_overrides_is_refused_while_another_run_holds_the_params_file_rewritten(ws: Workspace) -> None:
    ws.write("params.yaml", "epochs: 3\n")
    ws.commit_all()
    ws.freeze()
    slow = subprocess.Popen(
        [sys.executable, "-m", "gitexp", "run", "-n", "slow", "-S", "epochs=10", "--", "sleep", "60"],
        cwd=ws.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.time() + 20
        while "epochs: 10" not in (ws.root / "params.yaml").read_text() and time.time() < deadline:
            time.sleep(0.05)
        plain = ws.gitexp("run", "-n", "plain", "--", "touch", "ran")
        queued = ws.gitexp("run", "--queue", "-n", "queued", "--", "cat", "params.yaml")
    finally:
        os.killpg(slow.pid, signal.SIGINT)
        slow.wait(timeout=30)
    errors = [line for line in plain.err.splitlines() if line.startswith("gitexp: error:")]
    assert plain.code == 1 and len(errors) == 1 and "Traceback" not in plain.err, plain.err
    assert f"run 'slow', pid {slow.pid}" in errors[0] and "(params.yaml)" in errors[0] and "-j 1" in errors[0]
    assert not (ws.root / "ran").exists() and "plain" not in ws.runs()
    assert (ws.root / "params.yaml").read_text() == "epochs: 3\n"
    assert queued.code == 0, queued.err  # the advised way out: queued with the user's params, not the -S values
    assert ws.record("queued", "params.json") == {"epochs": 3}
    assert ws.git("show", "refs/experiments/queued:params.yaml") == "epochs: 3\n"


def test_an_override_keeps_the_types_of_the_other_keys_in_the_file(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\nclass_weights: {0: 1.0, 1: 5.0}\nmaybe: {null: 3}\n")
    ws.write("check.py", "import yaml\np = yaml.safe_load(open('params.yaml'))\nprint(p['class_weights'][1], p['maybe'][None], p['lr'])\n")
    ws.freeze()
    result = ws.run("-n", "typed", "-S", "lr=0.5", "-S", "class_weights.0=2.0", "--", sys.executable, "check.py")
    assert result.out.strip() == "5.0 3 0.5"
    assert ws.record("typed", "params.json")["class_weights"] == {"0": 2.0, "1": 5.0}


def test_an_override_writes_through_a_symlinked_params_file(ws: Workspace) -> None:
    ws.write("configs/exp1.yaml", "lr: 0.1\nepochs: 5\n")
    os.symlink("configs/exp1.yaml", ws.root / "params.yaml")
    ws.commit_all()
    ws.freeze()
    ws.run("-n", "linked", "-S", "lr=0.3", "--", "cat", "params.yaml")
    assert os.path.islink(ws.root / "params.yaml")
    assert (ws.root / "configs/exp1.yaml").read_text() == "lr: 0.1\nepochs: 5\n"
    tree = ws.tree("refs/experiments/linked")
    assert tree["params.yaml"] == ("120000", "configs/exp1.yaml")
    assert "lr: 0.3" in tree["configs/exp1.yaml"][1]
    assert "lr: 0.3" in ws.git("show", "refs/experiments/linked:.gitexp/stdout.log")


def test_a_params_file_linking_outside_the_repo_is_not_rewritten(ws: Workspace, tmp_path: object) -> None:
    outside = ws.root.parent / "shared-params.yaml"
    outside.write_text("lr: 0.1\n")
    os.symlink(outside, ws.root / "params.yaml")
    ws.freeze()
    result = ws.gitexp("run", "-S", "lr=0.3", "--", "touch", "ran")
    assert result.code == 1 and "outside the repository" in result.err
    assert outside.read_text() == "lr: 0.1\n" and not (ws.root / "ran").exists()


def test_override_of_an_unknown_key_is_refused_with_the_closest_key_and_of_a_mapping_refused(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\nmodel: {depth: 3}\n")
    ws.freeze()
    typo = ws.gitexp("run", "-n", "typo", "-S", "lrr=0.2", "--", "touch", "ran")
    assert typo.code == 1 and "-S lrr: no params file defines lrr; did you mean lr?" in typo.err
    assert not (ws.root / "ran").exists() and "typo" not in ws.runs()
    ws.may_change.add("file:params.yaml")
    added = ws.run("-n", "added", "-S", "+lrr=0.2", "--", "true")
    assert "lrr" not in added.err and ws.record("added", "params.json") == {"lr": 0.1, "model": {"depth": 3}, "lrr": 0.2}
    whole = ws.gitexp("run", "-S", "model=3", "--", "true")
    assert whole.code == 1 and "model is a mapping" in whole.err


def test_the_params_file_gets_its_mtime_back(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\n")
    os.utime(ws.root / "params.yaml", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    ws.freeze()
    ws.run("-S", "lr=0.2", "--", "true")
    assert (ws.root / "params.yaml").stat().st_mtime_ns == 1_500_000_000_000_000_000


def test_non_finite_metrics_are_recorded_as_strict_json(ws: Workspace) -> None:
    ws.freeze("metrics.json")
    ws.run("-n", "diverged", "--", sys.executable, "-c",
           "import json; json.dump({'loss': float('nan'), 'best': float('inf'), 'acc': 0.5}, open('metrics.json', 'w'))")

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    record = json.loads(ws.git("show", "refs/experiments/diverged:.gitexp/metrics.json"), parse_constant=refuse)
    assert record == {"loss": "NaN", "best": "Infinity", "acc": 0.5}
    listed = json.loads(ws.gitexp("list", "--json").out, parse_constant=refuse)
    assert listed[0]["metrics"]["loss"] == "NaN"
    assert "Infinity" in ws.gitexp("list").out


def test_concurrent_overrides_never_record_params_the_command_did_not_see(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\n")
    ws.write(".gitexp.yaml", "metrics: []\n")  # runs sharing a metrics file are refused (test_finalize_faults.py)
    ws.freeze()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gitexp", "run", "-n", f"c{i}", "-S", f"lr={i}", "--", "sh", "-c", "head -1 params.yaml; sleep 0.3"],
            cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(1, 5)
    ]
    outcomes = [(p.communicate(timeout=60), p.returncode) for p in procs]
    recorded = set(ws.runs())
    assert recorded, "at least one run gets through"
    for i, ((out, err), code) in enumerate(outcomes, start=1):
        if f"c{i}" in recorded:
            assert out.strip() == f"lr: {i}", "the command saw exactly the recorded override"
            assert ws.record(f"c{i}", "params.json") == {"lr": i}
        else:
            assert code == 1 and "has rewritten the params files" in err
    assert (ws.root / "params.yaml").read_text() == "lr: 0.1\n"
