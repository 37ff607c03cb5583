"""Scalars printed on stdout (`epoch 3 loss=0.41 acc=0.88`, `loss: 0.41`), turned into step metrics.

The default pattern takes every `name=number` and `name: number` pair of a
line; `epoch`, `step`, `iter` and `iteration` (also as `epoch 3` or `Epoch 3/10`)
give the step instead of a metric. A custom regex either has the groups `name`
and `value` (every match of a line is one pair), or names its groups after
metrics (`loss (?P<loss>\\S+)`); a group named `step` gives the step.
Only complete lines count, and of a line redrawn with carriage returns (a
progress bar) only its last state.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from gitexp.errors import GitexpError

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
DEFAULT = (
    r"(?<![\w./:-])['\"]?(?P<name>[A-Za-z_][\w./-]*?)['\"]?\s*(?:=|:)\s*"
    rf"(?P<value>{_NUMBER})(?![\w.:/])"
)
_STEP = re.compile(r"(?i)(?<![\w.])(?:epoch|step|iter|iteration)\s*[=: ]?\s*(\d+)(?![\w.])")
_STEP_NAMES = frozenset({"epoch", "step", "iter", "iteration"})
MAX_LINE = 4096  # longer lines are not parsed: no one prints metrics that way


class BadScalarPattern(GitexpError):
    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(
            f"invalid scalars pattern {pattern!r}: {reason} "
            "(use groups (?P<name>...) and (?P<value>...), or groups named after metrics)"
        )


def compile_pattern(spec: str) -> re.Pattern[str]:
    """The regex for a `scalars` setting: 'default' or a regex (checked here, before the run starts)."""
    try:
        pattern = re.compile(DEFAULT if spec == "default" else spec)
    except re.error as exc:
        raise BadScalarPattern(spec, str(exc)) from exc
    groups = set(pattern.groupindex)
    if not groups - {"step"}:
        raise BadScalarPattern(spec, "it has no named group for a metric")
    if len(groups & {"name", "value"}) == 1:
        raise BadScalarPattern(spec, "it has one of the groups name and value but not the other")
    return pattern


def parse_line(pattern: re.Pattern[str], line: str) -> tuple[int | None, dict[str, float]]:
    """(step, {name: value}) of one line of output."""
    groups = pattern.groupindex
    values: dict[str, float] = {}
    step: int | None = None
    if "name" in groups and "value" in groups:
        for match in pattern.finditer(line):
            name, value = match.group("name"), _number(match.group("value"))
            if value is None:
                continue
            if name.lower() in _STEP_NAMES and value.is_integer():
                step = int(value)
            else:
                values[name] = value
        if pattern.pattern == DEFAULT and step is None and values:
            found = _STEP.search(line)
            step = int(found.group(1)) if found else None
    else:
        hit = pattern.search(line)
        if hit:
            for name, text in hit.groupdict().items():
                value = _number(text) if text is not None else None
                if value is None:
                    continue
                if name == "step":
                    step = int(value) if value.is_integer() else None
                else:
                    values[name] = value
    return step, values


def _number(text: str) -> float | None:
    try:
        return float(text.rstrip(",;)]}"))
    except ValueError:
        return None


class ScalarCapture:
    """Fed the command's stdout as it arrives; appends one steps line per line that holds scalars."""

    def __init__(self, pattern: re.Pattern[str], out: Path) -> None:
        self._pattern = pattern
        self._step: int | None = None  # from a line that gave a step and nothing else (Keras: "Epoch 3/10")
        self._out = open(out, "ab", buffering=0)  # noqa: SIM115 - open while the command runs
        self._partial = b""

    def feed(self, data: bytes, when: float) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE:
            self._partial = b""
        out = []
        for raw in lines:
            if len(raw) > MAX_LINE:
                continue
            text = raw.rsplit(b"\r", 1)[-1].decode("utf-8", "replace")
            step, values = parse_line(self._pattern, text)
            if not values and self._pattern.pattern == DEFAULT:
                lead = _STEP.match(text.strip())
                self._step = int(lead.group(1)) if lead else self._step
            step = step if step is not None else self._step
            if values:
                clean = {k: _strict(v) for k, v in values.items()}
                out.append(json.dumps({"step": step, "time": round(when, 3), "values": clean}, separators=(",", ":")))
        if out:
            self._out.write(("\n".join(out) + "\n").encode())

    def close(self, when: float) -> None:
        if self._partial:
            self.feed(b"\n", when)
        self._out.close()


def _strict(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
