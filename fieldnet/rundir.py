"""The run folder (workdir): the one place that names its files and reads them back.

    runs/<name>/
      config.json       the run's config (a rerun with a different one is refused)
      normalizer.json   train-split statistics of every field (`data.transforms`)
      model_io.json     what the model maps: field names, channels, units, box size
      metrics.jsonl     one JSON object per logged step
      tensorboard/      the same metrics for TensorBoard
      checkpoints/      orbax: latest/ (resume) and best/ (evaluation, inference)
      eval.json         the held-out evaluation
      test_samples.h5   a generative run's samples of the test maps, drawn in evaluation
                        (`fieldnet.eval.held_out.write_test_samples`)
      calibration.json  a generative run's calibration of its samples, fitted on
                        validation maps (`fieldnet.eval.calibration.save_fields`)
      figures/          report figures (PNG)
      table.csv, table.md   a sweep's table (sweep folders only)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_collections

from fieldnet.errors import ArgumentError, FieldnetError
from fieldnet.files import write_json
from fieldnet.records import flatten

CONFIG = "config.json"
NORMALIZER = "normalizer.json"
MODEL_IO = "model_io.json"
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
CHECKPOINTS = "checkpoints"
EVAL = "eval.json"
TEST_SAMPLES = "test_samples.h5"
CALIBRATION = "calibration.json"
FIGURES = "figures"
TABLE_CSV = "table.csv"
TABLE_MD = "table.md"

# Keys that may differ between a run and its resumption without changing the result (the
# loader settings say where batches are computed, never what they are: a run started on a
# laptop resumes with data.workers on a GPU host). Keys that only one of the two configs
# has (added or removed by a newer fieldnet) keep their old meaning through their defaults,
# so they are not differences either.
RESUMABLE_DIFFERENCES = {"train.progress", "data.loader", "data.workers", "data.prefetch"}

PathLike = str | os.PathLike


def config(workdir: PathLike) -> Path:
    """The path of config.json, the run's config, in `workdir`.

    Args:
        workdir: The run folder.

    Returns:
        The file's path (it may not exist).
    """
    return Path(workdir) / CONFIG


def normalizer(workdir: PathLike) -> Path:
    """The path of normalizer.json, the train-split statistics, in `workdir`.

    Args:
        workdir: The run folder.

    Returns:
        The file's path (it may not exist).
    """
    return Path(workdir) / NORMALIZER


def model_io(workdir: PathLike) -> Path:
    """The path of model_io.json, what the model maps, in `workdir`.

    Args:
        workdir: The run folder.

    Returns:
        The file's path (it may not exist).
    """
    return Path(workdir) / MODEL_IO


def metrics(workdir: PathLike) -> Path:
    """The path of metrics.jsonl, one record per logged step, in `workdir`.

    Args:
        workdir: The run folder.

    Returns:
        The file's path (it may not exist).
    """
    return Path(workdir) / METRICS


def tensorboard(workdir: PathLike) -> Path:
    """The path of tensorboard/, the metrics for TensorBoard, in `workdir`.

    Args:
        workdir: The run folder.

    Returns:
        The folder's path (it may not exist).
    """
    return Path(workdir) / TENSORBOARD


def checkpoints(workdir: PathLike) -> Path:
    """The path of checkpoints/, orbax's latest/ and best/, in `workdir`.

    Args:
        workdir: The run folder.

    Returns:
        The folder's path (it may not exist).
    """
    return Path(workdir) / CHECKPOINTS


def evaluation(workdir: PathLike) -> Path:
    """The path of eval.json, the held-out evaluation, in `workdir`.

    Args:
        workdir: The run folder.

    Returns:
        The file's path (it may not exist).
    """
    return Path(workdir) / EVAL


def test_samples(workdir: PathLike) -> Path:
    """The path of test_samples.h5, a generative run's test samples, in `workdir`.

    Args:
        workdir: The run folder.

    Returns:
        The file's path (it may not exist).
    """
    return Path(workdir) / TEST_SAMPLES


def calibration(workdir: PathLike) -> Path:
    """The path of calibration.json, a generative run's calibration, in `workdir`.

    Args:
        workdir: The run folder.

    Returns:
        The file's path (it may not exist).
    """
    return Path(workdir) / CALIBRATION


def figures(workdir: PathLike) -> Path:
    """The path of figures/, the report figures, in `workdir`.

    Args:
        workdir: The run folder.

    Returns:
        The folder's path (it may not exist).
    """
    return Path(workdir) / FIGURES


def default_workdir(config_name: str) -> Path:
    """Where a run goes when no workdir is given: runs/<config.name>.

    Args:
        config_name: The run's `config.name`.

    Returns:
        The relative path `runs/<config_name>`.
    """
    return Path("runs") / config_name


def check_creatable(workdir: PathLike) -> Path:
    """Checks, without creating anything, that `workdir` is a folder or can be made one.

    So that a bad workdir fails before minutes of data making, not after.

    Args:
        workdir: The run folder.

    Returns:
        `workdir` as a `Path`.

    Raises:
        ArgumentError: Naming the argument `workdir`, if its nearest existing ancestor is a
            file or is not writable.
    """
    workdir = Path(workdir)
    existing = workdir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ArgumentError("workdir", workdir, f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ArgumentError("workdir", workdir, f"{existing} is not writable")
    return workdir


def require(workdir: PathLike, *names: str, what: str = "a finished run folder") -> Path:
    """`workdir`, checked to hold the files `names`.

    Args:
        workdir: The run folder.
        *names: File names it must hold (e.g. `CONFIG`, `EVAL`).
        what: What the folder should be, in the message.

    Returns:
        `workdir` as a `Path`.

    Raises:
        FieldnetError: If `workdir` is not a folder or lacks any of `names`.
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise FieldnetError(f"{workdir}: no such run folder")
    missing = [name for name in names if not (workdir / name).exists()]
    if missing:
        raise FieldnetError(f"{workdir}: not {what} (no {', '.join(missing)})")
    return workdir


