"""Scalars printed by the command (stdout and stderr), turned into step metrics.

The default capture is a short chain of recognisers, one per family of output,
tried in order on each complete line (of a line redrawn with carriage returns,
a progress bar, only its last state; colour codes and backspaces removed):

- Lightning's printed metric table (`trainer.test`/`validate`), rich or plain;
- dicts: HuggingFace Trainer's log and eval dicts, quoted values too
  (`{'loss': '0.69', 'epoch': 0.5}`); a dict is metrics only when it has an
  `epoch` or `step` key or a key naming a metric (loss, acc, f1, ppl, error, mse,
  auc, score, ...): a dict of hyperparameters (`{'lr': 0.1, 'batch_size': 32}`) is not;
- meters (pytorch/examples imagenet): `Epoch: [0][ 10/500]\tLoss 1.2e+00 (1.3e+00)`,
  the value, not the running average; the ` * Acc@1 45.0` summary as `test_Acc@1`;
- `|`-separated fields (pytorch/examples word_language_model): `| epoch 1 | ... | loss  6.21 |`;
- pytorch/examples mnist: `Train Epoch: 1 [640/60000 (1%)]\tLoss: 0.3`,
  `Test set: Average loss: 0.1, Accuracy: 9800/10000 (98%)` as `test_loss`, `test_accuracy` (percent);
- boosting: XGBoost `[0]\ttrain-rmse:0.3`, LightGBM `[10]\tvalid_0's l2: 0.5` (as `valid_0-l2`);
- tqdm bars (Lightning's too): the postfix `loss=0.3` (never `v_num`, the counter or the rate);
- Keras progress lines (`4/6 ━━━━ 0s 2ms/step - loss: 0.7`, Keras 2's `4/6 [===>..]`): only the
  epoch's own line (`6/6`) counts; one before it holds running averages of the epoch so far, and
  is skipped whether it is redrawn on a terminal or printed as a line of its own (a pipe, a log);
- any other line: every `name=number` and `name: number` pair (Keras `- loss: 0.3`).

Steps: `epoch`, `step`, `iter`, `iteration`, `global_step` give the step instead
of a metric. A line with an epoch E and a progress counter i/N (`[640/60000]`,
`200/2983 batches`, a bar's `8/8`) is at step (E - E0) * N + i, E0 the first
epoch the command printed with a counter; a line with a step of its own sets
it for the lines after it that have none (`Epoch 3/10` before Keras' line).
Nothing is taken from object reprs (`SVC(gamma=0.001)`, `Namespace(lr=0.1)`),
times of day, dates, versions, paths, progress counters or percentages.
Names keep their case, but the first spelling seen of a name is used for every
later spelling that differs only by case (`Loss` then `loss`: one series `Loss`).

A custom regex either has the groups `name` and `value` (every match of a line
is one pair), or names its groups after metrics (`loss (?P<loss>\\S+)`); a
group named `step` gives the step.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from gitexp.errors import GitexpError

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
DEFAULT = (
    r"(?<![\w./:-])['\"]?(?P<name>[A-Za-z_][\w./@-]*?)['\"]?\s*(?:=|:)\s*"
    rf"(?P<value>{_NUMBER})(?![\w.:/%-])"
)
# a value is followed by the end, a separator or the next pair: not by a word (`using: 0 TPU cores`)
_PAIR_END = re.compile(r"\s*(?:$|,(?!\d)|[;|)\]}(-]|[A-Za-z_][\w./@'-]*\s*[:=])")
_PAIR = re.compile(DEFAULT)
_STEP = re.compile(r"(?i)(?<![\w.])(?:epoch\s*[=: ]?\s*(\d+)(?![\w.])|(?:step|iter|iteration)\s*[=: ]?\s*(\d+)(?![\w./]))")
_STEP_NAMES = frozenset({"epoch", "step", "iter", "iteration", "global_step"})
MAX_LINE = 4096  # longer lines are not parsed: no one prints metrics that way

_DIGIT = re.compile(r"\d|nan|inf", re.IGNORECASE)  # a line without any cannot hold a value
_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])|[\x00-\x08\x0b-\x1f\x7f]")
_REPR = re.compile(r"[A-Za-z_][\w.]*\([^()]*\)")
_OPEN_REPR = re.compile(r"^[A-Za-z_][\w.]*\s*\($")
_DICT_PAIR = re.compile(rf"['\"]([^'\"]+)['\"]\s*:\s*(['\"]?)({_NUMBER})\2\s*(?=[,}}])")
_METER = re.compile(rf"([A-Za-z][\w@./-]*)\s+({_NUMBER})\s+\(\s*(?:{_NUMBER})\s*\)")
_METER_HEAD = re.compile(r"^(?:Epoch: \[(\d+)\])?\[\s*(\d+)/(\d+)\]")
_SUMMARY = re.compile(rf"([A-Za-z][\w@./-]*)\s+({_NUMBER})(?!\S)")
_FIELD = re.compile(rf"^([A-Za-z][\w@./-]*(?: [A-Za-z][\w@./-]*)*):?\s+({_NUMBER})s?$")
_FIELD_EPOCH = re.compile(r"^(?:end of )?epoch\s+(\d+)$", re.IGNORECASE)
_FIELD_COUNTER = re.compile(r"^(\d+)\s*/\s*(\d+)(?:\s+batches)?$")
_MNIST_TRAIN = re.compile(r"^Train Epoch: (\d+) \[(\d+)/(\d+) \(\d+%\)\]\s*(.*)$")
_MNIST_TEST = re.compile(rf"^Test set: Average loss: ({_NUMBER}), Accuracy: (\d+)/(\d+)")
_BOOST = re.compile(r"^\[(\d+)\]\t(.*)$")
_BOOST_FIELD = re.compile(rf"^(.+?)(?:'s (.+?))?:\s*({_NUMBER})$")
_BAR = re.compile(r"(\d+)/(\d+) \[[\d:<?]+(?:, ([^\]]*))?\]")
_BAR_EPOCH = re.compile(r"(?i)^epoch\s+(\d+)")
_KERAS_BAR = re.compile(r"^(\d+)/(?:(\d+) (?:━|\[[=>.]*\])|Unknown \d)")
_TABLE_ROW = re.compile(rf"^([A-Za-z_][\w@./-]*)\s+({_NUMBER})$")
_METRIC_WORD = re.compile(
    r"(?i)loss|acc|f1|ppl|perplexity|err|mse|mae|auc|score|precision|recall|bleu|rouge|reward|return"
)
_BOX = "│┃|"

BLOCK_LINES = 200  # a metric table or a multi-line repr that does not end within this many lines has ended
Parsed = tuple[int | None, dict[str, float]]


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


def parse_line(pattern: re.Pattern[str], line: str) -> Parsed:
    """(step, {name: value}) of one line of output, read on its own."""
    if pattern.pattern == DEFAULT:
        return Recognisers().parse(line)
    return _custom(pattern, line)


def _custom(pattern: re.Pattern[str], line: str) -> Parsed:
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


class Recognisers:
    """The default capture: one recogniser per family of output, with what they remember between lines."""

    def __init__(self) -> None:
        self.step: int | None = None  # of the latest line that gave one
        self._epoch0: int | None = None  # the first epoch printed beside a progress counter
        self._table = 0  # inside a printed metric table (Lightning): how many more lines it may have
        self._rows = False  # and it had a row of values
        self._repr = 0  # inside a multi-line repr (a torch optimizer's `Adam (`): how many more lines it may have
        self._best = False  # the line after LightGBM's "Best iteration is:" repeats an earlier one

    def parse(self, line: str) -> Parsed:
        """(step, {name: value}) of one line: its own step, else the latest step seen."""
        if "\x1b" in line or "\x08" in line:
            line = _ANSI.sub("", line)
        step, values = self._recognise(line.strip())
        if step is not None:
            self.step = step
        return self.step, values

    def _recognise(self, s: str) -> Parsed:
        if not s:
            return None, {}
        if self._table or ("metric" in s and "DataLoader" in s):
            return self._table_line(s)
        if self._repr:
            self._repr = 0 if s.startswith(")") else self._repr - 1
            return None, {}
        if _OPEN_REPR.match(s):
            self._repr = BLOCK_LINES
            return None, {}
        best, self._best = self._best, "Best iteration is" in s
        if best or not _DIGIT.search(s):
            return None, {}
        first = s[0]
        if first == "{" and s[-1] == "}":
            return self._dict(s)
        if first == "|":
            return self._fields(s)
        if first == "[":
            boost = _BOOST.match(s)
            if boost:
                return self._boost(boost)
            if s.startswith("[LightGBM] "):
                return None, {}  # its log: dataset sizes, bins, warnings
        if first == "*" or "\t" in s or first in "E[":
            meters = self._meters(s)
            if meters is not None:
                return meters
        if first in "TE":
            mnist = self._mnist(s)
            if mnist is not None:
                return mnist
        if first.isdigit():
            keras = _KERAS_BAR.match(s)
            if keras and (keras.group(2) is None or int(keras.group(1)) < int(keras.group(2))):
                return None, {}  # within the epoch: its running averages
        if "/" in s and " [" in s:
            bar = _BAR.search(s)
            if bar:
                return self._bar(s, bar)
        return self._pairs(s)

    def _counted(self, epoch: int, i: int, n: int) -> int:
        if self._epoch0 is None or epoch < self._epoch0:  # the first, or a new training from its start
            self._epoch0 = epoch
        return (epoch - self._epoch0) * n + i

    def _table_line(self, s: str) -> Parsed:
        if not self._table:
            self._table = BLOCK_LINES
            return None, {}
        self._table -= 1
        row = s.strip(_BOX + " ")
        if not _DIGIT.search(row):  # a rule; the rule or border after the rows ends the table
            if s[0] in "└+" or self._rows:
                self._table, self._rows = 0, False
            return None, {}
        cells = [c.strip() for c in re.split("[│┃|]", row)] if any(c in row for c in _BOX) else [row]
        hit = _TABLE_ROW.match(" ".join(c for c in cells if c))
        if not hit:  # not a table after all
            self._table, self._rows = 0, False
            return self._recognise(s)
        self._rows = True
        return None, {hit.group(1): float(hit.group(2))}

    def _dict(self, s: str) -> Parsed:
        pairs = _DICT_PAIR.findall(s)
        keys = {k for k, _, _ in pairs}
        if not keys & {"epoch", "step", "global_step"} and not any(_METRIC_WORD.search(k) for k in keys):
            return None, {}  # hyperparameters, a config
        values: dict[str, float] = {}
        step = None
        for key, _, text in pairs:
            value = float(text)
            if key in ("step", "global_step") and value.is_integer():
                step = int(value)
            else:
                values[key] = value
        return step, values

    def _fields(self, s: str) -> Parsed:
        epoch = counter = None
        values: dict[str, float] = {}
        for field in s.split("|"):
            field = field.strip()
            if not field:
                continue
            hit = _FIELD_EPOCH.match(field)
            if hit:
                epoch = int(hit.group(1))
                continue
            count = _FIELD_COUNTER.match(field)
            if count:
                counter = (int(count.group(1)), int(count.group(2)))
                continue
            pair = _FIELD.match(field)
            if pair:
                values[pair.group(1).replace(" ", "_")] = float(pair.group(2))
        if epoch is not None and counter is not None:
            return self._counted(epoch, *counter), values
        return None, values

    def _boost(self, hit: re.Match[str]) -> Parsed:
        values: dict[str, float] = {}
        for field in hit.group(2).split("\t"):
            pair = _BOOST_FIELD.match(field.strip())
            if pair:
                name = f"{pair.group(1)}-{pair.group(2)}" if pair.group(2) else pair.group(1)
                values[name] = float(pair.group(3))
        return int(hit.group(1)), values

    def _meters(self, s: str) -> Parsed | None:
        if s.startswith("* "):
            return None, {f"test_{n}": float(v) for n, v in _SUMMARY.findall(s[2:])}
        head = _METER_HEAD.match(s)
        meters = _METER.findall(s)
        if not meters:
            return None
        if head is None:
            return None if not s.startswith("Test: [") else (None, {})  # per-batch running eval: the summary counts
        values = {name: float(value) for name, value in meters}
        if head.group(1) is None:
            return int(head.group(2)), values
        return self._counted(int(head.group(1)), int(head.group(2)), int(head.group(3))), values

    def _mnist(self, s: str) -> Parsed | None:
        train = _MNIST_TRAIN.match(s)
        if train:
            step = self._counted(int(train.group(1)), int(train.group(2)), int(train.group(3)))
            return step, self._pairs(train.group(4))[1]
        test = _MNIST_TEST.match(s)
        if test:
            correct, total = int(test.group(2)), int(test.group(3))
            return None, {"test_loss": float(test.group(1)), "test_accuracy": 100.0 * correct / total if total else 0.0}
        return None

    def _bar(self, s: str, bar: re.Match[str]) -> Parsed:
        values: dict[str, float] = {}
        for item in (bar.group(3) or "").split(", "):
            name, eq, text = item.partition("=")
            value = _number(text) if eq else None
            if value is not None and name != "v_num" and re.fullmatch(r"[A-Za-z_][\w./@-]*", name):
                values[name] = value
        if not values:
            return None, {}
        i, n = int(bar.group(1)), int(bar.group(2))
        epoch = _BAR_EPOCH.match(s)
        return (self._counted(int(epoch.group(1)), i, n) if epoch else i), values

    def _pairs(self, s: str) -> Parsed:
        if "(" in s:
            for _ in range(3):
                s, reprs = _REPR.subn(" ", s)
                if not reprs:
                    break
        values: dict[str, float] = {}
        step: int | None = None
        for match in _PAIR.finditer(s):
            name, value = match.group("name"), _number(match.group("value"))
            if value is None or not _PAIR_END.match(s, match.end()):
                continue
            if name.lower() in _STEP_NAMES and value.is_integer():
                step = int(value)
            else:
                values[name] = value
        if step is None:
            found = _STEP.search(s) if values else _STEP.match(s)  # a line with only an epoch: "Epoch 3/10"
            if found:
                step = int(found.group(1) or found.group(2))
        return step, values


_CURSOR_UP = re.compile(rb"\x1b\[(\d*)A")
_COUNTER = re.compile(rb"(\d+)/(?:\d+|\?)")
HOLD_SECONDS = 2.0  # how long a line drawn with escape codes may still be redrawn (cursor up) before it counts
HOLD_LINES = 8
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def final_states(raw: bytes) -> tuple[list[bytes], bytes]:
    """(earlier finished states, last state) of a line redrawn with carriage returns.

    A terminal shows only the last state; an earlier one counts too when the state after it
    restarts the counter (`8/8` then `0/8`: a progress bar reset for the next epoch on the same line).
    """
    states = raw.rstrip(b"\r").split(b"\r")
    last = states.pop()
    if not states or b"/" not in raw:
        return [], last
    return [state for state, after in zip(states, [*states[1:], last]) if _restarts(state, after)], last


def _restarts(state: bytes, after: bytes) -> bool:
    """Whether a redraw shows a new progress bar: its counter is lower (the last counter: rich's follows "Epoch 0/1")."""
    here, then = _COUNTER.findall(state)[-1:], _COUNTER.findall(after)[-1:]
    return bool(here and then and int(then[0]) < int(here[0]))


# The prefix distributed launchers put before each rank's lines (torchrun --tee: "[default0]:", or
# "[rank0]:" with its log-line prefix template). Lines without one are read once each (identical points
# in a row count once).
_RANK_PREFIX = re.compile(r"\[(?:rank|default)(\d+)\]:")


class ScalarCapture:
    """Fed the command's stdout and stderr as they arrive; appends one steps line per line that holds scalars.

    Lines with escape codes are held a moment: a display that moves the cursor up (rich, nested
    tqdm bars) redraws them, and only what stays on the screen counts.
    """

    def __init__(self, pattern: re.Pattern[str], out: Path) -> None:
        self._pattern = pattern
        self._default = pattern.pattern == DEFAULT
        self._recognisers = Recognisers()
        self._spelling: dict[str, str] = {}  # lower-cased name -> the first spelling seen
        self._out = open(out, "ab", buffering=0)  # noqa: SIM115 - open while the command runs
        self._partial: dict[str, bytes] = {}
        self._held: dict[str, list[tuple[float, list[bytes], bytes]]] = {}  # stream -> lines that may be redrawn
        self._previous: tuple[int | None, dict[str, float]] | None = None

    def feed(self, data: bytes, when: float, stream: str = "stdout") -> None:
        lines = (self._partial.get(stream, b"") + data).split(b"\n")
        partial = lines.pop()
        self._partial[stream] = b"" if len(partial) > MAX_LINE * 4 else partial
        held = self._held.setdefault(stream, [])
        out: list[str] = []
        for raw in lines:
            finished, last = final_states(raw) if b"\r" in raw else ([], raw)
            if b"\x1b" in last:
                up = sum(int(n or 1) for n in _CURSOR_UP.findall(last))
                for index in range(max(0, len(held) - up), len(held)):
                    if not _restarts(held[index][2], last):
                        held[index] = (held[index][0], held[index][1], b"")  # redrawn: its state never counted
            if held or b"\x1b" in last:
                held.append((when, finished, last))
            else:
                self._parse([*finished, last], when, out)
        while held and (len(held) > HOLD_LINES or when - held[0][0] > HOLD_SECONDS):
            _, finished, last = held.pop(0)
            self._parse([*finished, last], when, out)
        if out:
            self._out.write(("\n".join(out) + "\n").encode())

    def _parse(self, states: list[bytes], when: float, out: list[str]) -> None:
        for raw in states:
            if not raw or len(raw) > MAX_LINE:
                continue
            text = raw.decode("utf-8", "replace")
            ranked = _RANK_PREFIX.match(text)
            if ranked:  # torchrun --tee / a log-line prefix: rank 0's lines make the series
                if int(ranked.group(1)) != 0:
                    continue
                text = text[ranked.end():]
            if self._default:
                step, values = self._recognisers.parse(text)
            else:
                step, values = _custom(self._pattern, text)
            if values and (step, values) != self._previous:  # a display drawn twice the same counts once
                self._previous = (step, values)
                clean = {self._name(k): _strict(v) for k, v in values.items()}
                out.append(_ENCODE({"step": step, "time": round(when, 3), "values": clean}))

    def _name(self, name: str) -> str:
        return self._spelling.setdefault(name.lower(), name)

    def close(self, when: float) -> None:
        if self._out.closed:
            return
        for stream, partial in list(self._partial.items()):
            if partial:
                self.feed(b"\n", when, stream)
        out: list[str] = []
        for held in self._held.values():
            for _, finished, last in held:
                self._parse([*finished, last], when, out)
            held.clear()
        if out:
            self._out.write(("\n".join(out) + "\n").encode())
        self._out.close()


def _strict(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
