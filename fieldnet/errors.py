"""Errors that the command lines turn into one-line messages."""

from __future__ import annotations


class FieldnetError(ValueError):
    """A problem with user input (a file, a dataset, a config value), stated in one line."""


class ArgumentError(FieldnetError):
    """A bad value of a named function argument or config key: `<argument> <value>: <reason>`.

    The code that finds it names the argument as its callers know it (`workdir`); a
    command line that takes the value as a flag reports it under the flag's name instead
    (`fieldnet.cli.user_errors(flags={"workdir": "--workdir"})`).

    Args:
        argument: The argument's name (or a flag).
        value: The bad value.
        reason: Why it is bad.
    """

    def __init__(self, argument: str, value, reason: str):
        super().__init__(f"{argument} {value}: {reason}")
        self.argument, self.value, self.reason = argument, value, reason

    def renamed(self, argument: str) -> ArgumentError:
        """The same error, naming the value `argument` (a command-line flag).

        Args:
            argument: The new name, e.g. `"--workdir"`.

        Returns:
            A new `ArgumentError` with the same value and reason.
        """
        return ArgumentError(argument, self.value, self.reason)

    def __reduce__(self):
        return ArgumentError, (self.argument, self.value, self.reason)


class OutputExists(FileExistsError):
    """An output file that exists and may not be replaced: `<path> exists; pass <how> to
    replace it`. The library says how as its argument (`overwrite=True`); a command line
    names its flag (`fieldnet.cli.user_errors(flags={"overwrite": "--overwrite"})`).

    Args:
        path: The existing file.
        how: What replaces it, e.g. `"overwrite=True"` or `"--overwrite"`.
    """

    def __init__(self, path, how: str = "overwrite=True"):
        super().__init__(f"{path} exists; pass {how} to replace it")
        self.path, self.how = path, how

    def renamed(self, flag: str) -> OutputExists:
        """The same error, saying to pass `flag` (a command line's).

        Args:
            flag: The command line's flag, e.g. `"--overwrite"`.

        Returns:
            A new `OutputExists` for the same path.
        """
        return OutputExists(self.path, flag)

    def __reduce__(self):
        return OutputExists, (self.path, self.how)


class Stopped(Exception):  # noqa: N818 - a stop, not an error
    """The work stopped on request (a signal) after saving; `exit_code` is what a command
    line exits with (128 + the signal number, as shells report a signal)."""

    exit_code = 1


def data_error(path, dataset=None, index=None, reason=""):
    """A `FieldnetError` naming the file, the dataset and the sample index where known.

    Args:
        path: The file.
        dataset: Name of the dataset in the file, if known.
        index: Index of the sample in the dataset, if known.
        reason: What is wrong.

    Returns:
        The error, `"<path>:<dataset>[<index>]: <reason>"` (not raised).
    """
    where = str(path)
    if dataset is not None:
        where += f":{dataset}"
    if index is not None:
        where += f"[{index}]"
    return FieldnetError(f"{where}: {reason}")
