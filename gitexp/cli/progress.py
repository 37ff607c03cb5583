from __future__ import annotations

import sys
import time
from typing import Any

import click

from gitexp.model import Progress

DELAY_SECONDS = 1.0


class TerminalProgress(Progress):
    """A click progress bar on stderr, shown only on a terminal and only for work that lasts."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._label = ""
        self._total = 0
        self._done = 0
        self._since = 0.0
        self._enabled = sys.stderr.isatty()

    def start(self, label: str, total: int) -> None:
        self._label, self._total, self._done, self._since = label, total, 0, time.monotonic()

    def advance(self, nbytes: int) -> None:
        self._done += nbytes
        if self._bar is None:
            if not self._enabled or time.monotonic() - self._since < DELAY_SECONDS:
                return
            self._bar = click.progressbar(
                length=max(self._total, self._done, 1),
                label=f"gitexp: {self._label}",
                file=sys.stderr,
                item_show_func=lambda text: text,
            )
            self._bar.__enter__()
            self._bar.update(self._done - nbytes)
        self._bar.update(nbytes, current_item=self._rate())

    def _rate(self) -> str:
        """Bytes so far and the rate, e.g. '412.0 MB at 230.1 MB/s'."""
        elapsed = max(time.monotonic() - self._since, 1e-6)
        return f"{self._done / 1e6:.1f} MB at {self._done / 1e6 / elapsed:.1f} MB/s"

    def done(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
