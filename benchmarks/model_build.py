"""Time to build a model: the parameter initialisation of `fieldnet.nn.layers` against drawing
every parameter with its own `jax.random.truncated_normal` call (one compilation per shape).

    python -m benchmarks.model_build [--config experiments/configs/density_to_temp.py]
        [--repeats 3]

Builds the config's model (one input and one output channel) both ways in one process,
alternating, each after `jax.clear_caches()` so that every build compiles what it needs as
in a fresh process, and prints a JSON line: the median seconds of each and whether the two
give identical parameters.
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import time

import jax
import numpy as np
from flax import nnx

from fieldnet import cli, models
from fieldnet.nn import layers


def _load_config(path: str):
    module = cli.import_user_file(path, "get_config", "config file")
    return cli.call_user(path, module.get_config)


@contextlib.contextmanager
def _draws_per_shape():
    """The initialisation as it was: one eager truncated_normal per parameter shape."""
    fast = layers._truncated_normal
    layers._truncated_normal = lambda key, shape: np.asarray(
        jax.random.truncated_normal(key, -2, 2, shape))
    try:
        yield
    finally:
        layers._truncated_normal = fast


def timed_build(model_config, seed: int = 0):
    jax.clear_caches()
    start = time.perf_counter()
    model = models.build(model_config, rngs=nnx.Rngs(seed), in_channels=1, out_channels=1,
                         ndim=2)
    seconds = time.perf_counter() - start
    return seconds, [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/configs/density_to_temp.py")
    parser.add_argument("--repeats", type=cli.positive_int, default=3)
    args = parser.parse_args(argv)
    model_config = _load_config(args.config).model
    jax.numpy.zeros(1).block_until_ready()  # start the backend outside the timings
    times = {"fieldnet": [], "per_shape": []}
    for _ in range(args.repeats):
        seconds, fast = timed_build(model_config)
        times["fieldnet"].append(seconds)
        with _draws_per_shape():
            seconds, direct = timed_build(model_config)
        times["per_shape"].append(seconds)
    same = len(fast) == len(direct) and all(
        a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(fast, direct, strict=True))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"config": args.config, "params": len(fast),
                      "fieldnet_s": round(medians["fieldnet"], 3),
                      "per_shape_s": round(medians["per_shape"], 3),
                      "speedup": round(medians["per_shape"] / medians["fieldnet"], 1),
                      "identical_params": same, "repeats": args.repeats,
                      "jax": jax.__version__, "machine": platform.machine()}))


if __name__ == "__main__":
    main()
