"""Compare: list filters, sorting and formats; diff; compare; tree; tags and notes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Workspace, copy_of, git, gitexp, run_in_pty, template_workspace

WRITE_METRICS = "import json, sys\njson.dump(json.loads(sys.argv[1]), open('metrics.json', 'w'))\n"


def record(ws: Workspace, name: str, metrics: dict[str, object], *args: str) -> None:
    ws.run("-n", name, *args, "--", sys.executable, "metrics.py", json.dumps(metrics))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four runs, recorded once per module: a baseline, two descendants, and another root."""
    with template_workspace(tmp_path_factory) as ws:
        ws.write("params.yaml", "lr: 0.1\nbatch: 32\nopt: sgd\n")
        ws.write("metrics.py", WRITE_METRICS)
        ws.write(".gitignore", "metrics.json\n")
        ws.commit_all()
        record(ws, "base", {"acc": 0.80, "loss": 0.50}, "-m", "baseline")
        record(ws, "lr-low", {"acc": 0.92, "loss": 0.30}, "-S", "lr=0.01")
        record(ws, "lr-tiny", {"acc": 0.95, "loss": 0.35}, "-S", "lr=0.001", "-t", "best")
        record(ws, "other", {"acc": 0.85}, "--no-parent", "-S", "opt=adam")
    return ws.root


@pytest.fixture
def runs(template: Path, tmp_path: Path) -> Workspace:
    """A private copy of the template repository."""
    return copy_of(template, tmp_path)


def names(result: object) -> list[str]:
    return [r["name"] for r in json.loads(result.out)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("metrics.acc > 0.9", ["lr-tiny", "lr-low"]),
        ("metrics.acc >= 0.92", ["lr-tiny", "lr-low"]),
        ("metrics.acc < 0.85", ["base"]),
        ("metrics.acc <= 0.85", ["other", "base"]),
        ("params.lr = 0.01", ["lr-low"]),
        ("params.lr == 0.01", ["lr-low"]),
        ("params.opt != sgd", ["other"]),
        ("metrics.acc > 0.9 and params.lr <= 0.01", ["lr-tiny", "lr-low"]),
        ("metrics.acc > 0.94 or params.opt = 'adam'", ["other", "lr-tiny"]),
        ("not (metrics.loss < 0.4)", ["base"]),
        ("tag = best", ["lr-tiny"]),
        ("name = 'lr-low'", ["lr-low"]),
        ("status = completed and base = main", ["other", "lr-tiny", "lr-low", "base"]),
        ("created > 1d", ["other", "lr-tiny", "lr-low", "base"]),
        ("duration < 1h", ["other", "lr-tiny", "lr-low", "base"]),
    ],
)
def test_where_filters_runs_and_excludes_runs_missing_a_key(runs: Workspace, where: str, expected: list[str]) -> None:
    result = runs.gitexp("list", "--json", "--where", where)
    assert result.code == 0, result.err
    assert names(result) == expected


@pytest.mark.parametrize(
    ("where", "column"),
    [("metrics.acc >", 14), ("metrics.acc > 0.9 and", 22), ("(metrics.acc > 1", 17), ("paramz.lr = 1", 1), ("metrics.acc >> 1", 14)],
)
def test_a_bad_filter_is_one_line_pointing_at_the_column(runs: Workspace, where: str, column: int) -> None:
    result = runs.gitexp("list", "--where", where)
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.count("\n") == 1 and f"column {column}" in result.err


def test_sort_ascending_descending_with_missing_last_and_limit(runs: Workspace) -> None:
    assert names(runs.gitexp("list", "--json", "--sort", "metrics.loss")) == ["lr-low", "lr-tiny", "base", "other"]
    assert names(runs.gitexp("list", "--json", "--sort", "-metrics.loss")) == ["base", "lr-tiny", "lr-low", "other"]
    assert names(runs.gitexp("list", "--json", "--sort", "-metrics.acc", "--limit", "2")) == ["lr-tiny", "lr-low"]
    assert names(runs.gitexp("list", "--json", "--sort", "name")) == ["base", "lr-low", "lr-tiny", "other"]
    bad = runs.gitexp("list", "--sort", "metricz.acc")
    assert bad.code == 1 and "unknown field" in bad.err


