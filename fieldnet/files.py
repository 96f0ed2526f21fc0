"""Atomic file writes: the one place where anything under a final name is written.

Every writer puts its bytes under a temporary name beside the target and renames it when
complete (`os.replace` is atomic on one file system), so a crash, a full disk or a kill
never leaves a half-written file under the final name, and an existing file stays intact
until its replacement is whole.

    with atomic_output("out.h5") as tmp:      # any writer that takes a path
        h5py.File(tmp, "w").close()
    write_json(Path("runs/x/eval.json"), {"mse": 0.1})      # NaN/inf -> null
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from fieldnet.errors import OutputExists
from fieldnet.records import to_json_value


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it to `path` only on success.

    Args:
      path: the final file name.
      overwrite: replace an existing `path`; if False, an existing file raises
        `FileExistsError` (`OutputExists`) before anything is written.

    Raises:
      OutputExists: `path` exists and `overwrite` is False (a `FileExistsError`).
      FileNotFoundError: the folder of `path` does not exist.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExists(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` to `path` atomically (replacing it).

    Args:
        path: The file to write; its folder must exist.
        text: The contents.

    Returns:
        `path`, as a `Path`.
    """
    path = Path(path)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(text)
    return path


def write_json(path: str | os.PathLike, obj) -> Path:
    """Writes `obj` as indented, key-sorted JSON atomically; numpy values become plain
    JSON values and NaN/inf become null (`records.to_json_value`).

    Args:
        path: The file to write; its folder must exist.
        obj: Anything `records.to_json_value` takes.

    Returns:
        `path`, as a `Path`.
    """
    text = json.dumps(to_json_value(obj), indent=2, sort_keys=True, allow_nan=False)
    return write_text(path, text + "\n")
