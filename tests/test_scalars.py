"""Scalars printed on stdout, parsed line by line (the pure part of `gitexp run --scalars`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitexp.scalars import BadScalarPattern, ScalarCapture, compile_pattern, parse_line

DEFAULT = compile_pattern("default")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("epoch 3 loss=0.41 acc=0.88", (3, {"loss": 0.41, "acc": 0.88})),
        ("Epoch 1/10 - loss: 0.41 - acc: 0.91", (1, {"loss": 0.41, "acc": 0.91})),
        ("{'loss': 0.2263, 'grad_norm': 1.02}", (None, {"loss": 0.2263, "grad_norm": 1.02})),
        ('{"loss": 0.3, "step": 7}', (7, {"loss": 0.3})),
        ("2026-01-01 12:00:00,123 INFO step=100 loss=0.3", (100, {"loss": 0.3})),
        ("loss=nan", (None, {"loss": float("inf") * 0})),
        ("saved to http://host:8080/model-epoch:3.pt at 12:30", (None, {})),
    ],
)
def test_the_default_pattern_reads_common_training_output(line: str, expected: tuple[object, dict[str, float]]) -> None:
    step, values = parse_line(DEFAULT, line)
    assert step == expected[0]
    assert json.dumps(values) == json.dumps(expected[1])  # NaN compares equal this way


def test_a_line_with_only_an_epoch_gives_the_step_of_the_lines_after_it(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    capture = ScalarCapture(DEFAULT, out)
    capture.feed(b"Epoch 2/10\n100/100 [===] - 1s - loss: 0.5\r100/100 [===] - 1s - loss: 0.4 - acc: 0.8\nEpoch 3/1", 1.0)
    capture.feed(b"0\n100/100 - loss: 0.3\n", 2.0)
    capture.close(3.0)
    points = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(p["step"], p["values"]) for p in points] == [(2, {"loss": 0.4, "acc": 0.8}), (3, {"loss": 0.3})]


@pytest.mark.parametrize(
    ("regex", "reason"),
    [
        (r"(?P<name>\w+)=(?P<val>\S+)", "one of the groups name and value"),
        (r"(?P<step>\d+)", "no named group for a metric"),
        (r"loss=(\d", "missing )"),
    ],
)
def test_a_custom_pattern_that_cannot_work_is_refused(regex: str, reason: str) -> None:
    with pytest.raises(BadScalarPattern, match="invalid scalars pattern") as caught:
        compile_pattern(regex)
    assert reason in caught.value.message


def test_a_custom_pattern_names_metrics_by_its_groups() -> None:
    pattern = compile_pattern(r"iter (?P<step>\d+): loss (?P<loss>\S+)")
    assert parse_line(pattern, "iter 12: loss 2.5000, lr 0.1") == (12, {"loss": 2.5})
