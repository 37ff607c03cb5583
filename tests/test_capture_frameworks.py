"""`gitexp run --scalars` on what real frameworks really print: each runs a few steps on tiny data.

Every test compares the recorded series (names, values, steps) with what the framework itself
returned (Keras History, Trainer.state.log_history, evals_result, ...), at the precision it printed.
A framework that is not installed skips its test (`pip install -e '.[integrations]'`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Workspace, run_in_pty

PY = sys.executable
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}


def need(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[integrations]')")


def captured(
    ws: Workspace, tmp_path: Path, script: str, name: str, pty: bool = False
) -> tuple[list[tuple[int | None, dict[str, Any]]], Any]:
    """(points recorded by `gitexp run --scalars -- python script`, what the script wrote as its truth).

    pty: gitexp runs on a terminal, so the script does too (colours, redrawn progress bars).
    """
    ws.write(f"run_{name}.py", script)  # not tqdm.py: it would shadow the module it imports
    truth = tmp_path / f"{name}.truth.json"
    env = {**os.environ, **OFFLINE, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    args = [PY, "-m", "gitexp", "run", "-n", name, "--scalars", "--sample-interval", "0", "--", PY, f"run_{name}.py", str(truth)]
    if pty:
        code, output = run_in_pty(args, ws.root, env)
        assert code == 0, output[-3000:]
    else:
        proc = subprocess.run(args, check=False, cwd=ws.root, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    lines = ws.git("show", f"refs/experiments/{name}:.gitexp/steps.jsonl").splitlines()
    points = [(p["step"], p["values"]) for p in map(json.loads, lines)]
    return points, json.loads(truth.read_text())


def series(points: list[tuple[int | None, dict[str, Any]]]) -> dict[str, list[tuple[int | None, Any]]]:
    out: dict[str, list[tuple[int | None, Any]]] = {}
    for step, values in points:
        for key, value in values.items():
            out.setdefault(key, []).append((step, value))
    return out


def sig(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


# --- pytorch/examples: the print formats of mnist, word_language_model and imagenet, on a real tiny loop ---

TORCH_EXAMPLES = r'''
import json, math, sys, time
import torch
torch.manual_seed(0)
torch.set_num_threads(1)
x = torch.randn(64, 8); y = (x.sum(1) > 0).long()
model = torch.nn.Linear(8, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
truth = {"mnist": [], "mnist_test": [], "wlm": [], "wlm_valid": [], "imagenet": [], "imagenet_summary": []}
batch, n = 8, 64

def step(i):
    opt.zero_grad()
    out = model(x[i:i + batch])
    loss = torch.nn.functional.cross_entropy(out, y[i:i + batch])
    loss.backward(); opt.step()
    return loss.item(), (out.argmax(1) == y[i:i + batch]).float().mean().item() * 100

print("Namespace(batch_size=8, epochs=2, lr=0.1, log_interval=2, seed=1)")
# mnist/main.py
for epoch in range(1, 3):
    for batch_idx in range(n // batch):
        loss, _ = step(batch_idx * batch)
        if batch_idx % 2 == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * batch, n, 100. * batch_idx / (n // batch), loss))
            truth["mnist"].append([(epoch - 1) * n + batch_idx * batch, loss])
    with torch.no_grad():
        test_loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum").item() / n
        correct = int((model(x).argmax(1) == y).sum())
    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(test_loss, correct, n, 100. * correct / n))
    truth["mnist_test"].append([truth["mnist"][-1][0], test_loss, 100. * correct / n])
# word_language_model/main.py (its epochs and batches counted afresh)
nb = n // batch
for epoch in range(1, 3):
    for b in range(1, nb + 1):
        loss, _ = step((b - 1) * batch)
        if b % 4 == 0:
            lr, ms = 20.0, 40.1234
            print('| epoch {:3d} | {:5d}/{:5d} batches | lr {:02.2f} | ms/batch {:5.2f} | loss {:5.2f} | ppl {:8.2f}'.format(
                epoch, b, nb, lr, ms, loss, math.exp(loss)))
            truth["wlm"].append([(epoch - 1) * nb + b, lr, ms, loss, math.exp(loss)])
    val = loss
    print('-' * 89)
    print('| end of epoch {:3d} | time: {:5.2f}s | valid loss {:5.2f} | valid ppl {:8.2f}'.format(epoch, 1.5, val, math.exp(val)))
    print('-' * 89)
    truth["wlm_valid"].append([truth["wlm"][-1][0], val, math.exp(val)])
print('=' * 89)
print('| End of training | test loss {:5.2f} | test ppl {:8.2f}'.format(val, math.exp(val)))
print('=' * 89)
# imagenet/main.py: AverageMeter and ProgressMeter
class AverageMeter:
    def __init__(self, name, fmt=':f'):
        self.name, self.fmt = name, fmt
        self.val = self.avg = self.sum = self.count = 0
    def update(self, val, k=1):
        self.val = val; self.sum += val * k; self.count += k; self.avg = self.sum / self.count
    def __str__(self):
        return ('{name} {val' + self.fmt + '} ({avg' + self.fmt + '})').format(**self.__dict__)
class ProgressMeter:
    def __init__(self, num_batches, meters, prefix=""):
        digits = len(str(num_batches // 1)); fmt = '{:' + str(digits) + 'd}'
        self.batch_fmtstr = '[' + fmt + '/' + fmt.format(num_batches) + ']'
        self.meters, self.prefix = meters, prefix
    def display(self, b):
        print('\t'.join([self.prefix + self.batch_fmtstr.format(b)] + [str(m) for m in self.meters]))
for epoch in range(2):
    batch_time = AverageMeter('Time', ':6.3f'); losses = AverageMeter('Loss', ':.4e'); top1 = AverageMeter('Acc@1', ':6.2f')
    progress = ProgressMeter(nb, [batch_time, losses, top1], prefix="Epoch: [{}]".format(epoch))
    for i in range(nb):
        loss, acc = step(i * batch)
        batch_time.update(0.0123); losses.update(loss, batch); top1.update(acc, batch)
        if i % 3 == 0:
            progress.display(i + 1)
            truth["imagenet"].append([epoch * nb + i + 1, loss, acc])
    vtop1 = AverageMeter('Acc@1', ':6.2f'); vprog = ProgressMeter(2, [losses, vtop1], prefix='Test: ')
    for i in range(2):
        vtop1.update(50.0 + i)
        vprog.display(i + 1)
    print(' * Acc@1 {top1.avg:.3f}'.format(top1=vtop1))
    truth["imagenet_summary"].append([truth["imagenet"][-1][0], vtop1.avg])
json.dump(truth, open(sys.argv[1], "w"))
'''


def test_pytorch_examples_mnist_word_language_model_and_imagenet_formats(ws: Workspace, tmp_path: Path) -> None:
    need("torch")
    points, truth = captured(ws, tmp_path, TORCH_EXAMPLES, "torchex")
    got = series(points)
    assert got["Loss"][: len(truth["mnist"])] == [(s, float(f"{v:.6f}")) for s, v in truth["mnist"]]
    assert got["test_loss"][:2] == [(s, float(f"{v:.4f}")) for s, v, _ in truth["mnist_test"]]
    assert got["test_accuracy"] == [(s, a) for s, _, a in truth["mnist_test"]]
    assert got["lr"] == [(s, float(f"{lr:02.2f}")) for s, lr, *_ in truth["wlm"]]
    assert got["ms/batch"] == [(s, float(f"{ms:5.2f}")) for s, _, ms, *_ in truth["wlm"]]
    assert got["ppl"] == [(s, float(f"{p:8.2f}")) for s, *_, p in truth["wlm"]]
    wlm_loss = [(s, float(f"{v:5.2f}")) for s, _, _, v, _ in truth["wlm"]]
    assert got["Loss"][len(truth["mnist"]) : len(truth["mnist"]) + len(wlm_loss)] == wlm_loss  # one series whatever the case
    assert got["valid_loss"] == [(s, float(f"{v:5.2f}")) for s, v, _ in truth["wlm_valid"]]
    assert got["valid_ppl"] == [(s, float(f"{p:8.2f}")) for s, _, p in truth["wlm_valid"]]
    # word_language_model's "time: 1.50s", then imagenet's meter "Time": one series, spelt as first seen
    assert got["time"] == [(s, 1.5) for s, *_ in truth["wlm_valid"]] + [(s, 0.012) for s, *_ in truth["imagenet"]]
    last = truth["wlm_valid"][-1][0]
    assert got["test_loss"][2:] == [(last, float(f"{truth['wlm_valid'][-1][1]:5.2f}"))]
    assert got["test_ppl"] == [(last, float(f"{truth['wlm_valid'][-1][2]:8.2f}"))]
    imagenet = got["Loss"][len(truth["mnist"]) + len(wlm_loss) :]
    assert imagenet == [(s, float(f"{v:.4e}")) for s, v, _ in truth["imagenet"]]  # the value, not the average
    assert got["Acc@1"] == [(s, float(f"{a:6.2f}")) for s, _, a in truth["imagenet"]]
    assert got["test_Acc@1"] == [(s, float(f"{a:.3f}")) for s, a in truth["imagenet_summary"]]
    assert set(got) == {"Loss", "test_loss", "test_accuracy", "lr", "ms/batch", "ppl", "valid_loss", "valid_ppl",
                        "time", "test_ppl", "Acc@1", "test_Acc@1"}  # nothing from Namespace(...) or counters


# --- PyTorch Lightning: its tqdm progress bar (\r-redrawn, reset each epoch) and the test metric table ---

LIGHTNING = r'''
import json, sys, warnings
warnings.filterwarnings("ignore")
import torch
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, RichProgressBar, TQDMProgressBar
from torch.utils.data import DataLoader, TensorDataset
torch.set_num_threads(1)

class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, i):
        loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
        self.log("train_loss", loss, prog_bar=True)
        return loss
    def validation_step(self, batch, i):
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]), prog_bar=True)
    def test_step(self, batch, i):
        self.log("test_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

epochs = []
class Keep(Callback):
    def on_validation_epoch_end(self, trainer, module):
        if not trainer.sanity_checking:
            epochs.append({k: float(v) for k, v in trainer.callback_metrics.items()} | {"step": trainer.global_step})

torch.manual_seed(0)
data = TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
bar = RichProgressBar() if "rich" in sys.argv[0] else TQDMProgressBar()
trainer = pl.Trainer(max_epochs=2, callbacks=[bar, Keep()], enable_progress_bar=True, logger=False,
                     enable_checkpointing=False, enable_model_summary=False, accelerator="cpu", devices=1)
trainer.fit(Model(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=16))
test = trainer.test(trainer.lightning_module, DataLoader(data, batch_size=16), verbose=True)
json.dump({"epochs": epochs, "test": test}, open(sys.argv[1], "w"))
'''


def test_lightning_progress_bar_gives_each_epochs_final_values_at_the_global_step(ws: Workspace, tmp_path: Path) -> None:
    need("pytorch_lightning")
    points, truth = captured(ws, tmp_path, LIGHTNING, "lightning")
    got = series(points)
    # per step, the last value the bar showed is the epoch's value (3 digits, as tqdm shows it)
    for name in ("train_loss", "val_loss"):
        last = {step: value for step, value in got[name] if step is not None}
        assert {e["step"]: round(e[name], 3) for e in truth["epochs"]} == {s: round(v, 3) for s, v in last.items()}, name
    assert got["test_loss"][-1][1] == truth["test"][0]["test_loss"]  # the printed table, in full precision
    assert "v_num" not in got and not {"it/s", "using"} & set(got)


@pytest.mark.parametrize("pty", [False, True], ids=["pipe", "terminal"])
def test_lightning_rich_progress_bar_and_table(ws: Workspace, tmp_path: Path, pty: bool) -> None:
    need("pytorch_lightning")
    need("rich")
    points, truth = captured(ws, tmp_path, LIGHTNING, "lightning_rich", pty)  # on a terminal: redrawn by cursor moves
    got = series(points)
    first, last = truth["epochs"]
    # rich shows "Epoch 1/1 ━━ 8/8 ...": the epoch is the step; without a terminal it prints only its last state
    if pty:  # each epoch's last state (a bar redrawn for the next epoch is a new bar); per step the last value
        assert dict(got["train_loss"]) == {0: round(first["train_loss"], 3), 1: round(last["train_loss"], 3)}
        assert dict(got["val_loss"]) == {1: round(last["val_loss"], 3)}
    else:
        assert got["train_loss"] == [(1, round(last["train_loss"], 3))]
        assert got["val_loss"] == [(1, round(last["val_loss"], 3))]
    assert got["test_loss"][-1][1] == truth["test"][0]["test_loss"]
    assert set(got) == {"train_loss", "val_loss", "test_loss"}


# --- HuggingFace Trainer (a tiny random BERT): its log and eval dicts, 5.x quoting the values ---

TRANSFORMERS = r'''
import json, sys
import torch
import transformers
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
transformers.logging.set_verbosity_error()
torch.manual_seed(0)
torch.set_num_threads(1)
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                    max_position_embeddings=16, num_labels=2)
class Data(torch.utils.data.Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(n)
        self.x = torch.randint(0, 50, (n, 8), generator=g); self.y = torch.randint(0, 2, (n,), generator=g)
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return {"input_ids": self.x[i], "labels": self.y[i]}
args = TrainingArguments(output_dir=sys.argv[1] + ".out", per_device_train_batch_size=8, num_train_epochs=2,
                         logging_steps=1, eval_strategy="epoch", disable_tqdm=False, report_to=[], save_strategy="no",
                         use_cpu=True)
trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Data(16), eval_dataset=Data(8))
trainer.train()
json.dump(trainer.state.log_history, open(sys.argv[1], "w"))
'''


def test_transformers_trainer_log_and_eval_dicts(ws: Workspace, tmp_path: Path) -> None:
    need("transformers")
    need("accelerate")
    points, history = captured(ws, tmp_path, TRANSFORMERS, "hf")
    got = series(points)
    names = {k for entry in history for k in entry} - {"step", "total_flos"}  # what the Trainer printed
    assert set(got) == names
    for name in names:
        printed = [sig(e[name], 4) for e in history if name in e]  # 5.x prints 4 significant digits
        assert [v for _, v in got[name]] == pytest.approx(printed, rel=1e-9), name
        assert {s for s, _ in got[name]} == {None}  # the dicts carry no step: `epoch` is their x axis


def test_transformers_4_style_unquoted_dicts_are_read_the_same() -> None:
    from gitexp.scalars import Recognisers

    line = "{'loss': 0.6961, 'grad_norm': 1.2, 'learning_rate': 5e-05, 'epoch': 0.5}"
    assert Recognisers().parse(line) == (None, {"loss": 0.6961, "grad_norm": 1.2, "learning_rate": 5e-05, "epoch": 0.5})
    assert Recognisers().parse(line.replace(": ", ": '").replace(",", "',").replace("}", "'}")) == Recognisers().parse(line)


# --- Keras 3 (torch backend): fit with validation ---

KERAS = r'''
import json, os, sys
import numpy as np
import keras
keras.utils.set_random_seed(0)
x = np.random.rand(64, 4).astype("float32"); y = (x.sum(1) > 2).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=1)
json.dump(history.history, open(sys.argv[1], "w"))
'''


@pytest.mark.parametrize("pty", [False, True], ids=["pipe", "terminal"])
def test_keras_fit_lines_give_the_history_at_each_epoch(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pty: bool
) -> None:
    need("torch")
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # else importing keras looks for tensorflow
    need("keras")
    points, history = captured(ws, tmp_path, KERAS, "keras", pty)  # on a terminal: \r, \b and colours
    got = series(points)
    assert set(got) == set(history)
    for name, values in history.items():
        assert got[name] == [(epoch, round(v, 4)) for epoch, v in enumerate(values, 1)], name  # "Epoch 1/3": step 1


# --- XGBoost and LightGBM ---

XGBOOST = r'''
import json, sys
import numpy as np, xgboost as xgb
rng = np.random.default_rng(0)
x = rng.random((64, 3)); y = x @ [1.0, 2.0, 3.0]
dtrain, deval = xgb.DMatrix(x[:48], y[:48]), xgb.DMatrix(x[48:], y[48:])
result = {}
xgb.train({"max_depth": 2, "eta": 0.5, "nthread": 1}, dtrain, 5, evals=[(dtrain, "train"), (deval, "eval")],
          evals_result=result)
json.dump(result, open(sys.argv[1], "w"))
'''

LIGHTGBM = r'''
import json, sys
import numpy as np, lightgbm as lgb
rng = np.random.default_rng(0)
x = rng.random((200, 3)); y = x @ [1.0, 2.0, 3.0]
train = lgb.Dataset(x[:150], y[:150]); valid = lgb.Dataset(x[150:], y[150:], reference=train)
result = {}
params = {"objective": "regression", "num_leaves": 4, "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5}
print(params)
lgb.train(params, train, 5, valid_sets=[train, valid], valid_names=["training", "valid_0"],
          callbacks=[lgb.log_evaluation(1), lgb.record_evaluation(result), lgb.early_stopping(50)])
json.dump(result, open(sys.argv[1], "w"))
'''


def test_xgboost_evals(ws: Workspace, tmp_path: Path) -> None:
    need("xgboost")
    points, result = captured(ws, tmp_path, XGBOOST, "xgb")
    got = series(points)
    expected = {f"{data}-{metric}": [(i, round(v, 5)) for i, v in enumerate(values)]
                for data, metrics in result.items() for metric, values in metrics.items()}
    assert got == expected


def test_lightgbm_log_evaluation(ws: Workspace, tmp_path: Path) -> None:
    need("lightgbm")
    points, result = captured(ws, tmp_path, LIGHTGBM, "lgb")
    got = series(points)
    expected = {f"{data}-{metric}": [(i, sig(v, 6)) for i, v in enumerate(values, 1)]
                for data, metrics in result.items() for metric, values in metrics.items()}
    assert got == expected  # the "Best iteration is:" repeat is not a second point; the params dict is nothing


# --- a plain tqdm loop with set_postfix ---

TQDM = r'''
import json, sys
from tqdm import tqdm
shown = []
with tqdm(range(20), desc="train") as bar:
    for i in bar:
        bar.set_postfix(loss=1.0 / (i + 1))
        shown.append(1.0 / (i + 1))
json.dump(shown, open(sys.argv[1], "w"))
'''


def test_tqdm_postfix_counts_once_in_its_final_state(ws: Workspace, tmp_path: Path) -> None:
    need("tqdm")
    points, shown = captured(ws, tmp_path, TQDM, "tqdm")
    assert points == [(20, {"loss": sig(shown[-1], 3)})]


# --- lines that are not metrics ---

NOT_METRICS = [
    "SVC(gamma=0.001)",
    "Pipeline(steps=[('scaler', StandardScaler()), ('svc', SVC(C=10, gamma=0.001))])",
    "Namespace(batch_size=64, epochs=14, lr=1.0, gamma=0.7, seed=1, log_interval=10)",
    "{'lr': 0.001, 'batch_size': 32, 'weight_decay': 0.01}",
    "torch 2.13.0",
    "version: 2.13.0",
    "transformers==5.25.0",
    "Saved checkpoint to /runs/exp-3/epoch:3/model.pt",
    "see http://localhost:8080/run:3",
    "started at 12:30:05 on 2026-01-01",
    "time: 12:30:05",
    "date: 2026-01-01",
    "100%|██████████| 8/8 [00:00<00:00, 50.0it/s]",
    "Validation DataLoader 0: 100%|██████████| 2/2 [00:00<00:00, 332.42it/s]",
    "step: 200/2983",
    "progress: 100%",
    "GPU available: False, used: False",
    "TPU available: False, using: 0 TPU cores",
    "Adam (",
    "Parameter Group 0",
    "    lr: 0.001",
    "    weight_decay: 0",
    ")",
    "Linear(in_features=8, out_features=2, bias=True)",
    "Total params: 1,234",
    "memory: 12 GB",
    "[LightGBM] [Info] Number of data points in the train set: 150, number of used features: 3",
    "[LightGBM] [Info] Start training from score 3.020000",
    "Some weights of BertForSequenceClassification were not initialized from the model checkpoint: ['classifier.bias']",
    "Epoch 00003: reducing learning rate of group 0 to 1.0000e-04.",
]


def test_lines_that_are_not_metrics_capture_nothing(tmp_path: Path) -> None:
    from gitexp.scalars import ScalarCapture, compile_pattern

    out = tmp_path / "steps.jsonl"
    capture = ScalarCapture(compile_pattern("default"), out)
    capture.feed(("\n".join(NOT_METRICS) + "\n").encode(), 1.0, "stdout")
    capture.close(2.0)
    assert out.read_text() == ""


def test_nan_in_a_value_is_kept_as_nan() -> None:
    from gitexp.scalars import Recognisers

    step, values = Recognisers().parse("epoch 2 loss=nan")
    assert step == 2 and math.isnan(values["loss"])
