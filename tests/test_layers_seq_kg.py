import math

import keras
import numpy as np
import pytest
from helpers import BACKEND, assert_close, rand, roundtrip_keras, to_np, value_and_grads

import hadamard_zoo.ops as hops
from hadamard_zoo.layers import CausalLinearAttention, HadamardDepthwiseConv2D, RotatEScore
from hadamard_zoo.layers.attention import elu_plus_one

MIXED = ["mixed_bfloat16", "mixed_float16"] if BACKEND in ("jax", "torch") else ["mixed_bfloat16"]


# ------------------------------------------------------------ linear attention
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"num_heads": 2, "feature_map": "elu+1", "normalize": True, "output_projection": True, "chunk_size": 4},
    ],
)
def test_attention_shapes_and_roundtrip(kwargs, tmp_path):
    layer = CausalLinearAttention(8, **kwargs)
    inp = keras.Input((None, 6))
    model = keras.Model(inp, layer(inp))
    x = rand((2, 11, 6))
    assert tuple(model(x).shape) == (2, 11, 8)
    assert layer.compute_output_shape((None, None, 6)) == (None, None, 8)
    restored = roundtrip_keras(model, tmp_path, x)
    assert restored.layers[-1].get_config() == layer.get_config()


def test_attention_default_is_the_survey_s21_block():
    """num_heads=1, no feature map, no normalization: Y = ((Q K^T) * M) V with biased projections."""
    layer = CausalLinearAttention(5, bias_initializer="random_normal")
    z = rand((2, 7, 5))
    y = to_np(layer(z))
    (wq, bq), (wk, bk), (wv, bv) = (
        [to_np(w) for w in d.weights] for d in (layer.query_dense, layer.key_dense, layer.value_dense)
    )
    q, k, v = z @ wq + bq, z @ wk + bk, z @ wv + bv
    scores = (q @ np.swapaxes(k, 1, 2)) * np.tril(np.ones((7, 7)))
    assert_close(y, scores @ v, 1e-5, 1e-5)


def test_attention_heads_feature_map_normalize_formula():
    layer = CausalLinearAttention(4, num_heads=2, feature_map="elu+1", normalize=True, chunk_size=3)
    z = rand((1, 7, 3))
    y = to_np(layer(z))
    (wq, bq), (wk, bk), (wv, bv) = (
        [to_np(w) for w in d.weights] for d in (layer.query_dense, layer.key_dense, layer.value_dense)
    )
    elu1 = lambda x: np.where(x > 0, x, np.expm1(x)) + 1  # noqa: E731
    q, k, v = elu1(z @ wq + bq), elu1(z @ wk + bk), z @ wv + bv
    out = []
    for h in range(2):
        s = slice(2 * h, 2 * h + 2)
        scores = (q[..., s] @ np.swapaxes(k[..., s], 1, 2)) * np.tril(np.ones((7, 7)))
        out.append(scores @ v[..., s] / (scores.sum(-1, keepdims=True) + 1e-6))
    assert_close(y, np.concatenate(out, -1), 1e-5, 1e-5)


def test_elu_plus_one_is_exact_in_the_tail_and_has_finite_gradients():
    """phi(x) = elu(x) + 1 without the cancellation of expm1(x) + 1: full relative precision
    for x << 0 (a trained LM's features reach 1e-6, where expm1 + 1 is off by percents)."""
    x = np.array([-80.0, -30.0, -14.0, -3.0, -0.5, 0.0, 0.5, 3.0, 90.0], "float32")
    y, (g,) = value_and_grads(lambda t: elu_plus_one(t), [x])
    want = np.where(x > 0, x.astype("float64") + 1, np.exp(np.minimum(x, 0).astype("float64")))
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=0)  # relative, down to exp(-80) (exp(-100) is subnormal)
    assert y[2] > 0 and abs(y[2] / np.exp(-14.0) - 1) < 1e-6  # expm1(-14) + 1 in float32 is off by ~7%
    cotangent = np.random.default_rng(123).normal(size=x.shape).astype("float32")  # value_and_grads' seed
    derivative = np.where(x > 0, 1.0, want)  # 1, or exp(x); finite at 90 (no NaN from the unused branch)
    np.testing.assert_allclose(g, cotangent * derivative, rtol=1e-6, atol=0)
    moderate = rand((50,), scale=2.0)
    assert_close(elu_plus_one(moderate), to_np(keras.ops.elu(moderate)) + 1, 1e-6, 1e-6)


