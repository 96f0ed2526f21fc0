"""The documentation runs: the docs site builds strictly, the examples in the public
docstrings pass as doctests, those docstrings document every argument, and every ```python
block of README.md and of the docs pages exits 0.

The site build (`mkdocs build --strict`) fails on any warning: a broken link, a missing
page, a docstring that names a parameter the signature lacks, or an API page for a module
that is gone. It runs offline (no plugin fetches; the proxies point nowhere, so an attempt
would fail) and takes a few seconds.

Each python block runs in a fresh Python process whose working directory is a new
temporary folder, with the repository root first on PYTHONPATH: it imports `fieldnet` and
`experiments` from this tree as it would from the repository root, while the files it
writes (`runs/...`) land in the temporary folder, so every run starts clean. The process
gets `FIELDNET_TINY=1`; a block that trains reads it and shrinks itself to a few steps
(the study block of the getting-started page does), which keeps the blocks to about a
minute on two cores.
"""

import ast
import doctest
import inspect
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fieldnet import models, objectives, receptive, records, registry, symmetry
from fieldnet.data import dataset, h5format
from fieldnet.eval import inference, metrics, phases, sampling, spectra
from fieldnet.nn import flow, kernels, layers

ROOT = Path(__file__).resolve().parents[1]
DOCTEST_MODULES = (models, layers, inference, dataset, receptive, registry, spectra, metrics,
                   symmetry, h5format, sampling, records, flow, kernels, phases, objectives)
DOCUMENTED = (models.UNet, models.ResNet, layers.Conv, layers.ConvTranspose,
              inference.predict_field, dataset.FieldDataset, models.build,
              receptive.receptive_field, spectra.power_spectrum, metrics.mse, models.stride_of)
DOCS = ROOT / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.DOTALL | re.MULTILINE)


README_BLOCKS = python_blocks(ROOT / "README.md")
PAGES = sorted(p for p in DOCS.rglob("*.md") if "figures" not in p.relative_to(DOCS).parts)
BLOCKS = [(f"README.md:{i}", code) for i, code in enumerate(README_BLOCKS, 1)]
BLOCKS += [(f"{page.relative_to(DOCS)}:{i}", code)
           for page in PAGES for i, code in enumerate(python_blocks(page), 1)]


@pytest.mark.parametrize("module", DOCTEST_MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_pass(module):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    for test in doctest.DocTestFinder().find(module):
        runner.run(test, out=report.write)
    results = runner.summarize(verbose=False)
    assert results.attempted > 0, f"{module.__name__} has no examples"
    assert results.failed == 0, report.getvalue()


@pytest.mark.parametrize("obj", DOCUMENTED, ids=lambda o: o.__qualname__)
def test_public_constructors_document_every_argument_with_an_example(obj):
    doc = inspect.getdoc(obj)
    assert ">>> " in doc, "no example"
    sections = re.split(r"^(Args|Returns|Raises|Examples?):\n", doc, flags=re.MULTILINE)
    assert "Args" in sections and "Raises" in sections
    args = sections[sections.index("Args") + 1]
    documented = set(re.findall(r"^    \*{0,2}(\w+):", args, re.MULTILINE))
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    params = set(signature.parameters) - {"self"}
    assert params <= documented, f"undocumented: {sorted(params - documented)}"
    if inspect.isfunction(obj):
        assert "Returns" in sections


def _parameters(node: ast.FunctionDef) -> list[str]:
    args = node.args
    named = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    named += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [name for name in named if name not in ("self", "cls")]


def _has_args_section(node) -> bool:
    return re.search(r"^Args:$", ast.get_docstring(node) or "", re.MULTILINE) is not None


def callables_without_args() -> list[str]:
    """`path:name` of each public callable that takes parameters and whose docstring has no
    `Args:` section: module-level functions, methods of public classes, and constructors
    (documented in their class's docstring). Public: neither it nor its module starts with
    `_`."""
    missing = []
    for path in sorted((ROOT / "fieldnet").rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if any(part.startswith("_") and part != "__init__.py" for part in parts):
            continue
        where = "/".join(parts)
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef | ast.ClassDef) or node.name.startswith("_"):
                continue
            if isinstance(node, ast.FunctionDef):
                if _parameters(node) and not _has_args_section(node):
                    missing.append(f"{where}:{node.name}")
            elif isinstance(node, ast.ClassDef):
                for method in node.body:
                    if not isinstance(method, ast.FunctionDef) or not _parameters(method):
                        continue
                    if method.name == "__init__" and not _has_args_section(node):
                        missing.append(f"{where}:{node.name}")
                    elif not method.name.startswith("_") and not _has_args_section(method):
                        missing.append(f"{where}:{node.name}.{method.name}")
    return missing


def test_every_public_callable_with_parameters_has_an_args_section():
    missing = callables_without_args()
    assert not missing, f"no Args: section in the docstring of {missing}"


def test_readme_and_docs_have_python_blocks():
    assert len(README_BLOCKS) >= 1
    assert len(BLOCKS) - len(README_BLOCKS) >= 5


# a block that trains a whole run is part of the whole suite, not of the fast loop
@pytest.mark.parametrize("code", [
    pytest.param(code, id=name,
                 marks=[pytest.mark.slow] if "train_and_evaluate(" in code else [])
    for name, code in BLOCKS])
def test_python_block_runs(code, tmp_path):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "FIELDNET_TINY": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def test_every_public_module_has_an_api_page():
    pages = "\n".join(p.read_text() for p in (DOCS / "reference" / "api").glob("*.md"))
    documented = set(re.findall(r"^::: ([\w.]+)", pages, re.MULTILINE))
    modules = set()
    for path in (ROOT / "fieldnet").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if not any(part.startswith("_") for part in parts):
            modules.add(".".join(parts))
    missing = modules - documented - {"fieldnet.version"}
    assert not missing, f"no API page (docs/reference/api/) shows {sorted(missing)}"


COMMANDS = ("data_tools.simulate", "data_tools.camels", "data_tools.snapshot", "data_tools.inspect",
            "data_tools.ising", "experiments.density_to_temp", "experiments.predict",
            "experiments.ising_phases", "experiments.sweep", "notebooks.make_figures")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")


def test_cli_reference_shows_every_option_of_every_command():
    page = (DOCS / "reference" / "cli.md").read_text()
    helps = {name: subprocess.Popen([sys.executable, "-m", name, "--help"], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name in COMMANDS}
    for name, process in helps.items():
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, out[-2000:]
        heading = f"### `python -m {name}`"
        assert heading in page, f"docs/reference/cli.md has no section {heading}"
        section = page.split(heading)[1].split("\n### ")[0]
        missing = set(FLAG.findall(out)) - set(FLAG.findall(section))
        assert not missing, f"{name}: docs/reference/cli.md lacks {sorted(missing)}"


def test_docs_site_builds_strictly_offline(tmp_path):
    pytest.importorskip("mkdocstrings_handlers.python", reason="needs the dev extra")
    nowhere = "http://127.0.0.1:9"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HTTP_PROXY": nowhere,
           "HTTPS_PROXY": nowhere, "http_proxy": nowhere, "https_proxy": nowhere,
           "NO_PROXY": "", "no_proxy": ""}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "WARNING" not in done.stderr, done.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "api" / "models" / "index.html").exists()
