"""Shared command-line plumbing: one-line errors instead of tracebacks."""

from __future__ import annotations

import sys
from collections.abc import Callable

from fieldnet.errors import FieldnetError

EXIT_BAD_INPUT = 2


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Runs `main(argv)` and exits; user errors print `error: <reason>` on one line."""
    try:
        code = main(argv)
    except (FieldnetError, FileNotFoundError, FileExistsError, IsADirectoryError,
            PermissionError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as err:
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
