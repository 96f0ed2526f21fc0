"""What every experiment's command line shares: multi-host start-up and one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from fieldnet.errors import FieldnetError
from fieldnet.train import TrainingInterrupted

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (default runs/<config.name>); "
                               "an existing run there is resumed.")
flags.mark_flags_as_required(["config"])

_COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0, for a "
                                   "multi-process run (jax.distributed.initialize).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in the run.")


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with a bad config key or value reported in one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        fail(str(err))
    except (AttributeError, KeyError, ValueError, TypeError, OSError) as err:
        # ml_collections nests the KeyError's repr, quotes and escaped newlines included.
        reason = str(err).replace("\\n", " ").replace("\\'", "'").replace("\n", " ")
        fail(f"bad --config: {reason.strip(chr(39) + chr(34))}")


def fail(reason: str, code: int = 2):
    print(f"error: {reason}", file=sys.stderr)
    sys.exit(code)


def initialize_distributed() -> None:
    """Joins a multi-process run when --coordinator is given (otherwise single process)."""
    if _COORDINATOR.value is None:
        return
    import jax

    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)


def start(work: Callable[[], Callable]) -> None:
    """The command line: parses flags, then runs `work()(config, workdir)`.

    `work` imports the study lazily, so `--help` and flag errors answer at once.
    """
    app.run(lambda argv: run(lambda: work()(_CONFIG.value, _WORKDIR.value), argv),
            flags_parser=parse_flags)


def run(work: Callable[[], dict], argv) -> None:
    """Runs `work`, prints its summary; user errors and stops exit non-zero in one line."""
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}")
    # Orbax reports every save at INFO; keep the terminal for the progress bar.
    logging.set_verbosity(logging.WARNING)
    try:
        initialize_distributed()
        report = work()
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        sys.exit(128 + stop.signum)
    except (FieldnetError, FileNotFoundError, FileExistsError) as err:
        fail(str(err))
    print(json.dumps(_headline(report), indent=1))


def _headline(report: dict) -> dict:
    """The scalar numbers of a report (the curves stay in eval.json)."""
    out = {}
    for key, value in report.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in _headline(value).items()})
        elif not isinstance(value, list):
            out[key] = value
    return out
