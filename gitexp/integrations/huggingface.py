"""A transformers `TrainerCallback` writing into a gitexp run: `Trainer(..., callbacks=[GitexpCallback()])`.

TrainingArguments become the run's params, every log of the Trainer (train `loss`, `learning_rate`,
`grad_norm`, eval `eval_loss`, ...) a point of its series at `state.global_step`, and with
`log_model=True` the final model (save_pretrained into `<output_dir>/final`) an artifact.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import TrainerCallback

from gitexp import tracking
from gitexp.integrations import RunScope, numbers


class GitexpCallback(TrainerCallback):  # type: ignore[misc]
    """Log a transformers Trainer into gitexp (main process only).

    Inside `gitexp run` (or `with gitexp.start():`) it writes into that run; otherwise it starts one when
    training begins and ends it when training ends (wrap `trainer.train()` and a later
    `trainer.evaluate()` in `with gitexp.start():` to keep both in one run).
    """

    def __init__(self, log_model: bool = False, run_name: str | None = None) -> None:
        self._log_model = log_model
        self._scope = RunScope(name=run_name)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self._scope.open()
        tracking.log_params(args.to_dict())

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            tracking.log(numbers(logs), step=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self._log_model and model is not None:
            target = os.path.join(args.output_dir, "final")
            model.save_pretrained(target)
            tokenizer = kwargs.get("processing_class") or kwargs.get("tokenizer")
            if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
                tokenizer.save_pretrained(target)
            tracking.log_artifact(target)
        self._scope.close()
