"""A run's time series: the step files of its record, as sparklines and as plots.

`steps.jsonl` (what the script logged per step) and `system.jsonl` (hardware
samples; gitexp.format.STEPS_FILE and SYSTEM_FILE) hold one JSON object per line:

    {"step": 3, "time": 1764086967.123, "values": {"loss": 0.41, "acc": 0.88}}

Reading them never fails: a damaged line, a truncated last line (the process
crashed) or a value that is not a number is skipped. Pure: no git, no click;
matplotlib is imported only by plot().
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, NamedTuple

from gitexp.errors import GitexpError

BLOCKS = "▁▂▃▄▅▆▇█"
FLAT = BLOCKS[3]
X_AXES = ("step", "time")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_SHOWN_METRICS = 20
_VALUES = re.compile(rb'"values":\{([^}]*)\}')
_NAME = re.compile(rb'(?:^|,)("(?:[^"\\]|\\.)*"):')


class PlotUnavailable(GitexpError):
    def __init__(self) -> None:
        super().__init__("plotting needs matplotlib: pip install 'gitexp[plot]'")


class UnknownMetric(GitexpError):
    def __init__(self, metric: str, available: list[str]) -> None:
        if available:
            shown = ", ".join(available[:_SHOWN_METRICS]) + (", ..." if len(available) > _SHOWN_METRICS else "")
            hint = f"recorded: {shown}"
        else:
            hint = "these runs recorded no per-step values"
        super().__init__(f"no run has a per-step metric {metric!r} ({hint})")
        self.metric = metric
        self.available = available


class UnsupportedPlotFormat(GitexpError):
    def __init__(self, path: str, supported: list[str]) -> None:
        super().__init__(
            f"cannot tell which image format to write to {path} (end the name with one of: {', '.join(supported)})"
        )
        self.path = path


class Point(NamedTuple):  # a tuple, not a dataclass: a million of them must be cheap to make
    step: int | None  # None: the point has no step (its position in the series stands in for one)
    time: float  # unix seconds; NaN when the line had none
    value: float


# -- reading -------------------------------------------------------------------------


def last_line_of_each(steps: bytes) -> dict[str, bytes]:
    """Each series name in a steps text -> the last line that holds it.

    Found by two regular expressions and one search per name, not by parsing every
    line: this runs over a growing file every few seconds, and over whole files at
    the end of a run, whose lines can number millions.
    """
    encoded = {name for values in _VALUES.findall(steps) for name in _NAME.findall(values)}
    out: dict[str, bytes] = {}
    for key in encoded:
        try:
            name = json.loads(key)
        except ValueError:
            continue
        at = max(steps.rfind(b"{" + key + b":"), steps.rfind(b"," + key + b":"))
        start = steps.rfind(b"\n", 0, at) + 1
        end = steps.find(b"\n", at)
        out[name] = steps[start : end if end >= 0 else len(steps)]
    return out


def parse(data: bytes) -> dict[str, list[Point]]:
    """The series in a steps file, by name, each in file order. Never raises on bad content.

    The lines are decoded as one JSON array (one call into the decoder: 100,000 lines in 0.17 s instead of
    0.42 s line by line); a file with a line that is not one JSON value alone is read line by line, so a bad
    line costs only itself.
    """
    lines = [raw for raw in data.split(b"\n") if raw and not raw.isspace()]
    objs: list[Any] | None = None
    try:
        whole = json.loads(b"[" + b",".join(lines) + b"]")
        objs = whole if len(whole) == len(lines) else None
    except (ValueError, RecursionError):
        pass
    if objs is None:
        objs = [_decoded(raw) for raw in lines]
    series: dict[str, list[Point]] = {}
    for obj in objs:
        entry = _entry(obj)
        if entry is None:
            continue
        step, time, values = entry
        for name, value in values.items():
            number = value if type(value) is float else _number(value)  # the common case, fast
            if number is not None:
                series.setdefault(name, []).append(Point(step, time, number))
    return series


def merge(*sources: dict[str, list[Point]]) -> dict[str, list[Point]]:
    """The series of several files together; for a name found in several, the first source's series wins."""
    merged: dict[str, list[Point]] = {}
    for source in sources:
        for name, points in source.items():
            merged.setdefault(name, points)
    return merged


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _entry(obj: Any) -> tuple[int | None, float, dict[str, Any]] | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("values"), dict):
        return None
    time = _number(obj.get("time"))
    return _step(obj.get("step")), math.nan if time is None else time, obj["values"]


