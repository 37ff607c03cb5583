"""The pure pieces: names, overrides, flattening, the commit message format."""

from __future__ import annotations

import pytest

from gitexp import format as fmt
from gitexp import names
from gitexp import paramfiles as params
from gitexp.errors import InvalidOverride, InvalidRunName
from gitexp.model import RunSummary


@pytest.mark.parametrize("name", ["lr-small", "exp_1", "v1.2", "A", "9lives", "x" * 100])
def test_valid_names_pass(name: str) -> None:
    assert names.validate(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a b", "x.lock", "end.", "a..b", "-x", ".hidden", "latest", "HEAD", "tab\t", "x" * 101, "émoji"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRunName):
        names.validate(name)


def test_generated_names_are_valid_and_skip_taken_ones() -> None:
    seen: set[str] = set()
    for _ in range(200):
        name = names.generate(lambda n: n in seen)
        assert names.validate(name) == name and name not in seen
        seen.add(name)


def test_override_parsing() -> None:
    assert params.parse_override("lr=0.01") == (("lr",), 0.01)
    assert params.parse_override("model.depth=4") == (("model", "depth"), 4)
    assert params.parse_override("lr=1e-3") == (("lr",), 0.001)
    assert params.parse_override("name=") == (("name",), None)
    assert params.parse_override("name=''") == (("name",), "")
    assert params.parse_override("url=a=b") == (("url",), "a=b")
    assert params.parse_override("v='1e-3'") == (("v",), "1e-3")
    assert params.parse_override("x=inf") == (("x",), "inf")
    with pytest.raises(InvalidOverride):
        params.parse_override("lr")


def test_flatten_nests_with_dots_and_keeps_lists() -> None:
    assert params.flatten({"a": {"b": {"c": 1}}, "l": [1, 2], "e": {}}) == {"a.b.c": 1, "l": [1, 2], "e": {}}


def run_summary(**kw: object) -> RunSummary:
    base = dict(
        name="r", commit="c" * 40, status="completed", exit_code=0, started="2026-01-01T00:00:00.000+00:00",
        duration=1.5, user="U <u@x>", base="b" * 40, base_branch="main", parent=None,
        params={"lr": 0.1}, metrics={"acc": 0.9},
    )
    base.update(kw)
    return RunSummary(**base)  # type: ignore[arg-type]


def test_message_round_trip_keeps_the_summary() -> None:
    run = run_summary(note="first line\n\nsecond paragraph\nGitexp-Run: fake", tags=("a", "b"), parent="p" * 40)
    message = fmt.build_message("r: completed (python train.py)", run.note, fmt.run_trailers(run))
    back = fmt.summary_from_message("r", run.commit, message)
    assert back.to_dict() == run.to_dict()
    assert back.subject == "r: completed (python train.py)"


def test_subject_is_one_short_line() -> None:
    message = fmt.build_message("x" * 200 + "\nsecond", "", [])
    assert len(message.split("\n")[0]) == fmt.SUBJECT_MAX


def test_a_newer_format_version_is_refused() -> None:
    from gitexp.errors import UnsupportedFormat

    with pytest.raises(UnsupportedFormat):
        fmt.summary_from_message("r", "c", "s\n\nGitexp-Format: 99\n")


def test_missing_trailers_read_as_unknown_not_crash() -> None:
    run = fmt.summary_from_message("r", "c", "hand-made commit\n")
    assert run.status == "unknown" and run.params == {} and run.exit_code is None


def test_runs_sort_by_instant_not_by_text_across_time_zones() -> None:
    early = run_summary(name="early", started="2026-01-01T12:30:00.000+00:00")
    late = run_summary(name="late", started="2026-01-01T14:00:00.000+01:00")  # 13:00 UTC
    broken = run_summary(name="broken", started="")
    ordered = sorted([broken, early, late], key=lambda r: r.started_at, reverse=True)
    assert [r.name for r in ordered] == ["late", "early", "broken"]


def test_ctrl_c_inside_a_half_made_object_says_aborted_and_nothing_else(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C landing inside a library's constructor leaves an object whose destructor fails (pygit2's
    Index, seen in CI): the user sees "aborted" and exit 130, not a traceback from the garbage collector."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import click\n"
        "from gitexp import cli\n"
        "class HalfMade:\n"
        "    def __init__(self):\n"
        "        raise KeyboardInterrupt\n"
        "    def __del__(self):\n"
        "        self._handle.free()\n"
        "@click.command()\n"
        "def interrupted():\n"
        "    HalfMade()\n"
        "sys.modules['interrupted_cmd'] = type(sys)('interrupted_cmd')\n"
        "sys.modules['interrupted_cmd'].command = interrupted\n"
        "cli.COMMANDS['interrupted'] = ('interrupted_cmd', 'a command interrupted while it makes an object')\n"
        "sys.exit(cli.main(['interrupted']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "gitexp: aborted", proc.stderr
