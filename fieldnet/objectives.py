"""Objectives: what a run's network learns, and so how it is sized, trained, applied to a
file and evaluated. `config.model.objective` names one, and nothing else in the library asks
which one it is:

    objective = objectives.of(config.model)           # "regression" (default) or "flow"
    objectives.check_config(config)                   # the keys it needs, in one line
    model = objectives.build(config.model, rngs=..., in_channels=1, out_channels=1, ndim=2)
    loss_fn = objective.loss(config.train)
    h = objective.evaluate(model, ds, config)          # eval.json's "test" block: h.summary

- `"regression"`: the network predicts the target (`train.loss` any registered loss that no
  other objective claims, "mse" by default); its prediction of a map is one forward pass.
- `"flow"`: the network is the velocity of a conditional flow-matching model
  (`fieldnet.nn.flow`), trained by `train.loss = "flow_matching"`; its prediction of a map
  is samples drawn by Heun steps, and the mean of those samples, and its evaluation adds
  the "samples" statistics.

Adding an objective is one class with the decorator, whose methods override those of
`Objective` that differ:

    @register_objective("my_objective")
    class MyObjective(Objective):
        ...

and `config.model.objective = "my_objective"` selects it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import ml_collections
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from fieldnet import models, rundir
from fieldnet.data import h5format
from fieldnet.errors import FieldnetError
from fieldnet.eval import calibration, held_out, sampling, statistics
from fieldnet.eval.inference import field_predictor, field_sampler, tiles_per_field
from fieldnet.nn import flow
from fieldnet.registry import Registry
from fieldnet.train import losses

DEFAULT = "regression"


class Objective:
    """What a run's network learns. The base class is a network that predicts the target
    with the loss `train.loss` names; a subclass overrides what differs.

    Attributes:
        name: The `model.objective` it is registered as (set by `register_objective`).
        kind: What its runs are called in messages ("regression", "generative").
        generative: Whether it draws samples (several per map) instead of predicting one
            field per map.
        losses: The `train.loss` values it trains with, and that only it may use; empty for
            any registered loss that no other objective claims.
        statistics: Registered statistics (`fieldnet.eval.statistics`) its evaluation adds
            to `eval.statistics`, and that only its runs may select.
    """

    name: str = ""
    kind: str = "regression"
    generative: bool = False
    losses: tuple[str, ...] = ()
    statistics: tuple[str, ...] = ()

    def check_config(self, config: ml_collections.ConfigDict) -> None:
        """Checks the keys of a study config that the objective needs (`check_config` has
        already refused a loss or statistic that another objective claims).

        Args:
            config: The study's config (`model`, `train`, `eval`).

        Raises:
            FieldnetError: One line naming the key.
        """
        loss = config.train.loss
        if self.losses and loss not in self.losses:
            raise FieldnetError(f"model.objective={self.name!r} trains with train.loss="
                                f"{' or '.join(map(repr, self.losses))}, got {loss!r}")

    def network_io(self, in_channels: int, out_channels: int, cond_dim: int) -> dict[str, int]:
        """The network's channel counts and cond_dim for a task that maps `in_channels` to
        `out_channels`, conditioned on `cond_dim` parameters.

        Args:
            in_channels: Channels of the task's input.
            out_channels: Channels of the task's target.
            cond_dim: Number of simulation parameters the task is conditioned on (0: none).

        Returns:
            {"in_channels", "out_channels", "cond_dim"} of the network: the task's own here.
        """
        return {"in_channels": in_channels, "out_channels": out_channels, "cond_dim": cond_dim}

    def check_model(self, model_config: ml_collections.ConfigDict) -> None:
        """Refuses a model config the objective cannot train (any, here).

        Args:
            model_config: `config.model`.

        Raises:
            ValueError: One line naming the key.
        """

    def loss(self, train_config: ml_collections.ConfigDict) -> losses.LossFn:
        """The training loss: the registered one that `train.loss` names (which
        `check_config` has matched with the objective).

        Args:
            train_config: `config.train`.

        Returns:
            `loss(model, batch)`.
        """
        return losses.get_loss(train_config.loss)

    def predict_test(self, model: nnx.Module, test: dict, config: ml_collections.ConfigDict,
                     samples: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The prediction of every map of a test split, normalized: one forward pass each.

        Args:
            model: The run's network.
            test: The test split, `ds.read("test")`.
            config: The run's config (`eval.batch_size` is read).
            samples: Samples kept from an earlier evaluation (generative objectives only).

        Returns:
            (prediction (N, *spatial, C), samples (N, S, *spatial, C) or None).

        Raises:
            FieldnetError: If samples are given.
        """
        if samples is not None:
            raise FieldnetError(f"samples given, but the run is a {self.kind} run "
                                f"(model.objective={self.name!r})")
        return held_out.predict_stack(model, test["x"], config.eval.batch_size,
                                      test["cond"]), None

    def evaluate(self, model: nnx.Module, ds, config: ml_collections.ConfigDict,
                 samples: np.ndarray | None = None,
                 calibrations: dict[str, calibration.Calibration] | None = None
                 ) -> held_out.HeldOut:
        """The run's predictions of its test split beside the local baseline's, and their
        statistics (`held_out.score`): `h.summary` is eval.json's "test" block.

        Args:
            model: The run's network.
            ds: The run's dataset.
            config: The run's config.
            samples: A generative run's samples (N, S, *spatial, C), normalized, kept from
                its evaluation (`saved_samples`), evaluated instead of drawing new ones.
            calibrations: A generative run's calibration of each target, kept from its
                evaluation (`saved_calibrations`); refused here.

        Returns:
            The `HeldOut` of the test split.

        Raises:
            FieldnetError: If calibrations are given.
        """
        if calibrations is not None:
            raise FieldnetError(f"calibrations given, but the run is a {self.kind} run "
                                f"(model.objective={self.name!r})")
        test = ds.read("test")
        pred, samples = self.predict_test(model, test, config, samples)
        return held_out.score(ds, config, test, pred, samples, self.statistics)

    def save_evaluation(self, workdir: str | Path, h: held_out.HeldOut, ds,
                        config: ml_collections.ConfigDict) -> None:
        """Keeps in the workdir what evaluating the run again needs besides its checkpoint
        (nothing, here).

        Args:
            workdir: The run's folder.
            h: Its evaluation (`evaluate`).
            ds: Its dataset.
            config: Its config.
        """

    def saved_samples(self, workdir: str | Path, ds) -> np.ndarray | None:
        """What `save_evaluation` kept, for `evaluate(..., samples=)`: None here.

        Args:
            workdir: The run's folder.
            ds: Its dataset, opened with its normalizer.

        Returns:
            The kept samples, normalized, or None.
        """
        return None

    def saved_calibrations(self, workdir: str | Path) -> dict | None:
        """The calibrations `save_evaluation` kept, for `evaluate(..., calibrations=)` and
        for sampling: None here.

        Args:
            workdir: The run's folder.

        Returns:
            {target label: `calibration.Calibration`}, or None.
        """
        return None

    def sample(self, run, x, n_samples: int, *, cond=None, seed: int = 0,
               steps: int | None = None, calibrated: bool = True, batch_size: int = 8,
               progress: bool = False) -> np.ndarray:
        """Samples of maps drawn by a trained generative run (`fieldnet.inference.Run.sample`):
        refused here.

        Args:
            run: The trained run.
            x: Its normalized inputs, (N, *spatial, C_in).
            n_samples: Samples per map.
            cond: Per map, the standardized parameters of a conditioned run, (N, P).
            seed: Seed of the noise.
            steps: Heun steps per sample; None: the run's eval.sample_steps.
            calibrated: Apply the run's calibrations.
            batch_size: Maps per batch of network evaluations.
            progress: Show a progress bar.

        Raises:
            FieldnetError: Always: the run predicts one field per map.
        """
        raise FieldnetError(f"{run.workdir} is a {self.kind} run (model.objective="
                            f"{self.name!r}); it predicts one field per map, not samples")

    def check_file_request(self, workdir, samples, named: Callable[[str], str]) -> None:
        """Checks the arguments of a file prediction (`fieldnet.inference.predict_file`)
        that depend on the objective: `samples` is refused here.

        Args:
            workdir: The run's folder, for messages.
            samples: The samples asked for per map, or None.
            named: How a message names an argument of `predict_file` (a command line
                names its flags).

        Raises:
            FieldnetError: One line naming the argument.
        """
        if samples is not None:
            raise FieldnetError(f"{named('samples')}: {workdir} is a {self.kind} run "
                                f"(model.objective={self.name!r}); it predicts one field per "
                                "map, not samples")

    def write_file(self, out, run, source, conditions: Sequence, *, tile: int, batch: int,
                   samples: int | None, steps: int | None, seed: int, progress: bool,
                   calibrated: bool = True) -> None:
        """Writes the prediction of every map of `source` into the open output file `out`:
        /fields/<target> (maps, *spatial), physical units.

        Args:
            out: The output file, open for writing (`h5format.create`).
            run: The trained run (`fieldnet.inference.open_run`).
            source: The input `FieldSource`.
            conditions: Per map, the standardized parameters of a conditioned run, or None.
            tile: Tile core size in pixels (`predict_field`).
            batch: Tiles per forward pass.
            samples: Unused here.
            steps: Unused here.
            seed: Unused here.
            progress: Show progress bars.
            calibrated: Unused here.
        """
        n, spatial = source.num_samples, source.spatial_shape
        names = run.io["target_names"]
        outputs = [h5format.add_field(out, name, (n, *spatial), units=run.io["target_units"][k],
                                      description=f"predicted by {run.provenance['run']}")
                   for k, name in enumerate(names)]
        predict = field_predictor(run.model, tile, batch)
        for i in tqdm(range(n), desc="maps", disable=not progress or n == 1):
            z = run.normalizer.forward_channels(run.io["input_names"], read_inputs(source, i))
            y = run.normalizer.inverse_channels(names, predict(z, conditions[i],
                                                               progress and n == 1))
            for k, dataset in enumerate(outputs):
                dataset[i] = y[..., k]


