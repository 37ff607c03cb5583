"""A real repository with runs made by `gitexp run`, for the browser tests of `gitexp ui` and `gitexp report`.

Runs: `base` (params, metrics, a step series, a PNG output), `child` (the next run after an edit of
train.py: its parent is `base`), `wide` (another lr), `xss` (hostile text in its command, logs, note,
a series name and, as a fetched notes ref could carry, its tags), and `live`, a run still running
until the marker file `stop` appears in the workspace (it logs a point every 0.1 s meanwhile).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

from conftest import GITEXP, IDENTITY

HOSTILE = "<img src=x onerror=alert(1)>"
SERIES_STEPS = 20


def png(width: int = 16, height: int = 16) -> bytes:
    """A small red and blue PNG made by hand (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    rows = b"".join(b"\x00" + b"".join(b"\xff\x20\x20" if x < width // 2 else b"\x20\x20\xff" for x in range(width))
                    for _ in range(height))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


TRAIN = """\
import base64, sys, gitexp
p = gitexp.params()
lr = float(p["lr"])
for i in range({steps}):
    gitexp.log({{"loss": round(1.0 / (i + 1) + lr, 6)}}, step=i)
if len(sys.argv) > 1:
    gitexp.log({{sys.argv[1]: 1.0}}, step=0)
    print(sys.argv[1], flush=True)
print("training with lr", lr, flush=True)
print("a warning", file=sys.stderr, flush=True)
gitexp.summary({{"acc": round(0.5 + lr, 6)}})
open("plot.png", "wb").write(base64.b64decode("{png}"))
"""

LIVE = """\
import os, time, gitexp
i = 0
while not os.path.exists("stop"):
    gitexp.log({"loss": 1.0 / (i + 1)}, step=i)
    print("live step", i, flush=True)
    i += 1
    time.sleep(0.1)
"""


def environment(home: Path) -> dict[str, str]:
    """An environment whose HOME and git config are the given empty home (nothing real read or written)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = Test User\n\temail = test@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n[gc]\n\tauto = 0\n")
    env = {**os.environ, **IDENTITY, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "GIT_CONFIG_NOSYSTEM": "1", "NO_COLOR": "1"}
    for name in ("GIT_CONFIG_GLOBAL", "GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        env.pop(name, None)
    return env


def sh(root: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(list(args), cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return proc.stdout


def gx(root: Path, env: dict[str, str], *args: str) -> str:
    return sh(root, env, *GITEXP, *args)


def build(root: Path, env: dict[str, str]) -> None:
    """The finished runs (the live one is started by start_live)."""
    root.mkdir(parents=True)
    sh(root, env, "git", "init", "-q", "-b", "main")
    encoded = base64.b64encode(png()).decode()
    (root / "train.py").write_text(TRAIN.format(steps=SERIES_STEPS, png=encoded))
    (root / "live.py").write_text(LIVE)
    (root / "params.yaml").write_text("lr: 0.1\ndepth: 2\n")
    (root / ".gitexp.yaml").write_text("outputs: [plot.png]\n")
    (root / ".gitignore").write_text("plot.png\nstop\n")
    sh(root, env, "git", "add", "-A")
    sh(root, env, "git", "commit", "-q", "-m", "train")
    py = sys.executable
    gx(root, env, "run", "-n", "base", "--", py, "train.py")
    with (root / "train.py").open("a") as f:
        f.write("# a better idea\n")
    gx(root, env, "run", "-n", "child", "-S", "lr=0.05", "--", py, "train.py")
    gx(root, env, "run", "-n", "wide", "--no-parent", "-S", "lr=0.3", "-S", "depth=4", "--", py, "train.py")
    gx(root, env, "run", "-n", "xss", "--no-parent", "-S", "lr=0.2", "--", py, "train.py", HOSTILE)
    gx(root, env, "note", "xss", HOSTILE)
    # as a fetched notes ref could carry it: a tag no gitexp command would write
    commit = sh(root, env, "git", "rev-parse", "refs/experiments/xss").strip()
    note = json.dumps({"note": HOSTILE, "tags": [HOSTILE, "ok"]})
    sh(root, env, "git", "notes", "--ref=gitexp", "add", "-f", "-m", note, commit)


def start_live(root: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`gitexp run -n live` of live.py, running until the file `stop` exists; returned once it is listed."""
    proc = subprocess.Popen([*GITEXP, "run", "-n", "live", "--no-parent", "--", sys.executable, "live.py"], cwd=root,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = sh(root, env, "git", "for-each-ref", "--format=%(refname)", "refs/experiments/live")
        if out.strip():
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"the live run ended early ({proc.returncode})")
        time.sleep(0.1)
    raise AssertionError("the live run was never listed")


def stop_live(root: Path, proc: subprocess.Popen[bytes]) -> None:
    (root / "stop").write_text("")
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
