"""The layout rules of CONTRIBUTING.md that a machine can check.

``hadamard_zoo.ops`` is the only package that imports jax / tensorflow / torch.
The check reads the source (``ast``), so docstrings and comments that mention a
backend are fine; it catches ``import x``, ``from x import ...`` (at any depth
in a function) and ``importlib.import_module("x")`` / ``__import__("x")``.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hadamard_zoo"
BACKEND_LIBRARIES = ("jax", "jaxlib", "tensorflow", "torch")

#: Files outside hadamard_zoo/ops allowed to import a backend library, each with its reason.
#: An entry that no longer imports one fails the test: remove it then.
BACKEND_IMPORT_ALLOWED = {
    "hadamard_zoo/bench.py": (
        "benchmark harness: times backend-native gradients (jax.value_and_grad + jax.jit, "
        "tf.GradientTape, torch.autograd.grad under torch.compile), waits on JAX's async dispatch "
        "(jax.block_until_ready) and reads TensorFlow's allocator peak (tf.config.experimental)"
    ),
}


def _is_backend(module):
    return module is not None and module.split(".")[0] in BACKEND_LIBRARIES


def backend_imports(source, filename="<string>"):
    """``[(line, text)]`` of the backend-library imports in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if _is_backend(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_backend(node.module):
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                if _is_backend(node.args[0].value):
                    found.append((node.lineno, f"{name}({node.args[0].value!r})"))
    return found


def _package_files():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20, files  # the walk found the package
    return files


def _relative(path):
    return path.relative_to(PACKAGE.parent).as_posix()


def test_the_detector_sees_every_import_form_and_ignores_prose():
    source = '''
"""Docs may say: import torch, from jax import numpy."""
import os, torch.nn as nn
from tensorflow import keras as tfk
def f():
    import jax.numpy as jnp
    from jax.experimental import pallas
    import importlib
    return importlib.import_module("torch"), __import__("tensorflow"), importlib.import_module("numpy")
from . import torch_like  # a relative import of a module named like a backend is not one
# import jax
'''
    lines = [line for line, _ in backend_imports(source)]
    assert sorted(lines) == [3, 4, 6, 7, 9, 9]


def test_only_ops_imports_a_backend_library():
    offenders = []
    for path in _package_files():
        rel = _relative(path)
        if rel.startswith("hadamard_zoo/ops/") or rel in BACKEND_IMPORT_ALLOWED:
            continue
        offenders += [f"{rel}:{line}: {text}" for line, text in backend_imports(path.read_text(), rel)]
    assert not offenders, (
        "only hadamard_zoo/ops may import jax/tensorflow/torch (CONTRIBUTING.md); move the backend code into "
        "an ops module (imports inside the function body) or add the file to BACKEND_IMPORT_ALLOWED with the reason:\n"
        + "\n".join(offenders)
    )


@pytest.mark.parametrize("rel", sorted(BACKEND_IMPORT_ALLOWED))
def test_allowed_exceptions_are_still_needed_and_explained(rel):
    path = PACKAGE.parent / rel
    assert path.is_file(), f"{rel} is gone: remove it from BACKEND_IMPORT_ALLOWED"
    assert backend_imports(path.read_text(), rel), f"{rel} no longer imports a backend: remove it from BACKEND_IMPORT_ALLOWED"
    assert len(BACKEND_IMPORT_ALLOWED[rel]) > 20  # a reason, not a placeholder