def _step(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return None


def _number(raw: Any) -> float | None:
    """A JSON value as a float: numbers and the strings "NaN", "Infinity", "-Infinity"; None for anything else."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        try:
            return float(raw)
        except OverflowError:  # an integer too large for a float
            return None
    if isinstance(raw, str):
        return _NON_FINITE.get(raw)
    return None


# -- text ----------------------------------------------------------------------------


def sparkline(values: list[float], width: int = 40) -> str:
    """values as at most width block characters, lowest ▁ to highest █.

    A longer series is cut into width buckets shown by their mean (NaN left out; a bucket of only NaN is a
    space). A constant series is a flat line of ▄; +inf is █ and -inf ▁.
    """
    if not values or width < 1:
        return ""
    shown = _bucket_means(values, width) if len(values) > width else list(values)
    finite = [v for v in shown if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
    return "".join(_block(v, low, high) for v in shown)


def _bucket_means(values: list[float], width: int) -> list[float]:
    n = len(values)
    means = []
    for i in range(width):
        bucket = [v for v in values[i * n // width : (i + 1) * n // width] if not math.isnan(v)]
        # v / len: no overflow for huge values; inf and -inf in one bucket give NaN, a space
        means.append(sum(v / len(bucket) for v in bucket) if bucket else math.nan)
    return means


def _block(v: float, low: float, high: float) -> str:
    if math.isnan(v):
        return " "
    if math.isinf(v):
        return BLOCKS[-1] if v > 0 else BLOCKS[0]
    if high == low:
        return FLAT
    # halves: high - low may overflow when the values span most of the float range
    level = int((v / 2 - low / 2) / (high / 2 - low / 2) * (len(BLOCKS) - 1) + 0.5)
    return BLOCKS[min(max(level, 0), len(BLOCKS) - 1)]


def describe(series: dict[str, list[Point]], width: int = 40) -> list[tuple[str, str, str]]:
    """(name, sparkline, summary) per series, sorted by name; the summary is 'n=.. first .. last .. min .. max ..'."""
    return [(name, sparkline([p.value for p in series[name]], width), summary(series[name])) for name in sorted(series)]


def summary(points: list[Point]) -> str:
    """'n=100 first 2.31 last 0.41 min 0.39 max 2.31', and how many values are NaN when some are."""
    values = [p.value for p in points]
    if not values:
        return "n=0"
    known = [v for v in values if not math.isnan(v)]
    text = f"n={len(values)} first {_num(values[0])} last {_num(values[-1])}"
    if known:
        text += f" min {_num(min(known))} max {_num(max(known))}"
    missing = len(values) - len(known)
    return text + (f" nan={missing}" if missing else "")


def _num(v: float) -> str:
    return f"{v:.4g}"


# -- plots ---------------------------------------------------------------------------


def metrics(series_by_run: dict[str, dict[str, list[Point]]]) -> list[str]:
    """Every metric name that has points in some run, sorted."""
    return sorted({name for series in series_by_run.values() for name, points in series.items() if points})


def select(
    series_by_run: dict[str, dict[str, list[Point]]], metric: str
) -> tuple[dict[str, list[Point]], list[str]]:
    """The curves of metric ({run: points}) and the runs without it, in the order given.

    Raises UnknownMetric, naming the metrics there are, when no run has it.
    """
    curves: dict[str, list[Point]] = {}
    missing: list[str] = []
    for run, series in series_by_run.items():
        if series.get(metric):
            curves[run] = series[metric]
        else:
            missing.append(run)
    if not curves:
        raise UnknownMetric(metric, metrics(series_by_run))
    return curves, missing


def xy(points: list[Point], x: str = "step") -> tuple[list[float], list[float]]:
    """A curve's coordinates: x is the step (the point's index when it has none) or, with x="time", the seconds
    since the curve's first timed point; y is the value, with infinities as NaN (a gap in the line)."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {X_AXES}, not {x!r}")
    if x == "time":
        start = next((p.time for p in points if math.isfinite(p.time)), math.nan)
        xs = [p.time - start for p in points]
    elif all(p.step is not None for p in points):  # by step, whatever order they were logged in
        points = sorted(points, key=lambda p: p.step or 0)
        xs = [float(p.step or 0) for p in points]
    else:
        xs = [float(i if p.step is None else p.step) for i, p in enumerate(points)]
    return xs, [p.value if math.isfinite(p.value) else math.nan for p in points]


def plot(curves: dict[str, list[Point]], metric: str, out: Path, x: str = "step") -> None:
    """Write one figure of metric to out: a line per curve, labelled with its key (a run name).

    The image format follows out's suffix (.png, .svg, .pdf, ...). The file is written whole or not at all.
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {X_AXES}, not {x!r}")
    drawn = {label: points for label, points in curves.items() if points}
    if not drawn:
        raise UnknownMetric(metric, [])
    try:
        # The object-oriented API, not pyplot: no global backend switch, no display, nothing left open.
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailable() from exc

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    image_format = out.suffix[1:].lower()
    supported = sorted(fig.canvas.get_supported_filetypes())
    if image_format not in supported:
        raise UnsupportedPlotFormat(str(out), [f".{s}" for s in supported])
    ax = fig.add_subplot()
    for label, points in drawn.items():
        xs, ys = xy(points, x)
        ax.plot(xs, ys, label=label, marker="o" if len(points) == 1 else None, linewidth=1.5)
    ax.set_title(metric)
    ax.set_xlabel("step" if x == "step" else "seconds since the first point")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, out, image_format)


def _save(fig: Any, out: Path, image_format: str) -> None:
    """Render the figure, then write it whole (readers never see half an image)."""
    import io

    from gitexp.workspace import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format=image_format, dpi=120)
    atomic_write(out, buf.getvalue())
