"""Groups of runs (repeats of a config, a sweep's arms): metric statistics, and is B better than A beyond noise?"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gitexp.config import Config, higher_is_better
from gitexp.errors import GitexpError
from gitexp.filter import MISSING, getter
from gitexp.model import RunSummary
from gitexp.stats import Summary, Welch, summarize, welch
from gitexp.store import Store

COUNTED = "completed"  # only completed runs count in a group's statistics


@dataclass(frozen=True)
class Group:
    key: dict[str, Any]  # field -> the value the group's runs share (None: they lack it)
    runs: list[RunSummary]  # the completed runs: the statistics are over these
    stats: dict[str, Summary] = field(default_factory=dict)  # metric -> statistics over the runs
    left_out: list[RunSummary] = field(default_factory=list)  # failed, interrupted, crashed, running...

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.key,
            "n": len(self.runs),
            "runs": [r.name for r in self.runs],
            "left_out": [{"name": r.name, "status": r.status} for r in self.left_out],
            "metrics": {m: s.__dict__ for m, s in self.stats.items()},
        }


def group_runs(runs: list[RunSummary], keys: list[str]) -> list[Group]:
    """Runs grouped by the values of keys (fields as in --where; `config`: params without the seed), in key order."""
    readers = [getter(k) for k in keys]
    buckets: dict[str, tuple[dict[str, Any], list[RunSummary]]] = {}
    for run in runs:
        values = {k: (None if (v := read(run)) is MISSING else v) for k, read in zip(keys, readers, strict=True)}
        ident = json.dumps(values, sort_keys=True, default=str)
        buckets.setdefault(ident, (values, []))[1].append(run)
    groups = [of(values, members) for values, members in buckets.values()]
    return sorted(groups, key=lambda g: [_order(g.key[k]) for k in keys])


def sort_groups(groups: list[Group], keys: list[str]) -> list[Group]:
    """Sort by group keys or by metrics' means ('-' prefix: descending); groups missing the key come last."""
    result = list(groups)
    for key in reversed(keys):
        descending, name = key.startswith("-"), key.removeprefix("-")

        def value(g: Group, name: str = name) -> Any:
            if name.startswith("metrics.") and name[len("metrics.") :] in g.stats:
                return g.stats[name[len("metrics.") :]].mean
            return g.key.get(name)

        present = [g for g in result if _order(value(g))[0] == 0 or value(g) is not None]
        absent = [g for g in result if g not in present]
        result = sorted(present, key=lambda g: _order(value(g)), reverse=descending) + absent
    return result


def selected(store: Store, expressions: tuple[str, ...]) -> list[Group]:
    """One group per --where expression: the runs it matches (each group must match some)."""
    from gitexp.query import runs, select

    every = runs(store)
    groups = [of({"where": e}, select(store, e, None, None, None, every)) for e in expressions]
    for expr, group in zip(expressions, groups, strict=True):
        if not group.runs and not group.left_out:
            raise GitexpError(f"no run matches {expr!r} (a group is a --where expression, e.g. \"params.lr = 0.1\")")
        if not group.runs:
            raise GitexpError(f"no completed run matches {expr!r}: only completed runs are compared")
    return groups


def overlap(groups: list[Group]) -> list[str]:
    """Names of runs that are in more than one group (their test would not be between independent samples)."""
    seen: set[str] = set()
    shared: list[str] = []
    for group in groups:
        for run in group.runs:
            if run.name in seen:
                shared.append(run.name)
            seen.add(run.name)
    return shared


def of(key: dict[str, Any], runs: list[RunSummary]) -> Group:
    counted = [r for r in runs if r.status == COUNTED]
    metrics = sorted({m for r in counted for m in r.metrics})
    stats = {m: summarize(r.metrics.get(m) for r in counted) for m in metrics}
    return Group(key, counted, stats, [r for r in runs if r.status != COUNTED])


def _order(value: Any) -> tuple[int, float, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, "" if value is None else str(value))


@dataclass(frozen=True)
class MetricTest:
    metric: str
    a: Summary
    b: Summary
    test: Welch | None
    higher_is_better: bool

    @property
    def better(self) -> bool | None:
        """True if B is better than A beyond noise, False if worse beyond noise, None if within noise or untested."""
        if self.test is None or not self.test.significant():
            return None
        return (self.test.diff > 0) == self.higher_is_better

    def to_dict(self) -> dict[str, Any]:
        t = self.test
        return {
            "metric": self.metric,
            "a": self.a.__dict__,
            "b": self.b.__dict__,
            "diff": t.diff if t else None,
            "p": t.p if t else None,
            "ci95": [t.ci_low, t.ci_high] if t else None,
            "better": self.better,
            "higher_is_better": self.higher_is_better,
        }


def tests(config: Config, a: Group, b: Group) -> list[MetricTest]:
    """Welch's t-test of every metric either group has: is B different from A beyond noise?"""
    empty = summarize([])
    out = []
    for metric in sorted(a.stats.keys() | b.stats.keys()):
        sa, sb = a.stats.get(metric, empty), b.stats.get(metric, empty)
        out.append(MetricTest(metric, sa, sb, welch(sa, sb), higher_is_better(config, metric)))
    return out
