"""Turning runs into text: tables, JSON and the show page. The only formatting code."""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gitexp.model import RunSummary

if TYPE_CHECKING:
    from gitexp.data.upkeep import Missing
    from gitexp.stats import Summary

LOG_TAIL_LINES = 20
LOG_LINE_MAX = 300
RUNS_NAMED = 5  # a line naming runs names at most this many

# What a terminal would act on rather than show: C0 controls (ESC among them), DEL, C1 controls, the
# bidirectional overrides that reorder what is shown, and lone surrogates (bytes that were not UTF-8).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def inert(text: str, keep: str = "") -> str:
    """text made safe to print on a terminal: each control character escaped as it would be in Python
    ("\\x1b", "\\n", "\\u202e"), except those in keep. Everything human output shows of a run goes
    through here; JSON output does not (it stays exact)."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m.group()), text)


_UNSAFE_BYTES = re.compile(rb"\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x9f]")


def inert_bytes(data: bytes) -> bytes:
    """A command's output made safe for a terminal: lines and tabs kept, a carriage return that does
    not end a line shown as a new line (progress bars), every other control character escaped."""
    if _UNSAFE_BYTES.search(data) is None:
        return data
    return _UNSAFE_BYTES.sub(_escape_bytes, data)


def _escape_bytes(m: re.Match[bytes]) -> bytes:
    found = m.group()
    if found == b"\r":
        return b"\n"
    return "".join(_escape(c) for c in found.decode("utf-8")).encode()


def _escape(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except (ValueError, TypeError, OverflowError, OSError):  # (a date a clock cannot show: year 1, year 9999)
        return inert(str(iso)) or "-"


def value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"), default=str)  # (ASCII: every control character escaped)
    return inert(str(v))


FORMATS = ("table", "csv", "json", "markdown")


def column_reader(column: str) -> Callable[[RunSummary], Any]:
    """A function giving a column's raw value for a run (None when it has none)."""
    from gitexp.filter import MISSING, getter

    if column == "created":
        return lambda run: run.started or None
    section, _, key = column.partition(".")
    if section in ("params", "metrics"):  # any recorded key, even one the filter language cannot spell
        return lambda run: getattr(run, section).get(key)
    get = getter(column)

    def read(run: RunSummary) -> Any:
        found = get(run)
        return None if found is MISSING else found

    return read


def column_formatter(column: str) -> Callable[[Any], str]:
    """How a column's raw values are shown in a table."""
    if column == "created":
        return when
    if column == "duration":
        return duration
    if column in ("tag", "tags"):
        return lambda v: inert(",".join(map(str, v)))
    if column == "commit":
        return lambda v: inert(str(v)[:10])
    if column == "note":
        return lambda v: inert(" / ".join(str(v).splitlines()))
    return value


def runs_output(runs: list[RunSummary], columns: list[str], output: str, width: int | None = None) -> str:
    """Runs as a table, CSV, JSON or Markdown. Built a column at a time: 100,000 runs must be fast.

    width: the table's columns that do not fit in this many characters are left out, from the right
    (columns.fitting), and a line under it says how many."""
    if output == "json":
        readers = [column_reader(c) for c in columns]
        return json_lines([{c: read(r) for c, read in zip(columns, readers)} for r in runs])
    if output == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([inert(c) for c in columns])
        writer.writerows(zip(*(_column_texts(c, runs, csv=True) for c in columns)))
        return buf.getvalue().rstrip("\n")
    if not runs and output == "table":
        return "no runs match (record one with: gitexp run -- COMMAND)"
    texts = [_column_texts(c, runs, csv=False) for c in columns]
    if output == "markdown":
        from tabulate import tabulate

        return tabulate(list(zip(*texts)), headers=[inert(c) for c in columns], tablefmt="github", disable_numparse=True)
    return _aligned([inert(h) for h in columns], texts, width)


