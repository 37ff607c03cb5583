"""Framework integrations: one module per framework, each importing its framework only inside itself.

`gitexp.integrations.lightning.GitexpLogger`, `.huggingface.GitexpCallback`, `.keras.GitexpCallback`,
`.xgboost.GitexpCallback`, `.lightgbm.callback()`, `.optuna.GitexpCallback` / `.optuna.track(study)`.
Under `gitexp run` (or inside `with gitexp.start():`) they write into that run; otherwise they start a
run when training begins (`gitexp.start()` semantics) and end it when training ends.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from gitexp import tracking


def numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries of values that are numbers (a framework's logs also hold texts, lists, ...)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool):
            continue
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError, OverflowError):
            continue
    return out


def recording() -> bool:
    """True when this process writes into a run already (`gitexp run`, or `gitexp.start()` active)."""
    if tracking._active is not None and not tracking._active.ended:
        return True
    run_dir = os.environ.get(tracking.ENV_RUN_DIR)
    return bool(run_dir) and os.path.isdir(run_dir or "")


class RunScope:
    """The run an integration started itself (outside `gitexp run`), ended by close()."""

    def __init__(self, name: str | None = None, tags: tuple[str, ...] = ()) -> None:
        self.name = name
        self.tags = tags
        self.run: tracking.ActiveRun | None = None

    def open(self) -> None:
        if self.run is None and not recording() and tracking.process_rank() == 0:
            self.run = tracking.start(name=self.name, tags=self.tags)

    def close(self, failed: bool = False, interrupted: bool = False) -> None:
        run, self.run = self.run, None
        if run is not None and not run.ended:
            run.end(failed=failed, interrupted=interrupted)


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
