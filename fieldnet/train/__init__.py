"""Training: the jitted step and loop, checkpoints, and the registry of losses.

- `loop`: `fit` (sharded, resumable, signal-safe training) and its parts (`setup_training`,
  `Cadence`, `LossWindow`, `TrainLogger`, `resume`, `train_steps`), `restore_params`, the
  config.
- `checkpoint`: the latest and best checkpoints of a run (orbax).
- `losses`: the losses that `config.train.loss` names, and `register_loss`.
- `pretrained`: starting a run from another run's parameters (`config.train.init_from`).
"""

from fieldnet.train.checkpoint import Checkpoints
from fieldnet.train.loop import (
    Batch,
    Cadence,
    LossWindow,
    MetricsLog,
    StepFunctions,
    TrainingDiverged,
    TrainingInterrupted,
    TrainingSetup,
    TrainLogger,
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
    resume,
    setup_training,
    split_model,
    step_functions,
    stop_signals,
    train_steps,
)
from fieldnet.train.losses import LOSSES, LossFn, get_loss, register_loss

__all__ = ["LOSSES", "Batch", "Cadence", "Checkpoints", "LossFn", "LossWindow", "MetricsLog",
           "StepFunctions", "TrainLogger", "TrainResult", "TrainingDiverged",
           "TrainingInterrupted", "TrainingSetup", "check_config", "data_mesh", "default_config",
           "fit", "get_loss", "global_batch", "learning_rate_schedule", "load_pretrained",
           "optimizer", "register_loss", "restore_params", "resume", "setup_training",
           "split_model", "step_functions", "stop_signals", "train_steps"]
