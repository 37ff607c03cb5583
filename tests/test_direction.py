"""Which way is better: decided on a metric name's words, `direction:` in .gitexp.yaml winning."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import Workspace

from gitexp.config import Config, higher_is_better, name_parts


@pytest.mark.parametrize(
    "metric",
    ["loss", "val_loss", "eval/loss", "valLoss", "ppl", "val_ppl", "perplexity", "wer", "test_cer", "error",
     "mse", "mae", "rmse", "train-rmse", "nll", "bpc", "epoch_time", "latency_ms", "ms/batch", "loss@rank1",
     "metrics.val.loss", "eval:nll", "loss2", "mlogloss"],
)
def test_a_name_with_a_lower_is_better_word_is_lower_is_better(metric: str) -> None:
    assert higher_is_better(Config(), metric) is False


@pytest.mark.parametrize(
    "metric", ["answer_f1", "power_acc", "accuracy", "f1", "acc@rank1", "bleu", "lowerbound", "train_samples_per_sec",
               "tokens_per_second", "answer", "power"],
)
def test_a_word_merely_containing_wer_or_err_is_higher_is_better(metric: str) -> None:
    assert higher_is_better(Config(), metric) is True


def test_names_are_split_at_separators_digits_and_camel_case() -> None:
    assert name_parts("val/Loss_2-x.y:z@rank1") == ["val", "loss", "x", "y", "z", "rank"]
    assert name_parts("answer_f1") == ["answer", "f"]
    assert name_parts("trainLossEMA") == ["train", "loss", "ema"]


def test_the_configured_direction_wins_over_the_name() -> None:
    config = Config(direction=(("answer_f1", "lower"), ("val_ppl", "higher")))
    assert higher_is_better(config, "answer_f1") is False
    assert higher_is_better(config, "val_ppl") is True


def _metric_run(ws: Workspace, name: str, metrics: dict[str, float]) -> None:
    ws.run("-n", name, "--", sys.executable, "-c", f"import gitexp; gitexp.summary({metrics!r})")


def test_diff_and_compare_call_a_higher_answer_f1_and_a_lower_ppl_an_improvement(ws: Workspace) -> None:
    ws.write("train.py", "")
    ws.commit_all()
    _metric_run(ws, "a", {"answer_f1": 0.5, "power_acc": 0.5, "val_ppl": 90.0})
    _metric_run(ws, "b", {"answer_f1": 0.6, "power_acc": 0.7, "val_ppl": 80.0})
    diff = json.loads(ws.gitexp("diff", "--json", "a", "b").out)
    assert {m["key"]: m["improved"] for m in diff["metrics"]} == {"answer_f1": True, "power_acc": True, "val_ppl": True}
    table = ws.gitexp("compare", "a", "b").out
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.startswith("metrics.")}
    assert rows["metrics.answer_f1"] == ["0.5", "0.6", "*"] and rows["metrics.val_ppl"] == ["90", "80", "*"], table
    ws.write(".gitexp.yaml", "direction:\n  val_ppl: higher\n")
    diff = json.loads(ws.gitexp("diff", "--json", "a", "b").out)
    assert {m["key"]: m["improved"] for m in diff["metrics"]}["val_ppl"] is False
