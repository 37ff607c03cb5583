"""The --where filter language: parsing, semantics, and errors (in-process, no git)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gitexp.errors import GitexpError
from gitexp.filter import MISSING, FilterError, check_field, hints, lookup, parse
from gitexp.model import RunSummary


def run_summary(**kw: object) -> RunSummary:
    base: dict[str, object] = {
        "name": "r", "commit": "c" * 40, "status": "completed", "exit_code": 0,
        "started": "2026-01-01T00:00:00.000+00:00", "duration": 1.5, "user": "U <u@x>", "base": "b" * 40,
        "base_branch": "main", "parent": None, "params": {"lr": 0.1}, "metrics": {"acc": 0.9},
    }
    base.update(kw)
    return RunSummary(**base)  # type: ignore[arg-type]


def hit(expr: str, run: RunSummary) -> bool:
    return parse(expr).matches(run)


def error_of(expr: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        parse(expr)
    return info.value


def local(*parts: int) -> str:
    """A local wall-clock time as the ISO string with offset that gitexp records."""
    return datetime(*parts).astimezone().isoformat(timespec="milliseconds")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- lookup


def test_lookup_reads_each_field_and_missing_ones_as_missing() -> None:
    run = run_summary(tags=("a", "b"), params={"model.depth": 4}, note="n")
    assert lookup(run, "name") == "r"
    assert lookup(run, "status") == "completed"
    assert lookup(run, "exit_code") == 0
    assert lookup(run, "duration") == 1.5
    assert lookup(run, "created") == "2026-01-01T00:00:00.000+00:00"
    assert lookup(run, "branch") == "main"
    assert lookup(run, "base") == "b" * 40
    assert lookup(run, "tag") == ("a", "b") and lookup(run, "tags") == ("a", "b")
    assert lookup(run, "params.model.depth") == 4
    assert lookup(run, "metrics.acc") == 0.9
    assert lookup(run, "note") == "n"
    assert lookup(run, "commit") == "c" * 40
    bare = run_summary(exit_code=None, duration=None, started="", base=None, base_branch=None)
    for key in ("exit_code", "duration", "created", "branch", "base", "params.nope", "metrics.nope"):
        assert lookup(bare, key) is MISSING, key


def test_lookup_and_check_field_refuse_an_unknown_field() -> None:
    with pytest.raises(FilterError, match="unknown field 'paramz.lr'"):
        lookup(run_summary(), "paramz.lr")
    with pytest.raises(FilterError, match=r"fields: name, status"):
        check_field("params")
    check_field("metrics.acc")


def test_filter_error_is_a_gitexp_error() -> None:
    assert isinstance(error_of("status >"), GitexpError)


# ----------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("metrics.acc = 0.9", True),
        ("metrics.acc == 0.9", True),
        ("metrics.acc != 0.9", False),
        ("metrics.acc < 0.95", True),
        ("metrics.acc <= 0.9", True),
        ("metrics.acc > 0.9", False),
        ("metrics.acc >= 0.9", True),
        ("metrics.acc>0.8", True),
        ("params.depth = 4.0", True),  # int run value vs float literal
        ("params.depth > 3", True),
        ("params.neg < -0.4", True),
        ("params.neg = -0.5", True),
        ("params.tiny = 1e-3", True),
        ("params.tiny < 1E-2", True),
    ],
)
def test_each_operator_compares_numbers_numerically(expr: str, expected: bool) -> None:
    run = run_summary(params={"depth": 4, "neg": -0.5, "tiny": 0.001})
    assert hit(expr, run) is expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("params.opt = adam", True),
        ("params.opt == 'adam'", True),
        ("params.opt != adam", False),
        ("params.opt != sgd", True),
        ("params.opt < b", True),
        ("params.opt <= adam", True),
        ("params.opt > adagrad", True),
        ("params.opt >= adamw", False),
        ("status = completed", True),
        ("status != failed", True),
        ("user = 'U <u@x>'", True),
        ("branch = main", True),
        ("name < s", True),
    ],
)
def test_each_operator_compares_strings_as_strings(expr: str, expected: bool) -> None:
    assert hit(expr, run_summary(params={"opt": "adam"})) is expected


def test_a_number_and_a_word_are_unequal_and_unordered() -> None:
    run = run_summary(params={"opt": "adam"})
    assert not hit("params.opt = 3", run)
    assert hit("params.opt != 3", run)
    assert not hit("params.opt < 3", run)
    assert not hit("not params.opt < 3", run)


def test_string_fields_compare_the_literal_as_written() -> None:
    run = run_summary(name="007", exit_code=1)
    assert hit("name = 007", run)
    assert not hit("name = 7", run)
    assert hit("exit_code = 1", run) and hit("exit_code > 0", run) and not hit("exit_code = 0", run)


def test_booleans_are_not_numbers() -> None:
    run = run_summary(params={"flag": True, "one": 1})
    assert hit("params.flag = true", run)
    assert hit("params.flag = TRUE", run)
    assert hit("params.flag != false", run)
    assert not hit("params.flag = 1", run)
    assert hit("params.flag != 1", run)
    assert not hit("params.one = true", run)


def test_null_means_the_key_is_missing() -> None:
    run = run_summary(params={"lr": 0.1, "nothing": None}, exit_code=None)
    assert hit("params.x = null", run)
    assert not hit("params.x != null", run)
    assert hit("params.lr != none", run)
    assert not hit("params.lr = NULL", run)
    assert hit("params.nothing = null", run)
    assert hit("exit_code = null", run)


def test_a_numeric_string_param_compares_numerically() -> None:
    run = run_summary(params={"lr": "1e-4"})  # PyYAML reads 1e-4 as a string
    assert hit("params.lr < 0.001", run)
    assert hit("params.lr = 0.0001", run)
    assert hit("params.lr > 1e-5", run)
    assert not hit("params.lr >= 1e-3", run)


def test_a_quoted_number_meets_a_number_param_numerically_and_a_string_param_textually() -> None:
    assert hit("params.depth = '4'", run_summary(params={"depth": 4}))
    assert hit("params.version = '1.10'", run_summary(params={"version": "1.10"}))
    assert not hit("params.version = '1.10'", run_summary(params={"version": "1.1"}))


def test_non_finite_metric_strings_compare_as_floats() -> None:
    nan = run_summary(metrics={"loss": "NaN"})
    inf = run_summary(metrics={"loss": "Infinity"})
    ninf = run_summary(metrics={"loss": "-Infinity"})
    finite = run_summary(metrics={"loss": 0.5})
    assert hit("metrics.loss > 1000", inf) and hit("metrics.loss = inf", inf) and hit("metrics.loss = Infinity", inf)
    assert hit("metrics.loss < -1000", ninf) and hit("metrics.loss = -inf", ninf)
    assert not hit("metrics.loss < 1", nan) and not hit("metrics.loss > 1", nan)
    assert hit("metrics.loss = nan", nan) and not hit("metrics.loss = nan", finite)
    assert hit("metrics.loss != NaN", finite) and not hit("metrics.loss != NaN", nan)
    assert hit("metrics.loss < inf", finite)


# ----------------------------------------------------------------------------- logic


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    run = run_summary(status="completed", metrics={"acc": 0.9})
    # or(status=failed, and(acc>0.5, acc<0.95)) -> True; and-first would give False
    assert hit("status = failed or metrics.acc > 0.5 and metrics.acc < 0.95", run)
    assert not hit("(status = failed or metrics.acc > 0.5) and metrics.acc < 0.5", run)
    # (not status=failed) and acc>0.5 -> True; not(and) would be False
    assert hit("not status = failed and metrics.acc > 0.5", run)
    assert not hit("not (status = completed and metrics.acc > 0.5)", run)
    assert hit("not not status = completed", run)


def test_keywords_are_case_insensitive() -> None:
    run = run_summary()
    assert hit("status = completed AND NOT metrics.acc < 0.5 Or name = x", run)


def test_parentheses_group_and_nest() -> None:
    run = run_summary(status="failed", metrics={"acc": 0.2})
    assert hit("((status = failed) and (metrics.acc < 0.5 or metrics.acc > 0.8))", run)
    assert not hit("status = failed and (metrics.acc > 0.5 or metrics.acc > 0.8)", run)


def test_a_run_missing_a_key_is_excluded_even_under_not() -> None:
    run = run_summary(metrics={})
    assert not hit("metrics.acc > 0.5", run)
    assert not hit("not metrics.acc > 0.5", run)
    assert not hit("not (metrics.acc > 0.5)", run)
    assert not hit("not not metrics.acc > 0.5", run)
    assert not hit("not (status = completed and metrics.acc > 0.5)", run)
    assert parse("not metrics.acc > 0.5").evaluate(run) is None


def test_or_with_a_missing_key_follows_kleene_logic() -> None:
    run = run_summary(metrics={})
    assert hit("metrics.acc > 0.5 or status = completed", run)  # unknown or true = true
    assert not hit("metrics.acc > 0.5 or status = failed", run)  # unknown or false = unknown
    assert not hit("not (metrics.acc > 0.5 or status = failed)", run)
    assert hit("not (metrics.acc > 0.5 and status = failed)", run)  # not (unknown and false) = true


def test_a_run_with_a_list_param_is_not_a_crash() -> None:
    run = run_summary(params={"layers": [1, 2]})
    assert not hit("params.layers = 1", run)
    assert not hit("params.layers > 1", run)
    assert hit("params.layers != 1", run)


# ----------------------------------------------------------------------------- in


def test_in_is_true_when_the_field_equals_one_of_the_values() -> None:
    run = run_summary(params={"lr": 0.3, "opt": "adam"}, tags=("best",))
    assert hit("params.lr in (0.1, 0.3)", run)
    assert not hit("params.lr in (0.1, 0.2)", run)
    assert hit("params.lr IN (0.3)", run)
    assert hit("params.opt in (sgd, 'adam') and tag in (best, worst)", run)
    assert hit("params.lr not in (0.1, 0.2)", run) and not hit("params.lr not in (0.1, 0.3)", run)
    assert hit("not params.lr in (0.1, 0.2)", run)


def test_in_and_not_in_leave_out_a_run_missing_the_field() -> None:
    run = run_summary(params={})
    assert not hit("params.lr in (0.1, 0.3)", run)
    assert not hit("params.lr not in (0.1, 0.3)", run)
    assert hit("params.lr in (0.1, null)", run)


def test_in_is_not_a_keyword_in_value_position() -> None:
    assert hit("note = in", run_summary(note="in"))


# ----------------------------------------------------------------------------- hints


def test_hints_name_a_key_no_run_has_with_the_closest_recorded_one() -> None:
    runs = [run_summary(metrics={"loss": 0.5, "acc": 0.9}), run_summary(metrics={"loss": 0.4})]
    assert hints(parse("metrics.los < 1"), runs) == [
        "no run has metrics.los (did you mean metrics.loss? metrics recorded: acc, loss)"
    ]
    assert hints(parse("params.zzz = 1"), runs) == ["no run has params.zzz (params recorded: lr)"]
    assert hints(parse("resources.gpu_util > 1"), runs) == ["no run has resources.gpu_util (no run recorded any resources)"]


def test_hints_say_text_never_compares_with_a_number_field() -> None:
    runs = [run_summary(metrics={"loss": 0.5}), run_summary(metrics={"loss": "NaN"}), run_summary(metrics={})]
    for expr in ("metrics.loss < abc", "metrics.loss = 'abc'", "metrics.loss in (0.1, abc)"):
        (hint,) = hints(parse(expr), runs)
        assert hint.startswith("metrics.loss is a number in every run that has it, but 'abc' is text"), expr
        assert "quoted or not" in hint


def test_hints_stay_silent_about_what_is_no_mistake() -> None:
    runs = [run_summary(params={"lr": 0.1, "opt": "adam"}, metrics={"loss": 0.5})]
    for expr in ("metrics.loss < 0.1", "params.opt < abc", "metrics.loss < '1e-3'", "status = nosuch", "sweep = x"):
        assert hints(parse(expr), runs) == [], expr
    assert hints(parse("metrics.los < 1"), []) == [], "with no run at all there is nothing to compare with"


def test_a_key_named_twice_is_hinted_once() -> None:
    hinted = hints(parse("metrics.los < 1 or metrics.los > 2"), [run_summary()])
    assert hinted == ["no run has metrics.los (metrics recorded: acc)"]


# ----------------------------------------------------------------------------- values


def test_quoted_strings_keep_spaces_and_unescape_quotes() -> None:
    assert hit("note = 'two words'", run_summary(note="two words"))
    assert hit('note = "say \\"hi\\""', run_summary(note='say "hi"'))
    assert hit("note = 'it\\'s'", run_summary(note="it's"))
    assert hit("note = 'back\\\\slash'", run_summary(note="back\\slash"))
    assert hit("note = 'a\\nb'", run_summary(note="a\\nb"))  # other escapes are kept as written
    assert hit("note = 'and'", run_summary(note="and"))


def test_bare_words_may_hold_paths_times_and_signs() -> None:
    run = run_summary(params={"data": "data/train-v2.csv", "when": "12:30", "ver": "v1+cu118"})
    assert hit("params.data = data/train-v2.csv and params.when = 12:30 and params.ver = v1+cu118", run)


def test_a_quoted_field_name_reaches_keys_with_odd_characters() -> None:
    assert hit('"params.my key" = 1', run_summary(params={"my key": 1}))


# ----------------------------------------------------------------------------- tags and base


def test_tag_tests_membership() -> None:
    run = run_summary(tags=("best", "v2"))
    assert hit("tag = best", run)
    assert hit("tags = v2", run)
    assert not hit("tag = worst", run)
    assert hit("tag != worst", run)
    assert not hit("tag != best", run)
    assert hit("not tag = worst", run)
    assert hit("tag = null", run_summary()) and hit("tag != null", run)


def test_base_matches_the_branch_or_a_commit_prefix() -> None:
    run = run_summary(base="1a2b3c4d" + "0" * 32, base_branch="main")
    assert hit("base = main", run)
    assert hit("base = 1a2b", run)
    assert hit("base = 1A2B3C", run)
    assert not hit("base = 1a2", run)  # a prefix needs 4 characters
    assert not hit("base = dev", run)
    assert hit("base != dev", run)
    assert not hit("base != main", run)
    assert hit("base = 12345678", run_summary(base="12345678" + "0" * 32))  # a prefix that reads as a number
    assert not hit("base = main", run_summary(base=None, base_branch=None))
    assert not hit("base != main", run_summary(base=None, base_branch=None))
    assert hit("base = null", run_summary(base=None, base_branch=None))


# ----------------------------------------------------------------------------- created and duration


def test_created_compares_with_a_date_at_local_midnight() -> None:
    before = run_summary(started=local(2026, 10, 31, 23, 30))
    after = run_summary(started=local(2026, 11, 1, 0, 30))
    assert hit("created >= 2026-11-01", after) and not hit("created >= 2026-11-01", before)
    assert hit("created < 2026-11-01", before) and not hit("created < 2026-11-01", after)
    assert hit("created = 2026-11-01", after) and not hit("created = 2026-11-01", before)  # on that day
    assert hit("created != 2026-11-01", before)


def test_created_compares_as_instants_across_time_zones() -> None:
    run = run_summary(started="2026-11-01T14:00:00.000+02:00")  # 12:00 UTC
    assert hit("created > 2026-11-01T11:59Z", run)
    assert hit("created < '2026-11-01 12:01+00:00'", run)
    assert hit("created = 2026-11-01T12:00:00+00:00", run)


def test_created_compares_with_a_local_datetime() -> None:
    run = run_summary(started=local(2026, 11, 1, 14, 30))
    assert hit("created > 2026-11-01T14:00", run)
    assert not hit("created > 2026-11-01T15:00", run)


def test_created_compares_with_a_relative_age() -> None:
    now = datetime.now(timezone.utc)
    recent = run_summary(started=(now - timedelta(days=2)).isoformat())
    old = run_summary(started=(now - timedelta(days=10)).isoformat())
    assert hit("created > 7d", recent) and not hit("created > 7d", old)
    assert hit("created < 7d", old)
    assert not hit("created > 12h", recent) and hit("created > 49h", recent)
    assert hit("created > 30m", run_summary(started=(now - timedelta(minutes=5)).isoformat()))
    assert hit("created > 2w", old)


def test_a_run_without_a_readable_start_is_excluded_by_created() -> None:
    for started in ("", "garbage"):
        run = run_summary(started=started)
        assert not hit("created > 2020-01-01", run) and not hit("not created > 2020-01-01", run)
    assert hit("created = null", run_summary(started=""))


def test_duration_takes_seconds_or_a_unit() -> None:
    run = run_summary(duration=150.0)
    assert hit("duration > 90", run)
    assert hit("duration > 90s", run)
    assert hit("duration < 5m", run) and hit("duration > 2m", run)
    assert hit("duration = 2.5m", run)
    assert hit("duration < 1h", run) and not hit("duration > 2h", run)
    assert not hit("duration > 1s", run_summary(duration=None))
    assert not hit("not duration > 1s", run_summary(duration=None))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("expr", "column", "fragment"),
    [
        ("metrics.acc > ", 15, "expected a value after '>'"),
        ("metrics.acc > )", 15, "expected a value after '>', found ')'"),
        ("paramz.lr > 1", 1, "unknown field 'paramz.lr' (fields: name, status, tag,"),
        ("status = x and params > 1", 16, "unknown field 'params'"),
        ("", 1, "the expression is empty"),
        ("   ", 1, "the expression is empty"),
        ("status = 'done", 10, "unterminated string"),
        ('note = "a \\" b', 8, "unterminated string"),
        ("(status = x", 12, "expected ')' to close the '(' at column 1"),
        ("status = x)", 11, "unmatched ')'"),
        ("status = x y", 12, "expected 'and', 'or' or the end of the expression, found 'y'"),
        ("status completed", 8, "expected an operator (= == != < <= > >= or in) after 'status', found 'completed'"),
        ("params.lr in 0.1", 14, "expected '(' after 'in', found '0.1' (e.g. params.lr in (0.1, 0.3))"),
        ("params.lr in ()", 15, "expected a value after '(', found ')'"),
        ("params.lr in (0.1,)", 19, "expected a value after ',', found ')'"),
        ("params.lr in (0.1 0.3)", 19, "expected ',' or ')' in the list of the 'in' at column 11, found '0.3'"),
        ("params.lr in [0.1]", 14, "unexpected character '[' (write a list as (a, b))"),
        ("params.lr = 0.1, 0.3", 16, "expected 'and', 'or' or the end of the expression, found ','"),
        ("status = x and", 15, "expected a field name or '(', found the end of the expression"),
        ("status = x and or y = 1", 16, "expected a field name or '(', found 'or'"),
        ("not", 4, "expected a field name or '('"),
        ("()", 2, "expected a field name or '(', found ')'"),
        ("status = and", 10, "found the keyword 'and' (quote it)"),
        ("status = x && name = y", 12, "unexpected character '&' (write 'and')"),
        ("status ! x", 8, "unexpected '!'"),
        ("status = x; name = y", 11, "unexpected character ';'"),
        ("tag > best", 5, "tag supports = and != only"),
        ("base >= main", 6, "base supports = and != only"),
        ("params.x < null", 10, "null supports = and != only"),
        ("params.x > true", 10, "true and false support = and != only"),
        ("created > yesterday", 11, "expected a date (2026-11-01), a datetime (2026-11-01T14:00) or an age"),
        ("created > 2026-13-01", 11, "expected a date"),
        ("duration > fast", 12, "expected a duration after '>'"),
        ("exit_code = ok", 13, "expected a number after '='"),
    ],
)
def test_each_error_names_its_column_and_what_was_expected(expr: str, column: int, fragment: str) -> None:
    error = error_of(expr)
    assert error.column == column
    assert error.message.startswith(f"invalid filter at column {column}: ")
    assert fragment in error.message
    assert "\n" not in error.message


def test_syntax_errors_quote_the_expression() -> None:
    assert error_of("metrics.acc > ").message == "invalid filter at column 15: expected a value after '>' (metrics.acc > )"
    assert error_of("status = x\nand name >").message.endswith("(status = x and name >)")  # still one line


def test_a_filter_parses_once_and_is_reusable() -> None:
    condition = parse("metrics.acc > 0.5")
    runs = [run_summary(name=str(i), metrics={"acc": i / 10}) for i in range(10)]
    assert [r.name for r in runs if condition.matches(r)] == ["6", "7", "8", "9"]
    assert repr(condition) == "Filter('metrics.acc > 0.5')"