def _column_texts(column: str, runs: list[RunSummary], csv: bool) -> list[str]:
    """The text of one column for every run ("" where a run has no value), terminal-safe (inert)."""
    section, _, key = column.partition(".")
    if section in ("params", "metrics"):  # any recorded key, even one the filter language cannot spell
        values = list(map(operator.methodcaller("get", key), map(operator.attrgetter(section), runs)))
    elif column == "name":
        values = list(map(operator.attrgetter("name"), runs))
    else:
        read = column_reader(column)
        values = [read(r) for r in runs]
    if column == "created":
        return _when_all(values)
    kinds = set(map(type, values))  # one kind in a column is the usual case: then one loop in C
    if csv and column not in ("tag", "tags"):
        if kinds <= _PLAIN:
            texts = list(map(str, values))
        else:
            texts = ["" if v is None else str(v) if type(v) in _PLAIN else _csv(v) for v in values]
    elif column_formatter(column) is value:
        if kinds == {float}:
            texts = list(map(format, values, itertools.repeat(".6g")))
        elif kinds <= {int, str}:
            texts = list(map(str, values))
        else:
            texts = [
                "" if v is None else f"{v:.6g}" if type(v) is float else str(v) if type(v) in (int, str) else value(v)
                for v in values
            ]
    else:
        shown = column_formatter(column)
        texts = ["" if v is None else shown(v) for v in values]
    return _inert_all(texts)


_PLAIN = {float, int, str}


def _inert_all(texts: list[str]) -> list[str]:
    """inert() of each text: one search of them all when none needs it (the usual case)."""
    if _UNSAFE.search("".join(texts)) is None:
        return texts
    return [inert(t) for t in texts]


def _when_all(values: list[Any]) -> list[str]:
    """when() of each start time; times within the same minute and offset are converted once."""
    known: dict[str, str] = {}
    out = []
    for v in values:
        if v is None:
            out.append("")
            continue
        key = v[:16] + v[-6:] if isinstance(v, str) and len(v) >= 22 else None
        text = known.get(key) if key is not None else None
        if text is None:
            text = when(v)
            if key is not None:
                known[key] = text
        out.append(text)
    return out


def aligned(headers: list[str], rows: list[list[str]], width: int | None = None) -> str:
    """A plain table: headers, a rule of dashes, columns two spaces apart (tabulate's 'simple' look, 20x faster).

    width: only the leading columns that fit in lines of this many characters (at least the first),
    then a line saying how many were left out. Widths are measured on the text as shown (inert)."""
    columns = [_inert_all(list(col)) for col in zip(*rows)] if rows else [[] for _ in headers]
    return _aligned([inert(h) for h in headers], columns, width)


def _aligned(headers: list[str], columns: list[list[str]], width: int | None) -> str:
    """aligned() of text already inert, given a column at a time."""
    from gitexp.columns import GAP, dropped_note, fitting

    ascii = ["".join(col).isascii() for col in columns]
    widths = [
        max(_width(h), max(map(len, col), default=0) if plain else max(map(_width, col), default=0))
        for h, col, plain in zip(headers, columns, ascii)
    ]
    kept = fitting(widths, width)
    gap = " " * GAP

    def pad(cells: list[str], w: int, plain: bool) -> list[str]:
        return [c.ljust(w) for c in cells] if plain else [c + " " * (w - _width(c)) for c in cells]

    if all(ascii[:kept]) and all(h.isascii() for h in headers[:kept]):  # one format per line (a column at a time: 3x slower)
        line = gap.join(f"{{:<{w}}}" for w in widths[:kept])
        lines = [line.format(*headers[:kept]).rstrip(), *(line.format(*cells).rstrip() for cells in zip(*columns[:kept]))]
    else:
        padded = [pad([h, *col], w, plain and h.isascii()) for h, col, w, plain in zip(headers, columns, widths[:kept], ascii)]
        lines = [gap.join(cells).rstrip() for cells in zip(*padded)]
    table = [lines[0], gap.join("-" * w for w in widths[:kept]), *lines[1:]]
    if kept < len(headers):
        table.append(dropped_note(len(headers) - kept))
    return "\n".join(table)


def _width(text: str) -> int:
    """Terminal columns of text: East Asian wide characters take two, combining marks none."""
    import unicodedata

    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text
    )


