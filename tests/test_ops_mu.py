import keras
import numpy as np
import pytest
from helpers import assert_close, assert_paths_agree, rand, to_np, value_and_grads

import hadamard_zoo.ops as hops


# ----------------------------------------------------------------- numpy oracles
def np_layer_norm(x, gamma, beta, eps=1e-6):
    x = x.astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_spatial_shift(x):
    """The survey's in-place ``Spatial_Shift`` (appendix S.2.2), transcribed to numpy.

    numpy resolves overlapping slice assignment as if the right-hand side were
    copied first, so this is the shift the reference code means.
    """
    x = x.copy()
    b, w, h, c = x.shape
    x[:, 1:, :, : c // 4] = x[:, : w - 1, :, : c // 4]
    x[:, : w - 1, :, c // 4 : c // 2] = x[:, 1:, :, c // 4 : c // 2]
    x[:, :, 1:, c // 2 : c * 3 // 4] = x[:, :, : h - 1, c // 2 : c * 3 // 4]
    x[:, :, : h - 1, 3 * c // 4 :] = x[:, :, 1:, 3 * c // 4 :]
    return x


# ----------------------------------------------------------------- mu_product
def _mu_inputs(shape, seed=0):
    h = shape[-1]
    return [
        rand(shape, seed),
        rand(shape, seed + 1),
        np.array([0.7], np.float32),
        rand((h,), seed + 2, 0.5) + 1.0,
        rand((h,), seed + 3, 0.5),
        rand((h,), seed + 4, 0.5) + 1.0,
        rand((h,), seed + 5, 0.5),
    ]


@pytest.mark.parametrize("shape", [(3, 16), (2, 3, 4, 8)])
def test_mu_product_fast_equals_reference(shape):
    assert_paths_agree(hops.mu_product, _mu_inputs(shape), require_accelerated="mu_product")


def test_mu_product_python_alpha_and_no_affine():
    u, v = rand((4, 6), 0), rand((4, 6), 1)
    assert_paths_agree(lambda a, b: hops.mu_product(a, b, 2.0), [u, v], require_accelerated="mu_product")
    a, b = np_layer_norm(u, 1.0, 0.0), np_layer_norm(v, 1.0, 0.0)
    assert_close(to_np(hops.mu_product(u, v, 2.0)), a + 2.0 * a * b, 1e-5, 1e-5)


def test_mu_product_matches_numpy_formula():
    u, v, alpha, gu, bu, gv, bv = _mu_inputs((2, 3, 8), 3)
    a, b = np_layer_norm(u, gu, bu), np_layer_norm(v, gv, bv)
    expected = a + alpha[0] * (a * b)
    for fused in (True, False):
        with hops.fusion(fused):
            assert_close(to_np(hops.mu_product(u, v, alpha, gu, bu, gv, bv)), expected, 1e-5, 1e-5)


def test_mu_product_half_precision_keeps_dtype():
    u, v, alpha, gu, bu, gv, bv = _mu_inputs((2, 8))
    cast = lambda t: keras.ops.cast(t, "bfloat16")  # noqa: E731
    y = hops.mu_product(cast(u), cast(v), alpha, gu, bu, gv, bv)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    a, b = np_layer_norm(u, gu, bu), np_layer_norm(v, gv, bv)
    assert_close(to_np(keras.ops.cast(y, "float32")), a + alpha[0] * a * b, 5e-2, 5e-2)


def test_mu_product_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        hops.mu_product(rand((2, 4)), rand((2, 5)), 1.0)
    with pytest.raises(ValueError, match=r"gamma_v must have shape \(4,\)"):
        hops.mu_product(rand((2, 4)), rand((2, 4)), 1.0, gamma_v=rand((5,)))
    with pytest.raises(ValueError, match="alpha"):
        hops.mu_product(rand((2, 4)), rand((2, 4)), rand((4,)))
    with pytest.raises(ValueError, match="epsilon"):
        hops.mu_product(rand((2, 4)), rand((2, 4)), 1.0, epsilon=0.0)


# -------------------------------------------------------------- spatial_shift
@pytest.mark.parametrize("shape", [(2, 4, 5, 8), (2, 1, 2, 12)])
def test_spatial_shift_fast_equals_reference(shape):
    assert_paths_agree(hops.spatial_shift, [rand(shape)], require_accelerated="spatial_shift")


@pytest.mark.parametrize("shape", [(2, 4, 5, 8), (1, 3, 6, 6), (1, 2, 2, 3), (2, 1, 1, 16)])
def test_spatial_shift_matches_survey_code(shape):
    x = rand(shape, 7)
    expected = np_spatial_shift(x)
    for fused in (True, False):
        with hops.fusion(fused):
            assert_close(to_np(hops.spatial_shift(x)), expected, 0, 0)


def test_spatial_shift_keeps_edges():
    x = np.arange(1 * 3 * 3 * 4, dtype=np.float32).reshape(1, 3, 3, 4)
    y = to_np(hops.spatial_shift(x))
    # group 1 (channel 0): +1 along H, row 0 kept
    np.testing.assert_array_equal(y[0, :, 0, 0], x[0, [0, 0, 1], 0, 0])
    # group 2 (channel 1): -1 along H, last row kept
    np.testing.assert_array_equal(y[0, :, 0, 1], x[0, [1, 2, 2], 0, 1])
    # groups 3, 4 along W
    np.testing.assert_array_equal(y[0, 0, :, 2], x[0, 0, [0, 0, 1], 2])
    np.testing.assert_array_equal(y[0, 0, :, 3], x[0, 0, [1, 2, 2], 3])


def test_spatial_shift_gradient_is_adjoint():
    """<x, d/dx sum(shift(x) * c)> == <shift(x), c>: the backward is the adjoint of the numpy shift."""
    x = rand((2, 3, 4, 8), 0)
    _, (grad,) = value_and_grads(hops.spatial_shift, [x], seed=5)
    cot = np.random.default_rng(5).normal(size=x.shape).astype(np.float32)
    assert_close(float(np.sum(grad * x)), float(np.sum(np_spatial_shift(x) * cot)), 1e-5, 1e-5)


def test_spatial_shift_bad_inputs():
    with pytest.raises(ValueError, match="rank 4"):
        hops.spatial_shift(rand((2, 4, 8)))
    with pytest.raises(ValueError, match="rank 4"):
        hops.spatial_shift(rand((1, 2, 2, 2, 4)))
