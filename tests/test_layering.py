"""The library is a layered house: `fieldnet/` imports nothing above it, its parts form a
DAG, and the package face does not import JAX.

Every module's imports are read from its AST, function-level imports included, so a lazy
import cannot hide an upward dependency.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "fieldnet"
ABOVE_THE_LIBRARY = ("experiments", "data_tools", "notebooks", "benchmarks", "tests")

# The parts of fieldnet (a top-level module or subpackage) from the bottom up. A part may
# import parts of lower layers only (and itself).
LAYERS = [
    {"version", "errors", "records", "_compat"},
    {"registry"},
    {"files", "grid", "symmetry"},
    {"cli", "rundir"},
    {"nn", "data"},
    {"models", "receptive"},
    {"train"},
    {"eval"},
    {"figures", "objectives"},
    {"inference"},
    {"__init__"},
]
LAYER_OF = {part: i for i, layer in enumerate(LAYERS) for part in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Absolute names of every module `path` imports, at any depth of its code (relative
    imports are resolved against `package`, by default the file's own)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if package is None:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from fieldnet.data import h5format` runs the package's __init__ and imports
            # the module fieldnet.data.h5format; a name that is no module stands for
            # `base` (`existing` resolves it)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def library_modules() -> dict[str, set[str]]:
    return {module_name(p): imported_modules(p) for p in sorted(LIBRARY.rglob("*.py"))}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def existing(name: str, modules: dict) -> str | None:
    """The library module that an imported name refers to (a name imported from a module
    is not a module itself)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def test_every_part_of_the_library_has_a_layer():
    parts = {part_of(m) for m in library_modules()}
    assert parts <= set(LAYER_OF), f"add {sorted(parts - set(LAYER_OF))} to LAYERS"


def test_library_imports_nothing_above_it():
    bad = {m: sorted(n for n in names if n.split(".")[0] in ABOVE_THE_LIBRARY)
           for m, names in library_modules().items()}
    bad = {m: names for m, names in bad.items() if names}
    assert not bad, f"fieldnet imports the layers above it: {bad}"


def test_library_parts_import_only_lower_layers():
    modules = library_modules()
    upward = []
    for module, names in modules.items():
        mine = part_of(module)
        for name in names:
            target = existing(name, modules)
            # the root's face imports lazily (checked by the no-JAX test below), so
            # `from fieldnet import rundir` depends on fieldnet.rundir alone
            if target is None or target == "fieldnet":
                continue
            theirs = part_of(target) if target != "fieldnet" else "__init__"
            if theirs != mine and LAYER_OF[theirs] >= LAYER_OF[mine]:
                upward.append(f"{module} -> {target}")
    assert not upward, f"imports of a part in the same or a higher layer: {upward}"


def test_library_modules_form_a_dag():
    modules = library_modules()
    graph = {m: {t for n in names if (t := existing(n, modules)) and t != m
                 and not (t == "fieldnet")} for m, names in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_layering_check_sees_function_level_imports(tmp_path):
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from experiments.studies import sweep\n"
                      "    from . import grid\n    return sweep, grid\n")
    names = imported_modules(source, package="fieldnet")
    assert {"experiments.studies.sweep", "fieldnet.grid"} <= names


@pytest.mark.parametrize("module", ["fieldnet", "fieldnet.data", "data_tools.inspect"])
def test_package_face_imports_without_jax(module):
    code = f"import sys, {module}; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "False", f"importing {module} imports JAX"
