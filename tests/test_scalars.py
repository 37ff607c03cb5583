"""Scalars printed on stdout, parsed line by line (the pure part of `gitexp run --scalars`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import Workspace

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


def points_of(chunks: list[bytes], tmp_path: Path, streams: list[str] | None = None) -> list[tuple[object, dict[str, object]]]:
    out = tmp_path / "s.jsonl"
    capture = ScalarCapture(DEFAULT, out)
    for index, chunk in enumerate(chunks):
        capture.feed(chunk, float(index), (streams or ["stdout"] * len(chunks))[index])
    capture.close(99.0)
    return [(p["step"], p["values"]) for p in map(json.loads, out.read_text().splitlines())]


def test_a_redrawn_line_counts_once_in_its_final_state_and_colour_codes_are_ignored(tmp_path: Path) -> None:
    bar = b"".join(b"\r\x1b[32mtrain: %3d%%|\x1b[0m %d/100 [00:01<00:00, 9.0it/s, loss=%.2f]" % (i, i, 1 / i) for i in range(1, 101))
    assert points_of([bar[:5000], bar[5000:] + b"\n"], tmp_path) == [(100, {"loss": 0.01})]


def test_a_bar_reset_on_the_same_line_keeps_each_epochs_last_state(tmp_path: Path) -> None:
    line = b"".join(b"\rEpoch %d: %d/4 [00:00<00:00, 5.0it/s, v_num=0, loss=%d.5]" % (e, i, e) for e in (0, 1) for i in range(5))
    assert points_of([line + b"\n"], tmp_path) == [(4, {"loss": 0.5}), (8, {"loss": 1.5})]


def test_keras_lines_within_an_epoch_are_skipped_when_printed_as_lines_of_their_own(tmp_path: Path) -> None:
    keras3 = (
        "Epoch 2/3\n"
        "\x1b[1m4/6\x1b[0m \x1b[32m━━━━━━━━━━━━━\x1b[0m\x1b[37m━━━━━━━\x1b[0m \x1b[1m0s\x1b[0m 61ms/step - accuracy: 0.5000 - loss: 0.70\n"
        "\x1b[1m6/6\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m \x1b[1m0s\x1b[0m 62ms/step - accuracy: 0.5417 - loss: 0.68"
        " - val_accuracy: 0.6250 - val_loss: 0.64\n"
    ).encode()
    keras2 = b"Epoch 3/3\n 4/60 [===>..........................] - ETA: 0s - loss: 0.69\n" \
             b"60/60 [==============================] - 0s 2ms/step - loss: 0.61\n"
    unknown = b"      7/Unknown 1s 50ms/step - loss: 0.9\n9/9 \x1b[32m\xe2\x94\x81\x1b[0m 1s 50ms/step - loss: 0.5\n"
    assert points_of([keras3, keras2, unknown], tmp_path) == [
        (2, {"accuracy": 0.5417, "loss": 0.68, "val_accuracy": 0.625, "val_loss": 0.64}),
        (3, {"loss": 0.61}),
        (3, {"loss": 0.5}),
    ]


def test_lines_redrawn_by_moving_the_cursor_up_count_in_their_final_state(tmp_path: Path) -> None:
    frames = [b"\x1b[2KEpoch 0/1 \x1b[35m--\x1b[0m %d/8 loss: 0.%d\r\n   \x1b[3mval: 0.%d\x1b[0m\r\x1b[2K\x1b[1A" % (i, i, i) for i in range(1, 9)]
    final = b"\x1b[2KEpoch 0/1 8/8 loss: 0.9\r\n   \x1b[3mval: 0.8\x1b[0m\r\n"
    assert points_of([*frames, final, b"done\n"], tmp_path) == [(0, {"loss": 0.9}), (0, {"val": 0.8})]


def test_stdout_and_stderr_lines_are_assembled_apart_and_share_steps_and_names(tmp_path: Path) -> None:
    chunks = [b"Epoch 2/5\nloss: 0.", b"Step 7 Loss=9.0\n", b"5\n", b"LOSS: 0.1\n"]
    got = points_of(chunks, tmp_path, ["stdout", "stderr", "stdout", "stderr"])
    assert got == [(7, {"Loss": 9.0}), (7, {"Loss": 0.5}), (7, {"Loss": 0.1})]  # first spelling wins


def test_scalars_printed_on_stderr_are_captured_by_a_run(ws: Workspace) -> None:
    ws.write("p.py", "import sys\nprint('epoch 1 loss=0.5', file=sys.stderr)\nprint('acc: 0.9')\n")
    ws.run("-n", "err", "--scalars", "--sample-interval", "0", "--", sys.executable, "p.py")
    points = [json.loads(line) for line in ws.git("show", "refs/experiments/err:.gitexp/steps.jsonl").splitlines()]
    got = {json.dumps(p["values"]): p["step"] for p in points}
    assert set(got) == {'{"loss": 0.5}', '{"acc": 0.9}'} and got['{"loss": 0.5}'] == 1


def test_a_table_header_or_a_repr_that_never_ends_does_not_swallow_later_lines() -> None:
    from gitexp.scalars import BLOCK_LINES, Recognisers

    parser = Recognisers()
    assert parser.parse("Test metric    DataLoader 0") == (None, {})
    assert parser.parse("epoch 3 loss=0.41") == (3, {"loss": 0.41})  # not a row: the table was not one
    parser = Recognisers()
    parser.parse("Model (")
    assert [parser.parse(f"    layer{i}: {i}") for i in range(BLOCK_LINES)] == [(None, {})] * BLOCK_LINES
    assert parser.parse("loss: 0.5") == (None, {"loss": 0.5})