def json_lines(items: list[Any], ascii: bool = False) -> str:
    """A JSON array with one compact item per line: readable, and fast for 10,000 runs."""
    from gitexp.format import strict

    def dump(item: Any) -> str:
        try:
            return json.dumps(item, ensure_ascii=ascii, allow_nan=False, default=str)
        except ValueError:  # NaN or infinity somewhere: spell them as strings
            return json.dumps(strict(item), ensure_ascii=ascii, allow_nan=False, default=str)

    if not items:
        return "[]"
    return _printable("[\n" + ",\n".join(dump(item) for item in items) + "\n]", lambda: json_lines(strict(items), True))


def runs_table(runs: list[RunSummary]) -> str:
    if not runs:
        return "no runs yet (record one with: gitexp run -- COMMAND)"
    from gitexp.columns import run_columns

    return runs_output(runs, run_columns(runs, wide=True), "table")


def _csv(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, (list, dict)):
        return json.dumps(raw, separators=(",", ":"), default=str)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return inert(str(raw))


def to_json(data: Any) -> str:
    """Exact JSON (control characters are \\u-escaped by JSON itself; text that is not UTF-8 too)."""
    from gitexp.format import strict

    try:
        text = json.dumps(strict(data), indent=2, ensure_ascii=False, allow_nan=False, default=str)
    except RecursionError:  # a lineage thousands of runs deep (gitexp tree --json): the same text, without recursion
        return _printable(_deep_json(data, False), lambda: _deep_json(data, True))
    return _printable(text, lambda: json.dumps(strict(data), indent=2, ensure_ascii=True, allow_nan=False, default=str))


def _deep_json(data: Any, ensure_ascii: bool) -> str:
    """json.dumps(strict(data)) written with a stack instead of recursion, for nesting of any depth (on one
    line: indenting thousands of levels would make the text grow with the square of the depth)."""
    from gitexp.format import strict

    out: list[str] = []
    todo: list[Any] = [data]  # values to write, or pieces of text (as _Text)
    while todo:
        item = todo.pop()
        if isinstance(item, _Text):
            out.append(item.text)
        elif isinstance(item, dict) and item:
            steps: list[Any] = []
            for key, v in item.items():
                steps += [_Text(", "), _Text(json.dumps(str(key), ensure_ascii=ensure_ascii) + ": "), v]
            out.append("{")
            todo += [_Text("}"), *reversed(steps[1:])]
        elif isinstance(item, (list, tuple)) and item:
            steps = []
            for v in item:
                steps += [_Text(", "), v]
            out.append("[")
            todo += [_Text("]"), *reversed(steps[1:])]
        else:
            out.append(json.dumps(strict(item), ensure_ascii=ensure_ascii, allow_nan=False, default=str))
    return "".join(out)


@dataclass(frozen=True)
class _Text:
    text: str


