"""`gitexp ui`'s disk cache (.git/gitexp/ui-cache): a restarted server gives the same answers without reading the
runs again, and an entry that is not exactly what gitexp writes is ignored, never trusted."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from conftest import Workspace

pytest.importorskip("starlette")

from gitexp.series import Point
from gitexp.store import Store
from gitexp.ui import diskcache
from gitexp.ui.views import Views

LONG = f"""import gitexp
for i in range({diskcache.MIN_POINTS + 500}):
    gitexp.log({{"loss": 1.0 / (i + 1), "acc": float("nan") if i == 7 else i / 1e4}}, step=i)
"""


@pytest.fixture
def long_run(ws: Workspace) -> Workspace:
    ws.write("train.py", LONG)
    ws.commit_all("base")
    ws.run("-n", "long", "--", sys.executable, "train.py")
    ws.run("-n", "short", "--", sys.executable, "-c", "import gitexp; gitexp.log({'loss': 1.0}, step=0)")
    return ws


def common(ws: Workspace) -> Path:
    return ws.root / ".git"


def fresh(ws: Workspace) -> Views:
    return Views(Store.discover(ws.root))


def test_a_restarted_server_answers_the_same_from_the_cache_without_reading_the_run(long_run: Workspace) -> None:
    ws = long_run
    first = fresh(ws)
    rows = first.runs_payload(wait=True)["runs"]
    curves = first.series("long", ["loss"])
    zoomed = first.series("long", ["loss"], xmin=100, xmax=200)
    commit = ws.runs()["long"]
    assert diskcache.entry_path(common(ws), commit).is_file()
    assert diskcache.answer_path(common(ws), commit, "step", 2000).is_file()
    assert not diskcache.entry_path(common(ws), ws.runs()["short"]).exists(), "short runs are not worth a file"
    assert {line.count(b'"commit"') for line in diskcache.stats_path(common(ws)).read_bytes().splitlines()} == {1}

    again = fresh(ws)
    again.all_series = None  # type: ignore[assignment,method-assign]  # the run's points must not be read again
    assert again.runs_payload()["runs"] == rows and again.runs_payload()["pending"] == 0
    assert again.series("long", ["loss"]) == curves
    assert fresh(ws).series("long", ["loss"], xmin=100, xmax=200) == zoomed  # a window: from the kept points
    assert zoomed["series"]["loss"]["exact"] and len(zoomed["series"]["loss"]["x"]) == 101


@pytest.mark.parametrize("damage", ["garbage", "truncated", "lying header", "empty"])
def test_a_damaged_cache_entry_is_ignored_and_the_run_read_again(long_run: Workspace, damage: str) -> None:
    ws = long_run
    views = fresh(ws)
    want_rows = views.runs_payload(wait=True)["runs"]
    want = views.series("long", None)
    zoomed = views.series("long", ["loss"], xmin=0, xmax=50)
    commit = ws.runs()["long"]
    for path in (diskcache.entry_path(common(ws), commit), diskcache.answer_path(common(ws), commit, "step", 2000),
                 diskcache.stats_path(common(ws))):
        data = path.read_bytes()
        path.write_bytes({"garbage": b"\x00\xff{[" * 50, "truncated": data[: len(data) // 2],
                          "lying header": data.replace(b"2000", b"2001", 1).replace(b'"loss"', b'"lo\\u0073s", 3', 1),
                          "empty": b""}[damage])
    again = fresh(ws)
    assert again.runs_payload(wait=True)["runs"] == want_rows
    assert again.series("long", None) == want
    assert fresh(ws).series("long", ["loss"], xmin=0, xmax=50) == zoomed


def test_series_round_trip_through_the_file_with_missing_steps_and_non_finite_values(tmp_path: Path) -> None:
    found = {"a": [Point(0, 1.5, 0.25), Point(None, math.nan, math.inf), Point(-3, 2.0, -math.inf)] * 8000,
             "b": [Point(2**62, 0.0, math.nan)]}
    diskcache.save(tmp_path, "ab" * 20, found)
    back = diskcache.load(tmp_path, "ab" * 20)
    assert back is not None and back.keys() == found.keys()
    for name, points in found.items():
        assert [(p.step, repr(p.time), repr(p.value)) for p in back[name]] == [(p.step, repr(p.time), repr(p.value)) for p in points]
    huge = {"a": [Point(2**70, 0.0, 1.0)] * diskcache.MIN_POINTS}
    diskcache.save(tmp_path, "cd" * 20, huge)
    assert diskcache.load(tmp_path, "cd" * 20) is None, "a step an int64 cannot hold: not kept (parsed each time)"


def test_stats_lines_that_are_not_well_formed_are_skipped_and_the_last_line_wins(tmp_path: Path) -> None:
    diskcache.append_stats(tmp_path, [("c1", "python a.py", {"loss": (0.5, 0.1, 2.0)})])
    path = diskcache.stats_path(tmp_path)
    with open(path, "ab") as f:
        f.write(b'not json\n{"commit": "c2", "command": "x", "stats": {"loss": [true, 0, 1]}}\n'
                b'{"commit": "c3", "command": 7, "stats": {}}\n{"commit": "c4", "command": "y", "stats": {"l": [1, "NaN", 2]}}\n')
    diskcache.append_stats(tmp_path, [("c1", "python b.py", {"loss": (None, 0.1, 2.0)})])
    assert diskcache.load_stats(tmp_path) == {"c1": ("python b.py", {"loss": (None, 0.1, 2.0)})}


def test_an_unwritable_cache_only_costs_time(long_run: Workspace) -> None:
    ws = long_run
    want = fresh(ws).series("long", ["loss"])
    cache = common(ws) / "gitexp" / "ui-cache"
    import shutil

    shutil.rmtree(cache)
    cache.write_text("a file where the directory should be")
    views = fresh(ws)
    assert views.series("long", ["loss"]) == want
    assert views.runs_payload(wait=True)["pending"] == 0
    assert cache.read_text() == "a file where the directory should be"
