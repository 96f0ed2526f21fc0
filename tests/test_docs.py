"""The documentation runs: the examples in the public docstrings pass as doctests, those
docstrings document every argument, and every ```python block of README.md exits 0.

Each README block runs in a fresh Python process whose working directory is a new
temporary folder, with the repository root first on PYTHONPATH: it imports `fieldnet` and
`experiments` from this tree as it would from the repository root, while the files it
writes (`runs/...`) land in the temporary folder, so every run starts clean. The process
gets `FIELDNET_TINY=1`; a block that trains reads it and shrinks itself to a few steps
(README's study block does), which keeps the whole file to about a minute on two cores.
"""

import doctest
import inspect
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fieldnet import models
from fieldnet.data import dataset
from fieldnet.eval import inference
from fieldnet.nn import layers

ROOT = Path(__file__).resolve().parents[1]
DOCTEST_MODULES = (models, layers, inference, dataset)
DOCUMENTED = (models.UNet, models.ResNet, layers.Conv, layers.ConvTranspose,
              inference.predict_field, dataset.FieldDataset)
README_BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(),
                           re.DOTALL | re.MULTILINE)


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
    sections = re.split(r"^(Args|Returns|Raises|Example):\n", doc, flags=re.MULTILINE)
    assert "Args" in sections and "Raises" in sections
    args = sections[sections.index("Args") + 1]
    documented = set(re.findall(r"^    (\w+):", args, re.MULTILINE))
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    params = set(signature.parameters) - {"self"}
    assert params <= documented, f"undocumented: {sorted(params - documented)}"
    if inspect.isfunction(obj):
        assert "Returns" in sections


def test_readme_has_python_blocks():
    assert len(README_BLOCKS) >= 2


@pytest.mark.parametrize("code", README_BLOCKS,
                         ids=[f"block{i}" for i in range(1, len(README_BLOCKS) + 1)])
def test_readme_block_runs(code, tmp_path):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "FIELDNET_TINY": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
