"""`gitexp.optuna.track(study)` and `gitexp.optuna.GitexpCallback`: the Optuna integration under a short name
(it lives in gitexp.integrations.optuna; importing this imports optuna)."""

from gitexp.integrations.optuna import GitexpCallback, metric_names, record_trial, sweep_id, track

__all__ = ["GitexpCallback", "metric_names", "record_trial", "sweep_id", "track"]
