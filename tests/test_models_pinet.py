"""The ncp_resnet family (Pi-Net product-polynomial ResNets): counts, forward, train step, heads, saving.

Cost notes (CI runs this file once per backend on 2 cores): parameter counts
and symbolic output shapes come from models built inside a
``keras.StatelessScope`` that never materialises the variables (shapes, no
random values); train steps run at 32x32, eagerly on JAX and torch (JAX's
per-op compilations are then shared by all variants of the same widths) and
as a plain graph on TensorFlow; one test compiles the default variant's
train step as ``fit`` does.
"""

from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import BACKEND, assert_close, rand, roundtrip_keras, to_np

from hadamard_zoo import configs, models
from hadamard_zoo.models.architectures.ncp_resnet import build_ncp_resnet

FAMILY = configs.load_family_file(Path(__file__).resolve().parent.parent / "zoo_configs" / "ncp_resnet.yaml")
VARIANTS = sorted(FAMILY.variants)


def _build(name, **overrides):
    cfg = FAMILY.variants[name]
    return build_ncp_resnet(**{**cfg.arguments, "name": name, **overrides})


def _shapes_only(build):
    """Build inside a StatelessScope that never materialises the variables: shapes, no values."""
    from keras.src.backend.common import global_state

    pending = global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)
    before = list(pending)
    with keras.StatelessScope(initialize_variables=False):
        model = build()
    global_state.set_global_attribute("uninitialized_variables", before)
    return model


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _images(n=2, size=32, seed=0):
    return np.clip(rand((n, size, size, 3), seed, 60.0) + 128.0, 0, 255).astype("float32")


def _train_step(model, **compile_kwargs):
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **compile_kwargs,
    )
    x = _images()
    y = np.array([0, 1])
    before = [to_np(w).copy() for w in model.trainable_weights]
    loss = float(np.asarray(model.train_on_batch(x, y)))
    assert np.isfinite(loss)
    changed = {w.path for b, w in zip(before, model.trainable_weights) if not np.array_equal(b, to_np(w))}
    # zero-initialised BN2 gammas block the first step's gradient to conv1/bn1/conv2/bn3,
    # but the head, the shortcuts and the BN2 gammas themselves must move
    assert any(p.startswith("head/") for p in changed), sorted(changed)
    assert any("bn2/gamma" in p for p in changed), sorted(changed)


def test_published_parameter_counts():
    """PiNet-18: 11,693,352 without / 12,389,672 with the 1x1 conv (ReLUs add none)."""
    expected = {
        "ncp_resnet18": 11_693_352,
        "ncp_resnet18_norelu": 11_693_352,
        "ncp_resnet18_conv1x1": 12_389_672,
        "ncp_resnet18_conv1x1_norelu": 12_389_672,
    }
    for name, count in expected.items():
        assert FAMILY.variants[name].meta["params"] == count


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_matches_config(name):
    model = _shapes_only(lambda: _build(name))
    assert _trainable(model) == FAMILY.variants[name].meta["params"]
    # BatchNorm moving statistics (PyTorch buffers) are the only non-trainable weights
    assert all(w.path.endswith(("moving_mean", "moving_variance")) for w in model.non_trainable_weights)


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_and_train_step(name):
    model = _build(name, input_shape=(32, 32, 3), num_classes=5)
    y = model(_images(), training=False)
    assert tuple(y.shape) == (2, 5)
    assert np.all(np.isfinite(to_np(y)))
    _train_step(model, **({"jit_compile": False} if BACKEND == "tensorflow" else {"run_eagerly": True}))


def test_default_variant_compiled_train_step():
    assert FAMILY.default_variant == "ncp_resnet_cifar_small"
    _train_step(_build(FAMILY.default_variant))


def test_headless_and_feature_shapes():
    trunk = _shapes_only(lambda: _build("ncp_resnet18", include_top=False, input_shape=(64, 64, 3)))
    pooled = _shapes_only(lambda: _build("ncp_resnet18", include_top=False, pooling="avg", input_shape=(64, 64, 3)))
    feats = _shapes_only(lambda: _build("ncp_resnet18", features_only=True, input_shape=(64, 64, 3)))
    cifar = _shapes_only(lambda: _build("ncp_resnet_cifar_small", features_only=True))
    assert trunk.output_shape == (None, 2, 2, 512)
    assert pooled.output_shape == (None, 512)
    assert [tuple(s) for s in feats.output_shape] == [
        (None, 16, 16, 64), (None, 8, 8, 128), (None, 4, 4, 256), (None, 2, 2, 512)
    ]
    assert [tuple(s) for s in cifar.output_shape] == [(None, 32, 32, 16), (None, 16, 16, 32), (None, 8, 8, 64)]


def test_features_only_forward_matches_full_model():
    full = _build("ncp_resnet_cifar_small", include_top=False)
    feats = _build("ncp_resnet_cifar_small", features_only=True)
    feats.set_weights(full.get_weights())
    x = _images(1)
    outs = feats(x)
    assert isinstance(outs, (list, tuple)) and len(outs) == 3
    assert_close(to_np(outs[-1]), to_np(full(x)), 1e-5, 1e-5)


def test_preprocessing_is_in_the_model():
    raw = _build("ncp_resnet_cifar_small")
    bare = _build("ncp_resnet_cifar_small", include_preprocessing=False)
    bare.set_weights(raw.get_weights())
    x = _images(1)
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])
    assert_close(to_np(raw(x)), to_np(bare(((x / 255.0 - mean) / std).astype("float32"))), 1e-4, 1e-4)


def test_keras_roundtrip(tmp_path):
    model = _build("ncp_resnet_cifar_small")
    roundtrip_keras(model, tmp_path, _images(2))


def test_registry_default_and_overrides():
    model = models.ncp_resnet(num_classes=3)
    assert model.name == "ncp_resnet_cifar_small" and model.output_shape == (None, 3)
    assert models.model_info("ncp_resnet18")["published_params"] == 11_693_352


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depths": [2, 2], "widths": [16]}, "same length"),
        ({"depths": [0, 2]}, "positive integers"),
        ({"stem": "tiny"}, "stem must be one of"),
        ({"pooling": "sum", "include_top": False}, "pooling"),
        ({"input_shape": (4, 4, 3)}, "height and width"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_ncp_resnet(**kwargs)
