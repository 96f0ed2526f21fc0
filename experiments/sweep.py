r"""Run the density -> temperature study under a list of config overrides; tabulate it.

    python -m experiments.sweep --config experiments/configs/density_to_temp.py \
        --variations experiments/configs/density_to_temp_variations.py --workdir runs/sweep

Writes runs/sweep/<variation>/ (a full run each) and runs/sweep/table.md, table.csv.
Rerunning resumes: finished variations are evaluated again from their checkpoints.
"""

from pathlib import Path

from absl import flags

from experiments import launch

_VARIATIONS = flags.DEFINE_string("variations", None, "Python file with get_variations() -> "
                                  "{name: {dotted.key: value}}.")
flags.mark_flags_as_required(["variations"])


def load_variations(path: str) -> dict:
    """get_variations() of the file at `path`; a file that does not import, has no
    get_variations or raises in it is a one-line error naming the file and the line."""
    from fieldnet import cli

    module = cli.import_user_file(path, "get_variations", "variations file")
    return cli.call_user(path, module.get_variations)


def study():
    from experiments.studies import density_to_temp, sweep
    from fieldnet import rundir

    def run(config, workdir):
        out = workdir or Path("runs") / f"{config.name}_sweep"
        rows = sweep.run_sweep(config, load_variations(_VARIATIONS.value), out,
                               density_to_temp.train_and_evaluate)
        return {"table": str(Path(out) / rundir.TABLE_MD), "variations": len(rows)}

    return run


if __name__ == "__main__":
    launch.start(study)