def test_columns_in_csv_json_markdown_and_table(runs: Workspace) -> None:
    cols = "name,params.lr,metrics.acc"
    rows = list(csv.reader(io.StringIO(runs.gitexp("list", "-c", cols, "-f", "csv", "--sort", "name").out)))
    assert rows[0] == ["name", "params.lr", "metrics.acc"]
    assert rows[1] == ["base", "0.1", "0.8"] and rows[-1] == ["other", "0.1", "0.85"]
    as_json = json.loads(runs.gitexp("list", "-c", cols, "-f", "json", "--sort", "name").out)
    assert as_json[0] == {"name": "base", "params.lr": 0.1, "metrics.acc": 0.8}
    markdown = runs.gitexp("list", "-c", cols, "-f", "markdown").out.splitlines()
    assert markdown[0].startswith("| name") and markdown[1].startswith("|--")
    table = runs.gitexp("list", "-c", cols).out.splitlines()
    assert table[0].split() == ["name", "params.lr", "metrics.acc"] and set(table[1]) <= {"-", " "}
    repeated = runs.gitexp("list", "-c", "name", "-c", "params.lr,metrics.acc").out.splitlines()
    assert repeated[0].split() == ["name", "params.lr", "metrics.acc"]  # -c adds up, the last does not win


def test_only_changed_hides_constant_columns(runs: Workspace) -> None:
    header = runs.gitexp("list", "--only-changed").out.splitlines()[0].split()
    assert "params.batch" not in header
    assert {"params.lr", "params.opt", "metrics.acc", "metrics.loss"} <= set(header)
    assert "params.batch" in runs.gitexp("list", "--wide").out.splitlines()[0]


def test_diff_shows_params_metrics_with_deltas_and_direction(runs: Workspace) -> None:
    data = json.loads(runs.gitexp("diff", "--json", "base", "lr-low").out)
    assert data["params"] == [{"key": "lr", "old": 0.1, "new": 0.01, "kind": "changed"}]
    metrics = {m["key"]: m for m in data["metrics"]}
    assert metrics["acc"]["delta"] == pytest.approx(0.12) and metrics["acc"]["pct"] == pytest.approx(15.0)
    assert metrics["acc"]["improved"] is True
    assert metrics["loss"]["improved"] is True, "loss is lower-is-better by its name"
    removed = json.loads(runs.gitexp("diff", "--json", "lr-low", "other").out)
    assert {"key": "loss", "old": 0.3, "new": None, "kind": "removed", "delta": None, "pct": None, "improved": None} in removed["metrics"]
    text = runs.gitexp("diff", "base", "lr-low").out
    assert "~ lr: 0.1 -> 0.01" in text and "better" in text
    assert "batch" not in text, "only what differs"


def test_metric_direction_comes_from_the_config(runs: Workspace) -> None:
    runs.write(".gitexp.yaml", "direction:\n  loss: higher\n")
    data = json.loads(runs.gitexp("diff", "--json", "base", "lr-low").out)
    assert {m["key"]: m["improved"] for m in data["metrics"]}["loss"] is False


def test_colour_on_a_request_and_never_when_piped_or_no_color(runs: Workspace) -> None:
    plain = runs.gitexp("diff", "base", "lr-low")
    assert "\033[" not in plain.out
    coloured = runs.gitexp("diff", "base", "lr-low", "--color", "always")
    assert "\033[32m" in coloured.out
    assert "\033[" not in runs.gitexp("diff", "base", "lr-low", "--color", "never").out


