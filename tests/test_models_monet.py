"""The monet family: published counts, forward, train step, heads, saving.

Cost notes (CI runs this file once per backend on 2 cores): counts and
symbolic shapes come from models whose variables are never materialised;
MONet-T/-S train steps run at 32x32 with one Poly-Block per stage (the blocks
of a stage are identical, so every distinct layer configuration of the
variant is exercised; the full depth is covered by the count test).  Train
steps are compiled the cheapest way per backend: one XLA program on JAX (its
op-by-op mode compiles every op for every new shape), a plain graph on
TensorFlow, eager on torch.
"""

from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import BACKEND, rand, roundtrip_keras, to_np

from hadamard_zoo import configs, models
from hadamard_zoo.layers import PolyBlock
from hadamard_zoo.models.architectures.monet import build_monet

FAMILY = configs.load_family_file(Path(__file__).resolve().parent.parent / "zoo_configs" / "monet.yaml")
VARIANTS = sorted(FAMILY.variants)


def _build(name, **overrides):
    cfg = FAMILY.variants[name]
    return build_monet(**{**cfg.arguments, "name": name, **overrides})


def _shapes_only(build):
    """Build inside a StatelessScope that never materialises the variables: shapes, no values."""
    from keras.src.backend.common import global_state

    before = list(global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True))
    with keras.StatelessScope(initialize_variables=False):
        model = build()
    global_state.set_global_attribute("uninitialized_variables", before)
    return model


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _images(n=2, size=32, seed=0):
    return np.clip(rand((n, size, size, 3), seed, 60.0) + 128.0, 0, 255).astype("float32")


def test_published_parameter_counts():
    assert FAMILY.variants["monet_t"].meta["params"] == 10_339_436
    assert FAMILY.variants["monet_s"].meta["params"] == 32_880_688


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_matches_config(name):
    model = _shapes_only(lambda: _build(name))
    assert _trainable(model) == FAMILY.variants[name].meta["params"]
    assert model.count_params() == _trainable(model)  # no BatchNorm: nothing non-trainable
    blocks = [layer for layer in model.layers if isinstance(layer, PolyBlock)]
    assert len(blocks) == sum(FAMILY.variants[name].arguments["depths"])


def _compile_kwargs():
    return {"jax": {"jit_compile": True}, "tensorflow": {"jit_compile": False}}.get(BACKEND, {})


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_and_train_step(name):
    cfg = FAMILY.variants[name]
    overrides = {"input_shape": (32, 32, 3), "num_classes": 5}
    if name != "monet_cifar":
        overrides["depths"] = [1] * len(cfg.arguments["depths"])
    model = _build(name, **overrides)
    assert model.output_shape == (None, 5)
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **_compile_kwargs(),
    )
    x, y = _images(), np.array([0, 1])
    before = [to_np(w).copy() for w in model.trainable_weights]
    loss = float(np.asarray(model.train_on_batch(x, y)))
    assert np.isclose(loss, np.log(5.0), atol=1e-4)  # zero-initialised head: uniform logits
    changed = {w.path for b, w in zip(before, model.trainable_weights) if not np.array_equal(b, to_np(w))}
    # the zero head blocks the first step's gradient to the trunk; the head itself must move
    assert changed == {"head/kernel", "head/bias"}
    stem = to_np(model.get_layer("stem_conv1").kernel).copy()
    assert np.isfinite(float(np.asarray(model.train_on_batch(x, y))))
    assert not np.array_equal(stem, to_np(model.get_layer("stem_conv1").kernel))  # now the trunk trains


def test_headless_and_feature_shapes():
    trunk = _shapes_only(lambda: _build("monet_t", include_top=False))
    pooled = _shapes_only(lambda: _build("monet_s", include_top=False, pooling="avg"))
    feats = _shapes_only(lambda: _build("monet_t", features_only=True))
    cifar = _shapes_only(lambda: _build("monet_cifar", features_only=True))
    assert trunk.output_shape == (None, 7, 7, 192)
    assert pooled.output_shape == (None, 384)
    assert [tuple(s) for s in feats.output_shape] == [
        (None, 56, 56, 64), (None, 28, 28, 128), (None, 14, 14, 192), (None, 7, 7, 192)
    ]
    assert [tuple(s) for s in cifar.output_shape] == [(None, 16, 16, 64), (None, 8, 8, 128), (None, 4, 4, 256)]


def test_keras_roundtrip(tmp_path):
    model = _build("monet_cifar", depths=[1, 1, 1])
    # a non-zero head so the round trip compares real logits
    head = model.get_layer("head")
    head.kernel.assign(rand(tuple(head.kernel.shape), 3, 0.1))
    roundtrip_keras(model, tmp_path, _images(2))


def test_registry_builds_the_family():
    model = models.monet(variant="monet_cifar", depths=[1, 1, 1], num_classes=4)
    assert model.name == "monet_cifar" and model.output_shape == (None, 4)
    assert models.model_info("monet_s")["published_params"] == 32_880_688


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depths": [1, 1], "widths": [64]}, "same length"),
        ({"widths": [4, 8, 16, 32]}, "widths must be >= 8"),
        ({"stem_strides": []}, "stem_strides"),
        ({"pooling": "sum", "include_top": False}, "pooling"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_monet(**kwargs)
