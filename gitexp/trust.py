"""Consent and secrets: what gitexp may read outside the work tree, where it may send data, what it never takes.

A run's files reach the workspace through `gitexp checkout`, so a symlink or a
versioned `.gitexp.yaml` in the workspace may be someone else's say-so. Reading
through a path that leads outside the work tree, and sending data to a data
remote named in `.gitexp.yaml`, therefore need this clone's consent, kept where
no run can write it: `<git common dir>/gitexp/trust.json`. Paths inside a git
directory are never read as data or params. Files that look like secrets (and
those `exclude:` names) are never taken into data, outputs or artifacts.

Imported by the in-script API: nothing heavy here.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from gitexp.errors import GitexpError

TRUST_FILE = "trust.json"  # in <git common dir>/gitexp/
# Matched, case-insensitively, against the name of every file and directory under a data or output path.
SECRET_PATTERNS = (
    ".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    ".netrc", "_netrc", ".pgpass", ".git-credentials", ".pypirc", ".npmrc", "credentials", "credentials*.json",
)


class Untrusted(GitexpError):
    pass


def _regex(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)) if patterns else None


@lru_cache(maxsize=1)
def _secrets() -> tuple[tuple[str, str, str], ...]:
    """SECRET_PATTERNS, in order, as plain string tests with no regular expression to compile (a checkout
    or a run with data asks of every file): (pattern, how, text), how being 'name', 'prefix' ('id_rsa*'),
    'suffix' ('*.pem') or 'glob' (the others)."""
    out = []
    for p in SECRET_PATTERNS:
        wild = [i for i, c in enumerate(p) if c in "*?["]
        if not wild:
            out.append((p, "name", p))
        elif wild == [len(p) - 1] and p.endswith("*"):
            out.append((p, "prefix", p[:-1]))
        elif wild == [0] and p.startswith("*"):
            out.append((p, "suffix", p[1:]))
        else:
            out.append((p, "glob", p))
    return tuple(out)


def secret_pattern(name: str) -> str | None:
    """The first default secret pattern the file name matches (case-insensitively), or None."""
    low = name.lower()
    for pattern, how, text in _secrets():
        if how == "name":
            found = low == text
        elif how == "prefix":
            found = low.startswith(text)
        elif how == "suffix":
            found = low.endswith(text)
        else:
            found = fnmatch.fnmatchcase(low, text)
        if found:
            return pattern
    return None


class Exclude:
    """The files a data or output path never contributes: secrets, and the `exclude:` patterns of .gitexp.yaml.

    A pattern without '/' is matched against each file's and directory's name, one with '/'
    against its path from the repository root (a leading '/' is ignored); '*' also matches '/'.
    """

    def __init__(self, patterns: tuple[str, ...] = ()) -> None:
        self.patterns = patterns

    @cached_property
    def _names(self) -> re.Pattern[str] | None:
        return _regex(tuple(p for p in self.patterns if "/" not in p.strip("/")))

    @cached_property
    def _paths(self) -> re.Pattern[str] | None:
        return _regex(tuple(p.strip("/") for p in self.patterns if "/" in p.strip("/")))

    def why(self, rel: str) -> str | None:
        """Why the file or directory at rel (from the repository root, '/'-separated) is left out, or None."""
        name = rel.rsplit("/", 1)[-1]
        secret = secret_pattern(name)
        if secret is not None:
            return f"looks like a secret: {secret}"
        if (self._names is not None and self._names.match(name)) or (self._paths is not None and self._paths.match(rel)):
            pattern = next(p for p in self.patterns if fnmatch.fnmatchcase(rel if "/" in p.strip("/") else name, p.strip("/")))
            return f"exclude: {pattern}"
        return None


def _quoted(text: str) -> str:
    import shlex  # (for two error messages: not imported by every command that reads data)

    return shlex.quote(text)


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


class Trust(NamedTuple):
    """This clone's consent: outside paths it may read (and all below them), data remote destinations."""

    root: str  # the work tree, symlinks resolved
    git_dir: str  # the common git dir, symlinks resolved
    paths: tuple[str, ...] = ()
    remotes: tuple[str, ...] = ()

    @classmethod
    def load(cls, common_dir: Path, root: Path) -> Trust:
        data = _read(common_dir)
        return cls(os.path.realpath(root), os.path.realpath(common_dir), tuple(data["paths"]), tuple(data["remotes"]))

    @classmethod
    def strict(cls, root: Path) -> Trust:
        """Nothing outside the work tree allowed (for a caller that has no clone at hand)."""
        return cls(os.path.realpath(root), os.path.realpath(Path(root) / ".git"))

    def check(self, rel: str, what: str, outcome: str = "nothing was read") -> None:
        """Refuse to read root/rel when it leads into a git directory, or outside the work tree unallowed."""
        full = os.path.join(self.root, rel)
        if not os.path.lexists(full):
            return
        real = os.path.realpath(full)
        inside = _within(real, self.root)
        parts = Path(os.path.relpath(real, self.root) if inside else real).parts
        shown = rel if real == full else f"{rel} -> {real}"
        if _within(real, self.git_dir) or any(p.lower() == ".git" for p in parts):
            raise Untrusted(f"refusing to read {what} {shown}: it is inside a git directory, which gitexp never "
                            f"reads as data or params; {outcome}")
        if not inside and not any(_within(real, p) for p in self.paths):
            raise Untrusted(
                f"refusing to read {what} {shown}: it leads outside the repository and this clone has not "
                f"allowed that place (a checked-out run can bring such links); {outcome}; if you trust "
                f"it: gitexp trust {_quoted(real)}"
            )


