"""What every benchmark shares: a git identity that needs no global config, and which gitexp to time."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
ENV = {**os.environ, **IDENTITY}


def gitexp_cmd() -> list[str]:
    """The console script beside this interpreter (no version-manager shim in the timing), else on PATH."""
    beside = Path(sys.executable).parent / "gitexp"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    exe = shutil.which("gitexp")
    return [exe] if exe else [sys.executable, "-m", "gitexp"]


def ensure_bytecode() -> None:
    """Compile gitexp's modules as `pip install .` does, so timings do not include compiling them.

    An editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise compile
    every module on every command, a cost no installed user pays (and the floor's
    pygit2 and click are precompiled).
    """
    import compileall

    import gitexp

    compileall.compile_dir(str(Path(gitexp.__file__).parent), quiet=1)


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run cmd, fail loudly if it fails; return (wall seconds, stdout stripped)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=ENV if env is None else env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return elapsed, proc.stdout.strip()


@contextlib.contextmanager
def scratch_dir(prefix: str, keep: bool) -> Iterator[Path]:
    """A throw-away directory under /tmp for one benchmark, removed at the end unless keep (then its path is printed)."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield scratch
    finally:
        if keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
