"""The filter language of `gitexp list --where EXPR`.

An expression is parsed once (`parse`) into a tree of small closures; `Filter.matches`
then costs a few attribute reads and comparisons per run.

Grammar (keywords `and`, `or`, `not`, `true`, `false`, `null`, `none` are case-insensitive)::

    expr       := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := FIELD OP VALUE | FIELD ["not"] "in" "(" VALUE ("," VALUE)* ")"
    OP         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
    FIELD      := name | status | user | note | commit | branch | base | tag | tags | sweep | config
                  | created | duration | exit_code | params.<key> | metrics.<key>
                  | resources.<key>
    VALUE      := number | 'string' | "string" | bare word | true | false | null | none

A bare word is made of letters, digits and `_ . : + - /`; one that reads as a number
(`3`, `-0.5`, `1e-3`, `inf`, `nan`) is a number. Quoted strings take `\\'`, `\\"` and
`\\\\` escapes. A field may also be quoted (`"params.my key" = 1`).

Semantics: a comparison with a missing field (or a null value) is *unknown*; `not`,
`and`, `or` follow Kleene's three-valued logic and a run matches only when the whole
expression is *true*, so runs lacking a key are never selected by accident.
`FIELD in (a, b)` means `(FIELD = a or FIELD = b)`, and `FIELD not in (...)` its negation.

When an expression matches no run, `hints` says what may be wrong with it: a
params./metrics./resources. key that no run has, or text compared with a field
that holds numbers in every run.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Final

from gitexp.errors import GitexpError
from gitexp.model import RunSummary

__all__ = ["MISSING", "Filter", "FilterError", "check_field", "hints", "lookup", "parse"]


class _Missing:
    """The type of MISSING: what `lookup` returns for a field the run does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

FIELDS_HELP: Final = (
    "name, status, tag, created, duration, user, base, branch, exit_code, note, commit, sweep, config, params.<key>, "
    "metrics.<key>, "
    "resources.<key>"
)

# A compiled (sub)expression: True, False, or None for "unknown" (a field the run lacks).
Node = Callable[[RunSummary], "bool | None"]


class FilterError(GitexpError):
    """An expression that cannot be parsed or compiled; `column` is 1-based."""

    def __init__(self, expression: str, column: int, reason: str, hint: str | None = None) -> None:
        shown = expression.replace("\r", " ").replace("\n", " ")
        super().__init__(f"invalid filter at column {column}: {reason} ({shown if hint is None else hint})")
        self.expression = expression
        self.column = column
        self.reason = reason


# ----------------------------------------------------------------------------- fields


def _started(run: RunSummary) -> Any:
    return run.started or MISSING


def _duration(run: RunSummary) -> Any:
    return MISSING if run.duration is None else run.duration


def _exit_code(run: RunSummary) -> Any:
    return MISSING if run.exit_code is None else run.exit_code


def _base(run: RunSummary) -> Any:
    return MISSING if run.base is None else run.base


def _branch(run: RunSummary) -> Any:
    return MISSING if run.base_branch is None else run.base_branch


_GETTERS: Final[dict[str, Callable[[RunSummary], Any]]] = {
    "name": operator.attrgetter("name"),
    "status": operator.attrgetter("status"),
    "user": operator.attrgetter("user"),
    "note": operator.attrgetter("note"),
    "commit": operator.attrgetter("commit"),
    "exit_code": _exit_code,
    "duration": _duration,
    "created": _started,
    "base": _base,
    "branch": _branch,
    "tag": operator.attrgetter("tags"),
    "tags": operator.attrgetter("tags"),
    "sweep": lambda run: run.sweep.get("id", MISSING),
    "config": lambda run: run.config,
}

_STRING_FIELDS: Final = frozenset({"name", "status", "user", "note", "commit", "branch", "sweep", "config"})
_SECTIONS: Final = ("params", "metrics", "resources")  # the fields with keys: params.<key>, ...


def _getter(key: str) -> Callable[[RunSummary], Any] | None:
    """How to read field `key` from a run (None for an unknown field)."""
    simple = _GETTERS.get(key)
    if simple is not None:
        return simple
    section, dot, sub = key.partition(".")
    if dot and sub and section in _SECTIONS:
        return lambda run: getattr(run, section).get(sub, MISSING)
    return None


def _unknown_field(key: str) -> FilterError:
    """The error for an unknown key outside an expression (--columns, --sort): no column to point at."""
    error = FilterError(key, 1, f"unknown field {key!r}", f"fields: {FIELDS_HELP}")
    error.message = f"unknown field {key!r} (fields: {FIELDS_HELP})"
    error.args = (error.message,)
    return error


