"""GCNN gated convolutions, residual/bottleneck blocks, GLU FFNs, adaptive softmax, positions."""

import math

import keras
import numpy as np
import pytest
from helpers import BACKEND, assert_close, rand, roundtrip_keras, to_np

from hadamard_zoo.layers import (
    AdaptiveSoftmax,
    GatedBottleneckBlock,
    GatedConv1D,
    GatedResidualBlock,
    GLUFeedForward,
    PositionEmbedding,
)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_causal_conv(x, kernel, bias, dilation=1):
    k = kernel.shape[0]
    pad = (k - 1) * dilation
    xp = np.pad(x, [(0, 0), (pad, 0), (0, 0)])
    out = np.zeros(x.shape[:2] + (kernel.shape[-1],))
    for j in range(k):
        out += xp[:, j * dilation : j * dilation + x.shape[1]] @ kernel[j]
    return out + bias


# ----------------------------------------------------------------- GatedConv1D
@pytest.mark.parametrize("dilation", [1, 2])
def test_gated_conv_matches_formula(dilation):
    layer = GatedConv1D(4, 3, dilation_rate=dilation, bias_initializer="random_normal")
    x = rand((2, 9, 5))
    out = to_np(layer(x))
    h = _numpy_causal_conv(x.astype(np.float64), to_np(layer.kernel), to_np(layer.bias), dilation)
    assert_close(out, h[..., :4] * _sigmoid(h[..., 4:]), 1e-5, 1e-5)


def test_gated_conv_is_causal():
    layer = GatedConv1D(3, 4, dilation_rate=2)
    x = rand((1, 12, 2))
    y = x.copy()
    y[:, 7:] += 5.0  # change the future from t = 7 on
    a, b = to_np(layer(x)), to_np(layer(y))
    assert_close(a[:, :7], b[:, :7], 0, 0)
    assert not np.allclose(a[:, 7], b[:, 7])


def test_gated_conv_non_causal_same_padding():
    layer = GatedConv1D(3, 3, causal=False)
    x = rand((1, 8, 2))
    assert layer(x).shape == (1, 8, 3)
    y = x.copy()
    y[:, 5] += 1.0
    assert not np.allclose(to_np(layer(x))[:, 4], to_np(layer(y))[:, 4])  # sees one step ahead


def test_weight_norm_starts_at_initial_kernel_and_is_scale_invariant():
    plain = GatedConv1D(3, 2, kernel_initializer="glorot_uniform")
    wn = GatedConv1D(3, 2, weight_norm=True, kernel_initializer="glorot_uniform")
    x = rand((2, 5, 4))
    plain.build(x.shape)
    wn.build(x.shape)
    wn.kernel.assign(plain.kernel)
    wn.kernel_g.assign(np.sqrt((to_np(plain.kernel) ** 2).sum(axis=(0, 1))))
    assert_close(to_np(wn(x)), to_np(plain(x)), 1e-5, 1e-5)
    wn.kernel.assign(3.0 * to_np(wn.kernel))  # direction unchanged
    assert_close(to_np(wn(x)), to_np(plain(x)), 1e-5, 1e-5)
    assert len(wn.trainable_weights) == 3


def test_gated_conv_bad_arguments():
    with pytest.raises(ValueError, match="kernel_size must be a positive integer"):
        GatedConv1D(4, 0)
    with pytest.raises(ValueError, match="filters"):
        GatedConv1D(-1, 3)
    with pytest.raises(ValueError, match="Unknown activation"):
        GatedConv1D(4, 3, gate_activation="sigmoidd")
    with pytest.raises(ValueError, match=r"\(batch, time, channels\)"):
        GatedConv1D(4, 3)(rand((2, 5)))


# ------------------------------------------------------------- residual blocks
def test_residual_block_formula_and_projection():
    block = GatedResidualBlock([(6, 3)])
    x = rand((2, 7, 4))
    out = to_np(block(x))
    assert block.projection is not None  # 4 -> 6 channels
    expected = (to_np(block.convs[0](x)) + to_np(block.projection(x))) * math.sqrt(0.5)
    assert_close(out, expected, 1e-5, 1e-5)
    same = GatedResidualBlock([(4, 3), (4, 2)])
    assert_close(to_np(same(x)), (to_np(same.convs[1](same.convs[0](x))) + x) * math.sqrt(0.5), 1e-5, 1e-5)
    assert same.projection is None


def test_bottleneck_block_structure_and_causality():
    block = GatedBottleneckBlock(8, 2, 5)
    assert [(c.filters, c.kernel_size) for c in block.convs] == [(2, 1), (2, 5), (8, 1)]
    x = rand((1, 9, 8))
    y = x.copy()
    y[:, 6:] -= 2.0
    assert_close(to_np(block(x))[:, :6], to_np(block(y))[:, :6], 0, 0)
    config = block.get_config()
    assert config["bottleneck_filters"] == 2 and "convolutions" not in config


def test_blocks_bad_arguments():
    with pytest.raises(ValueError, match=r"\(filters, kernel_size\)"):
        GatedResidualBlock([(4,)])
    with pytest.raises(ValueError, match="kernel_size"):
        GatedResidualBlock([(4, 0)])
    with pytest.raises(ValueError, match="dropout"):
        GatedResidualBlock([(4, 3)], dropout=1.5)