def read_json(path: PathLike) -> dict:
    """A JSON file of a run.

    Args:
        path: The JSON file.

    Returns:
        Its parsed contents.

    Raises:
        FieldnetError: If the file is missing or not valid JSON.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FieldnetError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FieldnetError(f"{path}: not valid JSON ({err})") from None


def read_metrics(workdir_or_file: PathLike) -> list[dict]:
    """The logged records of a run's metrics.jsonl.

    A truncated last line (a crash mid-write) and blank lines are skipped.

    Args:
        workdir_or_file: A run folder or the metrics.jsonl file itself.

    Returns:
        One dict per logged record, in file order.

    Raises:
        OSError: If the file cannot be read (FileNotFoundError when missing).
    """
    path = Path(workdir_or_file)
    path = metrics(path) if path.is_dir() else path
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_config(workdir: PathLike) -> ml_collections.ConfigDict:
    """The run's config.json as a ConfigDict.

    Args:
        workdir: The run folder.

    Returns:
        The run's config.

    Raises:
        FieldnetError: If the file is missing or corrupt.
    """
    return ml_collections.ConfigDict(read_json(config(workdir)))


def read_eval(workdir: PathLike) -> dict:
    """The run's eval.json.

    Args:
        workdir: The run folder.

    Returns:
        The held-out evaluation record.

    Raises:
        FieldnetError: If the file is missing or corrupt.
    """
    return read_json(evaluation(workdir))


def config_differences(old: dict, new: dict) -> list[str]:
    """Dotted keys in which two flattened configs differ, for resuming.

    A key both have with another value, or a leaf on one side that is a section on the
    other (None vs a dict). A key only one side has otherwise, and
    `RESUMABLE_DIFFERENCES`, do not count.

    Args:
        old: The recorded config, flattened to dotted keys.
        new: The new config, flattened to dotted keys.

    Returns:
        The differing keys, sorted.
    """
    changed = {k for k in set(old) & set(new) if old[k] != new[k]}
    for mine, theirs in ((old, new), (new, old)):
        for key in set(mine) - set(theirs):
            if any(other.startswith(key + ".") or key.startswith(other + ".")
                   for other in theirs):
                changed.add(key)
    return sorted(changed - RESUMABLE_DIFFERENCES)


def has_trained(workdir: PathLike) -> bool:
    """Whether any checkpoint step was saved in the run.

    Or in the runs inside it, such as an ensemble's members.

    Args:
        workdir: The run folder.

    Returns:
        True when a numbered checkpoint step folder exists.
    """
    workdir = Path(workdir)
    for pattern in (f"{CHECKPOINTS}/*/*", f"*/{CHECKPOINTS}/*/*"):
        if any(p.name.isdigit() and p.is_dir() for p in workdir.glob(pattern)):
            return True
    return False


def prepare(run_config: ml_collections.ConfigDict, workdir: PathLike | None) -> Path:
    """Creates the workdir and records the config in it.

    A workdir that holds a trained run of a different config is refused (an
    `ArgumentError` of `workdir`, naming the differing keys). One where nothing was
    trained yet (a start that failed on bad data, say) is taken over: its config is
    replaced and the files derived from the old one (normalizer, model_io) are removed.

    Args:
        run_config: The run's config.
        workdir: The run folder; None or empty: `default_workdir(run_config.name)`.

    Returns:
        The workdir, created, holding config.json.

    Raises:
        ArgumentError: If `workdir` cannot be made a folder, or holds a trained run of a
            different config.
        FieldnetError: If an existing config.json there is corrupt.
    """
    workdir = Path(workdir) if workdir else default_workdir(run_config.name)
    check_creatable(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    new = json.loads(run_config.to_json_best_effort())
    saved = config(workdir)
    if saved.exists():
        changed = config_differences(flatten(read_json(saved)), flatten(new))
        if not changed:
            return workdir
        if has_trained(workdir):
            raise ArgumentError("workdir", workdir, "holds a run with a different config "
                                f"(differs in {', '.join(changed[:6])}); choose another")
        for stale in (normalizer(workdir), model_io(workdir)):
            stale.unlink(missing_ok=True)
    write_json(saved, new)
    return workdir
