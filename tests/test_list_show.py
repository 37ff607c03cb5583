"""`gitexp list` and `gitexp show` answer: which runs, with what params and results."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import Workspace


def make_runs(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\nbatch: 32\n")
    ws.commit_all()
    ws.run("-n", "slow", "-m", "baseline", "--", "sh", "-c", "echo '{\"acc\": 0.8}' > metrics.json")
    ws.run("-n", "fast", "-S", "lr=0.5", "-t", "best", "--", "sh", "-c", "echo '{\"acc\": 0.9, \"loss\": 0.1}' > metrics.json")
    assert ws.gitexp("run", "-n", "broken", "--", "false").code == 1


def test_list_shows_a_table_newest_first_with_params_and_metrics(ws: Workspace) -> None:
    make_runs(ws)
    out = ws.gitexp("list", "--wide").out.splitlines()
    header = out[0].split()
    assert header[:4] == ["name", "created", "status", "duration"]
    assert {"params.lr", "params.batch", "metrics.acc", "metrics.loss"} <= set(header)
    names = [line.split()[0] for line in out[2:]]
    assert names == ["broken", "fast", "slow"]
    fast = next(line for line in out if line.startswith("fast"))
    assert "completed" in fast and "0.5" in fast and "0.9" in fast
    assert "failed" in next(line for line in out if line.startswith("broken"))


def test_list_json_has_the_documented_schema(ws: Workspace) -> None:
    make_runs(ws)
    runs = ws.gitexp("list", "--json").json()
    assert isinstance(runs, list) and len(runs) == 3
    fast = next(r for r in runs if r["name"] == "fast")
    assert set(fast) == {
        "name", "commit", "status", "exit_code", "started", "duration", "user", "base",
        "base_branch", "parent", "tags", "note", "params", "metrics", "resources", "sweep", "incomplete",
    }
    assert fast["params"] == {"lr": 0.5, "batch": 32}
    assert fast["resources"]["cpu_seconds"] >= 0 and fast["resources"].get("peak_rss_mb", 1) > 0
    assert fast["metrics"] == {"acc": 0.9, "loss": 0.1}
    assert fast["tags"] == ["best"] and fast["exit_code"] == 0
    assert fast["commit"] == ws.runs()["fast"]
    assert fast["parent"] == ws.runs()["slow"]


def test_list_in_a_repo_without_runs_says_how_to_start(ws: Workspace) -> None:
    result = ws.gitexp("list")
    assert result.code == 0 and "gitexp run" in result.out
    assert ws.gitexp("list", "--json").json() == []


def test_show_prints_everything_recorded(ws: Workspace) -> None:
    make_runs(ws)
    out = ws.gitexp("show", "fast").out
    for expected in ("run      fast", "status   completed (exit code 0)", "parent   slow", "tags     best", "set      lr=0.5", "lr     0.5", "acc   0.9", "python", "environment:"):
        assert expected in out, expected
    slow = ws.gitexp("show", "slow").out
    assert "note     baseline" in slow and "parent   (none" in slow


def test_runs_are_found_by_name_commit_prefix_latest_and_full_ref(ws: Workspace) -> None:
    make_runs(ws)
    commit = ws.runs()["fast"]
    for spec in ("fast", commit[:7], commit, "refs/experiments/fast"):
        assert ws.gitexp("show", "--json", spec).json()["name"] == "fast", spec  # type: ignore[index]
    assert ws.gitexp("show", "--json", "latest").json()["name"] == "broken"  # type: ignore[index]
    assert ws.gitexp("show", "--json").json()["name"] == "broken"  # type: ignore[index]


def test_show_prints_the_exception_a_failed_python_command_died_of(ws: Workspace) -> None:
    code = "import sys\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    raise RuntimeError('no data')\n"
    assert ws.gitexp("run", "-n", "crash", "--", sys.executable, "-c", code).code == 1
    out = ws.gitexp("show", "crash").out.splitlines()
    assert out[2:4] == ["status   failed (exit code 1)", "error    RuntimeError: no data"], "the last traceback's exception"
    assert ws.gitexp("run", "-n", "quiet", "--", "false").code == 1
    assert not any(line.startswith("error") for line in ws.gitexp("show", "quiet").out.splitlines())


def test_a_misspelled_run_name_is_refused_with_the_closest_names(ws: Workspace) -> None:
    make_runs(ws)
    typo = ws.gitexp("show", "fsat")
    assert typo.code == 1 and typo.out == ""
    assert typo.err == "gitexp: error: no run matches 'fsat': did you mean fast? (see 'gitexp list' for names)\n"
    assert "did you mean slow?" in ws.gitexp("diff", "fast", "refs/experiments/slwo").err
    unlike = ws.gitexp("show", "zzzz")
    assert unlike.code == 1 and "did you mean" not in unlike.err and "no run matches 'zzzz'" in unlike.err


def test_show_json_includes_the_record_files(ws: Workspace) -> None:
    make_runs(ws)
    data = ws.gitexp("show", "--json", "fast").json()
    assert data["meta"]["command"] == ["sh", "-c", "echo '{\"acc\": 0.9, \"loss\": 0.1}' > metrics.json"]  # type: ignore[index]
    assert data["params_nested"] == {"lr": 0.5, "batch": 32}  # type: ignore[index]
    assert "python" in data["env"]  # type: ignore[index]


def test_show_marks_a_deleted_parent(ws: Workspace) -> None:
    make_runs(ws)
    ws.git("update-ref", "-d", "refs/experiments/slow")
    assert "slow (" in ws.gitexp("show", "fast").out and "(deleted)" in ws.gitexp("show", "fast").out


def test_git_exp_works_as_a_git_subcommand(ws: Workspace) -> None:
    if shutil.which("git-exp") is None:
        import pytest

        pytest.skip("git-exp is not on PATH (package not installed)")
    make_runs(ws)
    proc = subprocess.run(["git", "exp", "list", "--json"], cwd=ws.root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert '"name": "fast"' in proc.stdout


def test_help_lists_every_command(ws: Workspace) -> None:
    out = ws.gitexp("--help").out
    for command in ("run", "list", "show", "demo"):
        assert f"  {command}" in out
    assert ws.gitexp("--version").out.startswith("gitexp, version")


def test_a_broken_or_newer_ref_does_not_hide_the_other_runs(ws: Workspace) -> None:
    make_runs(ws)
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=ws.root, input="x", capture_output=True, text=True).stdout.strip()
    ws.git("update-ref", "refs/experiments/blobref", blob)
    tree = ws.git("rev-parse", "HEAD^{tree}").strip()
    future = subprocess.run(
        ["git", "commit-tree", tree, "-m", "future: completed\n\nGitexp-Format: 99\nGitexp-Run: future"],
        cwd=ws.root, capture_output=True, text=True, env={**__import__("os").environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b"},
    ).stdout.strip()
    ws.git("update-ref", "refs/experiments/future", future)
    result = ws.gitexp("list")
    assert result.code == 0
    assert {line.split()[0] for line in result.out.splitlines()[2:]} == {"slow", "fast", "broken"}
    assert "skipped refs/experiments/blobref" in result.err and "skipped refs/experiments/future" in result.err
    assert ws.gitexp("show", "latest").code == 0


def test_show_prints_what_a_terminal_shows_of_progress_bars_and_long_lines(ws: Workspace) -> None:
    ws.run(
        "-n", "bars", "--", "python3", "-c",
        "import sys\nfor i in range(5000): sys.stdout.write(f'\\rstep {i}')\nprint()\nprint('x' * 100000)",
    )
    out = ws.gitexp("show", "bars").out
    assert "step 4999" in out and "step 10\r" not in out
    assert len(out) < 10_000


def test_invalid_tags_are_refused(ws: Workspace) -> None:
    result = ws.gitexp("run", "-t", "", "--", "touch", "ran")
    assert result.code == 1 and "invalid tag" in result.err and not (ws.root / "ran").exists()