# ----------------------------------------------------------------- GLU FFN
@pytest.mark.parametrize(
    "activation, fn",
    [
        ("swish", lambda b: b * _sigmoid(b)),
        ("sigmoid", _sigmoid),
        ("identity", lambda b: b),
        ("gelu", None),
    ],
)
def test_glu_ffn_matches_formula(activation, fn):
    layer = GLUFeedForward(5, output_dim=3, activation=activation, use_bias=True, bias_initializer="random_normal")
    x = rand((2, 4, 6))
    out = to_np(layer(x))
    h = x.astype(np.float64) @ to_np(layer.kernel_in) + to_np(layer.bias_in)
    value, gate = h[..., :5], h[..., 5:]
    if fn is None:
        from math import erf

        fn = np.vectorize(lambda g: 0.5 * g * (1.0 + erf(g / math.sqrt(2.0))))
    expected = (value * fn(gate)) @ to_np(layer.kernel_out) + to_np(layer.bias_out)
    assert_close(out, expected, 1e-5, 1e-5)


def test_glu_ffn_defaults_and_errors():
    layer = GLUFeedForward(8)
    assert layer(rand((2, 3, 4))).shape == (2, 3, 4)
    assert layer.count_params() == 4 * 16 + 8 * 4  # no biases (Shazeer 2020)
    with pytest.raises(ValueError, match="Unknown activation"):
        GLUFeedForward(8, activation="swishy")
    with pytest.raises(ValueError, match="hidden_dim"):
        GLUFeedForward(0)


# ------------------------------------------------------------ adaptive softmax
def test_adaptive_softmax_normalized_and_nll():
    layer = AdaptiveSoftmax(30, [8, 16], div_value=2.0)
    x = rand((2, 5, 8))
    logp = to_np(layer(x))
    assert logp.shape == (2, 5, 30)
    assert_close(np.exp(logp.astype(np.float64)).sum(-1), np.ones((2, 5)), 1e-5, 1e-5)
    targets = np.array([[0, 7, 8, 15, 16], [29, 3, 20, 9, 12]], dtype="int32")
    expected = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    assert_close(to_np(layer.nll(x, targets)), expected, 1e-5, 1e-5)
    # fairseq / torch layout: head d x (c0 + clusters); tail i: d x d//div^(i+1), then to the cluster
    assert layer.count_params() == 8 * 10 + (8 * 4 + 4 * 8) + (8 * 2 + 2 * 14)


def test_adaptive_softmax_trains_with_sparse_crossentropy(tmp_path):
    inputs = keras.Input((None, 8))
    model = keras.Model(inputs, AdaptiveSoftmax(20, [5, 10, 20], div_value=2.0)(inputs))  # last cutoff == V is dropped
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = rand((2, 3, 8)), np.random.default_rng(0).integers(0, 20, (2, 3)).astype("int32")
    expected = to_np(model.layers[-1].nll(x, y)).mean()  # before the update
    assert_close(float(model.train_on_batch(x, y)), expected, 1e-4, 1e-4)
    roundtrip_keras(model, tmp_path, x)


def test_adaptive_softmax_bad_arguments():
    with pytest.raises(ValueError, match="strictly increasing"):
        AdaptiveSoftmax(30, [16, 8])
    with pytest.raises(ValueError, match="strictly increasing"):
        AdaptiveSoftmax(30, [40])
    with pytest.raises(ValueError, match="no dimension"):
        AdaptiveSoftmax(30, [4, 8, 12], div_value=4.0)(rand((1, 2, 8)))


# ------------------------------------------------------------ position embedding
def test_position_embedding_adds_positions():
    layer = PositionEmbedding(6)
    x = rand((2, 4, 3))
    out = to_np(layer(x))
    assert_close(out, x + to_np(layer.embeddings)[:4], 1e-6, 1e-6)
    with pytest.raises(ValueError, match="exceeds max_length"):
        PositionEmbedding(3)(rand((1, 4, 2)))


# ------------------------------------------- common layer contract: round trip, dtypes
LAYERS = {
    "gated_conv": lambda: GatedConv1D(4, 3, weight_norm=True),
    "residual_block": lambda: GatedResidualBlock([(4, 3), (6, 2)], dropout=0.1),
    "bottleneck_block": lambda: GatedBottleneckBlock(6, 2, 3),
    "glu_ffn": lambda: GLUFeedForward(8, activation="gelu", use_bias=True),
    "adaptive_softmax": lambda: AdaptiveSoftmax(12, [4, 8], div_value=2.0),
    "position_embedding": lambda: PositionEmbedding(7),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_functional_roundtrip(name, tmp_path):
    layer = LAYERS[name]()
    inputs = keras.Input((7, 5))
    outputs = layer(inputs)
    model = keras.Model(inputs, outputs)
    x = rand((2, 7, 5))
    assert tuple(model.output_shape[1:]) == tuple(to_np(model(x)).shape[1:])
    restored = roundtrip_keras(model, tmp_path, x)
    assert type(restored.layers[-1]) is type(layer)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize(
    "policy",
    ["mixed_bfloat16"] + (["mixed_float16"] if BACKEND in ("jax", "torch") else []),
)
def test_layer_mixed_precision(name, policy):
    keras.config.set_dtype_policy(policy)
    layer = LAYERS[name]()
    out = layer(rand((2, 7, 5)))
    assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
    assert all(w.dtype == "float32" for w in layer.weights)
    assert np.all(np.isfinite(to_np(out).astype(np.float32)))
