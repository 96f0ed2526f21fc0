"""Errors that the command lines turn into one-line messages."""


class FieldnetError(ValueError):
    """A problem with user input (a file, a dataset, a config value), stated in one line."""


def data_error(path, dataset=None, index=None, reason=""):
    """A `FieldnetError` naming the file, the dataset and the sample index where known."""
    where = str(path)
    if dataset is not None:
        where += f":{dataset}"
    if index is not None:
        where += f"[{index}]"
    return FieldnetError(f"{where}: {reason}")
