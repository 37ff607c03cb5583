"""An XGBoost `TrainingCallback` writing into a gitexp run: `xgb.train(..., callbacks=[GitexpCallback()])`.

After each boosting round, every evaluation metric becomes a point of the series `<data>-<metric>`
(`train-rmse`, `eval-logloss`: the names of `evals` and of the metrics) at step = the round (0-based,
as in `evals_result`).
"""

from __future__ import annotations

from typing import Any

from xgboost.callback import TrainingCallback

from gitexp import tracking
from gitexp.integrations import RunScope


class GitexpCallback(TrainingCallback):  # type: ignore[misc]
    """Log xgboost.train (or the sklearn API's callbacks=) into gitexp; starts a run outside `gitexp run`."""

    def __init__(self, run_name: str | None = None) -> None:
        super().__init__()
        self._scope = RunScope(name=run_name)

    def before_training(self, model: Any) -> Any:
        self._scope.open()
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[Any]]]) -> bool:
        point: dict[str, Any] = {}
        for data, metrics in evals_log.items():
            for metric, values in metrics.items():
                if values:
                    last = values[-1]
                    point[f"{data}-{metric}"] = last[0] if isinstance(last, tuple) else last  # xgb.cv: (mean, std)
        if point:
            tracking.log(point, step=epoch)
        return False  # never stop training

    def after_training(self, model: Any) -> Any:
        self._scope.close()
        return model
