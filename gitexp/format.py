"""The on-disk record format (version 1): names, files and the commit message.

This module is the code twin of docs/format.md. It is pure: no git, no I/O.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gitexp.errors import UnsupportedFormat
from gitexp.model import RunSummary
from gitexp.safeload import MAX_BYTES, MAX_DEPTH, MAX_MESSAGE_BYTES, UnreadableRecord, json_loads

FORMAT_VERSION = 1
REF_PREFIX = "refs/experiments/"
NOTES_REF = "refs/notes/gitexp"
QUEUE_PREFIX = "refs/gitexp-queue/"  # on a git remote: runs queued there for its workers (see remote_queue.py)
RECORD_DIR = ".gitexp"
CONFIG_FILE = ".gitexp.yaml"

# Files inside RECORD_DIR in a run's tree.
RUN_FILE = "run.json"
PARAMS_FILE = "params.json"
METRICS_FILE = "metrics.json"
ENV_FILE = "env.json"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
DATA_FILE = "data.json"
MANIFEST_DIR = "manifests"
INDEX_TREE = "index"  # a saved run's record: the tree the user had staged
STEPS_FILE = "steps.jsonl"  # metrics logged per step (gitexp.log, scalars captured from stdout)
SYSTEM_FILE = "system.jsonl"  # hardware samples of the command's process tree, same line format
RESOURCES_FILE = "resources.json"  # the hardware summary (peak RSS, CPU-seconds, ...)
LOG_TIMES_FILE = "logtimes.tsv"  # when each piece of stdout.log / stderr.log arrived

# Commit message trailers, in the order they are written.
T_FORMAT = "Gitexp-Format"
T_RUN = "Gitexp-Run"
T_STATUS = "Gitexp-Status"
T_EXIT = "Gitexp-Exit-Code"
T_STARTED = "Gitexp-Started"
T_DURATION = "Gitexp-Duration"
T_USER = "Gitexp-User"
T_BASE = "Gitexp-Base"
T_BRANCH = "Gitexp-Base-Branch"
T_PARENT = "Gitexp-Parent-Run"
T_TAGS = "Gitexp-Tags"
T_PARAMS = "Gitexp-Params"
T_METRICS = "Gitexp-Metrics"
T_RESOURCES = "Gitexp-Resources"
T_SWEEP = "Gitexp-Sweep"
T_INCOMPLETE = "Gitexp-Incomplete"  # only when part of the record could not be kept: what is missing
T_RECORDER = "Gitexp-Recorder"  # only while status is running: pid@host of the recording process
# Only on the commits of a remote queue (refs/gitexp-queue/<name>), after the others: see docs/format.md.
T_LEASE = "Gitexp-Lease"  # a claimed run: "<host> <pid> <lease end, unix seconds>" of the worker running it
T_ATTEMPT = "Gitexp-Attempt"  # 2, 3, ...: a run queued again after its worker died (absent: 1)
T_RETRY_OF = "Gitexp-Retry-Of"  # the commit id of the crashed attempt a retry repeats

SUBJECT_MAX = 72


NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def strict(value: Any) -> Any:
    """value with NaN and infinities as the strings "NaN", "Infinity", "-Infinity" (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return NON_FINITE[repr(value)]
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """Canonical JSON of a record file: sorted keys, 2-space indent, final newline, strict JSON."""
    return _dumps(value, indent=2) + "\n"


def compact_json(value: Any) -> str:
    """One-line strict JSON for a trailer value (never contains a newline)."""
    return _dumps(value, separators=(",", ":"))


def _dumps(value: Any, **style: Any) -> str:
    """UTF-8 JSON; a file name that is not UTF-8 (a lone surrogate here) is written \\u-escaped instead."""
    text = json.dumps(strict(value), sort_keys=True, ensure_ascii=False, allow_nan=False, default=str, **style)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(strict(value), sort_keys=True, ensure_ascii=True, allow_nan=False, default=str, **style)
    return text


def build_message(subject: str, note: str, trailers: list[tuple[str, str]]) -> str:
    subject = " ".join(subject.split())
    if len(subject) > SUBJECT_MAX:
        subject = subject[: SUBJECT_MAX - 3] + "..."
    parts = [subject]
    note = note.strip()
    if note:
        parts.append(note)
    parts.append("\n".join(f"{key}: {value}" for key, value in trailers))
    return "\n\n".join(parts) + "\n"


def parse_trailers(message: str) -> dict[str, str]:
    """The Gitexp-* trailers of a run commit message (last paragraph only)."""
    block = message.rstrip("\n").rsplit("\n\n", 1)[-1]
    trailers: dict[str, str] = {}
    for line in block.split("\n"):
        key, sep, value = line.partition(": ")
        if sep and key.startswith("Gitexp-"):
            trailers[key] = value
    return trailers


def parse_note(message: str) -> str:
    """The free-text note between the subject and the trailers ('' if none)."""
    paragraphs = message.rstrip("\n").split("\n\n")
    return "\n\n".join(paragraphs[1:-1]).strip()


def run_trailers(run: RunSummary) -> list[tuple[str, str]]:
    """The trailers of a run commit: a summary cheap to read without opening the tree."""
    trailers = [
        (T_FORMAT, str(FORMAT_VERSION)),
        (T_RUN, run.name),
        (T_STATUS, run.status),
        (T_EXIT, "none" if run.exit_code is None else str(run.exit_code)),
        (T_STARTED, run.started),
        (T_DURATION, "none" if run.duration is None else f"{run.duration:.3f}"),
        (T_USER, " ".join(run.user.split())),
        (T_BASE, run.base or "none"),
    ]
    if run.base_branch:
        trailers.append((T_BRANCH, run.base_branch))
    if run.parent:
        trailers.append((T_PARENT, run.parent))
    if run.tags:
        trailers.append((T_TAGS, compact_json(list(run.tags))))
    trailers.append((T_PARAMS, compact_json(run.params)))
    trailers.append((T_METRICS, compact_json(run.metrics)))
    if run.resources:
        trailers.append((T_RESOURCES, compact_json(run.resources)))
    if run.sweep:
        trailers.append((T_SWEEP, compact_json(run.sweep)))
    if run.incomplete:
        trailers.append((T_INCOMPLETE, compact_json(list(run.incomplete))))
    if run.recorder:
        trailers.append((T_RECORDER, run.recorder))
    return trailers


def summary_from_message(name: str, commit: str, message: str) -> RunSummary:
    """Read a run's summary back from its commit message (tolerant of missing trailers)."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise UnreadableRecord(f"the commit message of run {name!r}", f"it is larger than {MAX_MESSAGE_BYTES >> 20} MiB")
    t = parse_trailers(message)
    version = t.get(T_FORMAT, str(FORMAT_VERSION))
    if not (version.isascii() and version.isdigit()) or len(version) > 9 or int(version) > FORMAT_VERSION:
        raise UnsupportedFormat(f"run {name!r}", version[:20])
    tags = _json(t.get(T_TAGS), [], name, T_TAGS)
    return RunSummary(
        name=name,
        commit=commit,
        status=t.get(T_STATUS, "unknown"),
        exit_code=_int_or_none(t.get(T_EXIT)),
        started=t.get(T_STARTED, ""),
        duration=_float_or_none(t.get(T_DURATION)),
        user=t.get(T_USER, ""),
        base=_none(t.get(T_BASE)),
        base_branch=t.get(T_BRANCH),
        parent=t.get(T_PARENT),
        tags=tuple(tag for tag in tags if isinstance(tag, str)),
        params=_json(t.get(T_PARAMS), {}, name, T_PARAMS),
        metrics=_json(t.get(T_METRICS), {}, name, T_METRICS),
        resources=_json(t.get(T_RESOURCES), {}, name, T_RESOURCES),
        sweep=_json(t.get(T_SWEEP), {}, name, T_SWEEP),
        recorder=t.get(T_RECORDER, ""),
        incomplete=tuple(str(x) for x in _json(t.get(T_INCOMPLETE), [], name, T_INCOMPLETE)),
        note=parse_note(message),
        subject=message.split("\n", 1)[0],
    )


def _none(value: str | None) -> str | None:
    return None if value in (None, "", "none") else value


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "none") else None  # type: ignore[arg-type]
    except ValueError:
        return None


def _float_or_none(value: str | None) -> float | None:
    try:
        number = float(value) if value not in (None, "none") else None  # type: ignore[arg-type]
    except ValueError:
        return None
    return number if number is None or math.isfinite(number) else None


def _json(value: str | None, default: Any, run: str, trailer: str) -> Any:
    """A JSON trailer: default when absent, malformed or of another type; UnreadableRecord when beyond the bounds."""
    if value is None:
        return default
    if len(value) <= _FAST_JSON_CHARS and value.count("{") + value.count("[") <= MAX_DEPTH:
        try:  # within the bounds by construction (every trailer of every run is read by `gitexp list`)
            result = json.loads(value)
        except (ValueError, RecursionError):
            return default
        return result if isinstance(result, type(default)) else default
    try:
        result = json_loads(value, f"the {trailer} trailer of run {run!r}")
    except UnreadableRecord as exc:
        if exc.malformed:
            return default
        raise
    return result if isinstance(result, type(default)) else default


_FAST_JSON_CHARS = MAX_BYTES // 4  # a text this long is at most MAX_BYTES once encoded as UTF-8


def parse_annotation(text: str) -> dict[str, Any]:
    """A run's note in NOTES_REF: {"tags": [...], "note": "..."}; anything unreadable or beyond the bounds counts as empty."""
    try:
        data = json_loads(text, "a note")
    except UnreadableRecord:
        return {}
    if not isinstance(data, dict):
        return {}
    tags = data.get("tags")
    note = data.get("note")
    out: dict[str, Any] = {}
    if isinstance(tags, list):
        out["tags"] = [t for t in tags if isinstance(t, str)]
    if isinstance(note, str):
        out["note"] = note
    return out
