"""A run's time series: reading steps files, sparklines, summaries and plots."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from gitexp import series
from gitexp.errors import GitexpError
from gitexp.series import BLOCKS, Point


def lines(*objects: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def values(points: list[Point]) -> list[float]:
    return [p.value for p in points]


# -- parse ---------------------------------------------------------------------------


def test_parse_groups_values_by_name_in_file_order() -> None:
    data = lines(
        {"step": 0, "time": 100.0, "values": {"loss": 2.5, "acc": 0.1}},
        {"step": 1, "time": 101.5, "values": {"loss": 1.5}},
        {"step": 1, "time": 101.6, "values": {"acc": 0.4}},
        {"step": 2, "time": 103.0, "values": {"loss": 0.5, "acc": 0.9}},
    )
    got = series.parse(data)
    assert set(got) == {"loss", "acc"}
    assert got["loss"] == [Point(0, 100.0, 2.5), Point(1, 101.5, 1.5), Point(2, 103.0, 0.5)]
    assert got["acc"] == [Point(0, 100.0, 0.1), Point(1, 101.6, 0.4), Point(2, 103.0, 0.9)]


def test_parse_keeps_file_order_even_when_steps_repeat_or_go_back() -> None:
    data = lines(*({"step": s, "time": float(i), "values": {"x": float(i)}} for i, s in enumerate([5, 5, 3, 9])))
    assert [p.step for p in series.parse(data)["x"]] == [5, 5, 3, 9]
    assert values(series.parse(data)["x"]) == [0.0, 1.0, 2.0, 3.0]


def test_parse_reads_non_finite_strings() -> None:
    data = lines({"step": 0, "time": 1.0, "values": {"a": "NaN", "b": "Infinity", "c": "-Infinity"}})
    got = series.parse(data)
    assert math.isnan(got["a"][0].value)
    assert got["b"][0].value == math.inf
    assert got["c"][0].value == -math.inf


def test_parse_keeps_a_null_step_as_none() -> None:
    data = lines({"step": None, "time": 1.0, "values": {"rss_mb": 100}}, {"time": 2.0, "values": {"rss_mb": 120}})
    assert series.parse(data)["rss_mb"] == [Point(None, 1.0, 100.0), Point(None, 2.0, 120.0)]


def test_parse_skips_damaged_lines_and_a_truncated_last_line() -> None:
    good = {"step": 1, "time": 1.0, "values": {"loss": 1.0}}
    data = (
        b"not json at all\n"
        + b"[1, 2, 3]\n"
        + b'"a string"\n'
        + b'{"step": 2, "time": 2.0}\n'  # no values
        + b'{"step": 2, "time": 2.0, "values": [1, 2]}\n'  # values not a dict
        + b"\n   \n"
        + b"\xff\xfe garbage \x00\n"
        + lines(good)
        + b"[" * 100_000
        + b"\n"  # deep nesting: json's recursion limit
        + b'{"step": 3, "time": 3.0, "values": {"loss": 0.'  # the process crashed mid-line
    )
    assert series.parse(data) == {"loss": [Point(1, 1.0, 1.0)]}


def test_parse_of_a_file_with_lines_that_are_not_one_value_each_reads_line_by_line() -> None:
    # Read whole as one JSON array, these would give more (or fewer) values than lines: each line stands alone.
    good = {"step": 1, "time": 1.0, "values": {"loss": 1.0}}
    two = lines(good).rstrip(b"\n") + b", " + lines({"step": 9, "time": 9.0, "values": {"loss": 9.0}})
    split = b'{"step": 5, "time": 5.0,\n"values": {"loss": 5.0}}\n'
    assert series.parse(two + lines(good)) == {"loss": [Point(1, 1.0, 1.0)]}
    assert series.parse(split + lines(good)) == {"loss": [Point(1, 1.0, 1.0)]}
    assert series.parse(lines(good) + b"NaN\n" + lines(good)) == {"loss": [Point(1, 1.0, 1.0)] * 2}


def test_parse_skips_values_that_are_not_numbers() -> None:
    data = lines(
        {"step": 0, "time": 1.0, "values": {"loss": 0.5, "name": "adam", "flag": True, "none": None, "list": [1]}},
        {"step": 1, "time": 2.0, "values": {"loss": "nan", "huge": 10**400, "obj": {"a": 1}}},  # "nan": not the spelling
    )
    assert series.parse(data) == {"loss": [Point(0, 1.0, 0.5)]}


def test_parse_tolerates_odd_steps_and_times() -> None:
    data = lines(
        {"step": 2.0, "time": "soon", "values": {"x": 1}},
        {"step": "3", "values": {"x": 2}},
        {"step": True, "time": 5, "values": {"x": 3}},
    )
    points = series.parse(data)["x"]
    assert [p.step for p in points] == [2, None, None]
    assert math.isnan(points[0].time) and math.isnan(points[1].time) and points[2].time == 5.0


def test_parse_of_nothing_is_empty() -> None:
    assert series.parse(b"") == {}
    assert series.parse(b"\n\n") == {}


def test_parse_reads_crlf_lines_and_unicode_names() -> None:
    data = b'{"step": 0, "time": 1, "values": {"\xc3\xa9val/loss\xe2\x80\xa8": 1.5}}\r\n'
    assert series.parse(data) == {"éval/loss\u2028": [Point(0, 1.0, 1.5)]}


def test_merge_prefers_the_first_source_for_a_shared_name() -> None:
    steps = {"loss": [Point(0, 1.0, 1.0)], "rss_mb": [Point(0, 1.0, 5.0)]}
    system = {"rss_mb": [Point(None, 1.0, 100.0)], "cpu_pct": [Point(None, 1.0, 50.0)]}
    merged = series.merge(steps, system)
    assert merged == {"loss": steps["loss"], "rss_mb": steps["rss_mb"], "cpu_pct": system["cpu_pct"]}


# -- sparkline -----------------------------------------------------------------------


def test_sparkline_of_a_rising_series_climbs_every_block() -> None:
    assert series.sparkline([float(i) for i in range(8)]) == BLOCKS


def test_sparkline_of_a_monotone_series_never_goes_down() -> None:
    line = series.sparkline([math.log1p(i) for i in range(30)])
    assert len(line) == 30
    assert [BLOCKS.index(c) for c in line] == sorted(BLOCKS.index(c) for c in line)
    assert line[0] == BLOCKS[0] and line[-1] == BLOCKS[-1]


def test_sparkline_of_a_falling_series_starts_high() -> None:
    assert series.sparkline([3.0, 2.0, 1.0, 0.0]) == "█▆▃▁"


def test_sparkline_of_a_constant_series_is_flat() -> None:
    assert series.sparkline([0.5] * 10) == "▄" * 10
    assert series.sparkline([7.0]) == "▄"


def test_sparkline_of_nothing_is_empty() -> None:
    assert series.sparkline([]) == ""
    assert series.sparkline([1.0, 2.0], width=0) == ""


def test_sparkline_shows_nan_as_a_gap_and_infinities_at_the_ends() -> None:
    assert series.sparkline([0.0, math.nan, 1.0]) == "▁ █"
    assert series.sparkline([math.nan, math.nan]) == "  "
    assert series.sparkline([1.0, math.inf, -math.inf, 1.0]) == "▄█▁▄"


def test_sparkline_down_samples_to_width_by_bucket_means() -> None:
    rising = [float(i) for i in range(1000)]
    line = series.sparkline(rising, width=8)
    assert line == BLOCKS
    assert len(series.sparkline(rising)) == 40
    # the mean of each bucket, not its first value: a spike in every other point lifts every bucket equally
    assert series.sparkline([0.0, 10.0] * 50, width=10) == "▄" * 10


def test_sparkline_buckets_ignore_nan_and_an_all_nan_bucket_is_a_space() -> None:
    data = [0.0, math.nan, 0.0, math.nan] + [math.nan] * 4 + [math.nan, 8.0, 8.0, 8.0]
    assert series.sparkline(data, width=3) == "▁ █"


def test_sparkline_copes_with_values_spanning_the_whole_float_range() -> None:
    assert series.sparkline([-1e308, 0.0, 1e308]) == "▁▅█"  # the middle of 8 levels rounds up
    assert series.sparkline([1e308] * 100, width=10) == "▄" * 10


# -- describe ------------------------------------------------------------------------


def test_describe_gives_name_sparkline_and_summary_sorted_by_name() -> None:
    loss = [Point(i, float(i), v) for i, v in enumerate([2.31, 1.2, 0.39, 0.41])]
    acc = [Point(i, float(i), v) for i, v in enumerate([0.1, 0.5, 0.9])]
    rows = series.describe({"loss": loss, "acc": acc})
    assert [r[0] for r in rows] == ["acc", "loss"]
    assert rows[0] == ("acc", "▁▅█", "n=3 first 0.1 last 0.9 min 0.1 max 0.9")
    assert rows[1][1] == series.sparkline([2.31, 1.2, 0.39, 0.41])
    assert rows[1][2] == "n=4 first 2.31 last 0.41 min 0.39 max 2.31"


def test_describe_formats_numbers_compactly_and_counts_nan() -> None:
    points = [Point(0, 0.0, 123456.789), Point(1, 1.0, math.nan), Point(2, 2.0, 0.000123456)]
    ((_, _, text),) = series.describe({"x": points})
    assert text == "n=3 first 1.235e+05 last 0.0001235 min 0.0001235 max 1.235e+05 nan=1"


def test_describe_of_all_nan_and_empty_series() -> None:
    rows = series.describe({"a": [Point(0, 0.0, math.nan)], "b": []})
    assert rows == [("a", " ", "n=1 first nan last nan nan=1"), ("b", "", "n=0")]


def test_describe_respects_the_width() -> None:
    points = [Point(i, float(i), float(i)) for i in range(500)]
    ((_, line, text),) = series.describe({"x": points}, width=12)
    assert len(line) == 12
    assert text.startswith("n=500 ")


# -- select and plot -----------------------------------------------------------------


def curve(n: int, step: bool = True, start: float = 1000.0) -> list[Point]:
    return [Point(i * 10 if step else None, start + i * 0.5, 1.0 / (i + 1)) for i in range(n)]


def test_select_takes_the_metric_of_each_run_and_names_the_runs_without_it() -> None:
    by_run = {"a": {"loss": curve(3)}, "b": {"acc": curve(2)}, "c": {"loss": curve(5), "acc": curve(1)}}
    curves, missing = series.select(by_run, "loss")
    assert list(curves) == ["a", "c"] and len(curves["c"]) == 5
    assert missing == ["b"]


def test_select_of_a_metric_no_run_has_names_the_ones_there_are() -> None:
    with pytest.raises(series.UnknownMetric) as info:
        series.select({"a": {"loss": curve(2)}, "b": {"acc": curve(2), "empty": []}}, "los")
    assert isinstance(info.value, GitexpError)
    assert info.value.message == "no run has a per-step metric 'los' (recorded: acc, loss)"
    assert "\n" not in info.value.message


def test_select_when_no_run_logged_anything() -> None:
    with pytest.raises(series.UnknownMetric, match="'loss' .*no per-step values"):
        series.select({"a": {}}, "loss")


def test_xy_uses_the_step_or_the_index_when_a_point_has_none() -> None:
    points = [Point(None, 5.0, 1.0), Point(7, 6.0, 2.0), Point(None, 7.0, math.inf)]
    xs, ys = series.xy(points)
    assert xs == [0.0, 7.0, 2.0]
    assert ys[:2] == [1.0, 2.0] and math.isnan(ys[2])  # an infinity is a gap, not a broken axis


def test_xy_by_time_counts_seconds_from_the_curves_first_timed_point() -> None:
    points = [Point(0, math.nan, 1.0), Point(1, 100.0, 2.0), Point(2, 102.5, 3.0)]
    xs, _ = series.xy(points, "time")
    assert math.isnan(xs[0]) and xs[1:] == [0.0, 2.5]


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "loss.png"
    series.plot({"run-a": curve(50), "run-b": curve(30, step=False), "single": curve(1)}, "loss", out)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 5000
    assert not [p for p in tmp_path.iterdir() if p.name != "loss.png"]  # no temporary file left behind


def test_plot_by_time_and_with_nan_values(tmp_path: Path) -> None:
    points = curve(20) + [Point(20, 1020.0, math.nan), Point(21, 1021.0, math.inf)]
    out = tmp_path / "t.png"
    series.plot({"a": points}, "loss", out, x="time")
    assert out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<?xml"), (".pdf", b"%PDF"), (".PNG", b"\x89PNG")])
def test_plot_format_follows_the_suffix(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = tmp_path / f"loss{suffix}"
    series.plot({"a": curve(10)}, "val/loss", out)
    assert out.read_bytes().startswith(magic)


def test_plot_creates_the_output_directory(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "deep" / "loss.png"
    series.plot({"a": curve(3)}, "loss", out)
    assert out.is_file()


def test_plot_refuses_an_unknown_suffix_without_writing(tmp_path: Path) -> None:
    for name in ("loss.txt", "loss"):
        with pytest.raises(series.UnsupportedPlotFormat, match=r"\.png.*\.svg|\.svg.*\.png"):
            series.plot({"a": curve(3)}, "loss", tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_plot_with_no_points_at_all_is_an_unknown_metric(tmp_path: Path) -> None:
    with pytest.raises(series.UnknownMetric, match="'loss'"):
        series.plot({"a": [], "b": []}, "loss", tmp_path / "x.png")
    with pytest.raises(series.UnknownMetric):
        series.plot({}, "loss", tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_refuses_an_unknown_x_axis(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="x must be"):
        series.plot({"a": curve(3)}, "loss", tmp_path / "x.png", x="epoch")


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(series.PlotUnavailable) as info:
        series.plot({"a": curve(3)}, "loss", tmp_path / "x.png")
    assert isinstance(info.value, GitexpError)
    assert info.value.message == "plotting needs matplotlib: pip install 'gitexp[plot]'"
    assert not (tmp_path / "x.png").exists()
