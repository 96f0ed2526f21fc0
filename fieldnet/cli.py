"""The one error policy of every command line: a user error is one line and exit code 2.

    if __name__ == "__main__":
        cli.run(main)                      # main(argv) -> exit code

    with cli.user_errors():                # the same policy around any block
        ...

User errors are `FieldnetError` (bad input, stated by the code that found it) and every
`OSError` (a missing, unreadable or unwritable file or folder, a full disk); the
`ArgumentParser` here reports usage errors the same way. A `Stopped` run prints why and
exits with its own code; Ctrl-C exits 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable, Iterator

from fieldnet.errors import FieldnetError, Stopped

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def one_line(err: BaseException) -> str:
    """The message of a user error on one line (an OSError keeps its kind, which its text
    alone does not always say)."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError | FileExistsError
                                                   | IsADirectoryError | PermissionError):
        text = f"{type(err).__name__}: {text}"
    return text


def fail(reason: str, code: int = EXIT_BAD_INPUT):
    """Prints `error: <reason>` on stderr and exits with `code`."""
    print(f"error: {reason}", file=sys.stderr)
    sys.exit(code)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a usage error as one line and exit code 2 (`--help` for the usage)."""

    def error(self, message: str):
        fail(f"{message} (see --help)")


def _int_at_least(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1 (anything else is the parser's one-line error)."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An argparse type: an integer ≥ 0 (a seed, say; anything else is a one-line error)."""
    return _int_at_least(text, 0, "an integer ≥ 0")


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (anything else is the parser's one-line error)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turns user errors, stops and Ctrl-C inside the block into one line and an exit."""
    try:
        yield
    except Stopped as stop:
        print(stop, file=sys.stderr)
        sys.exit(stop.exit_code)
    except (FieldnetError, OSError) as err:
        fail(one_line(err))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Runs `main(argv)` under `user_errors` and exits with its code."""
    with user_errors():
        code = main(argv)
    sys.exit(code or 0)
