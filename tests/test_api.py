"""The Python read API (gitexp.runs, gitexp.run, gitexp.groups): the CLI's answers as objects and DataFrames."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Workspace, git, gitexp

import gitexp as gx
from gitexp.api import Runs
from gitexp.errors import GitexpError

PY = sys.executable
ACC = {0.1: 0.80, 0.2: 0.93, 0.3: 0.91}
SCRIPT = f"""import gitexp
p = gitexp.params()
for step in range(4):
    gitexp.log({{"loss": p["lr"] / (step + 1)}}, step=step * 10)
open("model.bin", "w").write("weights %s seed %s" % (p["lr"], p["seed"]))
gitexp.summary({{"acc": {ACC!r}[p["lr"]] + p["seed"] / 1000}})
"""


@pytest.fixture
def trained(ws: Workspace, tmp_path: Path) -> Workspace:
    """lr 0.1/0.2/0.3 x seeds 1,2 (a sweep), then 'solo' (lr 0.2, seed 3, tagged and noted), model.bin an output."""
    ws.write(".gitexp.yaml", f"outputs: [model.bin]\nremotes:\n  shared: {tmp_path / 'datastore'}\n")
    ws.write(".gitignore", "model.bin\n")
    ws.write("params.yaml", "lr: 0.1\nseed: 0\n")
    ws.write("train.py", SCRIPT)
    ws.commit_all("base")
    ws.run("-S", "lr=0.1,0.2,0.3", "--repeat", "2", "--seeds", "1,2", "--seed-param", "seed", "--", PY, "train.py")
    ws.run("-n", "solo", "-S", "lr=0.2", "-S", "seed=3", "--tag", "keep", "--", PY, "train.py")
    assert ws.gitexp("note", "solo", "the one to keep").code == 0
    return ws


def test_runs_with_where_sort_and_limit_are_exactly_what_gitexp_list_json_prints(trained: Workspace) -> None:
    for where, sort, limit in (
        (None, None, None),
        ("metrics.acc > 0.9", "-metrics.acc", 3),
        ("params.lr = 0.2", "name", None),
        ("metrics.acc > 5", None, None),
    ):
        args = [a for a in (("-w", where) if where else ()) + (("-s", sort) if sort else ()) + (("-l", str(limit)) if limit else ())]
        listed = trained.gitexp("list", "--json", *args)
        assert listed.code == 0, listed.err
        found = gx.runs(where=where, sort=sort, limit=limit, repo=trained.root)
        assert found.to_dicts() == json.loads(listed.out)
        assert [r.name for r in found] == [d["name"] for d in json.loads(listed.out)]
    best = gx.runs(where="metrics.acc > 0.9", sort="-metrics.acc", limit=20, repo=trained.root)
    assert [r.metrics["acc"] for r in best] == sorted((r.metrics["acc"] for r in best), reverse=True)
    assert best[0].params == {"lr": 0.2, "seed": 3} and best[0].name == "solo"
    assert isinstance(best[:2], Runs) and len(best[:2]) == 2
    nothing = gx.runs(where="metrics.acc > 5", repo=trained.root)
    assert len(nothing) == 0
    misspelt = gx.runs(where="metrics.accuracy > 0.5", repo=trained.root)
    assert len(misspelt) == 0 and any("accuracy" in p for p in misspelt.problems)  # the CLI's hint, as data


def test_a_run_has_its_recorded_values_as_plain_python(trained: Workspace) -> None:
    solo = gx.run("solo", repo=trained.root)
    assert (solo.name, solo.status, solo.exit_code, solo.tags, solo.note) == ("solo", "completed", 0, ("keep",), "the one to keep")
    assert solo.params == {"lr": 0.2, "seed": 3}
    assert solo.metrics["acc"] == pytest.approx(0.933) and solo.metrics["loss"] == pytest.approx(0.05)
    assert solo.commit == trained.runs()["solo"]
    assert solo.started.tzinfo is not None and solo.duration is not None and solo.duration > 0
    parent = solo.parent_run()
    assert parent is not None and solo.parent == parent.commit  # the sweep's last run came before it
    shown = trained.gitexp("show", "solo", "--json").json()
    assert solo.details() == shown
    assert solo.stdout() == b"" and solo.to_dict()["name"] == "solo"


def test_run_finds_a_run_by_name_commit_prefix_alias_and_latest(trained: Workspace) -> None:
    commit = trained.runs()["solo"]
    assert trained.gitexp("alias", "solo", "production").code == 0
    for spec in ("solo", commit[:8], "production", "latest"):
        assert gx.run(spec, repo=trained.root).commit == commit, spec
    with pytest.raises(GitexpError, match="no run matches"):
        gx.run("nope", repo=trained.root)


def test_to_pandas_has_one_row_per_run_with_params_and_metrics_columns(trained: Workspace) -> None:
    pd = pytest.importorskip("pandas")
    found = gx.runs(sort="name", repo=trained.root)
    df = found.to_pandas()
    assert list(df["name"]) == found.names and len(df) == 7
    for column in ("name", "status", "started", "duration", "commit", "parent", "tags", "note",
                   "params.lr", "params.seed", "metrics.acc", "metrics.loss"):
        assert column in df.columns, column
    assert str(df["started"].dt.tz) == "UTC" and df["duration"].dtype == "float64"
    assert df["metrics.acc"].dtype == "float64" and df["params.lr"].dtype == "float64"
    solo = df[df["name"] == "solo"].iloc[0]
    assert solo["tags"] == ("keep",) and solo["note"] == "the one to keep" and solo["metrics.acc"] == pytest.approx(0.933)
    assert pd.Timestamp(solo["started"]) == pd.Timestamp(gx.run("solo", repo=trained.root).started)


def test_series_gives_the_logged_steps_and_a_frame(trained: Workspace) -> None:
    solo = gx.run("solo", repo=trained.root)
    loss = solo.series("loss")
    assert loss.steps == [0, 10, 20, 30] and loss.values == pytest.approx([0.2, 0.1, 0.2 / 3, 0.05])
    assert "loss" in solo.all_series()
    with pytest.raises(GitexpError, match="no step series 'accuracy'.*loss"):
        solo.series("accuracy")
    pytest.importorskip("pandas")
    frame = loss.to_pandas()
    assert list(frame.columns) == ["step", "time", "value"] and list(frame["step"]) == [0, 10, 20, 30]
    assert frame["value"].tolist() == pytest.approx(loss.values) and str(frame["time"].dt.tz) == "UTC"


def test_read_bytes_reads_code_and_outputs_from_the_cache(trained: Workspace) -> None:
    solo = gx.run("solo", repo=trained.root)
    assert solo.read_bytes("train.py").decode() == SCRIPT
    assert solo.read_bytes("params.yaml") == b"lr: 0.2\nseed: 3\n"  # the params the run ran with
    assert solo.read_text("model.bin") == "weights 0.2 seed 3"
    with pytest.raises(GitexpError, match="no file or directory"):
        solo.read_bytes("missing.txt")
    with pytest.raises(GitexpError, match="invalid path"):
        solo.read_bytes("../etc/passwd")


def test_read_bytes_in_a_fresh_clone_fetches_the_output_from_the_data_remote(trained: Workspace, tmp_path: Path) -> None:
    ws = trained
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    ws.git("remote", "add", "origin", str(origin))
    ws.git("push", "-q", "origin", "main")
    assert ws.gitexp("remote", "trust", "shared").code == 0
    pushed = ws.gitexp("push", "origin")
    assert pushed.code == 0, pushed.err
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    git(clone, "fetch", "-q", "origin", "refs/experiments/*:refs/experiments/*")
    assert gx.run("solo", repo=clone).read_bytes("model.bin") == b"weights 0.2 seed 3"
    assert git(clone, "status", "--porcelain") == ""


def test_runs_reads_a_bare_repository_given_by_path(trained: Workspace, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--bare", str(trained.root), str(mirror))
    git(mirror, "fetch", "-q", "origin", "refs/experiments/*:refs/experiments/*")
    here = gx.runs(sort="name", repo=trained.root)
    there = gx.runs(sort="name", repo=mirror)
    assert there.names == here.names
    assert gx.run("solo", repo=mirror).read_bytes("train.py").decode() == SCRIPT
    assert [g.n for g in gx.groups(by="params.lr", repo=mirror)] == [2, 3, 2]
    with pytest.raises(GitexpError, match="not inside a git repository"):
        gx.runs(repo=tmp_path / "nowhere")


def test_checkout_into_writes_the_runs_files_and_leaves_the_workspace_alone(trained: Workspace, tmp_path: Path) -> None:
    trained.freeze()
    into = gx.run("solo", repo=trained.root).checkout(into=tmp_path / "copy")
    assert into == (tmp_path / "copy").resolve()
    assert (into / "model.bin").read_text() == "weights 0.2 seed 3"
    assert (into / "params.yaml").read_text() == "lr: 0.2\nseed: 3\n" and (into / "train.py").read_text() == SCRIPT
    with pytest.raises(GitexpError, match="not an empty directory"):
        gx.run("solo", repo=trained.root).checkout(into=into)


def test_groups_are_the_group_by_statistics_as_objects_and_a_frame(trained: Workspace) -> None:
    listed = trained.gitexp("list", "--group-by", "config", "--where", "name != 'solo'", "--json")
    assert listed.code == 0, listed.err
    found = gx.groups(by="config", where="name != 'solo'", repo=trained.root)
    assert found.to_dicts() == json.loads(listed.out)
    assert [g.key for g in found] == [{"config": "lr=0.1"}, {"config": "lr=0.2"}, {"config": "lr=0.3"}]
    second = found[1]
    assert second.n == 2 and sorted(second.runs.names) == sorted(r.name for r in second.runs)
    assert second.stats["acc"].mean == pytest.approx(0.93 + 0.0015)
    by_lr = gx.groups(by=["params.lr"], sort="-metrics.acc", limit=1, repo=trained.root)
    assert [g.key for g in by_lr] == [{"params.lr": 0.2}] and by_lr[0].n == 3  # solo joins lr=0.2
    pytest.importorskip("pandas")
    df = found.to_pandas()
    assert list(df["config"]) == ["lr=0.1", "lr=0.2", "lr=0.3"] and list(df["n"]) == [2, 2, 2]
    assert df["metrics.acc.mean"].tolist() == pytest.approx([g.stats["acc"].mean for g in found])
    assert {"metrics.acc.sem", "metrics.acc.std", "metrics.acc.min", "metrics.acc.max", "metrics.acc.n"} <= set(df.columns)
    assert callable(gx.groups) and not math.isnan(df["metrics.acc.sem"][0])  # still the function after grouping ran


def test_errors_are_gitexp_errors(trained: Workspace) -> None:
    for call in (
        lambda: gx.runs(where="metrics.acc >", repo=trained.root),
        lambda: gx.runs(sort="nosuchfield", repo=trained.root),
        lambda: gx.runs(limit=0, repo=trained.root),
        lambda: gx.groups(by="", repo=trained.root),
        lambda: gx.run("0000000", repo=trained.root),
    ):
        with pytest.raises(GitexpError):
            call()


def test_to_pandas_without_pandas_says_how_to_install_it(trained: Workspace) -> None:
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import gitexp\n"
        "from gitexp.errors import GitexpError\n"
        f"runs = gitexp.runs(repo={str(trained.root)!r})\n"
        "assert len(runs) == 7\n"
        f"for thing in (runs, runs[0].series('loss'), gitexp.groups(repo={str(trained.root)!r})):\n"
        "    try:\n"
        "        thing.to_pandas()\n"
        "    except GitexpError as exc:\n"
        "        print(exc)\n"
    )
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["to_pandas() needs pandas: pip install 'gitexp[pandas]'"] * 3


def test_importing_gitexp_imports_nothing_heavy() -> None:
    code = "import sys; before = set(sys.modules); import gitexp; print('\\n'.join(sorted(set(sys.modules) - before)))"
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    heavy = {"pandas", "numpy", "pygit2", "yaml", "click", "tabulate", "xxhash", "psutil", "gitexp.api", "gitexp.tracking",
             "gitexp.store", "json", "datetime"}
    assert not loaded & heavy, loaded & heavy
    assert {m for m in loaded if m.startswith("gitexp")} == {"gitexp"}


def test_the_cli_and_the_api_answer_from_a_subdirectory_alike(trained: Workspace) -> None:
    sub = trained.root / "deeper"
    sub.mkdir()
    listed = gitexp(sub, "list", "--json", "-s", "name")
    assert [d["name"] for d in json.loads(listed.out)] == gx.runs(sort="name", repo=sub).names