def destination(url: str, root: Path) -> str:
    """Where a data remote URL sends data: the URL itself, or a directory with symlinks resolved."""
    if "://" in url and not url.startswith("file://"):
        return url
    path = Path(url.removeprefix("file://"))
    return os.path.realpath(path if path.is_absolute() else Path(root) / path)


def require_remote(store: Any, name: str, url: str) -> None:
    """Refuse to send data to a data remote of .gitexp.yaml that this clone has not allowed."""
    if name in store.local_data_remotes():
        return  # kept in this clone's .git/config: only its user writes there
    where = destination(url, store.root)
    if where not in _read(store.git_common_dir())["remotes"]:
        raise Untrusted(
            f"refusing to send data to data remote {name!r} ({where}): it is named in .gitexp.yaml, which a "
            f"checked-out run or a fetched commit can change, and this clone has not allowed it; nothing was "
            f"sent; if you trust it: gitexp remote trust {_quoted(name)}"
        )


def allow(common_dir: Path, key: str, value: str) -> bool:
    """Add value to this clone's trusted `paths` or `remotes`; False if it was there already."""
    data = _read(common_dir)
    if value in data[key]:
        return False
    data[key].append(value)
    _write(common_dir, data)
    return True


def forget(common_dir: Path, value: str) -> bool:
    """Remove value from the trusted paths and remotes; False if it was in neither."""
    data = _read(common_dir)
    if not any(value in data[k] for k in ("paths", "remotes")):
        return False
    _write(common_dir, {k: [v for v in data[k] if v != value] for k in ("paths", "remotes")})
    return True


def trusted(common_dir: Path) -> dict[str, list[str]]:
    return _read(common_dir)


def _read(common_dir: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((common_dir / "gitexp" / TRUST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}  # unreadable: nothing is trusted (a refusal says how to allow it again)
    if not isinstance(data, dict):
        data = {}
    return {k: [v for v in data.get(k, []) if isinstance(v, str)] if isinstance(data.get(k), list) else []
            for k in ("paths", "remotes")}


def _write(common_dir: Path, data: dict[str, list[str]]) -> None:
    from gitexp.workspace import atomic_write

    atomic_write(common_dir / "gitexp" / TRUST_FILE, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
