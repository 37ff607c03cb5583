"""Turning runs into text: tables, JSON and the show page. The only formatting code."""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from typing import Any

from gitexp.model import RunSummary

LOG_TAIL_LINES = 20
LOG_LINE_MAX = 300


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso or "-"


def value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def runs_table(runs: list[RunSummary]) -> str:
    if not runs:
        return "no runs yet (record one with: gitexp run -- COMMAND)"
    from tabulate import tabulate

    param_keys = sorted({k for r in runs for k in r.params})
    metric_keys = sorted({k for r in runs for k in r.metrics})
    headers = ["name", "created", "status", "duration", *(f"params.{k}" for k in param_keys), *(f"metrics.{k}" for k in metric_keys)]
    rows = [
        [
            r.name,
            when(r.started),
            r.status,
            duration(r.duration),
            *(value(r.params.get(k)) if k in r.params else "" for k in param_keys),
            *(value(r.metrics.get(k)) if k in r.metrics else "" for k in metric_keys),
        ]
        for r in runs
    ]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def to_json(data: Any) -> str:
    from gitexp.format import strict

    return json.dumps(strict(data), indent=2, ensure_ascii=False, allow_nan=False, default=str)


def show_text(details: dict[str, Any], parent_name: str | None, stdout: bytes, stderr: bytes) -> str:
    meta = details.get("meta") or {}
    env = details.get("env") or {}
    lines = [
        f"run      {details['name']}",
        f"commit   {details['commit']}",
        f"status   {details['status']} (exit code {value(details['exit_code'])})",
        f"command  {shlex.join(meta.get('command', [])) or '-'}" + (f"   (in {meta['cwd']}/)" if meta.get("cwd") else ""),
        f"started  {when(details['started'])}   duration {duration(details['duration'])}",
        f"user     {details['user']}" + (f" on {meta['host']}" if meta.get("host") else ""),
        f"base     {_base(details)}",
        f"parent   {_parent(details, parent_name)}",
    ]
    if details.get("tags"):
        lines.append(f"tags     {', '.join(details['tags'])}")
    if details.get("note"):
        lines.append("note     " + details["note"].replace("\n", "\n         "))
    if meta.get("overrides"):
        lines.append(f"set      {' '.join(meta['overrides'])}")
    lines += _section("params", details.get("params") or {})
    lines += _section("metrics", details.get("metrics") or {})
    lines += _data(details.get("data") or {})
    lines += _environment(env)
    for label, data in (("stdout", stdout), ("stderr", stderr)):
        if data:
            text = data.decode("utf-8", errors="replace").rstrip("\n").split("\n")
            more = f", last {LOG_TAIL_LINES} of {len(text)} lines" if len(text) > LOG_TAIL_LINES else ""
            lines += ["", f"{label}{more} (all: git show {details['commit'][:12]}:.gitexp/{label}.log)"]
            lines += ["  " + _as_terminal(line) for line in text[-LOG_TAIL_LINES:]]
    return "\n".join(lines)


def _as_terminal(line: str) -> str:
    """What a terminal would leave of a log line: the text after its last carriage return, cut short."""
    shown = line.rstrip("\r").rsplit("\r", 1)[-1]
    return shown if len(shown) <= LOG_LINE_MAX else shown[: LOG_LINE_MAX - 3] + "..."


def _base(details: dict[str, Any]) -> str:
    if not details.get("base"):
        return "(no commit: empty repository)"
    dirty = (details.get("env") or {}).get("git", {}).get("dirty")
    branch = f" on {details['base_branch']}" if details.get("base_branch") else " (detached HEAD)"
    return f"{details['base'][:12]}{branch}" + (" + uncommitted changes" if dirty else "")


def _parent(details: dict[str, Any], parent_name: str | None) -> str:
    if not details.get("parent"):
        return "(none: a root run)"
    name = parent_name or ((details.get("meta") or {}).get("parent_run") or {}).get("name", "?")
    return f"{name} ({details['parent'][:12]})" + ("" if parent_name else " (deleted)")


def _section(title: str, values: dict[str, Any]) -> list[str]:
    if not values:
        return ["", f"{title}: (none)"]
    width = max(len(k) for k in values)
    return ["", f"{title}:"] + [f"  {k.ljust(width)}  {value(v)}" for k, v in sorted(values.items())]


def _data(data: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for section, title in (("inputs", "data"), ("outputs", "outputs"), ("large_files", "large files")):
        pointers = data.get(section) or []
        if not pointers:
            continue
        lines += ["", f"{title}:"]
        width = max(len(p["path"]) for p in pointers)
        for p in pointers:
            if p["kind"] == "missing":
                desc = "(missing)"
            elif p["kind"] == "link":
                desc = f"-> {p.get('target')}"
            else:
                files = f", {p['files']} file{'s' if p['files'] != 1 else ''}" if p["kind"] == "dir" else ""
                cached = "" if p.get("cached", True) else ", not cached"
                desc = f"{p['digest']}  {size(p['size'])}{files}{cached}"
            lines.append(f"  {p['path'].ljust(width)}  {desc}")
    return lines


def _environment(env: dict[str, Any]) -> list[str]:
    py = env.get("python") or {}
    os_ = env.get("os") or {}
    cpu = env.get("cpu") or {}
    lines = ["", "environment:"]
    if py:
        lines.append(f"  python    {py.get('version') or '?'} ({py.get('executable')}), {len(py.get('packages') or {})} packages")
    if os_:
        lines.append(f"  os        {os_.get('platform')}")
    if cpu:
        mem = env.get("memory_bytes")
        lines.append(f"  cpu       {cpu.get('model')} x{cpu.get('count')}" + (f", {mem / 2**30:.1f} GiB RAM" if mem else ""))
    for gpu in env.get("gpus") or []:
        lines.append(f"  gpu       {gpu.get('name')} ({gpu.get('memory')}, driver {gpu.get('driver')})")
    for key, val in sorted((env.get("env") or {}).items()):
        lines.append(f"  {key}={val}")
    return lines


def size(nbytes: int | None) -> str:
    if nbytes is None:
        return "-"
    value = float(nbytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{nbytes} B"
