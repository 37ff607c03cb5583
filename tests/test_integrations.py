"""The framework integrations (gitexp/integrations/*) against the real frameworks: each trains a few
steps on tiny data inside a real `gitexp run` (and, for some, through `gitexp.start()` semantics outside
one), then the recorded params, series, artifacts and status are read back with the public read API and
compared with what the framework itself reported (History, evals_result, log_history, ...)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Workspace

import gitexp

PY = sys.executable


@pytest.fixture(autouse=True)
def framework_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield


def need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (the `integrations` extra)")


def prepare(ws: Workspace, script: str) -> None:
    ws.write(".gitignore", "out/\nckpt/\nlightning_logs/\n")
    ws.write("train.py", script)
    ws.commit_all()


def standalone(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """The script run by plain python, outside `gitexp run` (the integration starts the run itself)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITEXP_")}
    proc = subprocess.run([PY, "train.py", *args], cwd=ws.root, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


def reported(ws: Workspace) -> Any:
    return json.loads((ws.root / "reported.json").read_text())


def only_new_run(ws: Workspace, known: set[str]) -> gitexp.Run:
    new = [r for r in gitexp.runs(repo=ws.root) if r.name not in known]
    assert len(new) == 1, [r.name for r in new]
    return new[0]


def points(run: gitexp.Run, name: str) -> list[tuple[int | None, float]]:
    series = run.series(name)
    return list(zip(series.steps, series.values, strict=True))


# -- Lightning ------------------------------------------------------------------------------------

LIGHTNING = """\
import json, sys, torch
try:
    import lightning.pytorch as pl
except ImportError:
    import pytorch_lightning as pl
from torch.utils.data import DataLoader, TensorDataset
from gitexp.integrations.lightning import GitexpLogger

class Model(pl.LightningModule):
    def __init__(self, lr=0.05, hidden=4):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(3, 1)
    def training_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss
    def validation_step(self, batch, i):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

class Spy(pl.loggers.logger.Logger):  # what Lightning reports to its loggers
    name, version, seen = "spy", "0", []
    def log_hyperparams(self, params, *a, **k): pass
    def log_metrics(self, metrics, step=None): Spy.seen.append([step, {k: float(v) for k, v in metrics.items()}])

torch.manual_seed(0)
data = TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
trainer = pl.Trainer(
    max_epochs=2, log_every_n_steps=1, logger=[GitexpLogger(log_model=True), Spy()],
    callbacks=[checkpoint := pl.callbacks.ModelCheckpoint(dirpath="ckpt")], enable_progress_bar=False,
    enable_model_summary=False, accelerator="cpu", devices=1, default_root_dir=".",
)
trainer.fit(Model(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))
json.dump({"seen": Spy.seen, "checkpoint": __import__("os").path.relpath(checkpoint.best_model_path)}, open("reported.json", "w"))
"""


def check_lightning(run: gitexp.Run, report: Any) -> None:
    assert run.status == "completed"
    assert run.params["lr"] == 0.05 and run.params["hidden"] == 4
    for name in ("train_loss", "val_loss"):
        expected = [(step, m[name]) for step, m in report["seen"] if name in m]
        assert expected and points(run, name) == [(s, pytest.approx(v)) for s, v in expected]
    assert run.metrics["val_loss"] == pytest.approx([m["val_loss"] for _, m in report["seen"] if "val_loss" in m][-1])
    assert report["checkpoint"].startswith("ckpt/epoch=1-step=8")
    assert run.read_bytes(report["checkpoint"])[:2] == b"PK"  # torch.save's zip, recorded as an artifact


@pytest.mark.parametrize("package", ["lightning", "pytorch_lightning"])
def test_lightning_logger_records_hparams_metrics_at_the_trainers_step_and_checkpoints(ws: Workspace, package: str) -> None:
    need("torch")
    need(package)
    script = LIGHTNING if package == "lightning" else LIGHTNING.replace(
        "try:\n    import lightning.pytorch as pl\nexcept ImportError:\n    import pytorch_lightning as pl\n", "import pytorch_lightning as pl\n")
    script = script.replace('"checkpoint": ', '"base": GitexpLogger.__mro__[1].__module__, "checkpoint": ')
    prepare(ws, script)
    ws.run("-n", "lit", "--", PY, "train.py")
    report = reported(ws)
    assert report["base"].startswith(f"{package}."), "the Logger class of the package the script uses"
    check_lightning(gitexp.run("lit", repo=ws.root), report)
    standalone(ws)  # outside gitexp run: the logger starts a run and ends it in finalize
    check_lightning(only_new_run(ws, {"lit"}), reported(ws))


# -- HuggingFace ----------------------------------------------------------------------------------

HUGGINGFACE = """\
import json, torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
from gitexp.integrations.huggingface import GitexpCallback

torch.manual_seed(0)
config = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=16, max_position_embeddings=16, num_labels=2)

class Data(torch.utils.data.Dataset):
    def __len__(self): return 8
    def __getitem__(self, i): return {"input_ids": torch.tensor([1 + i, 2, 3, 4]), "labels": torch.tensor(i % 2)}

args = TrainingArguments(output_dir="out", max_steps=4, per_device_train_batch_size=2, learning_rate=1e-3,
                         logging_steps=1, eval_strategy="steps", eval_steps=2, save_strategy="no",
                         report_to=[], use_cpu=True, disable_tqdm=True, seed=7)
trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Data(),
                  eval_dataset=Data(), callbacks=[GitexpCallback(log_model=True)])
trainer.train()
json.dump(trainer.state.log_history, open("reported.json", "w"))
"""


def check_huggingface(run: gitexp.Run, history: list[dict[str, Any]]) -> None:
    assert run.status == "completed"
    assert run.params["learning_rate"] == 1e-3 and run.params["max_steps"] == 4 and run.params["seed"] == 7
    assert run.params["output_dir"] == "out"
    for name in ("loss", "eval_loss", "learning_rate"):
        expected = [(h["step"], h[name]) for h in history if name in h]
        assert expected and points(run, name) == [(s, pytest.approx(v)) for s, v in expected]
    assert [s for s, _ in points(run, "eval_loss")] == [2, 4]
    assert json.loads(run.read_text("out/final/config.json"))["hidden_size"] == 16  # the final model, an artifact
    assert len(run.read_bytes("out/final/model.safetensors")) > 1000


def test_huggingface_callback_records_training_arguments_train_and_eval_logs_and_the_final_model(ws: Workspace) -> None:
    need("torch")
    need("transformers")
    prepare(ws, HUGGINGFACE)
    ws.run("-n", "hf", "--", PY, "train.py")
    check_huggingface(gitexp.run("hf", repo=ws.root), reported(ws))
    standalone(ws)
    check_huggingface(only_new_run(ws, {"hf"}), reported(ws))


# -- Keras ----------------------------------------------------------------------------------------

KERAS = """\
import os
os.environ.setdefault("KERAS_BACKEND", "torch")
import json, numpy as np, keras
from gitexp.integrations.keras import GitexpCallback

keras.utils.set_random_seed(0)
x = np.random.rand(32, 3).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0, callbacks=[GitexpCallback(log_batch=True)])
json.dump(history.history, open("reported.json", "w"))
"""


def test_keras_callback_records_each_epochs_logs_at_the_epoch_and_batches_on_request(ws: Workspace) -> None:
    need("torch")
    need("keras")
    prepare(ws, KERAS)
    ws.run("-n", "keras", "--", PY, "train.py")
    run, history = gitexp.run("keras", repo=ws.root), reported(ws)
    assert run.status == "completed" and run.params["fit.epochs"] == 3
    assert set(history) == {"loss", "mae", "val_loss", "val_mae"}
    for name, values in history.items():
        assert points(run, name) == [(epoch, pytest.approx(v)) for epoch, v in enumerate(values)]
    assert [s for s, _ in points(run, "batch/loss")] == list(range(9))  # 24 training rows / 8, for 3 epochs
    standalone(ws)
    other = only_new_run(ws, {"keras"})
    assert other.status == "completed" and [s for s, _ in points(other, "val_loss")] == [0, 1, 2]


# -- XGBoost --------------------------------------------------------------------------------------

XGBOOST = """\
import json, numpy as np, xgboost as xgb
from gitexp.integrations.xgboost import GitexpCallback

rng = np.random.default_rng(0)
X = rng.random((40, 3)); y = X.sum(axis=1)
train, valid = xgb.DMatrix(X[:30], label=y[:30]), xgb.DMatrix(X[30:], label=y[30:])
result = {}
xgb.train({"max_depth": 2, "eval_metric": ["rmse", "mae"], "nthread": 1}, train, num_boost_round=4,
          evals=[(train, "train"), (valid, "eval")], evals_result=result, verbose_eval=False,
          callbacks=[GitexpCallback()])
json.dump(result, open("reported.json", "w"))
"""


def test_xgboost_callback_records_data_metric_series_as_evals_result(ws: Workspace) -> None:
    need("xgboost")
    prepare(ws, XGBOOST)
    ws.run("-n", "xgb", "--", PY, "train.py")
    run, result = gitexp.run("xgb", repo=ws.root), reported(ws)
    assert run.status == "completed"
    names = {f"{data}-{metric}" for data, metrics in result.items() for metric in metrics}
    assert names == {"train-rmse", "train-mae", "eval-rmse", "eval-mae"}
    for data, metrics in result.items():
        for metric, values in metrics.items():
            assert points(run, f"{data}-{metric}") == [(i, pytest.approx(v)) for i, v in enumerate(values)]
    assert run.metrics["eval-rmse"] == pytest.approx(result["eval"]["rmse"][-1])
    # the booster's training parameters: those given, and XGBoost's defaults, numbers as numbers
    assert run.params["max_depth"] == 2 and run.params["eta"] == 0.3 and run.params["subsample"] == 1
    assert run.params["objective"] == "reg:squarederror" and run.params["booster"] == "gbtree"
    standalone(ws)
    other = only_new_run(ws, {"xgb"})
    assert other.series("eval-rmse").steps == [0, 1, 2, 3] and other.params["max_depth"] == 2


# -- LightGBM -------------------------------------------------------------------------------------

LIGHTGBM = """\
import json, numpy as np, lightgbm as lgb
from gitexp.integrations.lightgbm import callback

rng = np.random.default_rng(0)
X = rng.random((60, 3)); y = X.sum(axis=1)
train = lgb.Dataset(X[:40], label=y[:40])
valid = lgb.Dataset(X[40:], label=y[40:], reference=train)
result = {}
lgb.train({"objective": "regression", "metric": ["l2", "l1"], "verbose": -1, "num_leaves": 4,
           "min_data_in_leaf": 2, "num_threads": 1}, train, num_boost_round=4, valid_sets=[train, valid],
          valid_names=["training", "valid"], callbacks=[lgb.record_evaluation(result), callback()])
json.dump(result, open("reported.json", "w"))
"""


def test_lightgbm_callback_records_dataset_metric_series_per_iteration(ws: Workspace) -> None:
    need("lightgbm")
    prepare(ws, LIGHTGBM)
    ws.run("-n", "lgb", "--", PY, "train.py")
    run, result = gitexp.run("lgb", repo=ws.root), reported(ws)
    assert run.status == "completed"
    assert {f"{d}-{m}" for d, ms in result.items() for m in ms} == {"training-l2", "training-l1", "valid-l2", "valid-l1"}
    for data, metrics in result.items():
        for metric, values in metrics.items():
            assert points(run, f"{data}-{metric}") == [(i, pytest.approx(v)) for i, v in enumerate(values)]
    assert run.params["objective"] == "regression" and run.params["num_leaves"] == 4 and run.params["min_data_in_leaf"] == 2
    standalone(ws)
    other = only_new_run(ws, {"lgb"})
    assert other.status == "completed" and other.params["num_leaves"] == 4
    assert points(other, "valid-l2") == points(run, "valid-l2")


# -- Optuna ---------------------------------------------------------------------------------------

OPTUNA = """\
import json, sys, optuna
from gitexp.integrations.optuna import GitexpCallback

optuna.logging.set_verbosity(optuna.logging.WARNING)

def objective(trial):
    x = trial.suggest_float("x", -2, 2)
    depth = trial.suggest_int("depth", 1, 4)
    trial.report(x * x + 1, step=0)
    if trial.number == 2:
        raise optuna.TrialPruned()
    if trial.number == 3:
        raise ValueError("diverged")
    return x * x + depth

study = optuna.create_study(study_name="study-one", direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
study.optimize(objective, n_trials=5, callbacks=[GitexpCallback(metric_name="loss")], catch=(ValueError,))
json.dump([{"number": t.number, "params": t.params, "value": t.value, "state": t.state.name} for t in study.trials],
          open("reported.json", "w"))
"""


def test_optuna_records_each_trial_as_a_run_of_the_studys_sweep_with_its_state(ws: Workspace) -> None:
    need("optuna")
    prepare(ws, OPTUNA)
    standalone(ws)
    trials = reported(ws)
    runs = gitexp.runs(repo=ws.root)
    assert len(runs) == 5
    by_index = {r.sweep["index"]: r for r in runs}
    (sweep_id,) = {r.sweep["id"] for r in runs}
    assert sweep_id.startswith("sw-") and len(sweep_id) == 11
    status = {"COMPLETE": "completed", "FAIL": "failed", "PRUNED": "interrupted"}
    for trial in trials:
        run = by_index[trial["number"]]
        assert run.status == status[trial["state"]]
        assert run.params == trial["params"]
        assert run.sweep["study"] == "study-one" and run.sweep["direction"] == "minimize"
        if trial["state"] == "COMPLETE":
            assert run.metrics["loss"] == pytest.approx(trial["value"])
        else:
            assert "loss" not in run.metrics
        assert points(run, "loss/intermediate") == [(0, pytest.approx(trial["params"]["x"] ** 2 + 1))]
        assert ("pruned" in run.tags) == (trial["state"] == "PRUNED")
    assert len(gitexp.runs(where=f"sweep = {sweep_id}", repo=ws.root)) == 5
    (group,) = json.loads(ws.gitexp("list", "--where", f"sweep = {sweep_id}", "--group-by", "sweep", "--json").out)
    completed = [t for t in trials if t["state"] == "COMPLETE"]
    assert group["group"] == {"sweep": sweep_id} and group["n"] == len(completed)  # the CLI treats a study as a sweep
    assert group["metrics"]["loss"]["min"] == pytest.approx(min(t["value"] for t in completed))
    assert sorted(r["status"] for r in group["left_out"]) == ["failed", "interrupted"]


def test_optuna_under_gitexp_run_logs_each_trials_value_and_keeps_the_best(ws: Workspace) -> None:
    need("optuna")
    prepare(ws, OPTUNA)
    ws.run("-n", "study", "--", PY, "train.py")
    trials = reported(ws)
    run = gitexp.run("study", repo=ws.root)
    assert [r.name for r in gitexp.runs(repo=ws.root)] == ["study"]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    assert points(run, "loss") == [(t["number"], pytest.approx(t["value"])) for t in done]
    best = min(done, key=lambda t: t["value"])
    assert run.metrics["best.loss"] == pytest.approx(best["value"]) and run.metrics["best.x"] == pytest.approx(best["params"]["x"])
    assert run.metrics["best.trial"] == best["number"]


def test_optuna_track_records_the_finished_trials_of_a_study_already_optimized(ws: Workspace) -> None:
    need("optuna")
    prepare(ws, OPTUNA.replace("callbacks=[GitexpCallback(metric_name=\"loss\")], ", "").replace(
        "json.dump(", "from gitexp.integrations.optuna import track\ntrack(study, metric_name='loss')\njson.dump(", 1))
    standalone(ws)
    trials, runs = reported(ws), gitexp.runs(repo=ws.root)
    assert sorted(r.sweep["index"] for r in runs) == [t["number"] for t in trials]
    assert {r.sweep["size"] for r in runs} == {5} and len({r.sweep["id"] for r in runs}) == 1
    best = min((t for t in trials if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    top = gitexp.runs(where="status = completed", sort="metrics.loss", limit=1, repo=ws.root)[0]
    assert top.params == best["params"] and top.metrics["loss"] == pytest.approx(best["value"])


def test_optuna_names_the_value_after_the_studys_direction_by_default_so_better_follows_it(ws: Workspace) -> None:
    need("optuna")
    from gitexp.config import Config, higher_is_better

    prepare(ws, OPTUNA.replace("callbacks=[GitexpCallback(metric_name=\"loss\")], ", "").replace(
        "json.dump(", "from gitexp.optuna import track\ntrack(study)\njson.dump(", 1))
    standalone(ws)
    trials = {t["number"]: t for t in reported(ws)}
    completed = [r for r in gitexp.runs(repo=ws.root) if r.status == "completed"]
    assert completed and all(r.metrics["minimize"] == pytest.approx(trials[r.sweep["index"]]["value"]) for r in completed)
    assert not higher_is_better(Config(), "minimize") and higher_is_better(Config(), "maximize")
    ranked = sorted(completed, key=lambda r: r.metrics["minimize"])
    assert len(ranked) >= 2
    table = json.loads(ws.gitexp("compare", ranked[-1].name, ranked[0].name, "--json").out)
    (row,) = [r for r in table["rows"] if r["key"] == "metrics.minimize"]
    assert row["best"] == 1, "the smaller value of a minimized objective is the better one"


def test_lightning_logger_outside_gitexp_run_ends_its_run_failed_when_training_raises(ws: Workspace) -> None:
    need("torch")
    if importlib.util.find_spec("lightning") is None:
        need("pytorch_lightning")
    script = LIGHTNING.replace("        return loss\n", "        if self.global_step == 2:\n            raise RuntimeError('diverged')\n        return loss\n", 1)
    prepare(ws, script.replace("trainer.fit(", "try:\n    trainer.fit(").replace(
        "DataLoader(data, batch_size=8))\n", "DataLoader(data, batch_size=8))\nexcept RuntimeError:\n    pass\n").split("json.dump(")[0])
    standalone(ws)
    (run,) = gitexp.runs(repo=ws.root)
    assert run.status == "failed"
    assert run.series("train_loss").steps == [0, 1]  # what was logged before the failure is kept


def test_importing_gitexp_and_its_integrations_package_imports_no_framework() -> None:
    code = (
        "import sys, gitexp, gitexp.integrations\n"
        "heavy = {'torch', 'lightning', 'pytorch_lightning', 'transformers', 'keras', 'xgboost', 'lightgbm', 'optuna', 'pandas'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_lightning_default_checkpoint_directory_is_named_after_the_run(ws: Workspace) -> None:
    need("torch")
    if importlib.util.find_spec("lightning") is None:
        need("pytorch_lightning")
    prepare(ws, LIGHTNING.replace('ModelCheckpoint(dirpath="ckpt")', "ModelCheckpoint()"))
    standalone(ws)
    (run,) = gitexp.runs(repo=ws.root)
    path = reported(ws)["checkpoint"]
    assert path == f"gitexp/{run.name}/checkpoints/epoch=1-step=8.ckpt"
    assert run.status == "completed" and run.read_bytes(path)[:2] == b"PK"
