"""Final metrics: read from the metrics file(s) a command wrote."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.paramfiles import flatten


@dataclass(frozen=True)
class FileState:
    """What a metrics file looked like before the command started."""

    mtime_ns: int | None
    size: int | None


@dataclass(frozen=True)
class Metrics:
    values: dict[str, Any]
    warnings: tuple[str, ...] = ()
    written: tuple[str, ...] = ()  # the metrics files the command wrote or changed (readable or not)
    unreadable: tuple[tuple[str, str], ...] = ()  # (file, why) for each written file whose values were not recorded


def before(root: Path, paths: tuple[str, ...]) -> dict[str, FileState]:
    states = {}
    for rel in paths:
        try:
            st = os.stat(root / rel)
            states[rel] = FileState(st.st_mtime_ns, st.st_size)
        except OSError:
            states[rel] = FileState(None, None)
    return states


def read(root: Path, states: dict[str, FileState]) -> Metrics:
    """Flattened metrics from the files the command wrote or changed.

    A file left exactly as it was before the run is stale (an earlier run's
    result) and is not recorded. A malformed file is reported, never fatal: the
    run has happened and must be recorded.
    """
    values: dict[str, Any] = {}
    warnings: list[str] = []
    written: list[str] = []
    unreadable: list[tuple[str, str]] = []
    for rel, was in states.items():
        full = root / rel
        try:
            st = os.stat(full)
        except OSError:
            continue
        if (st.st_mtime_ns, st.st_size) == (was.mtime_ns, was.size):
            warnings.append(f"{rel} was not updated by this run; its values were not recorded as metrics")
            continue
        written.append(rel)
        try:
            flat = flatten(_parse(rel, full.read_text(encoding="utf-8")))
            json.dumps(flat, default=str)  # a value nested too deep to be written fails here, not in the record
        except (ValueError, UnicodeDecodeError, OSError, RecursionError, MemoryError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else " ".join(str(exc).split())
            warnings.append(f"{rel} could not be read as metrics ({why}); not recorded")
            unreadable.append((rel, why))
            continue
        for key, value in flat.items():
            if not key or "" in key.split("."):
                warnings.append(f"{rel}: metric name {key!r} has an empty part; not recorded")
            elif key in values:
                warnings.append(f"{rel}: metric {key} is given twice; the last value is recorded")
                values[key] = value
            else:
                values[key] = value
    return Metrics(values, tuple(warnings), tuple(written), tuple(unreadable))


def _parse(rel: str, text: str) -> dict[str, Any]:
    if rel.endswith((".yaml", ".yml")):
        import yaml

        from gitexp.safeload import yaml_loads

        try:
            data = yaml_loads(text, rel)
        except yaml.YAMLError as exc:
            raise ValueError(str(exc)) from exc
    else:
        from gitexp.safeload import UnreadableRecord, json_loads

        try:
            data = json_loads(text, rel) if text.strip() else {}
        except UnreadableRecord as exc:
            raise ValueError(exc.reason) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("the top level must be a mapping of names to values")
    return data
