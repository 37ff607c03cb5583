"""Ignore rules of another tree: which paths a run's own .gitignore files would have ignored.

Ignore rules are evaluated against a work tree, so the rules of a run (its
.gitignore files, with this repository's info/exclude and core.excludesFile) are
laid out in a throw-away repository and `git check-ignore` is asked there (git
itself: libgit2 misses a nested .gitignore's negation of a parent's pattern).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pygit2

from gitexp.errors import StorageError


def ignored_under(repo: pygit2.Repository, scratch: Path, gitignores: dict[str, bytes], paths: list[str]) -> set[str]:
    """Those of paths that the given .gitignore files (path -> bytes) would ignore in this repository."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="ignore-") as tmp:
        other = pygit2.init_repository(tmp)
        for path, data in gitignores.items():
            target = Path(tmp, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        exclude = Path(repo.path, "info", "exclude")
        if exclude.is_file():
            Path(other.path, "info").mkdir(exist_ok=True)
            Path(other.path, "info", "exclude").write_bytes(exclude.read_bytes())
        try:
            excludes = repo.config["core.excludesFile"]
        except KeyError:
            excludes = None  # none set: the global one, if any, applies to both alike
        if excludes:
            other.config["core.excludesFile"] = excludes
        if not paths:
            return set()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        proc = subprocess.run(
            ["git", "check-ignore", "--no-index", "--stdin", "-z"],
            cwd=tmp,
            input="".join(p + "\0" for p in paths).encode("utf-8", "surrogateescape"),
            capture_output=True,
            env=env,
            check=False,
        )
        if proc.returncode not in (0, 1):
            raise StorageError(f"git check-ignore failed: {proc.stderr.decode(errors='replace').strip()}")
        return {p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p}
