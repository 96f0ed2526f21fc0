"""The one error policy of the command lines (`fieldnet.cli`): a reader of stdout that stops
early ends a command quietly with exit code 141, and a Python file of the user's that fails
to import or run is one line naming the file, the line and the error. Every command line
passes through `cli.run` or `experiments.launch.start`, which apply the policy; two run as
subprocesses, the rest of the cases in this process."""

import ast
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import launch, sweep
from fieldnet import cli
from fieldnet.errors import FieldnetError

ROOT = Path(__file__).resolve().parents[1]
ENTRY_FOLDERS = ("fieldnet", "data_tools", "experiments", "notebooks")


def closed_reader_run(*args, timeout=120):
    """Runs `python -m ...` with stdout a pipe whose reading end is already closed, as
    `... | head -1` leaves it once head has its line."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)
    finally:
        os.close(write)


def test_a_closed_reader_ends_a_listing_quietly(tmp_path):
    from fieldnet.data import h5format

    x = np.ones((2, 8, 8), np.float32)
    h5format.write_arrays(tmp_path / "d.h5", {"density": x, "temperature": x}, ndim=2,
                          box_size=10.0, source="test", sim_index=np.arange(2),
                          units={"density": "mean", "temperature": "K"})
    proc = closed_reader_run("data_tools.inspect", str(tmp_path / "d.h5"))
    assert (proc.returncode, proc.stderr) == (cli.EXIT_BROKEN_PIPE, "")


def test_a_closed_reader_ends_a_studys_help_quietly():
    proc = closed_reader_run("experiments.density_to_temp", "--help")
    assert (proc.returncode, proc.stderr) == (cli.EXIT_BROKEN_PIPE, "")


def entry_points() -> dict[str, str]:
    """{module file: the source of its `if __name__ == "__main__":` block}."""
    found = {}
    for folder in ENTRY_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in tree.body:
                if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                    found[str(path.relative_to(ROOT))] = ast.unparse(node)
    return found


def test_every_command_line_goes_through_the_error_policy():
    found = entry_points()
    assert {"data_tools/inspect.py", "experiments/density_to_temp.py",
            "experiments/predict.py", "notebooks/make_figures.py"} <= set(found)
    for path, block in found.items():
        if path == "fieldnet/cli.py":
            continue  # the policy itself (its docstring shows the guard)
        assert "run(main" in block or "launch.start(" in block, (path, block)


class BrokenStdout(io.StringIO):
    """A stdout whose reader has gone: every write and flush raise as a pipe's would."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


class BufferedStdout(io.StringIO):
    """Takes writes; only the flush reaches the (closed) pipe."""

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("stdout", [BrokenStdout, BufferedStdout])
def test_run_exits_141_without_a_word_when_the_reader_left(monkeypatch, capsys, stdout):
    def main(argv):
        for i in range(1000):
            print(f"line {i}")
        return 0

    monkeypatch.setattr(sys, "stdout", stdout())
    with pytest.raises(SystemExit) as exit_:
        cli.run(main, [])
    assert exit_.value.code == cli.EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""


def test_run_keeps_its_exit_code_and_other_errors_their_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.run(lambda argv: 3, [])
    assert exit_.value.code == 3
    with pytest.raises(SystemExit) as exit_:
        cli.run(lambda argv: (_ for _ in ()).throw(FieldnetError("bad\nthing")), [])
    assert exit_.value.code == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err == "error: bad thing\n"


def test_the_library_names_the_workdir_argument_and_a_study_its_flag(tmp_path, capsys):
    from fieldnet import rundir
    from fieldnet.errors import ArgumentError

    (tmp_path / "file").write_text("")
    bad = tmp_path / "file" / "run"
    with pytest.raises(ArgumentError) as info:
        rundir.check_creatable(bad)
    reason = f"{tmp_path / 'file'} is a file, not a folder"
    assert str(info.value) == f"workdir {bad}: {reason}"
    for flags, name in ((launch.ARGUMENT_FLAGS, "--workdir"), (None, "workdir")):
        with pytest.raises(SystemExit) as exit_info, cli.user_errors(flags):
            raise info.value
        assert exit_info.value.code == cli.EXIT_BAD_INPUT
        assert capsys.readouterr().err == f"error: {name} {bad}: {reason}\n"


