import keras
import numpy as np
import pytest
from helpers import BACKEND, assert_close, rand, roundtrip_keras, to_np

from hadamard_zoo.layers import GLU, CCPPolynomial, NCPPolynomial, Star


def _model(layer, d=6):
    inp = keras.Input((d,))
    return keras.Model(inp, layer(inp))


@pytest.mark.parametrize("cls", [CCPPolynomial, NCPPolynomial])
@pytest.mark.parametrize("kwargs", [{}, {"activation": "relu"}, {"normalization": "batch"}, {"normalization": "layer", "activation": "tanh"}])
def test_polynomial_layer_shapes_and_roundtrip(cls, kwargs, tmp_path):
    layer = cls(5, degree=3, **kwargs)
    model = _model(layer)
    x = rand((4, 6))
    y = model(x)
    assert tuple(y.shape) == (4, 5)
    assert layer.compute_output_shape((None, 6)) == (None, 5)
    roundtrip_keras(model, tmp_path, x)


def test_ncp_skip_layer_matches_formula():
    layer = NCPPolynomial(4, degree=2, skip=True)
    x = rand((3, 5))
    y = to_np(layer(x))
    A, ab, S, sb, V = (to_np(w) for w in (layer.a_kernels, layer.a_biases, layer.s_kernels, layer.s_biases, layer.skip_kernels))
    x1 = x @ A[0] + ab[0]
    expected = (x @ A[1] + ab[1]) * (x1 @ S[0] + sb[0]) + x1 @ V[0]
    assert_close(y, expected, 1e-5, 1e-5)


def test_stepwise_path_equals_fused_path():
    """With no normalization/activation the layer uses the fused op; the step path must agree."""
    layer = CCPPolynomial(4, degree=3)
    x = rand((3, 5))
    fused = to_np(layer(x))
    layer.activation_name = "identity"  # forces the step-by-step path with an identity in between
    assert_close(to_np(layer(x)), fused, 1e-5, 1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("cls", [CCPPolynomial, NCPPolynomial])
def test_mixed_precision(cls, policy):
    keras.config.set_dtype_policy(policy)
    layer = cls(4, degree=3)
    y = layer(rand((2, 5)))
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    assert layer.kernels.dtype == "float32" if cls is CCPPolynomial else layer.a_kernels.dtype == "float32"
    assert np.all(np.isfinite(to_np(keras.ops.cast(y, "float32"))))


def test_layers_train_in_functional_model():
    inp = keras.Input((8,))
    h = NCPPolynomial(8, degree=2, normalization="batch", name="ncp")(inp)
    gated = GLU(activation="swish")(keras.layers.Concatenate()([h, h]))
    out = keras.layers.Dense(3)(Star()([gated, h]))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = rand((16, 8)), np.arange(16) % 3
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CCPPolynomial(4, degree=0), "degree"),
        (lambda: CCPPolynomial(0), "units"),
        (lambda: NCPPolynomial(4, degree=2.5), "degree"),
        (lambda: CCPPolynomial(4, activation="swishy"), "Unknown activation"),
        (lambda: NCPPolynomial(4, normalization="group"), "normalization"),
        (lambda: Star(activation="nope"), "Unknown activation"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_input_rank_and_width():
    with pytest.raises(ValueError, match="batch, ..., features"):
        CCPPolynomial(3).build((5,))
    layer = NCPPolynomial(3, degree=2)
    layer(rand((2, 4)))
    with pytest.raises(ValueError):
        layer(rand((2, 5)))
