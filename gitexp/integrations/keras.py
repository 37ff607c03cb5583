"""A Keras 3 callback writing into a gitexp run: `model.fit(..., callbacks=[GitexpCallback()])`.

Each epoch's logs (`loss`, `val_loss`, metrics, as Keras names them in History) become points at
step = the epoch (0-based, as History's index); `log_batch=True` also logs each training batch's logs
as `batch/<name>` at the batch's global step.
"""

from __future__ import annotations

from typing import Any

import keras  # type: ignore[import-untyped]

from gitexp import tracking
from gitexp.integrations import RunScope, numbers


class GitexpCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Log model.fit into gitexp: inside `gitexp run` into that run, otherwise into a run started by fit."""

    def __init__(self, log_batch: bool = False, run_name: str | None = None) -> None:
        super().__init__()
        self._log_batch = log_batch
        self._scope = RunScope(name=run_name)
        self._batches = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._scope.open()
        self._batches = 0
        fit = {k: v for k, v in (self.params or {}).items() if isinstance(v, (int, float, str, bool))}
        if fit:
            tracking.log_params({"fit": fit})

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._log_batch and logs:
            tracking.log({f"batch/{k}": v for k, v in numbers(logs).items()}, step=self._batches)
        self._batches += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs:
            tracking.log(numbers(logs), step=epoch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._scope.close()