def test_colour_auto_follows_the_terminal_and_no_color(runs: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR")
    args = [sys.executable, "-m", "gitexp", "diff", "base", "lr-low"]
    assert b"\033[32m" in run_in_pty(args, runs.root)[1]
    assert b"\033[" not in run_in_pty(args, runs.root, {"NO_COLOR": "1"})[1]


def test_diff_of_data_environment_and_code(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "outputs: [model.bin]\n")
    ws.write("train.py", "open('model.bin', 'w').write('v1')\nopen('metrics.json', 'w').write('{\"acc\": 1}')\n")
    ws.commit_all()
    ws.run("-n", "a", "--", sys.executable, "train.py")
    ws.write("train.py", "open('model.bin', 'w').write('v2')\nopen('metrics.json', 'w').write('{\"acc\": 2}')\n")
    ws.run("-n", "b", "--", sys.executable, "train.py")
    data = json.loads(ws.gitexp("diff", "--json", "a", "b").out)
    assert [c["key"] for c in data["data"]] == ["output:model.bin"]
    assert data["code"] == [{"status": "M", "path": "train.py"}]  # not metrics.json: its values are the metrics
    assert data["env"] == [], "same machine, same packages"
    patch = ws.gitexp("diff", "a", "b", "--code").out
    assert patch.startswith("diff --git a/train.py b/train.py") and "+open('model.bin', 'w').write('v2')" in patch
    assert ".gitexp" not in patch


def test_environment_differences_name_changed_packages(ws: Workspace) -> None:
    ws.run("-n", "a", "--", "true")
    ws.run("-n", "b", "--", "true")
    # rewrite b's env.json as another machine would have it, with plain git plumbing
    env = json.loads(ws.git("show", "refs/experiments/b:.gitexp/env.json"))
    env["python"]["packages"]["click"] = "0.0.1"
    env["python"]["packages"]["newpkg"] = "1.0"
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=ws.root, input=json.dumps(env), capture_output=True, text=True).stdout.strip()
    index_env = {"GIT_INDEX_FILE": str(ws.root / ".git" / "tmp-index")}
    git(ws.root, "read-tree", "refs/experiments/b", env=index_env)
    git(ws.root, "update-index", "--cacheinfo", f"100644,{blob},.gitexp/env.json", env=index_env)
    tree = git(ws.root, "write-tree", env=index_env).strip()
    message = ws.git("log", "-1", "--format=%B", "refs/experiments/b")
    commit = subprocess.run(["git", "commit-tree", tree, "-m", message], cwd=ws.root, capture_output=True, text=True,
                            env={**__import__("os").environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b"}).stdout.strip()
    ws.git("update-ref", "refs/experiments/b", commit)
    data = json.loads(ws.gitexp("diff", "--json", "a", "b").out)
    keys = {c["key"]: c for c in data["env"]}
    assert keys["package click"]["kind"] == "changed" and keys["package click"]["new"] == "0.0.1"
    assert keys["package newpkg"]["kind"] == "added"


def test_compare_puts_runs_side_by_side_and_marks_the_best(runs: Workspace) -> None:
    data = json.loads(runs.gitexp("compare", "--json", "base", "lr-low", "lr-tiny").out)
    rows = {r["key"]: r for r in data["rows"]}
    assert rows["params.lr"]["values"] == [0.1, 0.01, 0.001]
    assert rows["metrics.acc"]["best"] == 2 and rows["metrics.loss"]["best"] == 1
    text = runs.gitexp("compare", "base", "lr-low", "--only-changed").out
    assert "params.batch" not in text and "params.lr" in text
    assert runs.gitexp("compare", "base", "nope").code == 1


def test_tree_shows_runs_under_their_parents_by_base(runs: Workspace) -> None:
    out = runs.gitexp("tree").out.splitlines()
    assert out[0].endswith("on main")
    assert out[1].startswith("|-- base") and "acc=0.8" in out[1] and "baseline" in out[1]
    assert out[2].startswith("|   `-- lr-low")
    assert out[3].startswith("|       `-- lr-tiny")
    assert out[4].startswith("`-- other")
    data = json.loads(runs.gitexp("tree", "--json").out)
    [group] = data
    assert [r["name"] for r in group["runs"]] == ["base", "other"]
    assert group["runs"][0]["children"][0]["children"][0]["name"] == "lr-tiny"
    focused = runs.gitexp("tree", "lr-low").out
    assert "base" in focused and "lr-tiny" in focused and "other" not in focused
    loss = runs.gitexp("tree", "--metric", "loss").out
    assert "loss=0.3" in loss


def test_tree_filter_keeps_descendants_under_the_nearest_shown_ancestor(runs: Workspace) -> None:
    out = runs.gitexp("tree", "--where", "name != 'lr-low'").out
    assert "lr-low" not in out
    lines = out.splitlines()
    assert lines[1].startswith("|-- base") and lines[2].startswith("|   `-- lr-tiny")


def test_tree_marks_runs_whose_parent_was_deleted(runs: Workspace) -> None:
    runs.git("update-ref", "-d", "refs/experiments/base")
    out = runs.gitexp("tree").out
    assert "lr-low" in out and "(parent run deleted)" in out
    assert json.loads(runs.gitexp("tree", "--json").out)[0]["runs"][0]["parent_deleted"] is True


def test_tree_uses_unicode_on_a_utf8_terminal_and_ascii_when_piped(runs: Workspace) -> None:
    _, out = run_in_pty([sys.executable, "-m", "gitexp", "tree"], runs.root, {"PYTHONIOENCODING": "utf-8"})
    assert "└── ".encode() in out
    assert "└" not in runs.gitexp("tree").out


def test_tags_and_notes_do_not_rewrite_runs_and_travel_with_git(runs: Workspace, tmp_path: Path) -> None:
    before = runs.runs()
    assert runs.gitexp("tag", "lr-low", "candidate", "v2").out.strip() == "candidate v2"
    assert runs.gitexp("tag", "lr-tiny", "-d", "best").out.strip() == ""
    assert runs.gitexp("note", "lr-low", "promising, try more epochs").code == 0
    assert runs.runs() == before, "run commits are immutable"
    listed = {r["name"]: r for r in json.loads(runs.gitexp("list", "--json").out)}
    assert listed["lr-low"]["tags"] == ["candidate", "v2"] and listed["lr-tiny"]["tags"] == []
    assert listed["lr-low"]["note"] == "promising, try more epochs"
    assert names(runs.gitexp("list", "--json", "--where", "tag = candidate")) == ["lr-low"]
    bare = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    runs.git("push", "-q", str(bare), "refs/experiments/*:refs/experiments/*", "refs/notes/gitexp:refs/notes/gitexp")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(clone, "fetch", "-q", "origin", "refs/experiments/*:refs/experiments/*", "refs/notes/gitexp:refs/notes/gitexp")
    theirs = {r["name"]: r for r in json.loads(gitexp(clone, "list", "--json").out)}
    assert theirs["lr-low"]["tags"] == ["candidate", "v2"] and theirs["lr-low"]["note"] == "promising, try more epochs"
    assert gitexp(clone, "tag", "base").out.strip() == ""
    bad = runs.gitexp("tag", "lr-low", "bad tag")
    assert bad.code == 1 and "invalid tag" in bad.err


def test_a_filter_matching_nothing_says_so(runs: Workspace) -> None:
    result = runs.gitexp("list", "--where", "status = nosuch")
    assert result.code == 0 and result.out.strip() == "no runs match: status = nosuch"
    assert result.err == ""


def test_a_filter_matching_nothing_warns_of_a_key_no_run_has_and_of_text_compared_with_numbers(runs: Workspace) -> None:
    typo = runs.gitexp("list", "--where", "metrics.los < 1")
    assert typo.code == 0 and typo.out.strip() == "no runs match: metrics.los < 1"
    assert typo.err == "gitexp: no run has metrics.los (did you mean metrics.loss? metrics recorded: acc, loss)\n"
    word = runs.gitexp("list", "--json", "--where", "metrics.loss < abc")
    assert word.code == 0 and json.loads(word.out) == []
    assert "metrics.loss is a number in every run that has it, but 'abc' is text" in word.err
    assert runs.gitexp("list", "--where", "metrics.los < 1 or metrics.acc > 0.9").err == "", "runs matched: no hint"


def test_in_selects_runs_whose_field_is_one_of_the_values(runs: Workspace) -> None:
    assert names(runs.gitexp("list", "--json", "--where", "params.lr in (0.1, 0.001)")) == ["other", "lr-tiny", "base"]
    assert names(runs.gitexp("list", "--json", "--where", "params.lr not in (0.1, 0.001)")) == ["lr-low"]


def test_compare_marks_the_best_value_without_colour_too(runs: Workspace) -> None:
    text = runs.gitexp("compare", "base", "lr-low", "lr-tiny").out
    acc = next(line for line in text.splitlines() if line.startswith("metrics.acc"))
    assert acc.split()[-1] == "*" and "(* best value of each metric)" in text