@pytest.mark.parametrize("policy", MIXED)
def test_attention_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    layer = CausalLinearAttention(8, num_heads=2, feature_map="elu+1", normalize=True, chunk_size=4)
    y = layer(rand((2, 9, 6)))
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    assert layer.query_dense.kernel.dtype == "float32"
    assert np.all(np.isfinite(to_np(keras.ops.cast(y, "float32"))))


def test_attention_trains_in_functional_model():
    inp = keras.Input((12, 4))
    h = CausalLinearAttention(8, feature_map="elu+1", normalize=True, chunk_size=5)(inp)
    model = keras.Model(inp, keras.layers.Dense(1)(h))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x, y = rand((8, 12, 4)), rand((8, 12, 1), 1)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CausalLinearAttention(8, num_heads=3), "divisible"),
        (lambda: CausalLinearAttention(8, feature_map="relu"), "Unknown feature_map"),
        (lambda: CausalLinearAttention(8, chunk_size=0), "chunk_size"),
        (lambda: CausalLinearAttention(0), "hidden_dim"),
    ],
)
def test_attention_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_attention_bad_input_rank():
    with pytest.raises(ValueError, match=r"\(batch, time, features\)"):
        CausalLinearAttention(4)(rand((2, 5)))


# ------------------------------------------------------------------ depthwise
@pytest.mark.parametrize("kernel_size,strides,padding", [(3, 1, "same"), ((4, 2), 1, "same"), (3, 2, "valid")])
def test_depthwise_drop_in_for_keras_layer(kernel_size, strides, padding, tmp_path):
    x = rand((2, 9, 8, 5))
    ref = keras.layers.DepthwiseConv2D(kernel_size, strides=strides, padding=padding, bias_initializer="random_normal")
    expected = to_np(ref(x))
    layer = HadamardDepthwiseConv2D(kernel_size, strides=strides, padding=padding)
    layer.build(x.shape)
    assert [tuple(w.shape) for w in layer.weights] == [tuple(w.shape) for w in ref.weights]
    assert [w.path.split("/")[-1] for w in layer.weights] == ["kernel", "bias"]
    layer.set_weights(ref.get_weights())
    assert_close(to_np(layer(x)), expected, 1e-5, 1e-5)
    assert layer.compute_output_shape(x.shape) == ref.compute_output_shape(x.shape)

    inp = keras.Input((9, 8, 5))
    model = keras.Model(inp, layer(inp))
    roundtrip_keras(model, tmp_path, x)


@pytest.mark.parametrize("policy", MIXED)
def test_depthwise_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    layer = HadamardDepthwiseConv2D(3, use_bias=False)
    y = layer(rand((1, 6, 6, 4)))
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    assert layer.kernel.dtype == "float32" and layer.bias is None


def test_depthwise_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="kernel_size"):
        HadamardDepthwiseConv2D(0)
    with pytest.raises(ValueError, match="padding"):
        HadamardDepthwiseConv2D(3, padding="full")
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\)"):
        HadamardDepthwiseConv2D(3)(rand((2, 5, 5)))
    layer = HadamardDepthwiseConv2D(3)
    layer(rand((1, 5, 5, 3)))
    with pytest.raises(ValueError):
        layer(rand((1, 5, 5, 4)))  # channel count differs from the built kernel


