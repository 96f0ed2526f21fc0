"""What every study's command line shares: its help, config loading, multi-host start-up,
the one error policy of `fieldnet.cli`, and the closing summary."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from fieldnet import cli, rundir
from fieldnet.errors import FieldnetError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file "
                                          "(FILE.py or FILE.py:ARG); override any key with "
                                          "--config.a.b=value.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (default runs/<config.name>); "
                               "an existing run there is resumed.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0, for a "
                                   "multi-process run (jax.distributed.initialize).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in the run.")

HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "-?")
# The library names the run folder by its argument; the command line by this flag.
ARGUMENT_FLAGS = {"workdir": "--workdir"}


def print_help(doc: str | None) -> None:
    """The command's docstring as written, then its own flags with their defaults (absl's
    --help lists none of them, and --helpfull buries them among a hundred)."""
    print((doc or "").rstrip() + "\n\nflags:")
    # absl files the flags of the program it runs under its path, not "__main__".
    by_module = flags.FLAGS.flags_by_module_dict()
    own = [f for module in (__name__, "__main__", sys.argv[0])
           for f in by_module.get(module, [])]
    for flag in sorted(own, key=lambda f: f.name):
        default = "" if flag.default is None else f" (default: {flag.default})"
        print(f"  --{flag.name}: {flag.help}{default}")
    print("\n  --helpfull: every flag, absl's included")


def config_argument(argv: list[str]) -> str | None:
    """The value of --config in argv (FILE.py or FILE.py:ARG), if given."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.partition("=")[2]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with a bad config file, key or value reported in one line."""
    argument = config_argument(argv)
    if argument is None:
        cli.fail("--config FILE.py is required (see --help)")
    path = argument.partition(":")[0]
    if not Path(path).is_file():
        cli.fail(f"--config {argument}: no such config file")
    try:  # a file that does not import, or has no get_config, is named in one line
        cli.import_user_file(path, "get_config", "config file")
    except FieldnetError as err:
        cli.fail(f"--config {cli.one_line(err)}")
    try:
        return flags.FLAGS(argv)
    except Exception as err:  # get_config itself raised: the error at its line
        reason = cli.user_code_error(path, err)
        if reason is not None:
            cli.fail(f"--config {reason}")
        if isinstance(err, flags.Error):
            cli.fail(_config_reason(err))
        if isinstance(err, AttributeError | KeyError | ValueError | TypeError | OSError):
            key = _unknown_key(err)
            cli.fail(f"bad --config: no key {key}" if key
                     else f"bad --config: {_config_reason(err)}")
        raise


def _unknown_key(err: BaseException) -> str | None:
    """'name' (and its suggestion) of an override of a key the config does not have."""
    inner = err.args[0] if isinstance(err, AttributeError) and err.args else err
    if not isinstance(inner, KeyError) or not inner.args:
        return None
    name, _, hint = str(inner.args[0]).partition("\n")
    return f"{name} in the config" + (f"; {hint}" if hint else "")


def _config_reason(err: BaseException) -> str:
    text = str(err)
    if "Traceback (most recent call last)" in text:
        # a config file that raised: its own message is the traceback's last line
        head = text.partition(": Error whilst parsing")[0].replace("flag --config=", "--config ")
        text = f"{head}: {text.strip().splitlines()[-1]}"
    # ml_collections nests the KeyError's repr, quotes and escaped newlines included.
    reason = text.replace("\\n", " ").replace("\\'", "'").replace("\n", " ")
    return " ".join(reason.strip(chr(39) + chr(34)).split())


def load_config():
    """The parsed --config: a bad `:ARG` is one line, not a traceback."""
    argument = config_argument(sys.argv) or ""
    try:
        return _CONFIG.value
    except (FieldnetError, OSError):
        raise
    except (AttributeError, KeyError, ValueError, TypeError) as err:
        raise FieldnetError(f"--config {argument}: {_config_reason(err)}") from None


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
    with cli.user_errors():  # `--help | head -1` included
        if any(arg in HELP_FLAGS for arg in sys.argv[1:]):
            print_help(sys.modules["__main__"].__doc__)
            sys.exit(0)
        app.run(lambda argv: run(work, argv), flags_parser=parse_flags)


def run(work: Callable[[], Callable], argv) -> None:
    """Runs the study under the one error policy and prints its summary."""
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}")
    # Orbax reports every save at INFO; keep the terminal for the progress bar.
    logging.set_verbosity(logging.WARNING)
    with cli.user_errors(ARGUMENT_FLAGS):
        config = load_config()
        initialize_distributed()
        report = work()(config, _WORKDIR.value)
        print(json.dumps(headline(report), indent=1))
        workdir = Path(_WORKDIR.value or rundir.default_workdir(config.name))
        for line in closing_lines(report, workdir):
            print(line)


def headline(report: dict) -> dict:
    """The scalar numbers of a report (the curves stay in eval.json), without the first
    target's block of test.fields, which repeats the test block's own keys."""
    from fieldnet.records import flatten

    fields = report.get("test", {}).get("fields") or {}
    repeated = tuple(f"test.fields.{name}." for name in list(fields)[:1])
    return {k: v for k, v in flatten(report).items()
            if not isinstance(v, tuple | list) and not (repeated and k.startswith(repeated))}


def closing_lines(report: dict, workdir: Path) -> list[str]:
    """Where the report went, and a warning when the model loses to the local baseline
    (then the run shows the plumbing works, not that the network learned the map)."""
    lines = []
    if rundir.evaluation(workdir).exists():
        lines.append(f"report: {rundir.evaluation(workdir)} and {rundir.figures(workdir)}/")
    test = report.get("test", {})
    mse, baseline = test.get("mse"), test.get("baseline_mse")
    if isinstance(mse, float) and isinstance(baseline, float) and mse >= baseline:
        lines.append(f"note: the model's test MSE {mse:.4f} does not beat the local baseline's "
                     f"{baseline:.4f}; a run this short is a smoke test, not a result")
    return lines
