"""Poly-SA (survey Eq. 9): op fast == reference, numpy formula, layer, PyTorch equivalence."""

import keras
import numpy as np
import pytest
from helpers import BACKEND, assert_close, assert_paths_agree, rand, roundtrip_keras, to_np

import hadamard_zoo.ops as hops
from hadamard_zoo.layers import PolySA


def _inputs(b, n, c, seed=0):
    return [
        rand((b, n, c), seed),
        rand((c, c), seed + 1, 0.4),
        rand((c, c), seed + 2, 0.4),
        rand((c, c), seed + 3, 0.4),
        np.array([0.7], np.float32),
        np.array([1.3], np.float32),
    ]


def _numpy_poly_sa(z, w1, w2, w3, alpha, beta):
    psi = ((z @ w1) * (z @ w2)).mean(axis=1, keepdims=True)
    psi = np.repeat(psi, z.shape[1], axis=1)  # Psi: average over tokens, replicated
    return alpha * z + beta * ((psi * z) @ w3)


# (2, 12, 5): N >= C, Gram form; (2, 3, 6): N < C, direct form.
@pytest.mark.parametrize("shape", [(2, 12, 5), (2, 3, 6)])
def test_poly_sa_fast_equals_reference(shape):
    assert_paths_agree(lambda *a: hops.poly_sa(*a), _inputs(*shape), require_accelerated="poly_sa")


def test_poly_sa_values_by_formula():
    args = _inputs(3, 7, 4, seed=5)
    expected = _numpy_poly_sa(*[a.astype(np.float64) for a in args])
    assert_close(to_np(hops.poly_sa(*args)), expected, 1e-5, 1e-5)
    with hops.fusion(False):
        assert_close(to_np(hops.poly_sa(*args)), expected, 1e-5, 1e-5)


def test_poly_sa_scalar_shapes():
    z, w1, w2, w3, _, _ = _inputs(1, 4, 3)
    out = hops.poly_sa(z, w1, w2, w3, np.float32(1.0), np.float32(0.0))
    assert_close(to_np(out), z, 1e-6, 1e-6)  # alpha=1, beta=0 is the identity


def test_poly_sa_bad_inputs():
    z, w1, w2, w3, a, b = _inputs(2, 4, 3)
    with pytest.raises(ValueError, match="rank 3"):
        hops.poly_sa(z[0], w1, w2, w3, a, b)
    with pytest.raises(ValueError, match=r"w2 must have shape \(C, C\)"):
        hops.poly_sa(z, w1, rand((3, 4)), w3, a, b)
    with pytest.raises(ValueError, match="alpha must be a scalar"):
        hops.poly_sa(z, w1, w2, w3, np.ones((2,), np.float32), b)


# ------------------------------------------------------------------------ layer
def test_layer_shape_functional_and_roundtrip(tmp_path):
    inputs = keras.Input((6, 8))
    outputs = PolySA(8, name="psa")(inputs)
    model = keras.Model(inputs, outputs)
    assert model.output_shape == (None, 6, 8)
    assert model.count_params() == 3 * 8 * 8 + 2
    roundtrip_keras(model, tmp_path, rand((2, 6, 8)))


def test_layer_validates():
    with pytest.raises(ValueError, match="channels"):
        PolySA(0)
    with pytest.raises(ValueError, match="channels=4"):
        PolySA(4)(rand((2, 3, 5)))
    with pytest.raises(ValueError, match="batch, tokens, channels"):
        PolySA()(rand((2, 5)))


@pytest.mark.parametrize(
    "policy",
    ["mixed_bfloat16"] + (["mixed_float16"] if BACKEND in ("jax", "torch") else []),
)
def test_layer_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    layer = PolySA()
    out = layer(rand((2, 5, 4)))
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    assert layer.w1.dtype == "float32"
    assert np.all(np.isfinite(to_np(out).astype(np.float32)))


def test_layer_matches_pytorch_module_from_eq9():
    """The Keras layer vs a PyTorch module written from survey Eq. 9, same weights."""
    torch = pytest.importorskip("torch")

    class TorchPolySA(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.w1 = torch.nn.Parameter(torch.empty(c, c))
            self.w2 = torch.nn.Parameter(torch.empty(c, c))
            self.w3 = torch.nn.Parameter(torch.empty(c, c))
            self.alpha = torch.nn.Parameter(torch.empty(1))
            self.beta = torch.nn.Parameter(torch.empty(1))

        def forward(self, z):
            hadamard = torch.matmul(z, self.w1) * torch.matmul(z, self.w2)
            psi = hadamard.mean(dim=1, keepdim=True).expand(-1, z.shape[1], -1)  # Psi
            return self.alpha * z + self.beta * torch.matmul(psi * z, self.w3)

    c = 6
    weights = _inputs(1, 1, c, seed=11)[1:]
    z = rand((3, 10, c), 4)
    ref = TorchPolySA(c)
    with torch.no_grad():
        for p, w in zip((ref.w1, ref.w2, ref.w3, ref.alpha, ref.beta), weights):
            p.copy_(torch.from_numpy(w))
        expected = ref(torch.from_numpy(z)).numpy()
    layer = PolySA(c)
    layer.build((None, 10, c))
    layer.set_weights(weights)
    assert_close(to_np(layer(z)), expected, 1e-5, 1e-5, "PolySA vs PyTorch Eq. 9")
