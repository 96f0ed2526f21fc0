r"""Predict whole fields with a trained run, by exact periodic tiling.

    python -m experiments.predict --workdir RUN --input FILE.h5 --output OUT.h5 \
        [--field NAME --tile 64 --batch 8 --overwrite]

Loads the run's config, normalization and best checkpoint; writes the prediction in
physical units with provenance attributes (run, checkpoint step, config hash, source file).
"""

import argparse

from fieldnet import cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.predict",
                                description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="a trained run's folder")
    p.add_argument("--input", required=True, help="HDF5 file with the input field(s)")
    p.add_argument("--output", required=True, help="HDF5 file to write")
    p.add_argument("--field", help="input field name(s) or dataset path(s), comma-separated "
                   "(default: the run's input fields)")
    p.add_argument("--tile", type=int, default=64, help="tile core size in pixels")
    p.add_argument("--batch", type=int, default=8, help="tiles per batch")
    p.add_argument("--overwrite", action="store_true")
    return p


def main(argv=None) -> int:
    from fieldnet.eval.inference import predict_file

    args = build_parser().parse_args(argv)
    result = predict_file(args.workdir, args.input, args.output, fields=args.field,
                          tile=args.tile, batch=args.batch, overwrite=args.overwrite)
    print(f"wrote {result['output']} ({result['samples']} samples, checkpoint step "
          f"{result['checkpoint_step']})")
    return 0


if __name__ == "__main__":
    cli.run(main)