def _printable(text: str, ascii_text: Callable[[], str]) -> str:
    """text, or ascii_text() when text holds lone surrogates (names that were not UTF-8), which cannot be printed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return ascii_text()
    return text


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _texts(v: Any) -> list[str]:
    """A recorded list of strings (a command, overrides), anything else left out."""
    return [str(x) for x in v] if isinstance(v, list) else []


def show_text(
    details: dict[str, Any],
    parent_name: str | None,
    stdout: bytes,
    stderr: bytes,
    series: list[tuple[str, str, str]] | None = None,
) -> str:
    """The text of `gitexp show`; series are (name, sparkline, summary) rows of the step metrics.

    Every value read from the run is made inert; a record file of an unexpected shape shows as absent."""
    meta = _dict(details.get("meta"))
    env = _dict(details.get("env"))
    lines = [
        f"run      {inert(details['name'])}",
        f"commit   {details['commit']}",
        f"status   {inert(details['status'])} (exit code {value(details['exit_code'])})",
    ]
    for item in meta.get("incomplete") or []:
        where = f" ({item['path']})" if item.get("path") else ""
        lines.append(f"missing  {item.get('what', '?')}{where}: {item.get('why', '')}")
    error = _python_error(stderr) if details["status"] != "completed" else None
    if error:
        lines.append(f"error    {inert(_as_terminal(error))}")
    cwd = meta.get("cwd")
    lines += [
        f"command  {inert(shlex.join(_texts(meta.get('command')))) or '-'}" + (f"   (in {inert(str(cwd))}/)" if cwd else ""),
        f"started  {when(details['started'])}   duration {duration(details['duration'])}",
        f"user     {inert(details['user'])}" + (f" on {inert(str(meta['host']))}" if meta.get("host") else ""),
        f"base     {_base(details)}",
        f"parent   {_parent(details, parent_name)}",
    ]
    if details.get("tags"):
        lines.append(f"tags     {inert(', '.join(details['tags']))}")
    if details.get("note"):
        lines.append("note     " + inert(details["note"], keep="\n").replace("\n", "\n         "))
    if _texts(meta.get("overrides")):
        lines.append(f"set      {inert(' '.join(_texts(meta['overrides'])))}")
    lines += _section("params", _dict(details.get("params")))
    lines += _section("metrics", _dict(details.get("metrics")))
    if series:
        width = max(len(inert(name)) for name, _, _ in series)
        lines += ["", "series:"] + [f"  {inert(name).ljust(width)}  {spark}  {text}" for name, spark, text in series]
    if details.get("resources"):
        lines += _section("resources", _dict(details["resources"]))
    lines += _data(_dict(details.get("data")))
    lines += _environment(env)
    for label, data in (("stdout", stdout), ("stderr", stderr)):
        if data:
            text = data.decode("utf-8", errors="replace").rstrip("\n").split("\n")
            more = f", last {LOG_TAIL_LINES} of {len(text)} lines" if len(text) > LOG_TAIL_LINES else ""
            lines += ["", f"{label}{more} (all: git show {details['commit'][:12]}:.gitexp/{label}.log)"]
            lines += ["  " + inert(_as_terminal(line), keep="\t") for line in text[-LOG_TAIL_LINES:]]
    return "\n".join(lines)


def _python_error(stderr: bytes) -> str | None:
    """The exception line of the last Python traceback in stderr ("ValueError: boom"), None without one."""
    lines = stderr.decode("utf-8", errors="replace").split("\n")
    starts = [i for i, line in enumerate(lines) if line.rstrip("\r") == "Traceback (most recent call last):"]
    if not starts:
        return None
    return next((line.rstrip("\r") for line in lines[starts[-1] + 1 :] if line[:1] not in ("", " ", "\t")), None)


def _as_terminal(line: str) -> str:
    """What a terminal would leave of a log line: the text after its last carriage return, cut short."""
    shown = line.rstrip("\r").rsplit("\r", 1)[-1]
    return shown if len(shown) <= LOG_LINE_MAX else shown[: LOG_LINE_MAX - 3] + "..."


def _base(details: dict[str, Any]) -> str:
    if not details.get("base"):
        return "(no commit: empty repository)"
    dirty = _dict(_dict(details.get("env")).get("git")).get("dirty")
    branch = f" on {inert(details['base_branch'])}" if details.get("base_branch") else " (detached HEAD)"
    return f"{inert(details['base'][:12])}{branch}" + (" + uncommitted changes" if dirty else "")


def _parent(details: dict[str, Any], parent_name: str | None) -> str:
    if not details.get("parent"):
        return "(none: a root run)"
    name = parent_name or _dict(_dict(details.get("meta")).get("parent_run")).get("name", "?")
    return f"{inert(str(name))} ({inert(details['parent'][:12])})" + ("" if parent_name else " (deleted)")


def _section(title: str, values: dict[str, Any]) -> list[str]:
    if not values:
        return ["", f"{title}: (none)"]
    keys = {k: inert(str(k)) for k in values}
    width = max(len(k) for k in keys.values())
    return ["", f"{title}:"] + [f"  {keys[k].ljust(width)}  {value(v)}" for k, v in sorted(values.items(), key=lambda kv: str(kv[0]))]


def _data(data: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for section, title in (("inputs", "data"), ("outputs", "outputs"), ("large_files", "large files")):
        listed = data.get(section)
        pointers = [p for p in listed if isinstance(p, dict)] if isinstance(listed, list) else []
        if not pointers:
            continue
        lines += ["", f"{title}:"]
        paths = [inert(str(p.get("path"))) for p in pointers]
        width = max(len(path) for path in paths)
        for path, p in zip(paths, pointers):
            if p.get("kind") == "missing":
                desc = "(missing)"
            elif p.get("kind") == "link":
                desc = f"-> {inert(str(p.get('target')))}"
            else:
                count = p.get("files")
                files = f", {value(count)} file{'s' if count != 1 else ''}" if p.get("kind") == "dir" else ""
                cached = "" if p.get("cached", True) else ", not cached"
                nbytes = p.get("size")
                desc = f"{inert(str(p.get('digest')))}  {size(nbytes) if isinstance(nbytes, int) else value(nbytes)}{files}{cached}"
            lines.append(f"  {path.ljust(width)}  {desc}")
    return lines


def _environment(env: dict[str, Any]) -> list[str]:
    py = _dict(env.get("python"))
    os_ = _dict(env.get("os"))
    cpu = _dict(env.get("cpu"))
    lines = ["", "environment:"]
    if py:
        packages = py.get("packages")
        count = len(packages) if isinstance(packages, (dict, list)) else 0
        lines.append(f"  python    {value(py.get('version') or '?')} ({value(py.get('executable'))}), {count} packages")
    if os_:
        lines.append(f"  os        {value(os_.get('platform'))}")
    if cpu:
        mem = env.get("memory_bytes")
        ram = f", {mem / 2**30:.1f} GiB RAM" if isinstance(mem, (int, float)) and not isinstance(mem, bool) and 0 < mem < 1e30 else ""
        lines.append(f"  cpu       {value(cpu.get('model'))} x{value(cpu.get('count'))}" + ram)
    gpus = env.get("gpus")
    for item in gpus if isinstance(gpus, list) else []:
        gpu = _dict(item)
        lines.append(f"  gpu       {value(gpu.get('name'))} ({value(gpu.get('memory'))}, driver {value(gpu.get('driver'))})")
    for key, val in sorted(_dict(env.get("env")).items()):
        lines.append(f"  {inert(str(key))}={value(val)}")
    return lines


def size(nbytes: int | None) -> str:
    if nbytes is None:
        return "-"
    if not 0 <= nbytes < 1e30:
        return f"{nbytes} B"
    value = float(nbytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{nbytes} B"


# -- colour, ages ------------------------------------------------------------------

_ANSI = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}


def missing_object(missing: Missing) -> str:
    """One line of `gitexp fsck` for a cache object runs need: a place that needs it, and how many more."""
    use, runs = missing.uses[0], missing.runs
    more = ""
    if len(missing.uses) > 1:
        named = ", ".join(runs[:RUNS_NAMED]) + (f" and {len(runs) - RUNS_NAMED} more" if len(runs) > RUNS_NAMED else "")
        more = f"; needed by {len(missing.uses)} files in {len(runs)} run(s): {named}"
    return inert(f"missing: {missing.digest} {use.path} ({use.role} of run {use.run}{more})")


def paint(text: str, colour: str, enabled: bool) -> str:
    return f"\033[{_ANSI[colour]}m{text}\033[0m" if enabled and text else text


def age(iso: str, now: datetime | None = None) -> str:
    try:
        then = datetime.fromisoformat(iso)
        seconds = ((now or datetime.now(then.tzinfo)) - then).total_seconds()
    except (ValueError, TypeError, OverflowError):  # (TypeError: a time without its zone against one with)
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


# -- diff and compare ----------------------------------------------------------------


def groups_text(groups: list[Any], keys: list[str], output: str, width: int | None = None, wide: bool = False) -> str:
    """`list --group-by`: one row per group: its key values, n, and each metric's mean ± SEM and min..max.

    CSV has numbers instead: a column per metric and statistic (mean, sem, n, min, max). The table
    and Markdown show `config` as a column per param that differs between the groups (every param:
    wide); the table leaves out the columns that do not fit in width (see aligned)."""
    if output == "json":
        return to_json([g.to_dict() for g in groups])
    metrics = sorted({m for g in groups for m in g.stats})
    left_out = any(g.left_out for g in groups)
    headers = [*keys, "n", *(["not counted"] if left_out else [])]

    def lead(g: Any, show: Callable[[Any], str]) -> list[str]:
        return [*(show(g.key[k]) for k in keys), str(len(g.runs)), *([_statuses(g.left_out)] if left_out else [])]

    if output == "csv":
        import csv
        import io

        columns = ("mean", "sem", "n", "min", "max")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([
            [*headers, *(f"metrics.{m}.{c}" for m in metrics for c in columns)],
            *([*lead(g, _csv), *(_csv_number(getattr(g.stats[m], c)) if m in g.stats else "" for m in metrics for c in columns)]
              for g in groups),
        ])
        return buf.getvalue().rstrip("\n")
    shown: list[tuple[str, Callable[[Any], str]]] = []  # (header, cell of a group)
    for k in keys:
        params = _config_params(groups, wide) if k == "config" else []
        shown += [(f"params.{p}", _config_cell(p)) for p in params]
        if not params:
            shown.append((k, _key_cell(k)))
    headers = [*(h for h, _ in shown), *headers[len(keys):], *(f"metrics.{m}" for m in metrics)]
    rows = [
        [*(cell(g) for _, cell in shown), *lead(g, value)[len(keys):],
         *(_mean_sem_range(g.stats[m], len(g.runs)) if m in g.stats else "-" for m in metrics)]
        for g in groups
    ]
    if output == "markdown":
        from tabulate import tabulate

        return tabulate(rows, [inert(h) for h in headers], tablefmt="github", disable_numparse=True)
    if not groups:
        return "no runs match"
    note = "mean ± standard error of the mean, then min..max, over the completed runs; (n=k): only k of them have that metric"
    return aligned(headers, rows, None if wide else width) + f"\n({note})"


def _config_cell(param: str) -> Callable[[Any], str]:
    return lambda g: value(_config_of(g).get(param))


def _key_cell(key: str) -> Callable[[Any], str]:
    return lambda g: value(g.key[key])


def _config_of(group: Any) -> dict[str, Any]:
    """The params (without the seed) the runs of a group share."""
    members = group.runs or group.left_out
    return members[0].config_params if members else {}


def _config_params(groups: list[Any], wide: bool) -> list[str]:
    """The params a table grouped by config shows: those that differ between the groups (columns.shown)."""
    from gitexp.columns import shown

    return shown([_config_of(g) for g in groups], wide)


def _mean_sem_range(s: Summary, runs: int) -> str:
    """ "0.912 ± 0.004  0.905..0.92"; "(n=k)" after it when only k of the group's runs have the metric."""
    from gitexp.stats import format_mean_sem

    if s.n == 0:
        return "-"
    text = format_mean_sem(s).rpartition(" (n=")[0]
    if s.n > 1:
        text += f"  {s.min + 0.0:.4g}..{s.max + 0.0:.4g}"  # + 0.0: no "-0"
    return text + (f" (n={s.n})" if s.n != runs else "")


