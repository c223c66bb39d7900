"""Shared building blocks (hadamard_zoo.layers.common) and the shared argument checks (hadamard_zoo.checks)."""

import keras
import numpy as np
import pytest
from helpers import BACKEND, roundtrip_keras, to_np

import hadamard_zoo.layers
import hadamard_zoo.layers.common
import hadamard_zoo.layers.monet
from hadamard_zoo import checks
from hadamard_zoo.layers import DropPath, GatedConv1D, PolySA, RotatEScore, StarBlock
from hadamard_zoo.ops import _checks


# ------------------------------------------------------------------ DropPath
def test_drop_path_has_one_home_and_keeps_its_registered_name():
    assert hadamard_zoo.layers.monet.DropPath is hadamard_zoo.layers.DropPath
    assert hadamard_zoo.layers.common.DropPath is hadamard_zoo.layers.DropPath
    assert isinstance(StarBlock(8, drop_path=0.1).drop, DropPath)
    assert isinstance(hadamard_zoo.layers.PolyBlock(8, drop_path=0.1).drop_path_layer, DropPath)
    assert keras.saving.get_registered_name(DropPath) == "hadamard_zoo>DropPath"
    assert keras.saving.get_registered_object("hadamard_zoo>DropPath") is DropPath


def test_drop_path_is_the_identity_at_inference():
    x = np.random.default_rng(0).standard_normal((16, 3, 4)).astype("float32")
    layer = DropPath(0.5, seed=3)
    np.testing.assert_array_equal(to_np(layer(x)), x)
    np.testing.assert_array_equal(to_np(layer(x, training=False)), x)
    np.testing.assert_array_equal(to_np(DropPath(0.0)(x, training=True)), x)  # rate 0: identity in training too


def test_drop_path_drops_whole_samples_at_the_rate_and_rescales_the_rest():
    rate, n = 0.25, 4000
    x = np.full((n, 2, 3), 3.0, "float32")
    y = to_np(DropPath(rate, seed=7)(x, training=True)).reshape(n, -1)
    assert np.all(y.min(1) == y.max(1))  # a sample is dropped or kept as a whole
    dropped = y[:, 0] == 0.0
    np.testing.assert_allclose(y[~dropped, 0], 3.0 / (1.0 - rate), rtol=1e-6)
    assert abs(dropped.mean() - rate) < 0.03, dropped.mean()  # 4000 samples: std of the fraction ~0.007


def test_drop_path_config_round_trip(tmp_path):
    layer = DropPath(0.3, seed=5, name="dp")
    config = layer.get_config()
    assert config["rate"] == 0.3 and config["seed"] == 5
    clone = DropPath.from_config(config)
    assert clone.get_config() == config
    # a config saved when DropPath lived in layers.monet deserializes to the same class
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == "hadamard_zoo>DropPath"
    old = dict(serialized, module="hadamard_zoo.layers.monet")
    restored = keras.saving.deserialize_keras_object(old)
    assert type(restored) is DropPath and restored.rate == 0.3 and restored.seed == 5
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(DropPath(0.2, seed=1)(inp)))
    restored_model = roundtrip_keras(model, tmp_path, np.ones((3, 4), "float32"))
    assert any(type(l) is DropPath for l in restored_model.layers)


@pytest.mark.parametrize("policy", ["mixed_bfloat16"] + ([] if BACKEND == "tensorflow" else ["mixed_float16"]))
def test_drop_path_mixed_precision(policy):
    layer = DropPath(0.5, seed=2, dtype=policy)
    y = layer(np.ones((32, 4), "float32"), training=True)
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    values = set(np.unique(to_np(y).astype("float32")))
    assert values <= {0.0, 2.0} and len(values) == 2


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.1", True, None])
def test_drop_path_bad_rate(rate):
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\), got "):
        DropPath(rate)


def test_shared_initializers():
    fan_in = keras.initializers.serialize(hadamard_zoo.layers.common.kaiming_normal())["config"]
    fan_out = keras.initializers.serialize(hadamard_zoo.layers.common.conv_initializer())["config"]
    assert (fan_in["scale"], fan_in["mode"], fan_in["distribution"]) == (2.0, "fan_in", "untruncated_normal")
    assert (fan_out["scale"], fan_out["mode"], fan_out["distribution"]) == (2.0, "fan_out", "untruncated_normal")
    assert hadamard_zoo.layers.monet.kaiming_normal is hadamard_zoo.layers.common.kaiming_normal
    with pytest.raises(ValueError, match="fan_in"):
        hadamard_zoo.layers.common.kaiming_normal("fan_avg")


# ------------------------------------------------------- check_positive_int
def test_check_positive_int_is_public_and_returns_an_int():
    assert checks.check_positive_int is _checks.check_positive_int
    for value in (1, 7, 10**12, np.int64(3), np.int32(5)):
        out = checks.check_positive_int("n", value)
        assert out == value and type(out) is int
    assert checks.check_positive_int("n", None, allow_none=True) is None


@pytest.mark.parametrize("value", [0, -1, 1.5, 2.0, True, False, "3", None, np.float32(2.0)])
def test_check_positive_int_rejects(value):
    with pytest.raises(ValueError) as info:
        checks.check_positive_int("n", value)
    assert str(info.value) == f"n must be a positive integer, got {value!r}."


def test_check_positive_int_message_parts():
    with pytest.raises(ValueError) as info:
        checks.check_positive_int("chunk_size", 0, owner="RotatE", allow_none=True, what="entities per chunk")
    assert str(info.value) == "RotatE: chunk_size must be a positive integer (entities per chunk) or None, got 0."
    with pytest.raises(ValueError) as info:
        checks.check_positive_int("filters", "8", owner="GatedConv1D")
    assert str(info.value) == "GatedConv1D: filters must be a positive integer, got '8'."


def test_layers_and_ops_use_the_shared_check():
    """A few call sites: the message is the shared helper's, numpy ints are stored as int."""
    with pytest.raises(ValueError, match=r"^GatedConv1D: kernel_size must be a positive integer, got 0\.$"):
        GatedConv1D(4, 0)
    with pytest.raises(ValueError, match=r"^PolySA: channels must be a positive integer or None, got 1\.5\.$"):
        PolySA(channels=1.5)
    with pytest.raises(ValueError, match=r"^chunk_size must be a positive integer or None, got True\.$"):
        RotatEScore(4, 2, 8, chunk_size=True)
    layer = StarBlock(np.int64(8), mlp_ratio=np.int32(2))
    assert type(layer.dim) is int and type(layer.mlp_ratio) is int
    assert type(GatedConv1D(np.int64(4), 3).get_config()["filters"]) is int
    q = keras.ops.ones((1, 4, 2))
    with pytest.raises(ValueError, match=r"^chunk_size must be a positive integer \(time steps per chunk\), got 0\.$"):
        hadamard_zoo.ops.causal_linear_attention(q, q, q, chunk_size=0)


def test_check_rate():
    assert checks.check_rate("dropout", 0) == 0.0 and checks.check_rate("dropout", np.float32(0.5)) == 0.5
    for bad in (-0.1, 1.0, True, "0.1", None):
        with pytest.raises(ValueError, match=r"^Block: dropout must be a number in \[0, 1\), got "):
            checks.check_rate("dropout", bad, owner="Block")
