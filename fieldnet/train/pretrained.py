"""Starting a run from another run's trained parameters: `config.train.init_from` (the
checks here; `fieldnet.train.loop.load_pretrained` loads them).

    python -m experiments.density_to_temp --config experiments/configs/density_to_temp.py \\
        --config.train.init_from=runs/density_to_temp --config.data.path=my_small_set.h5

The new run's model starts from the best checkpoint of the run in `init_from`; the optimizer
starts fresh (its moments belong to the old data and schedule). The two runs' `model` configs
must agree key for key, and the models must map the same channels: anything else would not
restore, and is refused in one line naming the keys.

Normalization (`config.train.init_normalizer`):

- `"data"` (the default): the new run fits its own statistics on its own train split, as any
  run does. The pretrained network maps standardized fields to standardized fields; a shift
  of the new data's mean log temperature (another redshift, another gas model) is then taken
  up by the standardization instead of by the weights.
- `"pretrained"`: the new run uses the statistics of the run it starts from, so its inputs
  reach the network exactly as they did in pretraining. With few training maps this avoids
  statistics fitted on little data.

A run that has trained already resumes from its own checkpoints; `init_from` only seeds the
first start.
"""

from __future__ import annotations

from pathlib import Path

import ml_collections

from fieldnet import rundir
from fieldnet.errors import FieldnetError
from fieldnet.records import flatten

NORMALIZERS = ("data", "pretrained")
# what the two runs' models must agree on besides their configs (model_io.json)
MATCHING_IO = ("ndim", "in_channels", "out_channels")


def check_source(source: str | Path, init_normalizer: str = "data") -> Path:
    """The folder `train.init_from` names, checked to hold a trained run; else one line.

    Args:
        source: the pretrained run's workdir.
        init_normalizer: `train.init_normalizer`, one of `NORMALIZERS`.

    Returns:
        The folder, as a `Path`.

    Raises:
        FieldnetError: no such folder, no trained checkpoint in it, or an unknown
            `init_normalizer`.
    """
    if init_normalizer not in NORMALIZERS:
        raise FieldnetError(f"train.init_normalizer must be one of {NORMALIZERS}, got "
                            f"{init_normalizer!r}")
    source = Path(source)
    what = f"a trained run folder (train.init_from={source})"
    rundir.require(source, rundir.CONFIG, rundir.MODEL_IO, rundir.NORMALIZER, what=what)
    if not rundir.has_trained(source):
        raise FieldnetError(f"{source}: not {what}: it has no checkpoint")
    return source


def model_differences(source: str | Path, model_config: ml_collections.ConfigDict,
                      model_io: dict) -> list[str]:
    """The `model.*` keys, and the mapped channels, in which the run in `source` differs.

    Args:
        source: The pretrained run's workdir.
        model_config: The new run's `config.model`.
        model_io: The new run's model_io record (`ndim`, `in_channels`, `out_channels`,
            `condition_on`).

    Returns:
        One entry per difference: a dotted `model.*` key (e.g. `"model.width"`), or a
        mapped quantity with both values (e.g. `"in_channels (1 -> 2)"`); empty when the
        models match.
    """
    source = Path(source)
    theirs = flatten({"model": rundir.read_config(source).model.to_dict()})
    mine = flatten({"model": model_config.to_dict()})
    changed = rundir.config_differences(theirs, mine)
    their_io = rundir.read_json(rundir.model_io(source))
    changed += [f"{key} ({their_io.get(key)} -> {model_io.get(key)})" for key in MATCHING_IO
                if their_io.get(key) != model_io.get(key)]
    cond = (len(their_io.get("condition_on") or []), len(model_io.get("condition_on") or []))
    if cond[0] != cond[1]:
        changed.append(f"data.condition_on ({cond[0]} -> {cond[1]} parameters)")
    return changed