def _csv_number(x: float) -> str:
    return "" if math.isnan(x) else _csv(x)  # nan: too few values (an SEM of one)


def _statuses(runs: list[Any]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "-"


def group_tests_text(names: tuple[str, str], sizes: tuple[int, int], results: list[Any], colour: bool) -> str:
    """`diff --groups A B`: per metric, A and B as mean ± SEM, the difference, Welch's p, and a verdict."""
    from gitexp.stats import format_mean_sem, verdict

    lines = [f"A: {inert(names[0])}  ({sizes[0]} completed runs)", f"B: {inert(names[1])}  ({sizes[1]} completed runs)", ""]
    for r in results:
        mark = {True: paint("better", "green", colour), False: paint("worse", "red", colour), None: ""}[r.better]
        lines.append(f"{inert(r.metric)}: A {format_mean_sem(r.a)}   B {format_mean_sem(r.b)}" + (f"   B is {mark}" if mark else ""))
        lines.append(f"  {verdict(r.test)}")
    if not results:
        lines.append("no metrics to compare")
    return "\n".join(lines)


def batch_summary(outcomes: list[Any]) -> str:
    """The end of a sweep: each run's status, exit code, duration and overrides."""
    if not outcomes:
        return "no run was started"
    rows = [
        [o.name, o.status, value(o.exit_code), duration(o.duration), " ".join(o.overrides) or o.error]
        for o in outcomes
    ]
    failed = sum(o.status != "completed" for o in outcomes)
    head = f"{len(outcomes)} run(s): {len(outcomes) - failed} completed" + (f", {failed} not" if failed else "")
    return head + "\n" + aligned(["name", "status", "exit", "duration", "overrides"], rows)


def worker_outcome(summary: Any) -> str:
    """A launched worker's own --json summary (gitexp queue work --json: one object per run it ran) in a
    few words: how many runs, how they ended."""
    if not isinstance(summary, list):
        return ""
    counts: dict[str, int] = {}
    for outcome in summary:
        status = outcome.get("status") if isinstance(outcome, dict) else None
        key = status if isinstance(status, str) else "?"
        counts[key] = counts.get(key, 0) + 1
    return f"{len(summary)} run(s)" + "".join(f", {n} {inert(status)}" for status, n in sorted(counts.items()))


def worker_line(report: Any) -> str:
    """One launched worker that ended (gitexp queue start --ray/--dask)."""
    where = f" on {inert(report.host)}" if report.host else ""
    if report.exit_code is None:
        return f"worker {report.index}{where} did not run: {inert(report.error)}"
    said = worker_outcome(report.summary)
    tail = f": {inert(report.error)}" if report.exit_code and report.error else ""
    return f"worker {report.index}{where} exited {report.exit_code}" + (f" ({said})" if said else "") + tail


def workers_summary(reports: list[Any]) -> str:
    """The end of gitexp queue start --ray/--dask: each worker's host, exit code and what it did."""
    failed = sum(not r.ok for r in reports)
    head = f"{len(reports)} worker(s): {len(reports) - failed} ended well" + (f", {failed} failed" if failed else "")
    rows = [
        [str(r.index), r.host or "-", value(r.exit_code), inert(r.error) if not r.ok else worker_outcome(r.summary)]
        for r in reports
    ]
    return head + "\n" + aligned(["worker", "host", "exit", "outcome"], rows)


def diff_text(d: Any, colour: bool) -> str:
    """A RunDiff (gitexp.compare) as text: only what differs, improvements green, regressions red."""
    lines = [f"diff {inert(d.a.name)} ({d.a.commit[:10]}) -> {inert(d.b.name)} ({d.b.commit[:10]})"]
    sections: list[tuple[str, list[str]]] = [
        ("run", [_change(c, colour) for c in d.run]),
        ("params", [_change(c, colour) for c in d.params]),
        ("metrics", [_metric_change(c, colour) for c in d.metrics]),
        ("data and outputs", [_change(c, colour, digest=True) for c in d.data]),
        ("environment", [_change(c, colour) for c in d.env]),
        ("code", [f"{status} {inert(path)}" for status, path in d.code]),
    ]
    for title, items in sections:
        if items:
            lines += ["", paint(f"{title}:", "bold", colour), *("  " + item for item in items)]
    if len(lines) == 1:
        lines.append("no differences")
    elif d.code:
        lines.append(paint(f"  (the code diff: gitexp diff {inert(d.a.name)} {inert(d.b.name)} --code)", "dim", colour))
    return "\n".join(lines)


def _change(c: Any, colour: bool, digest: bool = False) -> str:
    def show(v: Any) -> str:
        return inert(str(v)[:12]) if digest else value(v)

    key = inert(str(c.key))
    if c.kind == "added":
        return paint(f"+ {key} = {show(c.new)}", "green", colour)
    if c.kind == "removed":
        return paint(f"- {key} = {show(c.old)}", "red", colour)
    return f"~ {key}: {show(c.old)} -> {show(c.new)}"


def _metric_change(c: Any, colour: bool) -> str:
    if c.kind != "changed" or c.delta is None:
        return _change(c, colour)
    delta = f"{c.delta:+.6g}" if isinstance(c.delta, float) else str(c.delta)
    pct = f", {c.pct:+.1f}%" if c.pct is not None else ""
    text = f"~ {inert(str(c.key))}: {value(c.old)} -> {value(c.new)} ({delta}{pct})"
    if c.improved is None:
        return text
    return paint(text + (" better" if c.improved else " worse"), "green" if c.improved else "red", colour)


def compare_text(runs: list[RunSummary], rows: list[tuple[str, list[Any]]], best: dict[str, int], colour: bool) -> str:
    """Side by side: a column per run, a row per param and metric; each metric's best value in green."""
    from tabulate import tabulate

    table = []
    for key, values in rows:
        cells = [value(v) for v in values]
        if key in best:
            i = best[key]
            cells[i] = paint(cells[i], "green", colour) if colour else cells[i] + " *"
        table.append([inert(key), *cells])
    headers = ["", *(inert(r.name) for r in runs)]
    legend = "" if colour or not best else "\n(* best value of each metric)"
    return tabulate(table, headers=headers, tablefmt="simple", disable_numparse=True) + legend


# -- tree ------------------------------------------------------------------------------

UNICODE_TREE = ("├── ", "└── ", "│   ", "    ")
ASCII_TREE = ("|-- ", "`-- ", "|   ", "    ")


def tree_text(groups: list[Any], metric: str | None, unicode: bool, colour: bool) -> str:
    """The evolution tree (gitexp.lineage groups) as text."""
    if not groups:
        return "no runs match"
    glyphs = UNICODE_TREE if unicode else ASCII_TREE
    lines: list[str] = []
    for g in groups:
        base = inert(f"{g.base[:10]}") if g.base else "(no base commit)"
        branch = f" on {inert(g.branch)}" if g.branch else " (detached HEAD)"
        lines.append(paint(f"{base}{branch}", "bold", colour))
        _tree_nodes(g.roots, "", glyphs, metric, colour, lines)
    return "\n".join(lines)


def _tree_nodes(nodes: list[Any], prefix: str, glyphs: tuple[str, ...], metric: str | None, colour: bool, out: list[str]) -> None:
    """The lines of the nodes and their descendants, depth first (a loop, not recursion: a chain of
    runs may be thousands long)."""
    stack: list[tuple[Any, str, bool]] = [(node, prefix, i == len(nodes) - 1) for i, node in reversed(list(enumerate(nodes)))]
    while stack:
        node, prefix, last = stack.pop()
        run = node.run
        status = paint(inert(run.status), {"completed": "green", "failed": "red"}.get(run.status, "yellow"), colour)
        parts = [inert(run.name), status, age(run.started)]
        if metric and metric in run.metrics:
            parts.append(f"{inert(metric)}={value(run.metrics[metric])}")
        if run.note.strip():
            parts.append(paint(inert(run.note.strip().splitlines()[0][:60]), "dim", colour))
        if node.detached:
            parts.append(paint("(parent run deleted)", "yellow", colour))
        out.append(prefix + (glyphs[1] if last else glyphs[0]) + "  ".join(parts))
        inner = prefix + (glyphs[3] if last else glyphs[2])
        children = node.children
        stack += [(child, inner, i == len(children) - 1) for i, child in reversed(list(enumerate(children)))]


def reproduction_text(r: Any, colour: bool) -> str:
    """A Reproduction (gitexp.reproduce) as a metric-by-metric table and a verdict."""
    lines = [f"reproduced {inert(r.original.name)} as {inert(r.result.run.name)} (exit code {r.result.exit_code})"]
    width = max((len(inert(c.key)) for c in r.checks), default=6)
    if r.checks:
        lines.append(f"  {'metric'.ljust(width)}  {'original':>12}  {'reproduced':>12}")
    for c in r.checks:
        mark = paint("same", "green", colour) if c.matches else paint("DIFFERENT", "red", colour)
        lines.append(f"  {inert(c.key).ljust(width)}  {value(c.original):>12}  {value(c.reproduced):>12}  {mark}")
    if not r.checks:
        lines.append("  (no metrics recorded to compare)")
    verdict = "all metrics match" if r.matches else "NOT reproduced"
    lines.append(paint(verdict, "green" if r.matches else "red", colour))
    return "\n".join(lines)
