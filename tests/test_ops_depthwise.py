import keras
import numpy as np
import pytest
from helpers import BACKEND, assert_close, assert_paths_agree, rand, to_np

import hadamard_zoo.ops as hops

ACCELERATED = {"jax": "depthwise_conv2d", "torch": "depthwise_conv2d", "tensorflow": None}[BACKEND]


def _numpy_depthwise(x, w, b=None, padding="same"):
    """Direct loop formula with Keras/TF "same" padding (extra zero after for even kernels)."""
    kh, kw = w.shape[:2]
    if padding == "same":
        ph, pw = ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
        x = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(kh):
        for j in range(kw):
            y += x[:, i : i + oh, j : j + ow, :] * w[i, j, :, 0]
    return y if b is None else y + b


@pytest.mark.parametrize(
    "kernel,padding,with_bias",
    [
        ((3, 3), "same", True),
        ((7, 7), "same", False),
        ((2, 4), "same", True),  # even kernels: asymmetric "same" padding
        ((3, 2), "valid", True),
        ((5, 5), "valid", False),
    ],
)
def test_fast_equals_reference(kernel, padding, with_bias):
    x = rand((2, 9, 8, 6), 0)
    w = rand(kernel + (6, 1), 1, 0.3)
    b = rand((6,), 2) if with_bias else None
    assert_paths_agree(
        lambda x_, w_, b_: hops.depthwise_conv2d(x_, w_, b_, padding=padding),
        [x, w, b],
        require_accelerated=ACCELERATED,
    )


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_stride_two_falls_back_or_matches(padding):
    # JAX's shifted path declines strides != 1 (the reference runs); torch's native path handles them.
    x, w, b = rand((2, 9, 10, 4), 0), rand((3, 3, 4, 1), 1, 0.3), rand((4,), 2)
    out = assert_paths_agree(lambda x_, w_, b_: hops.depthwise_conv2d(x_, w_, b_, strides=2, padding=padding), [x, w, b])
    expected_hw = (5, 5) if padding == "same" else (4, 4)
    assert out.shape == (2,) + expected_hw + (4,)


@pytest.mark.parametrize("kernel", [(3, 3), (2, 2), (4, 3)])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_values_by_numpy_formula(kernel, padding):
    x, w, b = rand((1, 7, 6, 3), 0), rand(kernel + (3, 1), 1), rand((3,), 2)
    expected = _numpy_depthwise(x.astype("float64"), w.astype("float64"), b, padding)
    for fused in (True, False):
        with hops.fusion(fused):
            assert_close(to_np(hops.depthwise_conv2d(x, w, b, padding=padding)), expected, 1e-5, 1e-5, f"fusion={fused}")


def test_matches_keras_depthwise_layer():
    x = rand((2, 8, 8, 5), 0)
    layer = keras.layers.DepthwiseConv2D(4, padding="same", bias_initializer="glorot_uniform")
    expected = to_np(layer(x))
    kernel, bias = (to_np(v) for v in layer.weights)
    assert_close(to_np(hops.depthwise_conv2d(x, kernel, bias)), expected, 1e-5, 1e-5)


def test_half_precision_runs():
    x = keras.ops.cast(rand((1, 6, 6, 4), 0), "bfloat16")
    w = keras.ops.cast(rand((3, 3, 4, 1), 1), "bfloat16")
    y = hops.depthwise_conv2d(x, w)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    with hops.fusion(False):
        ref = hops.depthwise_conv2d(x, w)
    assert_close(to_np(keras.ops.cast(y, "float32")), to_np(keras.ops.cast(ref, "float32")), 3e-2, 3e-2)


def test_bad_inputs_raise_clear_errors():
    x, w = rand((2, 5, 5, 3)), rand((3, 3, 3, 1))
    with pytest.raises(ValueError, match="rank 4"):
        hops.depthwise_conv2d(x[0], w)
    with pytest.raises(ValueError, match="depth multiplier 1"):
        hops.depthwise_conv2d(x, rand((3, 3, 3, 2)))
    with pytest.raises(ValueError, match="last dimension"):
        hops.depthwise_conv2d(x, rand((3, 3, 4, 1)))
    with pytest.raises(ValueError, match="bias"):
        hops.depthwise_conv2d(x, w, rand((4,)))
    with pytest.raises(ValueError, match="padding"):
        hops.depthwise_conv2d(x, w, padding="causal")
    with pytest.raises(ValueError, match="strides"):
        hops.depthwise_conv2d(x, w, strides=0)
    with pytest.raises(ValueError, match="at least"):
        hops.depthwise_conv2d(x, rand((7, 7, 3, 1)), padding="valid")
