"""Bad input gets one clear line, a non-zero exit, no traceback, and nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Workspace, git, gitexp


def assert_clean_refusal(ws: Workspace, result: object, *words: str, code: int = 1) -> None:
    assert result.code == code, result.err  # type: ignore[attr-defined]
    err = result.err  # type: ignore[attr-defined]
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("gitexp: error:")]
    assert len(error_lines) == 1, err
    for word in words:
        assert word in error_lines[0], err
    assert not (ws.root / "ran").exists(), "the command must not start"
    assert ws.runs() == {}, "no ref may be written"


@pytest.mark.parametrize(
    "name",
    ["../x", "a b", "x.lock", "latest", "-x", "a/b", "a..b", "naïve", "x" * 101, "trailing.", "refs/experiments/x"],
)
def test_invalid_run_names_are_refused_before_the_command_starts(ws: Workspace, name: str) -> None:
    ws.freeze()
    result = ws.gitexp("run", "-n", name, "--", "touch", "ran")
    if name.startswith("-"):
        assert result.code != 0 and not (ws.root / "ran").exists() and ws.runs() == {}
        return
    assert_clean_refusal(ws, result, "invalid run name")


def test_a_taken_name_is_refused_before_the_command_starts(ws: Workspace) -> None:
    ws.run("-n", "exp1", "--", "true")
    first = ws.runs()
    ws.freeze()
    result = ws.gitexp("run", "-n", "exp1", "--", "touch", "ran")
    assert result.code == 1 and "already exists" in result.err and "Traceback" not in result.err
    assert not (ws.root / "ran").exists()
    assert ws.runs() == first


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("lr", ["no '='"]),
        ("=3", ["key is empty"]),
        ("a..b=1", ["empty part"]),
        ("lr=[[1, 2]]", ["single YAML scalar"]),
        ("lr={a: 1}", ["single YAML scalar"]),
        ("lr=: [", ["not valid YAML"]),
        ("model.depth.x=2", ["model.depth is a value"]),
    ],
)
def test_invalid_overrides_are_refused_and_the_params_file_is_untouched(
    ws: Workspace, override: str, words: list[str]
) -> None:
    ws.write("params.yaml", "lr: 0.1\nmodel:\n  depth: 3\n")
    ws.freeze()
    result = ws.gitexp("run", "-S", override, "--", "touch", "ran")
    assert_clean_refusal(ws, result, "invalid -S", *words)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("lr: [0.1\n", ["params.yaml", "invalid YAML"]),
        ("- just\n- a list\n", ["params.yaml", "mapping"]),
        ("\tlr: 1\n", ["params.yaml", "invalid YAML"]),
    ],
)
def test_invalid_params_file_is_reported_by_name(ws: Workspace, content: str, words: list[str]) -> None:
    ws.write("params.yaml", content)
    ws.freeze()
    result = ws.gitexp("run", "--", "touch", "ran")
    assert_clean_refusal(ws, result, *words)


def test_invalid_json_params_file_names_the_line(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "params: [config.json]\n")
    ws.write("config.json", '{"lr": 0.1,\n "x": }\n')
    ws.freeze()
    result = ws.gitexp("run", "--", "touch", "ran")
    assert_clean_refusal(ws, result, "config.json", "line 2")


def test_a_missing_configured_params_file_is_an_error(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "params: conf/params.yaml\n")
    ws.freeze()
    result = ws.gitexp("run", "--", "touch", "ran")
    assert_clean_refusal(ws, result, "conf/params.yaml", "does not exist")


@pytest.mark.parametrize(
    ("config", "words"),
    [("params: [../outside.yaml]\n", ["inside the repository"]), ("params: {a: 1}\n", ["list of paths"]), ("[1, 2]\n", ["mapping"]), ("a: [\n", ["not valid YAML"])],
)
def test_invalid_repo_config_is_reported(ws: Workspace, config: str, words: list[str]) -> None:
    ws.write(".gitexp.yaml", config)
    ws.freeze()
    result = ws.gitexp("run", "--", "touch", "ran")
    assert_clean_refusal(ws, result, ".gitexp.yaml", *words)


def test_command_not_found_is_a_clear_error_with_exit_127(ws: Workspace) -> None:
    ws.freeze()
    result = ws.gitexp("run", "--", "no-such-command-xyz", "--flag")
    assert_clean_refusal(ws, result, "command not found", "no-such-command-xyz", code=127)


def test_a_command_that_is_not_executable_gets_exit_126(ws: Workspace) -> None:
    ws.write("script.sh", "#!/bin/sh\necho hi\n", mode=0o644)
    ws.freeze()
    result = ws.gitexp("run", "--", "./script.sh")
    assert_clean_refusal(ws, result, "cannot execute", "chmod", code=126)


def test_running_outside_a_git_repository_is_a_clear_error(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    result = gitexp(outside, "run", "--", "touch", "ran")
    assert result.code == 1
    assert result.err.startswith("gitexp: error: not inside a git repository") and "git init" in result.err
    assert "Traceback" not in result.err
    assert not (outside / "ran").exists()
    for args in (["list"], ["show", "x"]):
        other = gitexp(outside, *args)
        assert other.code == 1 and "not inside a git repository" in other.err


def test_run_without_a_command_is_a_usage_error(ws: Workspace) -> None:
    result = ws.gitexp("run", "-n", "x")
    assert result.code == 2 and "Traceback" not in result.err
    assert ws.runs() == {}


def test_unknown_references_to_runs_are_clear_errors(ws: Workspace) -> None:
    ws.run("-n", "only", "--", "true")
    for spec in ("nope", "latest-ish", "zzzz", "abc"):
        result = ws.gitexp("show", spec)
        assert result.code == 1 and "no run matches" in result.err and "Traceback" not in result.err


def test_bare_repository_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    result = gitexp(bare, "run", "--", "true")
    assert result.code == 1 and "bare repository" in result.err and "Traceback" not in result.err
    assert "not inside a git repository" not in result.err


def test_a_file_system_refusal_is_one_clear_line(ws: Workspace) -> None:
    (ws.root / ".git" / "gitexp").write_text("not a directory")  # gitexp's state dir cannot be made
    ws.freeze()
    result = ws.gitexp("run", "--", "touch", "ran")
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.startswith("gitexp: error: ") and ".git/gitexp" in result.err
    assert ws.runs() == {}
