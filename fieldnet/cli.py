"""The one error policy of every command line: a user error is one line and exit code 2.

    if __name__ == "__main__":
        cli.run(main)                      # main(argv) -> exit code

    with cli.user_errors():                # the same policy around any block
        ...

User errors are `FieldnetError` (bad input, stated by the code that found it) and every
`OSError` (a missing, unreadable or unwritable file or folder, a full disk); the
`ArgumentParser` here reports usage errors the same way. A `Stopped` run prints why and
exits with its own code; Ctrl-C exits 130. Output read by a program that stops reading
early (`... | head`) ends the command quietly with exit code 141, as a shell reports a
writer stopped by SIGPIPE. A Python file of the user's (a config) that fails to import or
run is one line naming the file, the line and the error (`import_user_file`,
`user_code_error`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType

from fieldnet.errors import ArgumentError, FieldnetError, OutputExists, Stopped

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE
# For `run` / `user_errors` of a command whose --overwrite flag is the `overwrite` argument
OVERWRITE_FLAG = {"overwrite": "--overwrite"}


def one_line(err: BaseException) -> str:
    """The message of a user error on one line.

    An OSError other than a missing file, an existing one, a folder or a permission keeps
    its kind, which its text alone does not always say.

    Args:
        err: The error.

    Returns:
        Its message with whitespace runs (newlines included) as single spaces; its type's
        name when it has no message.
    """
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError | FileExistsError
                                                   | IsADirectoryError | PermissionError):
        text = f"{type(err).__name__}: {text}"
    return text


def fail(reason: str, code: int = EXIT_BAD_INPUT):
    """Prints `error: <reason>` on stderr and exits with `code`.

    Args:
        reason: The one-line message.
        code: The exit code.

    Raises:
        SystemExit: Always, with `code`.
    """
    print(f"error: {reason}", file=sys.stderr)
    sys.exit(code)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a usage error as one line and exit code 2 (`--help` for the usage)."""

    def error(self, message: str):
        """Exits with a usage error as one line and exit code 2.

        Args:
            message: argparse's message.

        Raises:
            SystemExit: Always, with code 2, after printing `error: <message> (see --help)`.
        """
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
    """An argparse type: an integer ≥ 1 (anything else is the parser's one-line error).

    Args:
        text: The command-line value.

    Returns:
        The integer.

    Raises:
        argparse.ArgumentTypeError: If `text` is not an integer ≥ 1.
    """
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An argparse type: an integer ≥ 0 (a seed, say; anything else is a one-line error).

    Args:
        text: The command-line value.

    Returns:
        The integer.

    Raises:
        argparse.ArgumentTypeError: If `text` is not an integer ≥ 0.
    """
    return _int_at_least(text, 0, "an integer ≥ 0")


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (anything else is the parser's one-line error).

    Args:
        text: The command-line value.

    Returns:
        The number.

    Raises:
        argparse.ArgumentTypeError: If `text` is not a finite number > 0.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def output_closed():
    """Exits quietly with code 141: the program reading stdout has stopped reading. stdout
    is pointed at the null device first, so the interpreter's last flush of what is still
    buffered fails no more (it would print a second, 'Exception ignored', traceback)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    sys.exit(EXIT_BROKEN_PIPE)


def flush_stdout() -> None:
    """Flushes stdout now, so that a reader that went away shows here, where
    `user_errors` handles it, rather than at the interpreter's exit."""
    if sys.stdout is not None:
        sys.stdout.flush()


