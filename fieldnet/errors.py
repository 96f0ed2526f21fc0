"""Errors that the command lines turn into one-line messages."""


class FieldnetError(ValueError):
    """A problem with user input (a file, a dataset, a config value), stated in one line."""


class Stopped(Exception):  # noqa: N818 - a stop, not an error
    """The work stopped on request (a signal) after saving; `exit_code` is what a command
    line exits with (128 + the signal number, as shells report a signal)."""

    exit_code = 1


def data_error(path, dataset=None, index=None, reason=""):
    """A `FieldnetError` naming the file, the dataset and the sample index where known."""
    where = str(path)
    if dataset is not None:
        where += f":{dataset}"
    if index is not None:
        where += f"[{index}]"
    return FieldnetError(f"{where}: {reason}")
