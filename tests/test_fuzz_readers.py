"""Fuzzing the readers of run data: whatever a run holds, they raise gitexp's own errors or nothing.

Each reader gets random and mutated input (messages with trailers, run.json, data.json,
manifests, notes, steps.jsonl, log times, params files); the only exception allowed out is a
GitexpError, and what the human output shows of it holds no control character. Bounded: a few
hundred examples per reader, the whole file in well under a minute.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitexp import format as fmt
from gitexp import logs, render, series
from gitexp.columns import run_columns
from gitexp.data.inventory import parse_pointers
from gitexp.data.pointers import Manifest
from gitexp.errors import GitexpError
from gitexp.lineage import build
from gitexp.paramfiles import _parse as parse_params_file
from gitexp.safeload import json_object

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
DIGEST = "0123456789abcdef0123456789abcdef"

texts = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["\x1b[2J", "\x1b]0;pwned\x07", "\u202e", "\udcff", "NaN", "-Infinity", "9" * 5000, "1e400", "", "none", "../x", "/abs"]
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=20)


@st.composite
def nested_text(draw: st.DrawFn) -> str:
    """JSON text: valid, truncated, deep, or with a random edit."""
    kind = draw(st.sampled_from(["valid", "deep", "truncated", "edited"]))
    text = json.dumps(draw(json_values), ensure_ascii=draw(st.booleans()))
    if kind == "deep":
        depth = draw(st.integers(1, 3000))
        opener = draw(st.sampled_from(["[", '{"a":']))
        closer = draw(st.sampled_from(["", "]", "}"]))
        return opener * depth + text + closer * depth
    if kind == "truncated":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "edited":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(texts) + text[at:]
    return text


@st.composite
def messages(draw: st.DrawFn) -> str:
    """A run commit message: random subject and note, then Gitexp trailers with random or damaged values."""
    keys = [fmt.T_FORMAT, fmt.T_STATUS, fmt.T_EXIT, fmt.T_STARTED, fmt.T_DURATION, fmt.T_USER, fmt.T_BASE, fmt.T_BRANCH,
            fmt.T_PARENT, fmt.T_TAGS, fmt.T_PARAMS, fmt.T_METRICS, fmt.T_RESOURCES, fmt.T_SWEEP, fmt.T_RECORDER]
    trailers = []
    for key in draw(st.lists(st.sampled_from(keys), max_size=10)):
        value = draw(nested_text() if key in (fmt.T_TAGS, fmt.T_PARAMS, fmt.T_METRICS, fmt.T_RESOURCES, fmt.T_SWEEP) else texts)
        if key == fmt.T_STARTED:
            value = draw(st.sampled_from(["2025-01-01T00:00:00+00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                          "2025-01-01T00:00:00", value]))
        trailers.append(f"{key}: {value}".replace("\n", " "))
    return draw(texts) + "\n\n" + draw(texts) + "\n\n" + "\n".join(trailers) + "\n"


def _inert(text: str) -> None:
    found = CONTROL.search(text.replace("\n", ""))
    assert found is None, f"{found.group()!r} in {text!r}"


@FUZZ
@given(st.data())
def test_messages_give_a_summary_or_a_gitexp_error_and_print_inert(data: st.DataObject) -> None:
    runs = []
    for i in range(data.draw(st.integers(1, 3))):
        message = data.draw(messages())
        try:
            runs.append(fmt.summary_from_message(f"r{i}\x1b", f"{i:040x}", message))
        except GitexpError:
            continue
    for run in runs:
        json.dumps(run.to_dict(), default=str)
        run.started_at, run.config  # noqa: B018 - read for their exceptions
    for output in ("table", "csv", "markdown"):
        _inert(render.runs_output(runs, run_columns(runs), output, 40))
        _inert(render.runs_output(runs, run_columns(runs, only_changed=True), output))
    render.runs_output(runs, run_columns(runs, wide=True), "json")
    _inert(render.tree_text(build(runs), "acc", True, False))


@FUZZ
@given(nested_text())
def test_notes_are_read_or_ignored(text: str) -> None:
    annotation = fmt.parse_annotation(text)
    assert set(annotation) <= {"tags", "note"}


@FUZZ
@given(nested_text(), nested_text(), nested_text(), st.binary(max_size=200))
def test_record_files_show_or_give_a_gitexp_error(run_json: str, env_json: str, data_json: str, stdout: bytes) -> None:
    summary = fmt.summary_from_message("r", "0" * 40, "subject\n\nGitexp-Status: failed\n")
    details: dict[str, Any] = summary.to_dict()
    try:
        for key, raw in (("meta", run_json), ("env", env_json), ("data", data_json)):
            details[key] = json_object(raw, key)
    except GitexpError:
        return
    _inert(render.show_text(details, None, stdout, b"Traceback (most recent call last):\n\x1b[2JError: x\n"))


@FUZZ
@given(nested_text() | st.builds(
    lambda paths, kinds: json.dumps({"inputs": [{"path": p, "kind": k, "digest": DIGEST, "size": 1, "files": 1} for p, k in zip(paths, kinds)]}),
    st.lists(texts, max_size=3), st.lists(st.sampled_from(["file", "dir", "link", "missing", "x"]), max_size=3),
))
def test_data_json_gives_pointers_or_a_gitexp_error(raw: str) -> None:
    try:
        pointers = parse_pointers(raw.encode("utf-8", "surrogatepass"), "data.json")
    except GitexpError:
        return
    for section in pointers.values():
        for p in section:
            assert not p.path.startswith("/") and ".." not in p.path.split("/")


@FUZZ
@given(nested_text() | st.builds(
    lambda entries: json.dumps({"format": 1, "files": entries}),
    st.lists(st.fixed_dictionaries({"path": texts}, optional={"digest": st.just(DIGEST) | texts, "link": scalars, "size": scalars}), max_size=4),
))
def test_manifests_give_entries_or_a_gitexp_error(raw: str) -> None:
    try:
        manifest = Manifest.from_bytes(raw.encode("utf-8", "surrogatepass"), "m")
    except GitexpError:
        return
    for entry in manifest.files():
        assert isinstance(entry["digest"], str)


@FUZZ
@given(st.lists(nested_text() | st.builds(lambda v, s, t: json.dumps({"step": s, "time": t, "values": v}), json_values, scalars, scalars), max_size=6))
def test_steps_files_never_fail(lines: list[str]) -> None:
    raw = "\n".join(lines).encode("utf-8", "surrogatepass")
    curves = series.parse(raw)
    series.last_line_of_each(raw)
    for name, text, _ in series.describe(curves, width=10):
        render.inert(name)


@FUZZ
@given(st.binary(max_size=100), st.binary(max_size=100), st.lists(st.tuples(texts | st.floats().map(str), st.sampled_from(["stdout", "stderr", "x"]), st.integers()), max_size=5))
def test_log_times_never_fail(stdout: bytes, stderr: bytes, times: list[tuple[str, str, int]]) -> None:
    raw = "\n".join(f"{t} {s} {e}" for t, s, e in times).encode("utf-8", "surrogatepass")
    written: list[bytes] = []
    printer = logs.Printer(written.append, timestamps=True)
    for piece in logs.pieces(stdout, stderr, raw):
        printer.write(piece)
    assert b"\x1b" not in render.inert_bytes(b"".join(written))


@FUZZ
@given(nested_text() | st.builds(lambda n, w: "".join(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * w)}]\n" for i in range(1, n)), st.integers(1, 30), st.integers(1, 12))
       | st.text(alphabet="[]{}&*ab:-, \n!", max_size=200))
def test_params_files_parse_or_give_a_gitexp_error(text: str) -> None:
    for rel in ("params.yaml", "params.json"):
        try:
            data = parse_params_file(rel, ("a0: &a0 [1]\n" + text if text.startswith("a1:") else text).encode("utf-8", "surrogatepass"))
        except GitexpError:
            continue
        json.dumps(data, default=str)
