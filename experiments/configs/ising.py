"""Phases of the 2D Ising model: a periodic, symmetric CNN classifier locates T_c.

    python -m experiments.ising_phases --config experiments/configs/ising.py

Generates the Monte Carlo dataset on first use (runs/data/, reused afterwards), trains an
ensemble of 4 classifiers (seeds 4*seed .. 4*seed+3) on T <= 2.0 (ordered) and T >= 2.6
(disordered) only, and extrapolates the 1/2 crossings of their mean P(ordered | T) to
L -> infinity. About 10 minutes on a 2-core CPU, Monte Carlo included. Smoke run:

    python -m experiments.ising_phases --config experiments/configs/ising.py:quick
"""

import ml_collections

from fieldnet import train


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "ising_phases"
    c.seed = 0

    # K classifiers trained with seeds K*seed + k (workdir/member_k/); the curves use their
    # mean P(ordered), and the error of T_c includes the scatter between them.
    c.ensemble = ml_collections.ConfigDict()
    c.ensemble.size = 4

    c.data = ml_collections.ConfigDict()
    c.data.path = "runs/data/ising_L16-64_c16.h5"
    c.data.lattice_sizes = (16, 24, 32, 48, 64)
    c.data.ordered_below = 2.0          # training labels: T <= this is ordered
    c.data.disordered_above = 2.6       # and T >= this disordered; nothing in between
    c.data.eval_chain_fraction = 0.5    # chains held out for the P(ordered | T) curves
    c.data.split_seed = 0

    # Used only when data.path does not exist yet (data_tools.ising makes it).
    c.generate = ml_collections.ConfigDict()
    c.generate.enabled = True
    c.generate.samples = 200            # per (L, T)
    c.generate.chains = 16
    c.generate.seed = 0
    c.generate.n_temps = 0              # 0: the default grid, denser near T_c
    c.generate.t_min = 1.0
    c.generate.t_max = 3.5

    c.model = ml_collections.ConfigDict()
    c.model.name = "resnet"
    c.model.width = 8
    c.model.depth = 3
    c.model.padding = "periodic"
    c.model.symmetry = "dihedral"
    c.model.flip_invariant = True
    c.model.kernel_size = 3
    c.model.norm = "layer"
    c.model.act = "gelu"

    c.train = train.default_config()
    c.train.loss = "cross_entropy"
    c.train.num_steps = 250
    c.train.batch_size = 64
    c.train.learning_rate = 3e-3
    c.train.eval_every = 100
    c.train.checkpoint_every = 100
    c.train.val_batches = 1

    c.analysis = ml_collections.ConfigDict()
    c.analysis.n_bootstrap = 200
    c.analysis.bootstrap_seed = 0
    c.analysis.nu = 1.0
    c.analysis.corrections = 1          # terms L^(-1/nu) ... L^(-n/nu) in the extrapolation
    c.analysis.batch_size = 256

    if arg == "quick":
        c.data.path = "runs/data/ising_quick.h5"
        c.data.lattice_sizes = (8, 12, 16)
        c.generate.samples = 64
        c.generate.n_temps = 14
        c.ensemble.size = 2
        c.model.depth = 2
        c.train.num_steps = 60
        c.train.batch_size = 32
        c.train.warmup_steps = 10
        c.train.eval_every = c.train.checkpoint_every = 30
        c.analysis.n_bootstrap = 50
    elif arg:
        raise ValueError(f"unknown config argument {arg!r}; use ':quick' or nothing")
    return c
