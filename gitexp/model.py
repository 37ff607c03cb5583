"""Pure data: what a run is, as read back from its commit."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True)
class RunSummary:
    """A run as its commit message trailers describe it (cheap to read)."""

    name: str
    commit: str
    status: str
    exit_code: int | None
    started: str
    duration: float | None
    user: str
    base: str | None
    base_branch: str | None
    parent: str | None
    tags: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    subject: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    recorder: str = ""  # pid@host of the process recording a run still in progress
    sweep: dict[str, Any] = field(default_factory=dict)  # {"id", "index", "size", "seed_param"} of a sweep's run
    incomplete: tuple[str, ...] = ()  # the parts of the record that could not be kept (run.json says why)

    @classmethod
    def of(cls, fields: dict[str, Any]) -> RunSummary:
        """A summary from a dict of every one of its fields (taken, not copied), made without the frozen
        dataclass's __init__, which sets each field through object.__setattr__: `gitexp list` makes
        100,000 of them."""
        run = object.__new__(cls)
        run.__dict__.update(fields)
        return run

    @property
    def config(self) -> str:
        """The params without the seed (the sweep's seed param, else `seed`), as one text: repeats share it."""
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(self.config_params.items())) or "(no params)"

    @property
    def config_params(self) -> dict[str, Any]:
        """The params without the seed (the sweep's seed param, else `seed`)."""
        seed = self.sweep.get("seed_param") or "seed"
        return {k: v for k, v in self.params.items() if k != seed}

    @property
    def started_at(self) -> datetime:
        """The start time (the epoch when unreadable, so such runs sort last)."""
        try:
            when = datetime.fromisoformat(self.started)
        except ValueError:
            return datetime.fromtimestamp(0, timezone.utc)
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "commit": self.commit,
            "status": self.status,
            "exit_code": self.exit_code,
            "started": self.started,
            "duration": self.duration,
            "user": self.user,
            "base": self.base,
            "base_branch": self.base_branch,
            "parent": self.parent,
            "tags": list(self.tags),
            "note": self.note,
            "params": self.params,
            "metrics": self.metrics,
            "resources": self.resources,
            "sweep": self.sweep,
            "incomplete": list(self.incomplete),
        }


@dataclass(frozen=True)
class Snapshot:
    """The code state of a workspace, written as a git tree (record dir not yet added)."""

    tree: str
    base: str | None
    base_branch: str | None
    dirty: bool
    skipped: tuple[str, ...] = ()
    large: tuple[str, ...] = ()


class Progress:
    """Reports bytes hashed or copied; the CLI passes one that draws a bar. This one is silent."""

    def start(self, label: str, total: int) -> None:
        """Work of `total` bytes named `label` begins."""

    def advance(self, nbytes: int) -> None:
        """`nbytes` more bytes were processed."""

    def done(self) -> None:
        """The work ended."""
