r"""Predict whole fields with a trained run, by exact periodic tiling.

    python -m experiments.predict --workdir RUN --input FILE.h5 --output OUT.h5 \
        [--field NAME --tile 64 --batch 8 --params a=1,b=2 --overwrite]
        [--samples N --steps 20 --seed 0 --uncalibrated]   # a generative (flow) run

Loads the run's config, normalization and best checkpoint; writes the prediction in
physical units with provenance attributes (run, checkpoint step, config hash, source file).
A run conditioned on simulation parameters (data.condition_on) reads them from the input
file's /params, or from --params for every sample. A generative run (model.objective=flow)
draws --samples N samples of every map instead and writes samples/<target> (maps, N,
*spatial) with their mean/<target> and std/<target>, calibrated by the spread the run
fitted on its validation maps (calibration.json) unless --uncalibrated.
"""

import argparse

from fieldnet import cli

# The flags that stand for predict_file's arguments, for its error messages.
FLAGS = {"output_path": "--output", "samples": "--samples", "params": "--params",
         "calibrated": "--uncalibrated"}


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m experiments.predict",
                                description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="a trained run's folder")
    p.add_argument("--input", required=True, help="HDF5 file with the input field(s)")
    p.add_argument("--output", required=True, help="HDF5 file to write")
    p.add_argument("--field", help="input field name(s) or dataset path(s), comma-separated "
                   "(default: the run's input fields)")
    p.add_argument("--tile", type=int, default=64, help="tile core size in pixels")
    p.add_argument("--batch", type=int, default=8, help="tiles per batch")
    p.add_argument("--params", type=parse_params, default=None,
                   help="simulation parameters of a conditioned run, name=value,... "
                   "(default: the input file's /params)")
    p.add_argument("--samples", type=cli.positive_int, default=None,
                   help="samples to draw of every map (generative runs only, and required "
                   "for them)")
    p.add_argument("--steps", type=cli.positive_int, default=None,
                   help="Heun steps per sample (default: the run's eval.sample_steps)")
    p.add_argument("--seed", type=cli.non_negative_int, default=0,
                   help="seed of the samples' noise")
    p.add_argument("--uncalibrated", action="store_true",
                   help="write a calibrated run's raw samples (default: calibrated as its "
                   "calibration.json says)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    return p


def parse_params(text: str) -> dict[str, float]:
    """'a=1,b=2.5' -> {'a': 1.0, 'b': 2.5}; anything else is argparse's one-line error."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected name=value,..., got {item!r}") from None
    return out


def main(argv=None) -> int:
    from fieldnet.inference import predict_file

    args = build_parser().parse_args(argv)
    result = predict_file(args.workdir, args.input, args.output, fields=args.field,
                          tile=args.tile, batch=args.batch, overwrite=args.overwrite,
                          params=args.params, samples=args.samples, steps=args.steps,
                          seed=args.seed, calibrated=not args.uncalibrated,
                          argument_names=FLAGS)
    drawn = "" if args.samples is None else f", {args.samples} draws of each"
    print(f"wrote {result['output']} ({result['samples']} samples{drawn}, checkpoint step "
          f"{result['checkpoint_step']})")
    return 0


if __name__ == "__main__":
    cli.run(main, flags=cli.OVERWRITE_FLAG)
