"""What differs between runs: `gitexp diff` of two runs, `gitexp compare` of several."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from gitexp import format as fmt
from gitexp.config import Config, higher_is_better
from gitexp.model import RunSummary
from gitexp.store import Store


@dataclass(frozen=True)
class Change:
    key: str
    old: Any  # None when added
    new: Any  # None when removed
    kind: str  # added | removed | changed

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new, "kind": self.kind}


@dataclass(frozen=True)
class MetricChange(Change):
    delta: float | None = None
    pct: float | None = None
    improved: bool | None = None  # None: not comparable (added, removed, not numbers)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "delta": self.delta, "pct": self.pct, "improved": self.improved}


@dataclass
class RunDiff:
    a: RunSummary
    b: RunSummary
    run: list[Change] = field(default_factory=list)
    params: list[Change] = field(default_factory=list)
    metrics: list[MetricChange] = field(default_factory=list)
    data: list[Change] = field(default_factory=list)
    env: list[Change] = field(default_factory=list)
    code: list[tuple[str, str]] = field(default_factory=list)  # (status letter, path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"name": self.a.name, "commit": self.a.commit},
            "b": {"name": self.b.name, "commit": self.b.commit},
            "run": [c.to_dict() for c in self.run],
            "params": [c.to_dict() for c in self.params],
            "metrics": [c.to_dict() for c in self.metrics],
            "data": [c.to_dict() for c in self.data],
            "env": [c.to_dict() for c in self.env],
            "code": [{"status": s, "path": p} for s, p in self.code],
        }


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Keys whose values differ between two flat mappings, sorted by key."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            out.append(Change(key, old[key], None, "removed"))
        elif key not in old:
            out.append(Change(key, None, new[key], "added"))
        elif old[key] != new[key]:
            out.append(Change(key, old[key], new[key], "changed"))
    return out


def number(value: Any) -> float | None:
    """value as a float when it is a number (or a number's text, or NaN/Infinity strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def metric_change(config: Config, key: str, old: Any, new: Any, kind: str) -> MetricChange:
    a, b = number(old), number(new)
    if kind != "changed" or a is None or b is None or math.isnan(a) or math.isnan(b):
        return MetricChange(key, old, new, kind)
    delta = b - a
    pct = delta / abs(a) * 100 if a not in (0.0,) and math.isfinite(a) else None
    improved = None if delta == 0 else (delta > 0) == higher_is_better(config, key)
    return MetricChange(key, old, new, kind, fmt.strict(delta), pct, improved)


def diff(store: Store, config: Config, a: RunSummary, b: RunSummary) -> RunDiff:
    result = RunDiff(a, b)
    result.run = changes(
        {"status": a.status, "exit_code": a.exit_code, "base": a.base, "command": _command(store, a)},
        {"status": b.status, "exit_code": b.exit_code, "base": b.base, "command": _command(store, b)},
    )
    result.params = changes(a.params, b.params)
    result.metrics = [metric_change(config, c.key, c.old, c.new, c.kind) for c in changes(a.metrics, b.metrics)]
    result.data = changes(_data(store, a), _data(store, b))
    result.env = changes(_env(store, a), _env(store, b))
    result.code = [(status, path) for status, path, _ in _code_changes(store, config, a, b)]
    return result


def code_patch(store: Store, config: Config, a: RunSummary, b: RunSummary) -> str:
    """The code diff of two runs, like `git diff`, without the record files."""
    return "".join(text for _, _, text in _code_changes(store, config, a, b))


def _code_changes(store: Store, config: Config, a: RunSummary, b: RunSummary) -> list[tuple[str, str, str]]:
    """The code changes, less the metrics files: they are the runs' results (compared as metrics), not code."""
    return [c for c in store.code_changes(a.commit, b.commit) if c[1] not in config.metrics]


def compare_table(runs: list[RunSummary], only_changed: bool) -> list[tuple[str, list[Any]]]:
    """Rows (key, value per run) of params then metrics; with only_changed, the rows that differ."""
    rows = []
    for section in ("params", "metrics"):
        maps: list[dict[str, Any]] = [getattr(r, section) for r in runs]
        for key in sorted({k for m in maps for k in m}):
            values = [m.get(key) for m in maps]
            if only_changed and len({json.dumps(v, sort_keys=True, default=str) for v in values}) == 1:
                continue
            rows.append((f"{section}.{key}", values))
    return rows


def best_columns(config: Config, rows: list[tuple[str, list[Any]]]) -> dict[str, int]:
    """For each metric row with numbers, the index of the best run (by the metric's direction)."""
    best = {}
    for key, values in rows:
        if not key.startswith("metrics."):
            continue
        scored = [(n, i) for i, v in enumerate(values) if (n := number(v)) is not None and not math.isnan(n)]
        if len(scored) < 2 or len({n for n, _ in scored}) == 1:
            continue
        pick = max if higher_is_better(config, key.removeprefix("metrics.")) else min
        best[key] = pick(scored)[1]
    return best


def _command(store: Store, run: RunSummary) -> str | None:
    raw = store.read_record(run.commit, fmt.RUN_FILE)
    if raw is None:
        return None
    import shlex

    from gitexp.safeload import json_object

    command = json_object(raw, f"{fmt.RECORD_DIR}/{fmt.RUN_FILE} of run {run.name!r}").get("command")
    return shlex.join(str(c) for c in command) if isinstance(command, list) else None


def _data(store: Store, run: RunSummary) -> dict[str, Any]:
    """'<section>:<path>' -> digest (or kind when it has none), for the run's pointers and their files."""
    from gitexp.data.inventory import SECTION_ROLES, manifest, run_pointers

    from gitexp.errors import GitexpError

    out: dict[str, Any] = {}
    try:
        for section, pointers in run_pointers(store, run.commit).items():
            role = SECTION_ROLES[section]
            for p in pointers:
                out[f"{role}:{p.path}"] = p.digest or p.kind
                if p.kind == "dir":
                    for entry in manifest(store, run.commit, p).files():
                        out[f"{role}:{p.path}/{entry['path']}"] = entry["digest"]
    except GitexpError as exc:
        raise GitexpError(f"run {run.name!r}: {exc.message}") from exc
    return out


def _env(store: Store, run: RunSummary) -> dict[str, Any]:
    raw = store.read_record(run.commit, fmt.ENV_FILE)
    if raw is None:
        return {}
    from gitexp.safeload import json_object

    env = json_object(raw, f"{fmt.RECORD_DIR}/{fmt.ENV_FILE} of run {run.name!r}")

    def part(d: Any, key: str) -> dict[str, Any]:  # a record of an unexpected shape shows as absent
        found = d.get(key) if isinstance(d, dict) else None
        return found if isinstance(found, dict) else {}

    py = part(env, "python")
    gpus = env.get("gpus")
    out: dict[str, Any] = {
        "python": py.get("version"),
        "os": part(env, "os").get("platform"),
        "cpu": part(env, "cpu").get("model"),
        "gpus": ", ".join(str(g.get("name", "?")) for g in gpus if isinstance(g, dict)) or None if isinstance(gpus, list) else None,
    }
    out.update({f"package {name}": version for name, version in part(py, "packages").items()})
    out.update({f"env {k}": v for k, v in part(env, "env").items()})
    return {k: v for k, v in out.items() if v is not None}