def check_field(key: str) -> None:
    """Raise FilterError unless `key` names a field (for --columns and --sort)."""
    if _getter(key) is None:
        raise _unknown_field(key)


def getter(key: str) -> Callable[[RunSummary], Any]:
    """A function giving field `key` of a run (MISSING when it lacks it); FilterError for an unknown field."""
    get = _getter(key)
    if get is None:
        raise _unknown_field(key)
    return get


def lookup(run: RunSummary, key: str) -> Any:
    """The value of field `key` of `run`, or MISSING when the run lacks it.

    name/status/user/note/commit -> str; exit_code -> int; duration -> float seconds;
    created -> the ISO start time; base -> the base commit id; branch -> the base
    branch; tag/tags -> the tuple of tags; params./metrics./resources.<key> -> the stored
    value (None when stored as null). An unknown field raises FilterError.
    """
    get = _getter(key)
    if get is None:
        raise _unknown_field(key)
    return get(run)


# ----------------------------------------------------------------------------- values


_NUMBER_START: Final = frozenset("0123456789+-.iInN")


def _number(text: str) -> int | float | None:
    """text as a number (ints stay ints; 'NaN', 'Infinity', '-inf' are floats), else None."""
    if not text or text[0] not in _NUMBER_START or "_" in text or text != text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _float_of(text: str) -> float | None:
    """A run's string value as a float ('1e-4' from PyYAML, 'NaN' for a non-finite metric), else None."""
    if not text or text[0] not in _NUMBER_START or "_" in text or text != text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _num_eq(a: Any, b: Any) -> bool:
    if a == b:
        return True
    # NaN equals NaN here, so "metrics.loss = nan" finds the diverged runs
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def _num_ne(a: Any, b: Any) -> bool:
    return not _num_eq(a, b)


_ORDERING: Final = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_STR_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {"=": operator.eq, "!=": operator.ne, **_ORDERING}
_NUM_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {"=": _num_eq, "!=": _num_ne, **_ORDERING}
# The result of comparing values of unrelated types (a number and a word, a bool and a number...).
_UNRELATED: Final[dict[str, bool | None]] = {"=": False, "!=": True, "<": None, "<=": None, ">": None, ">=": None}

_SECONDS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def _with_unit(text: str) -> float | None:
    """'90s', '5m', '2h', '1.5d', '2w' -> seconds; None if text is not like that."""
    if len(text) < 2 or text[-1].lower() not in _SECONDS:
        return None
    amount = _number(text[:-1])
    if amount is None or not math.isfinite(amount) or amount < 0:
        return None
    return float(amount) * _SECONDS[text[-1].lower()]


# ----------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "string", "op", "(", ")", ",", "end"
    text: str  # the word, the unescaped string, the operator ("==" reads as "=")
    column: int  # 1-based

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the expression"
        if self.kind == "string":
            return f"the string {self.text!r}"
        return f"'{self.text}'"


_WORD_EXTRA: Final = frozenset("_.:+-/")
_KEYWORDS: Final = frozenset({"and", "or", "not"})
_OPERATOR_LIST: Final = "= == != < <= > >="


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        col = i + 1
        if ch.isspace():
            i += 1
        elif ch in "(),":
            out.append(_Token(ch, ch, col))
            i += 1
        elif ch in "=<>!":
            two = text[i : i + 2]
            if two in ("==", "!=", "<=", ">="):
                out.append(_Token("op", "=" if two == "==" else two, col))
                i += 2
            elif ch == "!":
                raise FilterError(text, col, "unexpected '!' (write '!=' to compare, or 'not' to negate)")
            else:
                out.append(_Token("op", ch, col))
                i += 1
        elif ch in "'\"":
            chars: list[str] = []
            j = i + 1
            while True:
                if j >= n:
                    raise FilterError(text, col, f"unterminated string: no closing {ch} for the one opened here")
                c = text[j]
                if c == "\\" and j + 1 < n and text[j + 1] in (ch, "\\"):
                    chars.append(text[j + 1])
                    j += 2
                elif c == ch:
                    break
                else:
                    chars.append(c)
                    j += 1
            out.append(_Token("string", "".join(chars), col))
            i = j + 1
        elif ch.isalnum() or ch in _WORD_EXTRA:
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in _WORD_EXTRA):
                j += 1
            out.append(_Token("word", text[i:j], col))
            i = j
        else:
            hint = {"&": " (write 'and')", "|": " (write 'or')", "[": " (write a list as (a, b))"}.get(ch, "")
            raise FilterError(text, col, f"unexpected character {ch!r}{hint}")
    out.append(_Token("end", "", n + 1))
    return out