@contextlib.contextmanager
def user_errors(flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turns user errors, stops and Ctrl-C inside the block into one line and an exit.

    A closed stdout becomes a quiet exit 141 (`output_closed`).

    `flags` maps argument names to the command line's flags for them: an `ArgumentError`
    of such an argument (the library's `workdir`) names the flag (`--workdir`), and with
    "overwrite" mapped, an existing output (`OutputExists`) says to pass that flag.

    Args:
        flags: {argument name: command-line flag}, e.g. `{"workdir": "--workdir"}`
            (`OVERWRITE_FLAG` for `--overwrite`); None: none.

    Returns:
        A context manager around the block.

    Raises:
        SystemExit: Exit code 2 for a `FieldnetError` or an `OSError` (after printing it on
            one line), a `Stopped`'s `exit_code`, 130 for Ctrl-C, 141 for a closed stdout.
    """
    try:
        try:
            yield
        except SystemExit:
            flush_stdout()  # `--help` and other early exits print, too
            raise
        flush_stdout()
    except BrokenPipeError:
        output_closed()
    except Stopped as stop:
        print(stop, file=sys.stderr)
        sys.exit(stop.exit_code)
    except ArgumentError as err:
        fail(one_line(err.renamed(flags[err.argument]) if err.argument in (flags or {})
                      else err))
    except OutputExists as err:
        fail(one_line(err.renamed(flags["overwrite"]) if "overwrite" in (flags or {})
                      else err))
    except (FieldnetError, OSError) as err:
        fail(one_line(err))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None,
        flags: Mapping[str, str] | None = None) -> None:
    """Runs `main(argv)` under `user_errors(flags)` and exits with its code.

    Args:
        main: The command's main function, given `argv`; returns the exit code (None: 0).
        argv: The arguments (None: the process's).
        flags: {argument name: flag} for `user_errors`.
    """
    with user_errors(flags):
        code = main(argv)
    sys.exit(code or 0)


def user_code_error(path: str | os.PathLike, err: BaseException) -> FieldnetError | None:
    """The one-line error for `err`, raised while importing or running the user's Python file.

    The message is `<path>:<line>: <kind>: <message>`, the line being the last one of that
    file on the way to the error (a SyntaxError's own). Exceptions that another was raised
    from, or while handling, are looked at too.

    Args:
        path: The user's Python file (a config).
        err: The error raised.

    Returns:
        The error to raise instead, or None when the error did not come through that file
        (then it is no fault of the user's file, and keeps its traceback).
    """
    target = Path(path).resolve()
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        line = None
        if isinstance(err, SyntaxError) and err.filename:
            with contextlib.suppress(OSError, ValueError):
                if Path(err.filename).resolve() == target:
                    line = err.lineno
        if line is None:
            for frame, lineno in traceback.walk_tb(err.__traceback__):
                if Path(frame.f_code.co_filename).resolve() == target:
                    line = lineno
        if line is not None:
            message = err.msg if isinstance(err, SyntaxError) else one_line(err)
            return FieldnetError(f"{os.fspath(path)}:{line}: {type(err).__name__}: "
                                 f"{' '.join(str(message).split())}")
        err = err.__cause__ or err.__context__
    return None


def import_user_file(path: str | os.PathLike, needs: str, what: str = "file") -> ModuleType:
    """Imports the user's Python file at `path` and checks that it defines `needs`.

    Args:
        path: The user's Python file (a config, a list of variations).
        needs: Name of the function the file must define.
        what: The file's role, in the messages.

    Returns:
        The imported module.

    Raises:
        FieldnetError: Naming the file (and the line), for a missing file, one that fails to
            import (a SyntaxError, an ImportError, a NameError...) or lacks `needs`.
    """
    path_text = os.fspath(path)
    if not Path(path).is_file():
        raise FieldnetError(f"{path_text}: no such {what}")
    name = f"fieldnet_user_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FieldnetError(f"{path_text}: not a Python {what} (expected FILE.py)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise (user_code_error(path, err)
               or FieldnetError(f"{path_text}: {type(err).__name__}: {one_line(err)}")) from None
    if not callable(getattr(module, needs, None)):
        raise FieldnetError(f"{path_text}: the {what} defines no {needs}()")
    return module


def call_user(path: str | os.PathLike, function: Callable, *args):
    """Calls `function(*args)`, a function of the user's Python file at `path`.

    Args:
        path: The user's Python file the function comes from.
        function: The function to call.
        *args: Its positional arguments.

    Returns:
        What `function` returns.

    Raises:
        FieldnetError: An error raised through that file, as one line (`user_code_error`);
            other errors propagate unchanged.
    """
    try:
        return function(*args)
    except FieldnetError:
        raise
    except Exception as err:
        reason = user_code_error(path, err)
        if reason is None:
            raise
        raise reason from None