# ---------------------------------------------------------------------- RotatE
def _numpy_rotate(layer, triples):
    ent, rel = to_np(layer.entity_embedding), to_np(layer.relation_embedding)
    k = layer.hidden_dim
    phase = rel[triples[:, 1]] / (layer.embedding_range / math.pi)
    h, t = ent[triples[:, 0]], ent[triples[:, 2]]
    hc, tc = h[:, :k] + 1j * h[:, k:], t[:, :k] + 1j * t[:, k:]
    return layer.gamma - np.abs(hc * np.exp(1j * phase) - tc).sum(-1)


def test_rotate_layer_weights_init_and_scores(tmp_path):
    layer = RotatEScore(num_entities=9, num_relations=3, hidden_dim=4, gamma=6.0)
    triples = np.array([[0, 1, 2], [3, 0, 3], [8, 2, 5]], "int32")
    inp = keras.Input((3,), dtype="int32")
    model = keras.Model(inp, layer(inp))
    scores = to_np(model(triples))
    assert scores.shape == (3,)
    assert layer.entity_embedding.shape == (9, 8) and layer.relation_embedding.shape == (3, 4)
    rho = (6.0 + 2.0) / 4
    assert layer.embedding_range == rho
    for w in (layer.entity_embedding, layer.relation_embedding):
        assert np.abs(to_np(w)).max() <= rho
    assert_close(scores, _numpy_rotate(layer, triples), 1e-5, 1e-5)
    assert_close(to_np(layer(triples, mode="head")), scores, 1e-5, 1e-5)
    roundtrip_keras(model, tmp_path, triples)


def test_rotate_score_all_matches_pairwise_scores():
    layer = RotatEScore(num_entities=11, num_relations=2, hidden_dim=3, chunk_size=4)
    heads, rels, tails = np.array([0, 5, 10]), np.array([1, 0, 1]), np.array([2, 2, 7])
    all_tails = to_np(layer.score_all_tails(heads, rels))
    all_heads = to_np(layer.score_all_heads(rels, tails))
    assert all_tails.shape == all_heads.shape == (3, 11)
    ents = np.arange(11)
    for b in range(3):
        tail_triples = np.stack([np.full(11, heads[b]), np.full(11, rels[b]), ents], 1)
        head_triples = np.stack([ents, np.full(11, rels[b]), np.full(11, tails[b])], 1)
        assert_close(all_tails[b], _numpy_rotate(layer, tail_triples), 1e-5, 1e-5)
        assert_close(all_heads[b], _numpy_rotate(layer, head_triples), 1e-5, 1e-5)


@pytest.mark.parametrize("policy", MIXED)
def test_rotate_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    layer = RotatEScore(num_entities=6, num_relations=2, hidden_dim=4)
    y = layer(np.array([[0, 1, 2], [3, 0, 5]], "int32"))
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    assert layer.entity_embedding.dtype == "float32"
    assert keras.backend.standardize_dtype(layer.score_all_tails(np.array([0]), np.array([1])).dtype) == policy.split("_")[1]


def test_rotate_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="num_entities"):
        RotatEScore(0, 2, 4)
    with pytest.raises(ValueError, match="hidden_dim"):
        RotatEScore(5, 2, 2.5)
    with pytest.raises(ValueError, match="gamma"):
        RotatEScore(5, 2, 4, gamma="big")
    with pytest.raises(ValueError, match="chunk_size"):
        RotatEScore(5, 2, 4, chunk_size=-1)
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        RotatEScore(5, 2, 4)(np.zeros((2, 2), "int32"))
    with pytest.raises(ValueError, match="1-D id vectors"):
        RotatEScore(5, 2, 4).score_all_tails(np.zeros((2, 1), "int32"), np.zeros((2, 1), "int32"))


def test_fused_and_reference_layers_agree():
    layer = RotatEScore(num_entities=7, num_relations=2, hidden_dim=3, chunk_size=3)
    heads, rels = np.array([1, 4]), np.array([0, 1])
    fast = to_np(layer.score_all_tails(heads, rels))
    with hops.fusion(False):
        ref = to_np(layer.score_all_tails(heads, rels))
    assert_close(fast, ref, 1e-5, 1e-5)