# ----------------------------------------------------------------------------- literals


@dataclass(frozen=True)
class _Literal:
    kind: str  # "number", "string", "bool", "null"
    value: Any  # int/float, str, bool, None
    text: str  # as written (unescaped for a quoted string)
    column: int


@dataclass(frozen=True)
class Comparison:
    """One `FIELD OP VALUE` of an expression (each value of `FIELD in (...)` gives one, with op '=')."""

    field: str
    op: str
    value: _Literal


# ----------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.comparisons: list[Comparison] = []

    # helpers

    def error(self, column: int, reason: str, hint: str | None = None) -> FilterError:
        return FilterError(self.text, column, reason, hint)

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() == word

    # grammar

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error(1, "the expression is empty", "expected a comparison such as 'metrics.acc > 0.9'")
        node = self.or_expr()
        token = self.peek()
        if token.kind == ")":
            raise self.error(token.column, "unmatched ')'")
        if token.kind != "end":
            raise self.error(token.column, f"expected 'and', 'or' or the end of the expression, found {token.describe()}")
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.at_keyword("or"):
            self.take()
            node = _or(node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.at_keyword("and"):
            self.take()
            node = _and(node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self.at_keyword("not"):
            self.take()
            return _not(self.not_expr())
        token = self.peek()
        if token.kind == "(":
            self.take()
            node = self.or_expr()
            close = self.peek()
            if close.kind != ")":
                raise self.error(
                    close.column,
                    f"expected ')' to close the '(' at column {token.column}, found {close.describe()}",
                )
            self.take()
            return node
        return self.comparison()

    def comparison(self) -> Node:
        token = self.take()
        if token.kind not in ("word", "string") or (token.kind == "word" and token.text.lower() in _KEYWORDS):
            raise self.error(token.column, f"expected a field name or '(', found {token.describe()}")
        field = token.text
        get = _getter(field)
        if get is None:
            raise self.error(token.column, f"unknown field {field!r}", f"fields: {FIELDS_HELP}")
        negated = self.at_keyword("not") and self.tokens[self.pos + 1].text.lower() == "in"
        if negated:
            self.take()
        op = self.take()
        if op.kind == "word" and op.text.lower() == "in":
            node = self.one_of(field, get, op)
            return _not(node) if negated else node
        if op.kind != "op":
            raise self.error(
                op.column, f"expected an operator ({_OPERATOR_LIST} or in) after '{field}', found {op.describe()}"
            )
        literal = self.value(op)
        self.comparisons.append(Comparison(field, op.text, literal))
        return self.compile(field, get, op, literal)

    def one_of(self, field: str, get: Callable[[RunSummary], Any], in_token: _Token) -> Node:
        """The list of `FIELD in (a, b, ...)`, as `FIELD = a or FIELD = b or ...`."""
        opening = self.take()
        if opening.kind != "(":
            raise self.error(
                opening.column, f"expected '(' after 'in', found {opening.describe()}", "e.g. params.lr in (0.1, 0.3)"
            )
        equals = _Token("op", "=", in_token.column)
        node: Node | None = None
        before = opening
        while True:
            literal = self.value(before)
            self.comparisons.append(Comparison(field, "=", literal))
            one = self.compile(field, get, equals, literal)
            node = one if node is None else _or(node, one)
            before = self.take()
            if before.kind == ")":
                return node
            if before.kind != ",":
                raise self.error(
                    before.column,
                    f"expected ',' or ')' in the list of the 'in' at column {in_token.column}, found {before.describe()}",
                )

    def value(self, op: _Token) -> _Literal:
        token = self.take()
        if token.kind == "string":
            return _Literal("string", token.text, token.text, token.column)
        if token.kind != "word":
            found = "" if token.kind == "end" else f", found {token.describe()}"
            raise self.error(token.column, f"expected a value after '{op.text}'{found}")
        word = token.text
        low = word.lower()
        if low in _KEYWORDS:
            raise self.error(token.column, f"expected a value after '{op.text}', found the keyword '{word}' (quote it)")
        if low in ("true", "false"):
            return _Literal("bool", low == "true", word, token.column)
        if low in ("null", "none"):
            return _Literal("null", None, word, token.column)
        number = _number(word)
        if number is not None:
            return _Literal("number", number, word, token.column)
        return _Literal("string", word, word, token.column)

    # compilation of one comparison

    def compile(self, field: str, get: Callable[[RunSummary], Any], op_token: _Token, lit: _Literal) -> Node:
        op = op_token.text
        if lit.kind == "null":
            if op not in ("=", "!="):
                raise self.error(op_token.column, f"null supports = and != only (found '{op}')")
            return _is_null(field, get, op == "=")
        if field in ("tag", "tags", "base"):
            if op not in ("=", "!="):
                raise self.error(op_token.column, f"{field} supports = and != only (found '{op}')")
            if field == "base":
                return _base_node(lit.text, op == "=")
            return _tag_node(lit.text, op == "=")
        if lit.kind == "bool" and op not in ("=", "!="):
            raise self.error(op_token.column, f"true and false support = and != only (found '{op}')")
        if field == "created":
            return self.created(op, lit)
        if field == "duration":
            seconds = lit.value if lit.kind == "number" else _with_unit(lit.text)
            if seconds is None or isinstance(seconds, bool):
                raise self.error(
                    lit.column, f"expected a duration after '{op}', such as 90, 90s, 5m or 2h (found {lit.text!r})"
                )
            return _number_node(get, op, seconds)
        if field == "exit_code":
            if lit.kind != "number":
                raise self.error(lit.column, f"expected a number after '{op}' (exit_code is a number, found {lit.text!r})")
            return _number_node(get, op, lit.value)
        if field in _STRING_FIELDS:
            return _string_node(get, op, lit.text)
        if lit.kind == "number":
            return _number_node(get, op, lit.value)
        if lit.kind == "bool":
            return _bool_node(get, op == "=", lit.value)
        return _string_node(get, op, lit.value)

    def created(self, op: str, lit: _Literal) -> Node:
        when = _instant(lit.text)
        if when is None:
            raise self.error(
                lit.column,
                f"expected a date (2026-11-01), a datetime (2026-11-01T14:00) or an age (7d, 12h, 30m) "
                f"after '{op}', found {lit.text!r}",
            )
        start, end = when
        if end is not None and op in ("=", "!="):
            return _created_in_day(start, end, op == "=")
        return _created_node(op, start)


def _instant(text: str) -> tuple[datetime, datetime | None] | None:
    """A literal of `created`: (instant, None), or (midnight, next midnight) for a date; None if unreadable."""
    text = text.strip()
    age = _with_unit(text)
    if age is not None:
        return datetime.now(timezone.utc) - timedelta(seconds=age), None
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            return (
                datetime.combine(day, time()).astimezone(),
                datetime.combine(day + timedelta(days=1), time()).astimezone(),
            )
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.astimezone()), None


# ----------------------------------------------------------------------------- nodes


def _not(inner: Node) -> Node:
    def node(run: RunSummary) -> bool | None:
        value = inner(run)
        return None if value is None else not value

    return node


def _and(left: Node, right: Node) -> Node:
    def node(run: RunSummary) -> bool | None:
        a = left(run)
        if a is False:
            return False
        b = right(run)
        if b is False:
            return False
        return None if a is None or b is None else True

    return node


def _or(left: Node, right: Node) -> Node:
    def node(run: RunSummary) -> bool | None:
        a = left(run)
        if a is True:
            return True
        b = right(run)
        if b is True:
            return True
        return None if a is None or b is None else False

    return node


def _is_null(field: str, get: Callable[[RunSummary], Any], equal: bool) -> Node:
    if field in ("tag", "tags"):
        return lambda run: (not run.tags) is equal
    if field == "base":
        return lambda run: (run.base is None and run.base_branch is None) is equal

    def node(run: RunSummary) -> bool | None:
        value = get(run)
        return (value is MISSING or value is None) is equal

    return node


def _tag_node(tag: str, equal: bool) -> Node:
    return lambda run: (tag in run.tags) is equal


def _base_node(spec: str, equal: bool) -> Node:
    prefix = spec.lower() if len(spec) >= 4 else None

    def node(run: RunSummary) -> bool | None:
        branch, commit = run.base_branch, run.base
        if branch is None and commit is None:
            return None
        hit = branch == spec or (prefix is not None and commit is not None and commit.startswith(prefix))
        return hit is equal

    return node


def _number_node(get: Callable[[RunSummary], Any], op: str, number: Any) -> Node:
    compare = _NUM_OPS[op]
    unrelated = _UNRELATED[op]

    def node(run: RunSummary) -> bool | None:
        value = get(run)
        kind = type(value)
        if kind is float or kind is int:
            return compare(value, number)
        if kind is str:
            parsed = _float_of(value)
            return unrelated if parsed is None else compare(parsed, number)
        if value is MISSING or value is None:
            return None
        return compare(value, number) if _is_number(value) else unrelated

    return node


def _string_node(get: Callable[[RunSummary], Any], op: str, text: str) -> Node:
    compare = _STR_OPS[op]
    unrelated = _UNRELATED[op]
    as_number = _number(text)
    compare_number = _NUM_OPS[op]

    def node(run: RunSummary) -> bool | None:
        value = get(run)
        if type(value) is str:
            return compare(value, text)
        if value is MISSING or value is None:
            return None
        if as_number is not None and _is_number(value):
            return compare_number(value, as_number)
        return unrelated

    return node


def _bool_node(get: Callable[[RunSummary], Any], equal: bool, flag: bool) -> Node:
    def node(run: RunSummary) -> bool | None:
        value = get(run)
        if value is MISSING or value is None:
            return None
        return (value is flag) is equal

    return node


def _run_instant(run: RunSummary) -> datetime | None:
    if not run.started:
        return None
    try:
        moment = datetime.fromisoformat(run.started)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _created_node(op: str, when: datetime) -> Node:
    compare = _STR_OPS[op]

    def node(run: RunSummary) -> bool | None:
        moment = _run_instant(run)
        return None if moment is None else compare(moment, when)

    return node


def _created_in_day(start: datetime, end: datetime, equal: bool) -> Node:
    def node(run: RunSummary) -> bool | None:
        moment = _run_instant(run)
        return None if moment is None else (start <= moment < end) is equal

    return node


# ----------------------------------------------------------------------------- API


class Filter:
    """A parsed `--where` expression."""

    __slots__ = ("_node", "comparisons", "text")

    def __init__(self, text: str, node: Node, comparisons: Sequence[Comparison] = ()) -> None:
        self.text = text
        self._node = node
        self.comparisons = tuple(comparisons)

    def evaluate(self, run: RunSummary) -> bool | None:
        """True, False, or None when the answer is unknown (a field the run lacks)."""
        return self._node(run)

    def matches(self, run: RunSummary) -> bool:
        """Whether the expression is true for `run` (unknown counts as no)."""
        return self._node(run) is True

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"


def parse(text: str) -> Filter:
    """Parse a `--where` expression; raises FilterError naming the column of the problem."""
    parser = _Parser(text)
    node = parser.parse()
    return Filter(text, node, parser.comparisons)


_SHOWN_KEYS: Final = 12


def hints(condition: Filter, runs: Sequence[RunSummary]) -> list[str]:
    """For an expression that matched none of `runs`: what in it may be a mistake, one line each.

    A params./metrics./resources. key that no run has ("no run has metrics.los (did you
    mean metrics.loss? ...)"), and text compared with a key that is a number in every run.
    """
    found: list[str] = []
    for comparison in condition.comparisons:
        section, dot, key = comparison.field.partition(".")
        if not (dot and key and section in _SECTIONS) or not runs:
            continue
        if not any(key in getattr(run, section) for run in runs):
            found.append(_no_such_key(comparison.field, section, key, runs))
        elif _text_for_numbers(comparison, [getattr(run, section).get(key) for run in runs]):
            found.append(
                f"{comparison.field} is a number in every run that has it, but {comparison.value.text!r} is text, "
                "which no number equals or is ordered with (a bare word that is not a number is text, quoted or not)"
            )
    return list(dict.fromkeys(found))


def _no_such_key(field: str, section: str, key: str, runs: Sequence[RunSummary]) -> str:
    keys = sorted({k for run in runs for k in getattr(run, section)})
    if not keys:
        return f"no run has {field} (no run recorded any {section})"
    close = difflib.get_close_matches(key, keys, n=1)
    guess = f"did you mean {section}.{close[0]}? " if close else ""
    shown = ", ".join(keys[:_SHOWN_KEYS]) + (", ..." if len(keys) > _SHOWN_KEYS else "")
    return f"no run has {field} ({guess}{section} recorded: {shown})"


def _text_for_numbers(comparison: Comparison, values: list[Any]) -> bool:
    """Whether the comparison holds text that is not a number while every value given is a number (or absent)."""
    literal = comparison.value
    if literal.kind != "string" or comparison.op == "!=" or _number(literal.text) is not None:
        return False
    present = [v for v in values if v is not None]
    return bool(present) and all(_is_number(v) or (isinstance(v, str) and _float_of(v) is not None) for v in present)
