"""The ``torch.compile`` forms of the torch paths (HADAMARD_ZOO_TORCH_COMPILE=1) equal the references.

Marked ``compile``: each compiles a fused kernel (~10 s per op on the 2-core CPU). Torch backend only:
the switch does nothing on JAX and TensorFlow, which the test of that asserts instead.
"""

import keras
import numpy as np
import pytest
from helpers import assert_close, to_np

import hadamard_zoo.ops as hops

TORCH = keras.config.backend() == "torch"


def _grads(fn, *arrays):
    """Values and gradients of sum(fn(*xs) * c) (torch autograd)."""
    import torch

    leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*leaves)
    c = torch.tensor(np.random.default_rng(9).normal(size=tuple(y.shape)).astype("float32"))
    grads = torch.autograd.grad((y * c).sum(), leaves)
    return to_np(y.detach()), [to_np(g) for g in grads]


CASES = {
    "star_relu6": (lambda a, b: hops.star(a, b), [(4, 33, 16), (4, 33, 16)]),
    "glu_swish": (lambda a, b: hops.glu(a, b, activation="swish"), [(6, 40), (6, 40)]),
    "glu_gelu": (lambda a, b: hops.glu(a, b, activation="gelu"), [(6, 40), (6, 40)]),
    "ccp_step": (lambda u, x: hops.ccp_step(u, x), [(7, 24), (7, 24)]),
    "ncp_step": (lambda a, x, w, b: hops.ncp_step(a, x, w, b), [(5, 12), (5, 8), (8, 12), (12,)]),
}


@pytest.mark.compile
@pytest.mark.skipif(not TORCH, reason="torch.compile forms exist on the torch backend only")
@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_path_matches_reference_values_and_gradients(case):
    fn, shapes = CASES[case]
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=s).astype("float32") * 3 for s in shapes]
    with hops.fusion(False):
        want, want_grads = _grads(fn, *arrays)
    with hops.torch_compile(True):
        got, got_grads = _grads(fn, *arrays)
        # a second shape reuses the dynamic-shape kernel (and must still be right)
        bigger = [np.concatenate([a, a], axis=0) if a.ndim > 1 and i != 2 else a for i, a in enumerate(arrays)]
        got2, _ = _grads(fn, *bigger)
    with hops.fusion(False):
        want2, _ = _grads(fn, *bigger)
    assert_close(got, want, atol=1e-5, rtol=1e-5)
    for g, w in zip(got_grads, want_grads):
        assert_close(g, w, atol=1e-4, rtol=1e-5)
    assert_close(got2, want2, atol=1e-5, rtol=1e-5)


def test_switch_reads_env_and_context(monkeypatch):
    monkeypatch.delenv("HADAMARD_ZOO_TORCH_COMPILE", raising=False)
    assert not hops.torch_compile_enabled()
    monkeypatch.setenv("HADAMARD_ZOO_TORCH_COMPILE", "1")
    assert hops.torch_compile_enabled()
    with hops.torch_compile(False):
        assert not hops.torch_compile_enabled()
    monkeypatch.setenv("HADAMARD_ZOO_TORCH_COMPILE", "off")
    assert not hops.torch_compile_enabled()
    with hops.torch_compile():
        assert hops.torch_compile_enabled()


@pytest.mark.skipif(TORCH, reason="checks that the switch is inert off torch")
def test_switch_changes_nothing_on_other_backends():
    rng = np.random.default_rng(1)
    a, b = (rng.normal(size=(3, 8)).astype("float32") for _ in range(2))
    with hops.torch_compile(True):
        got = to_np(hops.star(a, b))
    assert_close(got, to_np(hops.star(a, b)), atol=0, rtol=0)
