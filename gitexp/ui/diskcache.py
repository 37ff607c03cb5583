"""What `gitexp ui` reads from finished runs, kept on disk by run commit, so a restarted server starts where the
last one stopped: the parsed step series of long runs, and every run's command and per-series statistics.

A run commit never changes, so no entry goes stale. All of it is derived data, local to this clone (under
`.git/gitexp/ui-cache/`), never fetched or pushed; anything that is not exactly what this module writes is
ignored (and read from the run again). Deleting the directory at any time is safe.

- `series/<commit[:2]>/<commit[2:]>`: a run's step series when they hold MIN_POINTS points or more (parsing
  100,000 JSON lines takes 0.25 s; reading them back from here, a few milliseconds). The line
  `gitexp-series 1`, a JSON line `[[name, count], ...]`, then per series in that order its count steps (int64,
  -2**63 for a point without one), times (float64) and values (float64), little-endian.
- `curves/<commit[:2]>/<commit[2:]>-<x>-<points>.json`: for such a run, the answer of its whole-range curves
  (every series, downsampled to `points` by `x`) as the series API gives it: `{name: {"x": [...], "y": [...],
  "exact": bool}}`, so a restarted server draws them without reading the points at all.
- `stats.jsonl`: a line per run, `{"commit": ..., "command": ..., "stats": {name: [last, min, max]}}` (values
  as the UI's JSON writes them: NaN and infinities as strings; "best" is not kept, as it follows the config's
  direction), appended as runs are read; the last line of a commit wins.
"""

from __future__ import annotations

import json
import math
import os
import sys
from array import array
from itertools import repeat
from pathlib import Path
from typing import Any

from gitexp.series import Point

MAGIC = b"gitexp-series 1\n"
NO_STEP = -(2**63)
MIN_POINTS = 20_000  # smaller runs parse in a few ms: not worth a file each
_LITTLE = sys.byteorder == "little"


def entry_path(common_dir: Path, commit: str) -> Path:
    return common_dir / "gitexp" / "ui-cache" / "series" / commit[:2] / commit[2:]


def answer_path(common_dir: Path, commit: str, x: str, points: int) -> Path:
    return common_dir / "gitexp" / "ui-cache" / "curves" / commit[:2] / f"{commit[2:]}-{x}-{points}.json"


def load_answer(common_dir: Path, commit: str, x: str, points: int) -> dict[str, Any] | None:
    """The whole-range curves answer kept for the run commit, or None when there is no well-formed one."""
    try:
        found = json.loads(answer_path(common_dir, commit, x, points).read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(found, dict):
        return None
    for curve in found.values():
        if not (isinstance(curve, dict) and isinstance(curve.get("x"), list) and isinstance(curve.get("y"), list)
                and isinstance(curve.get("exact"), bool) and len(curve["x"]) == len(curve["y"])):
            return None
    return found


def save_answer(common_dir: Path, commit: str, x: str, points: int, answer: dict[str, Any]) -> None:
    """Keep a whole-range curves answer (a failure to write is ignored)."""
    _write_atomic(answer_path(common_dir, commit, x, points), [json.dumps(answer, ensure_ascii=True).encode()])


def stats_path(common_dir: Path) -> Path:
    return common_dir / "gitexp" / "ui-cache" / "stats.jsonl"


def load(common_dir: Path, commit: str) -> dict[str, list[Point]] | None:
    """The series saved for the run commit, or None when there is no well-formed entry."""
    try:
        data = entry_path(common_dir, commit).read_bytes()
    except OSError:
        return None
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) : end]) if end > 0 else None
    except ValueError:
        return None
    if not isinstance(header, list) or not all(
        isinstance(h, list) and len(h) == 2 and isinstance(h[0], str) and type(h[1]) is int and h[1] >= 0 for h in header
    ):
        return None
    if len(data) != end + 1 + 24 * sum(h[1] for h in header):
        return None
    out: dict[str, list[Point]] = {}
    at = end + 1
    for name, count in header:
        steps, times, values = array("q"), array("d"), array("d")
        for column in (steps, times, values):
            column.frombytes(data[at : at + 8 * count])
            if not _LITTLE:
                column.byteswap()
            at += 8 * count
        # tuple.__new__ straight from C: Point(...) per point costs a Python call each (3x slower at 100,000)
        out[name] = list(map(tuple.__new__, repeat(Point), zip([None if s == NO_STEP else s for s in steps], times, values)))
    return out