USER_FILES = {  # name: (source, the message's expected start after the path)
    "syntax": ("x = 1\ndef get_config(:\n    pass\n", ":2: SyntaxError: "),
    "import": ("import fieldnet_no_such_module\n", ":1: ModuleNotFoundError: No module named"),
    "name": ("x = 1\ny = undefined_name\n", ":2: NameError: name 'undefined_name'"),
    "missing": ("def get_confg():\n    return {}\n", ": the config file defines no get_config()"),
}


@pytest.mark.parametrize("case", sorted(USER_FILES))
def test_a_user_file_that_does_not_import_is_one_line_naming_it(tmp_path, case):
    source, expected = USER_FILES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(source)
    with pytest.raises(FieldnetError) as err:
        cli.import_user_file(path, "get_config", "config file")
    assert str(err.value).startswith(f"{path}{expected}")
    assert "\n" not in str(err.value)
    with pytest.raises(FieldnetError, match="absent.py: no such config file"):
        cli.import_user_file(tmp_path / "absent.py", "get_config", "config file")


def test_an_error_raised_in_the_users_function_names_its_line(tmp_path):
    path = tmp_path / "variations.py"
    path.write_text("def get_variations():\n    table = {}\n    return table['x']\n")
    with pytest.raises(FieldnetError, match=rf"^{path}:3: KeyError: 'x'$"):
        sweep.load_variations(str(path))
    # an error that does not come through the user's file is a bug: it keeps its traceback
    module = cli.import_user_file(path, "get_variations")
    with pytest.raises(ZeroDivisionError):
        cli.call_user(path, lambda: 1 / 0)
    assert cli.call_user(path, lambda: module.__name__).startswith("fieldnet_user_")


@pytest.mark.parametrize("case", ["syntax", "name", "missing"])
def test_a_study_names_the_config_file_that_does_not_import(tmp_path, capsys, case):
    source, expected = USER_FILES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(source)
    with pytest.raises(SystemExit) as exit_:
        launch.parse_flags(["prog", "--config", str(path)])
    assert exit_.value.code == cli.EXIT_BAD_INPUT
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --config {path}{expected}"), lines


def test_a_config_whose_get_config_raises_is_one_line(tmp_path):
    path = tmp_path / "raises.py"
    path.write_text("def get_config(arg=None):\n    return 1 / 0\n")
    proc = subprocess.run([sys.executable, "-m", "experiments.density_to_temp", "--config",
                           str(path), f"--workdir={tmp_path}/run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == cli.EXIT_BAD_INPUT
    assert proc.stderr == f"error: --config {path}:2: ZeroDivisionError: division by zero\n"
    assert not (tmp_path / "run").exists()


def test_an_existing_output_names_the_argument_or_the_flag(tmp_path, capsys):
    """The library says `overwrite=True`; a command line that maps it says `--overwrite`."""
    from fieldnet.errors import OutputExists
    from fieldnet.files import atomic_output

    target = tmp_path / "out.h5"
    target.write_text("kept")
    with pytest.raises(OutputExists, match="pass overwrite=True"), atomic_output(target):
        pass

    def main(argv):
        with atomic_output(target):
            pass

    with pytest.raises(SystemExit) as exit_info:
        cli.run(main, [], flags=cli.OVERWRITE_FLAG)
    assert exit_info.value.code == 2
    expected = f"error: {target} exists; pass --overwrite to replace it"
    assert capsys.readouterr().err.strip() == expected
    assert target.read_text() == "kept"
