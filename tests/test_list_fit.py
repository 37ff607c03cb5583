"""`gitexp list` fits the terminal: the params that differ, metrics after them, columns dropped from the right."""

from __future__ import annotations

import csv
import io
import json
import sys
import unicodedata
from pathlib import Path

import pytest

from conftest import Workspace, copy_of, run_in_pty, template_workspace
from test_compare import WRITE_METRICS
from test_hostile_reads import ESC_CLEAR, ESC_TITLE, clean, forge

from gitexp.columns import differing, fitting

FIXED = ["name", "created", "status", "duration"]
P = [f"p{i:02d}" for i in range(1, 9)]


def params(i: int, seed: int = 1, extra: bool = True) -> dict[str, int]:
    """batch is the same in every run; extra too, except that r4 lacks it; p01..p08 differ."""
    return {"batch": 32, **({"extra": 7} if extra else {}), **{p: i for p in P}, "seed": seed}


RUNS = {
    "r1": (params(1), 0.1),
    "r2": (params(2), 0.2),
    "r3": (params(3), 0.3),
    "r4": (params(4, extra=False), 0.4),
    "r1b": (params(1, seed=2), 0.15),  # a repeat of r1's config with another seed
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five runs with eleven params each, recorded once per module."""
    with template_workspace(tmp_path_factory) as ws:
        ws.write("metrics.py", WRITE_METRICS)
        ws.write(".gitignore", "metrics.json\n")
        ws.write("params.yaml", "".join(f"{k}: {v}\n" for k, v in params(0).items()))
        ws.commit_all()
        for name, (values, acc) in RUNS.items():
            ws.write("params.yaml", "".join(f"{k}: {v}\n" for k, v in values.items()))
            ws.run("-n", name, "--", sys.executable, "metrics.py", json.dumps({"acc": acc, "loss": 0.5}))
    return ws.root


@pytest.fixture
def runs(template: Path, tmp_path: Path) -> Workspace:
    return copy_of(template, tmp_path)


def listed(ws: Workspace, *args: str, columns: str | None = None) -> list[str]:
    result = ws.gitexp("list", *args, env={"COLUMNS": columns} if columns is not None else None)
    assert result.code == 0 and result.err == "", result.err
    return result.out.splitlines()


def display_width(text: str) -> int:
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def offset(line: str, text: str) -> int:
    """The terminal column where text starts in line."""
    return display_width(line[: line.index(text)])


def test_width_80_drops_columns_from_the_right_with_a_note(runs: Workspace) -> None:
    out = listed(runs, columns="80")
    assert out[0].split() == [*FIXED, "params.extra", "params.p01"]
    assert out[-1] == "(+10 columns: --wide)"
    assert all(len(line) <= 80 for line in out)
    assert sorted(line.split()[0] for line in out[2:-1]) == sorted(RUNS)
    assert set(out[1]) <= {"-", " "}


def test_the_width_comes_from_the_terminal_when_columns_is_not_set(runs: Workspace) -> None:
    command = [sys.executable, "-m", "gitexp", "list"]
    code, raw = run_in_pty(command, runs.root, columns=80)
    out = raw.decode().replace("\r\n", "\n").splitlines()
    assert code == 0 and out[-1] == "(+10 columns: --wide)" and out[0].split()[-1] == "params.p01"
    code, raw = run_in_pty(command, runs.root, {"COLUMNS": "200"}, columns=80)  # COLUMNS wins
    assert code == 0 and b"(+" not in raw and b"metrics.loss" in raw
    code, raw = run_in_pty(command, runs.root)  # a terminal that does not say its width: no limit
    assert code == 0 and b"(+" not in raw and b"metrics.loss" in raw


def test_wide_shows_every_param_and_metric(runs: Workspace) -> None:
    out = listed(runs, "--wide", columns="80")
    every = [f"params.{k}" for k in sorted(params(1))] + ["metrics.acc", "metrics.loss"]
    assert out[0].split() == [*FIXED, *every]
    assert not any(line.startswith("(+") for line in out) and len(out) == 2 + len(RUNS)


def test_params_the_same_in_every_run_are_hidden_and_metrics_come_after_the_params(runs: Workspace) -> None:
    out = listed(runs)  # not a terminal, no COLUMNS: no limit
    assert out[0].split() == [*FIXED, "params.extra", *(f"params.{p}" for p in P), "params.seed", "metrics.acc", "metrics.loss"]
    assert not any(line.startswith("(+") for line in out)
    markdown = listed(runs, "-f", "markdown", columns="40")  # for people too, but not cut to a width
    assert "params.batch" not in markdown[0] and "metrics.loss" in markdown[0]
    one = listed(runs, "--where", "name = r2")  # a single run: nothing to compare, every param shown
    assert "params.batch" in one[0].split()


def test_only_changed_ignores_a_run_lacking_a_key(runs: Workspace) -> None:
    header = listed(runs, "--only-changed")[0].split()
    assert "params.extra" not in header, "the runs having extra all say 7; r4 lacking it is no difference"
    assert "params.batch" not in header and "metrics.loss" not in header
    assert {"params.p01", "params.p08", "params.seed", "metrics.acc"} <= set(header)
    assert "params.extra" in listed(runs)[0].split(), "by default a run lacking a key is a difference"


def test_group_by_config_shows_only_the_params_that_vary(runs: Workspace) -> None:
    out = listed(runs, "--group-by", "config")
    header = out[0].split()
    assert header[:11] == ["params.extra", *(f"params.{p}" for p in P), "n", "metrics.acc"]
    assert "config" not in header and "params.batch" not in header and "params.seed" not in header
    ones = next(line.split() for line in out[2:] if line.split()[1] == "1")
    assert ones[:10] == ["7", *["1"] * 8, "2"], "r1 and r1b are one group"
    assert out[-1].startswith("(mean ± standard error")
    wide = listed(runs, "--group-by", "config", "--wide", columns="40")[0].split()
    assert wide[:2] == ["params.batch", "params.extra"] and "metrics.loss" in wide
    narrow = listed(runs, "--group-by", "config", columns="40")
    assert narrow[0].split() == ["params.extra", "params.p01", "params.p02"] and narrow[-2] == "(+9 columns: --wide)"
    rows = list(csv.reader(io.StringIO("\n".join(listed(runs, "--group-by", "config", "-f", "csv", columns="40")))))
    assert rows[0][0] == "config" and "batch=32" in rows[1][0], "CSV stays complete"


def test_csv_and_json_stay_complete_whatever_the_width(runs: Workspace) -> None:
    rows = list(csv.reader(io.StringIO("\n".join(listed(runs, "-f", "csv", columns="30")))))
    assert rows[0] == [*FIXED, *(f"params.{k}" for k in sorted(params(1))), "metrics.acc", "metrics.loss"]
    assert len(rows) == 1 + len(RUNS) and all(len(r) == len(rows[0]) for r in rows)
    as_json = json.loads("\n".join(listed(runs, "--json", columns="30")))
    assert {r["name"]: r["params"] for r in as_json} == {name: values for name, (values, _) in RUNS.items()}
    chosen = json.loads("\n".join(listed(runs, "-f", "json", "-c", "name,params.batch", columns="10")))
    assert chosen[0].keys() == {"name", "params.batch"}


def test_a_hostile_run_stays_escaped_and_does_not_break_the_width(runs: Workspace) -> None:
    evil_params = {**params(1), "a学习率": "高高", f"k{ESC_CLEAR}": f"v{ESC_TITLE}"}
    evil_metrics = {"acc": 0.1, "loss": 0.5, f"m{ESC_CLEAR}": f"\u202e{ESC_TITLE}"}
    trailers = {"Gitexp-Params": json.dumps(evil_params), "Gitexp-Metrics": json.dumps(evil_metrics)}
    forge(runs.root, "r1", "evil", trailers=trailers)
    out = clean(runs.gitexp("list", env={"COLUMNS": "100"}), "list").out.splitlines()
    key, val = "params.k\\x1b[2J", "v\\x1b]0;pwned\\x07"
    assert out[0].split() == [*FIXED, "params.a学习率", "params.extra", key]
    assert out[-1] == "(+12 columns: --wide)"
    assert all(display_width(line) <= 100 for line in out)
    row = next(line for line in out if line.startswith("evil "))
    assert offset(out[0], "params.a学习率") == offset(row, "高高")
    assert offset(out[0], key) == offset(row, val), "columns after wide characters and escapes stay aligned"
    wide = clean(runs.gitexp("list", "--wide", env={"COLUMNS": "100"}), "list").out.splitlines()
    row = next(line for line in wide if line.startswith("evil "))
    assert offset(wide[0], "metrics.m\\x1b[2J") == offset(row, "\\u202e\\x1b]0;pwned\\x07")
    tiny = clean(runs.gitexp("list", env={"COLUMNS": "3"}), "list").out.splitlines()
    assert tiny[0] == "name" and "evil" in tiny and tiny[-1] == "(+18 columns: --wide)"


def test_a_very_narrow_width_still_shows_the_name_column(runs: Workspace) -> None:
    out = listed(runs, columns="5")
    assert out[0] == "name" and out[1] == "----"
    assert sorted(out[2:-1]) == sorted(RUNS) and out[-1] == "(+15 columns: --wide)"
    for ignored in ("0", "abc", "-3"):  # not a width: no limit
        assert not any(line.startswith("(+") for line in listed(runs, columns=ignored))


def test_differing_counts_a_lacking_key_unless_told_not_to() -> None:
    maps = [{"a": 1, "b": 1, "c": [1, {"x": 1, "y": 2}]}, {"a": 1.0, "b": 1, "c": [1, {"y": 2, "x": 1}]}, {"b": 1, "d": True}]
    assert differing(maps) == ["a", "c", "d"]
    assert differing(maps, ignore_missing=True) == ["a"], "1 and 1.0 differ; dict key order does not"
    assert differing([{"a": 1}, {"a": True}, {"a": "1"}], ignore_missing=True) == ["a"]
    assert fitting([4, 16, 9], 10) == 1 and fitting([4, 16, 9], 22) == 2 and fitting([4, 16, 9], None) == 3
    assert fitting([40], 3) == 1, "the first column always"


def test_a_column_of_one_kind_of_value_reads_as_each_value_shown_alone() -> None:
    """runs_output builds a column of floats, ints or strings in one C loop; it must show what the
    per-value rules show (6 significant digits, '' for none, JSON for lists), in every format, aligned."""
    from gitexp.format import summary_from_message
    from gitexp.render import runs_output, value

    kinds = {
        "floats": [0.1, 1e-9, 123456789.0, float("inf"), -0.0],
        "ints": [1, -20, 10**20, 0, 7],
        "strs": ["a", "", "b c", "long text", "x"],
        "mixed": [0.1, 3, "s", None, [1, 2]],
        "bools": [True, False, True, None, False],
        "wide": ["日本", "é", "a", "ab", "abc"],
    }
    runs = []
    for i in range(5):
        message = f"gitexp run r{i}\n\nGitexp-Format: 1\nGitexp-Run: r{i}\nGitexp-Status: completed\n" \
                  f"Gitexp-Params: {json.dumps({k: v[i] for k, v in kinds.items() if v[i] is not None})}\n"
        runs.append(summary_from_message(f"r{i}", f"{i:040x}", message))
    columns = ["name", *(f"params.{k}" for k in kinds)]

    rows = list(csv.reader(io.StringIO(runs_output(runs, columns, "csv"))))
    for i, run in enumerate(runs):
        for j, key in enumerate(kinds):
            v = run.params.get(key)
            expected = "" if v is None else str(v) if type(v) in (float, int, str) else json.dumps(v, separators=(",", ":"))
            assert rows[i + 1][j + 1] == expected, (key, v)

    table = runs_output(runs, columns, "table").splitlines()
    starts = [table[0].index(c) for c in columns]
    for i, run in enumerate(runs):
        line = table[i + 2]
        for j, key in enumerate(kinds):
            v = run.params.get(key)
            shown = "" if v is None else value(v)
            if key != "wide" and all(c.isascii() for c in line[: starts[j + 1]]):
                assert line[starts[j + 1]:].startswith(shown), (key, v, line)