def save(common_dir: Path, commit: str, found: dict[str, list[Point]]) -> None:
    """Keep the series of a finished run when they hold MIN_POINTS or more; a failure to write is ignored (the
    cache only saves time: a read-only repository or a full disk parse again next time)."""
    if sum(len(points) for points in found.values()) < MIN_POINTS:
        return
    header = [[name, len(points)] for name, points in found.items()]
    chunks = [MAGIC, json.dumps(header, ensure_ascii=True).encode() + b"\n"]
    for points in found.values():
        raw_steps = [NO_STEP if p.step is None else p.step for p in points]
        if any(not NO_STEP <= s < 2**63 or (s == NO_STEP and p.step is not None) for s, p in zip(raw_steps, points)):
            return  # a step an int64 cannot hold: such a run is parsed each time
        steps = array("q", raw_steps)
        columns = (steps, array("d", [p.time for p in points]), array("d", [p.value for p in points]))
        for column in columns:
            if not _LITTLE:
                column.byteswap()
            chunks.append(column.tobytes())
    _write_atomic(entry_path(common_dir, commit), chunks)


def _write_atomic(path: Path, chunks: list[bytes]) -> None:
    """Write path whole or not at all (workspace.atomic_write, not made durable: derived data); a failure is ignored."""
    from gitexp.workspace import atomic_write

    try:
        atomic_write(path, b"".join(chunks), durable=False)
    except OSError:
        return


Stats = dict[str, tuple[float | None, float, float]]  # series name -> (last, min, max); last None when not finite


def load_stats(common_dir: Path) -> dict[str, tuple[str, Stats]]:
    """Every run's (command, stats) kept in stats.jsonl, by commit; lines that are not well-formed are skipped."""
    try:
        data = stats_path(common_dir).read_bytes()
    except OSError:
        return {}
    out: dict[str, tuple[str, Stats]] = {}
    for raw in data.split(b"\n"):
        try:
            obj = json.loads(raw) if raw else None
        except (ValueError, RecursionError):
            continue
        if not isinstance(obj, dict):
            continue
        commit, command, stats = obj.get("commit"), obj.get("command"), obj.get("stats")
        if not (isinstance(commit, str) and isinstance(command, str) and isinstance(stats, dict)):
            continue
        parsed: Stats = {}
        for name, triple in stats.items():
            if not (isinstance(triple, list) and len(triple) == 3):
                break
            last, low, high = triple
            if not (_number_or_none(last) and _number(low) and _number(high)):
                break
            parsed[name] = (last, float(low), float(high))
        else:
            out[commit] = (command, parsed)
    return out


def append_stats(common_dir: Path, entries: list[tuple[str, str, Stats]]) -> None:
    """Add (commit, command, stats) lines; one write call (O_APPEND), a failure ignored."""
    if not entries:
        return
    lines = b"".join(
        json.dumps({"commit": commit, "command": command, "stats": {k: list(v) for k, v in stats.items()}},
                   ensure_ascii=True, allow_nan=False).encode() + b"\n"
        for commit, command, stats in entries
    )
    path = stats_path(common_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines)
        finally:
            os.close(fd)
    except OSError:
        return


def _number(x: object) -> bool:
    return type(x) in (int, float) and math.isfinite(x)  # type: ignore[arg-type]


def _number_or_none(x: object) -> bool:
    return x is None or _number(x)
