"""`gitexp demo`: a throw-away repo with a tiny training script, and a few runs of it."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from gitexp.recorder import RunRequest, RunResult, record_run
from gitexp.store import Store

TRAIN_PY = '''\
"""A tiny logistic-regression trainer on synthetic data (standard library only)."""
import json
import math
import random

import gitexp

params = gitexp.params()  # params.yaml with the -S overrides of this run
rng = random.Random(params["seed"])


def features(x, y):
    return [1.0, x, y]


points = []
for _ in range(400):
    x, y = rng.uniform(-1, 1), rng.uniform(-1, 1)
    points.append((features(x, y), 1 if x * x + y > 0.2 else 0))
train, test = points[:300], points[300:]

w = [0.0] * len(train[0][0])
for epoch in range(params["epochs"]):
    loss = 0.0
    for f, label in train:
        p = 1 / (1 + math.exp(-sum(wi * fi for wi, fi in zip(w, f))))
        loss -= math.log(max(p if label else 1 - p, 1e-12))
        w = [wi - params["lr"] * (p - label) * fi for wi, fi in zip(w, f)]
    gitexp.log({"train_loss": loss / len(train)}, step=epoch)  # a point of the curve that gitexp show draws
    if epoch % max(1, params["epochs"] // 4) == 0 or epoch == params["epochs"] - 1:
        print(f"epoch {epoch:3d}  loss {loss / len(train):.4f}")


def predict(f):
    return sum(wi * fi for wi, fi in zip(w, f)) > 0


accuracy = sum(predict(f) == bool(label) for f, label in test) / len(test)
print(f"test accuracy {accuracy:.3f}")
json.dump({"accuracy": round(accuracy, 4), "train_loss": round(loss / len(train), 4)}, open("metrics.json", "w"), indent=2)
'''

PARAMS_YAML = """\
lr: 0.05
epochs: 20
seed: 7
"""

GITIGNORE = "metrics.json\n.env\n"


def run_demo(directory: Path | None, say: Callable[[str], None]) -> tuple[Path, list[RunResult]]:
    """Create the demo repo and record three runs in it; return the repo path and the runs."""
    root = Path(tempfile.mkdtemp(prefix="gitexp-demo-")) if directory is None else directory
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        from gitexp.errors import GitexpError

        raise GitexpError(f"{root} is not empty (give an empty or new directory to --dir)")
    store = Store.init_repository(root)
    (root / "train.py").write_text(TRAIN_PY)
    (root / "params.yaml").write_text(PARAMS_YAML)
    (root / ".gitignore").write_text(GITIGNORE)
    (root / ".env").write_text("API_TOKEN=not-for-git\n")
    store.commit_workspace("A tiny training script", ("gitexp demo", "demo@gitexp.invalid"))
    say(f"demo repository: {root}")

    python = sys.executable
    results = []
    say("\n$ gitexp run -n baseline -m 'first try' -- python train.py")
    results.append(record_run(RunRequest([python, "train.py"], root, "baseline", "first try"), say))
    say("\n$ gitexp run -n lr-high -m 'raise the learning rate' -S lr=0.5 -- python train.py")
    results.append(record_run(RunRequest([python, "train.py"], root, "lr-high", "raise the learning rate", ("lr=0.5",)), say))
    say("\n# edit train.py (uncommitted): add the feature x*x, which the true boundary needs")
    script = root / "train.py"
    script.write_text(script.read_text().replace("return [1.0, x, y]", "return [1.0, x, y, x * x]"))
    say("$ gitexp run -n square-feature -m 'add x*x feature' -S lr=0.5 -- python train.py")
    results.append(
        record_run(RunRequest([python, "train.py"], root, "square-feature", "add x*x feature", ("lr=0.5",)), say)
    )
    return root, results