OBJECTIVES: Registry[type[Objective]] = Registry("objective", "model.objective")


def _draw(model: nnx.Module, x, cond, n_samples: int, *, seed: int, steps: int,
          batch_size: int, progress: bool) -> np.ndarray:
    """`n_samples` samples (N, S, *spatial, C) of each of the maps `x` (normalized), map i's
    noise `sampling.sample_noise(seed, i, ...)`: what evaluation, calibration and
    `Run.sample` all draw."""
    x = np.asarray(x, np.float32)
    shape = (*x.shape[1:-1], model.out_channels)
    noise = np.stack([sampling.sample_noise(seed, i, shape, n_samples) for i in range(len(x))])
    return sampling.sample_stack(model, x, noise, steps=steps, cond=cond,
                                 batch_size=batch_size, progress=progress)


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator that registers an `Objective` subclass as `model.objective = name`.

    Args:
        name: The name a config gives to choose it.

    Returns:
        The decorator; it sets the class's `name` and returns the class.

    Raises:
        ValueError: (when decorating) If `name` is already registered.
    """

    def register(cls: type[Objective]) -> type[Objective]:
        cls.name = name
        return OBJECTIVES.register(name)(cls)

    return register


def of(model_config: ml_collections.ConfigDict) -> Objective:
    """The objective that `model_config.objective` names (absent: "regression").

    Args:
        model_config: `config.model`.

    Returns:
        The objective.

    Raises:
        FieldnetError: (a ValueError) If no objective is registered under that name; the
            one line lists the registered ones.

    Examples:
        >>> import ml_collections
        >>> from fieldnet import objectives
        >>> objectives.of(ml_collections.ConfigDict({"objective": "flow"})).generative
        True
    """
    name = model_config.get("objective", DEFAULT)
    if name not in OBJECTIVES.names():
        raise FieldnetError(f"model.objective must be one of {tuple(OBJECTIVES.names())}, got "
                            f"{name!r}")
    return OBJECTIVES.get(name)()


def check_config(config: ml_collections.ConfigDict) -> None:
    """Checks `model.objective` and the keys it needs, in one line: a `train.loss` or an
    `eval.statistics` entry that another objective claims is refused with the objective to
    set, then the objective checks its own keys (`Objective.check_config`).

    Args:
        config: A study's config (`model`, `train`, `eval`).

    Raises:
        FieldnetError: One line naming the key.
    """
    objective = of(config.model)
    loss = config.train.loss
    chosen = statistics.selected(config.eval.get("statistics", ""))
    for name in OBJECTIVES.names():
        if name == objective.name:
            continue
        other = OBJECTIVES.get(name)
        if loss in other.losses:
            raise FieldnetError(f"train.loss={loss!r} trains a {other.kind} model; set "
                                f"model.objective={name!r}")
        claimed = [s for s in other.statistics if s in chosen and s not in objective.statistics]
        if claimed:
            raise FieldnetError(f"eval.statistics: {claimed[0]!r} is computed for {other.kind} "
                                f"runs (model.objective={name!r}) only")
    objective.check_config(config)


def build(model_config: ml_collections.ConfigDict, *, rngs: nnx.Rngs, in_channels: int,
          out_channels: int, ndim: int, cond_dim: int = 0) -> nnx.Module:
    """A run's network: `models.build` of `model_config`, sized by the objective for the
    task (`Objective.network_io`).

    Args:
        model_config: `config.model`.
        rngs: Random streams for the weights.
        in_channels: Channels of the task's input.
        out_channels: Channels of the task's target.
        ndim: Number of spatial axes.
        cond_dim: Number of simulation parameters the task is conditioned on.

    Returns:
        The network.

    Raises:
        ValueError: On an unknown objective, a model the objective cannot train, or what
            `models.build` refuses.
    """
    objective = of(model_config)
    objective.check_model(model_config)
    return models.build(model_config, rngs=rngs, ndim=ndim,
                        **objective.network_io(in_channels, out_channels, cond_dim))


def read_inputs(source, i: int) -> np.ndarray:
    """The input fields of map `i` of a `FieldSource`, concatenated on the channel axis.

    Args:
        source: The data source.
        i: Index of the map.

    Returns:
        Array of shape `(*spatial, C_in)`, in physical units.
    """
    return np.concatenate([source.read_sample(f, i) for f in source.inputs], axis=-1)


@register_objective("regression")
class Regression(Objective):
    """The network predicts the target (see `Objective`)."""


@register_objective("flow")
class Flow(Objective):
    """Conditional flow matching (`fieldnet.nn.flow`): the network is the velocity of the
    straight path from noise to the target, trained by `train.loss = "flow_matching"`; a
    map's prediction is `eval.n_samples` samples (each `eval.sample_steps` Heun steps) and
    their mean, and the "samples" statistics score them. Drawing them costs minutes on a
    CPU, so a run keeps its test samples (the workdir's test_samples.h5), from which it is
    evaluated again without drawing them."""

    kind = "generative"
    generative = True
    losses = ("flow_matching",)
    statistics = ("samples",)

    def check_config(self, config: ml_collections.ConfigDict) -> None:
        """Checks the keys of a study config that the flow objective needs.

        Besides the base checks: the model (`check_model`), at least 2 `eval.n_samples` and
        at least 1 `eval.sample_steps`.

        Args:
            config: The study's config (`model`, `train`, `eval`).

        Raises:
            FieldnetError: One line naming the key.
        """
        super().check_config(config)
        try:
            self.check_model(config.model)
        except ValueError as err:
            raise FieldnetError(str(err)) from None
        e = config.eval
        for key, least in (("n_samples", 2), ("sample_steps", 1)):
            value = e.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise FieldnetError(f"eval.{key} must be an integer ≥ {least} for "
                                    f"model.objective='flow', got {value!r}")

    def check_model(self, model_config: ml_collections.ConfigDict) -> None:
        """Refuses a model other than a U-Net without a global residual.

        The network's input is the density and the state, so it does not predict a residual
        of its input.

        Args:
            model_config: `config.model`.

        Raises:
            ValueError: One line naming the keys.
        """
        if model_config.get("name", "unet") != "unet" or model_config.get("global_residual"):
            raise ValueError("model.objective='flow' needs model.name='unet' without "
                             "global_residual (its input is the density and the state)")

    def network_io(self, in_channels: int, out_channels: int, cond_dim: int) -> dict[str, int]:
        """The velocity network's channel counts and cond_dim (`flow.network_io`).

        Args:
            in_channels: Channels of the task's input.
            out_channels: Channels of the task's target.
            cond_dim: Number of simulation parameters the task is conditioned on (0: none).

        Returns:
            {"in_channels": in_channels + out_channels, "out_channels": out_channels,
            "cond_dim": cond_dim + `flow.TIME_FEATURES`}.
        """
        return flow.network_io(in_channels, out_channels, cond_dim)

    def predict_test(self, model, test, config, samples=None):
        """The mean of samples of every test map, and the samples, normalized.

        Draws them (`sample_test`) unless samples kept from an earlier evaluation are given.

        Args:
            model: The velocity network.
            test: The test split, `ds.read("test")`.
            config: The run's config.
            samples: Samples kept from an earlier evaluation, `(N, S, *spatial, C)`; None:
                draw new ones.

        Returns:
            (mean (N, *spatial, C), samples (N, S, *spatial, C)).

        Raises:
            FieldnetError: If given samples do not fit the test split.
        """
        if samples is None:
            samples = self.sample_test(model, test, config)
        else:
            samples = held_out.check_samples(samples, test)
        return samples.mean(axis=1), samples

    def sample_test(self, model: nnx.Module, test: dict,
                    config: ml_collections.ConfigDict, seed: int | None = None) -> np.ndarray:
        """`config.eval.n_samples` samples (N, S, *spatial, C) of each map of a split
        (normalized), map i's noise drawn as `sampling.sample_noise(seed, i, ...)`.

        Args:
            model: The velocity network.
            test: The maps, as `ds.read` gives them (the test split in evaluation).
            config: The run's config.
            seed: Seed of the noise; None: `config.seed` (the test maps').

        Returns:
            The samples.
        """
        e = config.eval
        return _draw(model, test["x"], test["cond"], e.n_samples,
                     seed=config.seed if seed is None else seed, steps=e.sample_steps,
                     batch_size=e.batch_size, progress=config.train.progress)

    def calibrate(self, model: nnx.Module, ds,
                  config: ml_collections.ConfigDict) -> dict[str, calibration.Calibration] | None:
        """Fits the calibration of each target's samples on validation maps
        (`calibration.fit`, with the method `eval.calibration_method`).

        `config.eval.calibration_maps` maps of the validation split, taken in turn from each
        validation box (`calibration.spread_maps`), get `eval.n_samples` samples each, their
        noise from seed `config.seed + calibration.VALIDATION_SEED_OFFSET`, so that they
        share none with the test maps'. The test split is never read.

        Args:
            model: The velocity network.
            ds: The run's dataset.
            config: The run's config.

        Returns:
            {target label: `calibration.Calibration`} in channel order, or None when
            `eval.calibration_maps` is 0.
        """
        n = config.eval.get("calibration_maps", 0)
        if not n:
            return None
        regions = ds.splits["val"]
        chosen = calibration.spread_maps(ds.sim_indices("val"), n)
        val = ds.read(np.asarray([regions[i].sample for i in chosen]))
        drawn = self.sample_test(model, val, config,
                                 seed=config.seed + calibration.VALIDATION_SEED_OFFSET)
        method = config.eval.get("calibration_method", calibration.METHOD)
        return {label: calibration.fit(drawn[..., c], val["y"][..., c], method=method)
                for label, _, c in held_out.scored_targets(ds)}

    def evaluate(self, model, ds, config, samples=None, calibrations=None):
        """The samples' evaluation (see `Objective.evaluate`), calibrated.

        A fresh evaluation (no kept samples) fits the calibrations (`calibrate`); a kept
        one takes those kept beside its samples. With calibrations, each target's
        "samples" block gains `pit_ks` of the raw samples and `calibrated_coverage_68`,
        `calibrated_coverage_95`, `calibrated_pit_ks` and the fitted `spread`
        (`calibration.summary`), and `h.calibrations` holds them.

        Args:
            model: The velocity network.
            ds: The run's dataset.
            config: The run's config.
            samples: Test samples kept from an earlier evaluation; None: draw them.
            calibrations: Calibrations kept from an earlier evaluation; None: fitted when
                the samples are drawn here, else none.

        Returns:
            The `HeldOut` of the test split.
        """
        if calibrations is None and samples is None:
            calibrations = self.calibrate(model, ds, config)
        h = super().evaluate(model, ds, config, samples)
        if calibrations:
            if list(calibrations) != list(h.targets):
                raise FieldnetError(f"the calibrations are of {list(calibrations)}, the run's "
                                    f"targets are {list(h.targets)}")
            for label, c in h.targets.items():
                keys = calibration.summary(c.samples_norm, c.true_norm, calibrations[label])
                h.summary["fields"][label]["samples"].update(
                    {k: v for k, v in keys.items() if not k.startswith("coverage_")})
            h.calibrations = dict(calibrations)
        return h

    def save_evaluation(self, workdir, h, ds, config) -> None:
        """Keeps the test samples in the workdir's test_samples.h5 (`write_test_samples`),
        and the calibrations, if any, in its calibration.json (`calibration.save_fields`).

        Args:
            workdir: The run's folder.
            h: Its evaluation (`evaluate`), with the samples.
            ds: Its dataset.
            config: Its config.
        """
        held_out.write_test_samples(rundir.test_samples(workdir), h, ds, config)
        if h.calibrations:
            calibration.save_fields(rundir.calibration(workdir), h.calibrations)

    def saved_calibrations(self, workdir) -> dict | None:
        """The calibrations that `save_evaluation` kept (calibration.json), or None for a run
        evaluated without them.

        Args:
            workdir: The run's folder.

        Returns:
            {target label: `calibration.Calibration`}, or None.

        Raises:
            FieldnetError: If calibration.json exists but is not a run's calibrations.
        """
        path = rundir.calibration(workdir)
        return calibration.load_fields(path) if path.exists() else None

    def saved_samples(self, workdir, ds) -> np.ndarray:
        """The test samples `save_evaluation` kept, for `evaluate(..., samples=)`.

        Args:
            workdir: The run's folder.
            ds: Its dataset, opened with its normalizer.

        Returns:
            The samples, normalized, `(N, S, *spatial, C)`.

        Raises:
            FileNotFoundError: If the run kept no test_samples.h5.
            FieldnetError: If the file holds other maps than the test split, or is not a
                readable samples file.
        """
        return held_out.read_test_samples(rundir.test_samples(workdir), ds)

    def sample(self, run, x, n_samples, *, cond=None, seed=0, steps=None, calibrated=True,
               batch_size=8, progress=False):
        """`n_samples` samples of each map, drawn by the trained run and calibrated.

        Map i's noise is `sampling.sample_noise(seed, i, ...)`, as in evaluation and
        `write_file`; with `calibrated` and a calibrated run, each map's samples are widened
        about their mean by the spread fitted on its validation maps (`run.calibrations`).

        Args:
            run: The trained run (`fieldnet.inference.open_run`).
            x: Its normalized inputs, (N, *spatial, C_in) (`run.normalizer.forward_channels`).
            n_samples: Samples per map (at least 2 for calibrated samples).
            cond: Per map, the standardized parameters of a conditioned run, (N, P).
            seed: Seed of the noise.
            steps: Heun steps per sample; None: the run's eval.sample_steps.
            calibrated: Apply the run's calibrations, if it has them; False: raw samples.
            batch_size: Maps per batch of network evaluations.
            progress: Show a progress bar.

        Returns:
            The normalized samples, (N, S, *spatial, C).
        """
        steps = run.config.eval.sample_steps if steps is None else steps
        drawn = _draw(run.model, x, cond, n_samples, seed=seed, steps=steps,
                      batch_size=batch_size, progress=progress)
        if calibrated and run.calibrations:
            drawn = calibration.apply_channels(list(run.calibrations.values()), drawn)
        return drawn

    def check_file_request(self, workdir, samples, named) -> None:
        """Checks that a file prediction asks for a positive number of samples per map.

        Args:
            workdir: The run's folder, for messages.
            samples: The samples asked for per map.
            named: How a message names an argument of `predict_file` (a command line names
                its flags).

        Raises:
            FieldnetError: One line naming the argument, unless `samples` is a positive
                integer.
        """
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise FieldnetError(f"{workdir} is a {self.kind} run (model.objective="
                                f"{self.name!r}): pass {named('samples')} N (a positive "
                                f"integer), got {samples!r}")

    def write_file(self, out, run, source, conditions, *, tile, batch, samples, steps, seed,
                   progress, calibrated=True) -> None:
        """Writes `samples` samples of every map of `source` into the open output file `out`.

        `steps` Heun steps (None for the run's eval.sample_steps); the noise of sample j of map
        i from `sampling.sample_noise(seed, i, ...)`, whole-field, with tiled network
        evaluations: samples/<target> (maps, samples, *spatial) with their mean/<target> and
        std/<target> (maps, *spatial), physical units.

        Args:
            out: The output file, open for writing (`h5format.create`).
            run: The trained run (`fieldnet.inference.open_run`).
            source: The input `FieldSource`.
            conditions: Per map, the standardized parameters of a conditioned run, or None.
            tile: Tile core size in pixels (`predict_field`).
            batch: Tiles per forward pass.
            samples: Samples per map.
            steps: Heun steps per sample; None: the run's `eval.sample_steps`.
            seed: Seed of the noise.
            progress: Show a progress bar.
            calibrated: Calibrate the samples with the run's calibrations
                (`run.calibrations`, fitted on its validation maps), if it has them; False:
                the raw samples.
        """
        steps = run.config.eval.sample_steps if steps is None else steps
        n, spatial = source.num_samples, source.spatial_shape
        names = run.io["target_names"]
        cals = list(run.calibrations.values()) if calibrated and run.calibrations else None
        spreads = "" if not cals else ", calibrated: " + ", ".join(
            f"{name} {calibration.describe(cal)}" for name, cal in run.calibrations.items())
        write = h5format.add_samples(
            out, names, run.io["target_units"], n, samples, spatial,
            origin=f"drawn by {run.provenance['run']} ({steps} Heun steps, seed {seed}"
                   f"{spreads})")
        sample = field_sampler(run.model, tile, batch)
        # samples integrated together: as many as fill one batch of tiles (one at a time for
        # a field of `batch` tiles or more, so memory stays set by tile and batch)
        together = max(1, batch // tiles_per_field(run.model, spatial, tile))
        with tqdm(total=n * samples, desc="samples", disable=not progress) as bar:
            for i in range(n):
                z = run.normalizer.forward_channels(run.io["input_names"],
                                                    read_inputs(source, i))
                drawn = []
                for j in range(0, samples, together):
                    chosen = list(range(j, min(j + together, samples)))
                    noise = sampling.sample_noise(seed, i, (*spatial, run.model.out_channels),
                                                  chosen)
                    drawn.extend(sample(z, noise, steps=steps, params=conditions[i]))
                    bar.update(len(chosen))
                drawn = np.stack(drawn)
                if cals:
                    drawn = calibration.apply_channels(cals, drawn[None])[0]
                write(i, run.normalizer.inverse_channels(names, drawn))
