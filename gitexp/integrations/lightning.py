"""A Lightning `Logger` writing into a gitexp run: `Trainer(logger=GitexpLogger())`.

Works with `lightning` and `pytorch_lightning`: the Logger class of the one the script imported (when both
are installed and the script imported neither yet, `lightning`). Hyperparameters become the run's
params, metrics its series at the trainer's step (rank zero only), and with `log_model=True` the
checkpoints ModelCheckpoint saved are recorded as artifacts when training ends.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from gitexp import tracking
from gitexp.integrations import RunScope, numbers

if "pytorch_lightning" in sys.modules and "lightning" not in sys.modules:  # the package the script imported
    from pytorch_lightning.loggers.logger import Logger
    from pytorch_lightning.utilities import rank_zero_only
else:
    try:
        from lightning.pytorch.loggers.logger import Logger  # type: ignore[import-not-found,no-redef,assignment]
        from lightning.pytorch.utilities import rank_zero_only  # type: ignore[import-not-found,no-redef]
    except ImportError:  # the older package name
        from pytorch_lightning.loggers.logger import Logger  # type: ignore[no-redef]
        from pytorch_lightning.utilities import rank_zero_only  # type: ignore[no-redef]


class GitexpLogger(Logger):  # type: ignore[misc]
    """Log a Lightning Trainer into gitexp.

    Inside `gitexp run` (or `with gitexp.start():`) it writes into that run; otherwise it starts a run
    at the first thing logged (named `run_name`, else generated) and ends it in finalize(), with the
    status Lightning reports (`failed` when training raised).
    """

    def __init__(self, log_model: bool = False, run_name: str | None = None, prefix: str = "") -> None:
        super().__init__()
        self._log_model = log_model
        self._prefix = prefix
        self._scope = RunScope(name=run_name)
        self._checkpoints: list[str] = []

    @property
    def name(self) -> str:
        return "gitexp"

    @property
    def version(self) -> str:
        """The run's name (ModelCheckpoint's default directory is <root>/gitexp/<version>/checkpoints)."""
        self._scope.open()
        run = self._scope.run or tracking._active
        return run.name if run is not None else os.environ.get("GITEXP_RUN_NAME", "")

    @property
    def experiment(self) -> Any:
        """The gitexp.tracking module the logger writes through (gitexp.log, log_params, ...)."""
        self._scope.open()
        return tracking

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        self._scope.open()
        tracking.log_params(params)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._scope.open()
        tracking.log({self._prefix + k: v for k, v in numbers(metrics).items()}, step=step)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._log_model:
            return
        path = getattr(checkpoint_callback, "_last_checkpoint_saved", "") or getattr(checkpoint_callback, "last_model_path", "")
        if path and path not in self._checkpoints:
            self._checkpoints.append(str(path))

    @rank_zero_only  # type: ignore[untyped-decorator]
    def finalize(self, status: str) -> None:
        for path in self._checkpoints:  # ModelCheckpoint deletes all but its top k: those left are recorded
            if os.path.exists(path):
                tracking.log_artifact(path)
        self._checkpoints = []
        self._scope.close(failed=status == "failed")
