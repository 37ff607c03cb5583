"""The on-disk record format (version 1): names, files and the commit message.

This module is the code twin of docs/format.md. It is pure: no git, no I/O.
"""

from __future__ import annotations

import json
import math
import re
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
    return _trailers(_paragraphs(message)[2])


def parse_note(message: str) -> str:
    """The free-text note between the subject and the trailers ('' if none)."""
    return _paragraphs(message)[1]


def _paragraphs(message: str) -> tuple[str, str, str]:
    """(subject line, note, last paragraph) of a message: the note is every paragraph between the first
    and the last, stripped."""
    head, _, last = message.rstrip("\n").rpartition("\n\n")
    return message.split("\n", 1)[0], head.partition("\n\n")[2].strip(), last


def _trailers(block: str) -> dict[str, str]:
    """Gitexp-* key -> value of each line "KEY: VALUE" of block (the key ends at the line's first ": "; a
    later line of the same key wins)."""
    trailers: dict[str, str] = {}
    for line in block.split("\n"):
        key, sep, value = line.partition(": ")
        if sep and key.startswith("Gitexp-"):
            trailers[key] = value
    return trailers


_WRITTEN_KEYS = (T_FORMAT, T_RUN, T_STATUS, T_EXIT, T_STARTED, T_DURATION, T_USER, T_BASE, T_BRANCH, T_PARENT, T_TAGS,
                 T_PARAMS, T_METRICS, T_RESOURCES, T_SWEEP, T_INCOMPLETE, T_RECORDER, T_LEASE, T_ATTEMPT, T_RETRY_OF)
_OPTIONAL = {T_BRANCH, T_PARENT, T_TAGS, T_RESOURCES, T_SWEEP, T_INCOMPLETE, T_RECORDER, T_LEASE, T_ATTEMPT, T_RETRY_OF}
# Every trailer in the order run_trailers (and the remote queue) writes them, each on one line, nothing else:
# summary_from_message reads such a block with one match (any other with _trailers).
_WRITTEN = re.compile("".join(
    f"(?:{'' if i == 0 else chr(10)}{re.escape(key)}: ([^\n]*))" + ("?" if key in _OPTIONAL else "")
    for i, key in enumerate(_WRITTEN_KEYS)
))


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
    """Read a run's summary back from its commit message (tolerant of missing trailers).

    `gitexp list` reads every run through here: 100,000 runs must take well under a second."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise UnreadableRecord(f"the commit message of run {name!r}", f"it is larger than {MAX_MESSAGE_BYTES >> 20} MiB")
    subject, note, block = _paragraphs(message)
    whole = _WRITTEN.fullmatch(block)
    if whole is not None:
        values = whole.groups()
    else:
        found = _trailers(block)
        values = tuple(found.get(key) for key in _WRITTEN_KEYS)
    version, _, status, exit_code, started, duration, user, base, branch, parent, tags, params, metrics, resources, \
        sweep, incomplete, recorder = values[:17]
    if version is not None and version != _VERSION and (
        not (version.isascii() and version.isdigit()) or len(version) > 9 or int(version) > FORMAT_VERSION
    ):
        raise UnsupportedFormat(f"run {name!r}", version[:20])
    return RunSummary.of({
        "name": name,
        "commit": commit,
        "status": "unknown" if status is None else status,
        "exit_code": _int_or_none(exit_code),
        "started": started or "",
        "duration": _float_or_none(duration),
        "user": user or "",
        "base": None if base in (None, "", "none") else base,
        "base_branch": branch,
        "parent": parent,
        "tags": tuple(tag for tag in _json(tags, [], name, T_TAGS) if isinstance(tag, str)) if tags else (),
        "params": _json(params, {}, name, T_PARAMS),
        "metrics": _json(metrics, {}, name, T_METRICS),
        "resources": _json(resources, {}, name, T_RESOURCES) if resources else {},
        "sweep": _json(sweep, {}, name, T_SWEEP) if sweep else {},
        "recorder": recorder or "",
        "incomplete": tuple(str(x) for x in _json(incomplete, [], name, T_INCOMPLETE)) if incomplete else (),
        "note": note,
        "subject": subject,
    })


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
        # within the bounds by construction (every trailer of every run is read by `gitexp list`): decoded by
        # json's C scanner directly, as json.loads would (surrounding JSON whitespace allowed, nothing else)
        text = value.strip(_JSON_SPACE)
        try:
            result, end = _SCAN(text, 0)
        except (StopIteration, ValueError, RecursionError):
            return default
        if end != len(text):
            return default
        return result if isinstance(result, type(default)) else default
    try:
        result = json_loads(value, f"the {trailer} trailer of run {run!r}")
    except UnreadableRecord as exc:
        if exc.malformed:
            return default
        raise
    return result if isinstance(result, type(default)) else default


_VERSION = str(FORMAT_VERSION)
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # (the C scanner json.loads ends in)
_JSON_SPACE = " \t\n\r"
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
