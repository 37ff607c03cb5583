"""Which columns a table of runs shows: the params that differ between the runs, and how many fit a width.

`gitexp list` (and the UI's "only what differs") choose with these; the formatting is in gitexp.render.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gitexp.model import RunSummary

FIXED = ("name", "created", "status", "duration")  # always first, in this order
GAP = 2  # spaces between two columns of a table


def differing(maps: Sequence[Mapping[str, Any]], ignore_missing: bool = False) -> list[str]:
    """The keys (sorted) whose value is not the same in every map.

    A map lacking a key counts as a difference, unless ignore_missing: then only the maps that have
    the key are compared (a key one run has and the others lack is not a difference)."""
    out = []
    for key in sorted({k for m in maps for k in m}, key=str):
        seen = None
        for m in maps:  # until the first difference: 100,000 runs whose lr differs are not all read
            if key in m:
                ident = _ident(m[key])
                if seen is None:
                    seen = ident
                elif ident != seen:
                    out.append(key)
                    break
            elif not ignore_missing:
                out.append(key)
                break
    return out


def _ident(v: Any) -> str:
    """Equal for equal values, and only for values of one type: 1, 1.0, True and "1" all differ."""
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, default=str)
    return repr(v)


def run_columns(runs: Sequence[RunSummary], wide: bool = False, only_changed: bool = False) -> list[str]:
    """The columns of a table of runs: name, created, status, duration, then params, then metrics.

    By default the params that differ between the runs (a run lacking one counts as a difference;
    every param when there are fewer than two runs: nothing to compare) and every metric; wide: every
    param too; only_changed: the params and metrics whose value differs between the runs that have them.
    """
    params = shown([r.params for r in runs], wide, only_changed)
    metrics = [r.metrics for r in runs]
    metric_keys = differing(metrics, True) if only_changed else _every(metrics)
    return [*FIXED, *(f"params.{k}" for k in params), *(f"metrics.{k}" for k in metric_keys)]


def shown(params: Sequence[Mapping[str, Any]], wide: bool = False, only_changed: bool = False) -> list[str]:
    """Which of these params (one map per run, or per group of runs) a table shows: those that differ
    (as differing(), only_changed: ignore_missing), all of them when wide or with fewer than two maps."""
    if only_changed:
        return differing(params, True)
    if wide or len(params) < 2:
        return _every(params)
    return differing(params)


def _every(maps: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({k for m in maps for k in m}, key=str)


def fitting(widths: Sequence[int], limit: int | None, gap: int = GAP) -> int:
    """How many leading columns of these widths fit in a line of limit characters, gap apart (limit
    None: all). Always at least one: the first column (the name) says which row is which."""
    if limit is None:
        return len(widths)
    used = 0
    for i, w in enumerate(widths):
        used += w + (gap if i else 0)
        if used > limit and i > 0:
            return i
    return len(widths)


def dropped_note(dropped: int) -> str:
    """The line under a table that had to leave columns out: "(+7 columns: --wide)"."""
    return f"(+{dropped} column{'s' if dropped != 1 else ''}: --wide)"
