"""Training: the jitted step and loop, checkpoints, and the registry of losses.

- `loop`: `fit` (sharded, resumable, signal-safe training), `restore_params`, the config.
- `checkpoint`: the latest and best checkpoints of a run (orbax).
- `losses`: the losses that `config.train.loss` names, and `register_loss`.
- `pretrained`: starting a run from another run's parameters (`config.train.init_from`).
"""

from fieldnet.train.checkpoint import Checkpoints
from fieldnet.train.loop import (
    Batch,
    MetricsLog,
    StepFunctions,
    TrainingDiverged,
    TrainingInterrupted,
    TrainResult,
    check_config,
    data_mesh,
    default_config,
    fit,
    global_batch,
    learning_rate_schedule,
    load_pretrained,
    optimizer,
    restore_params,
    split_model,
    step_functions,
    stop_signals,
)
from fieldnet.train.losses import LOSSES, LossFn, get_loss, register_loss

__all__ = ["LOSSES", "Batch", "Checkpoints", "LossFn", "MetricsLog", "StepFunctions",
           "TrainResult", "TrainingDiverged", "TrainingInterrupted", "check_config", "data_mesh",
           "default_config", "fit", "get_loss", "global_batch", "learning_rate_schedule",
           "load_pretrained", "optimizer", "register_loss", "restore_params", "split_model",
           "step_functions", "stop_signals"]
