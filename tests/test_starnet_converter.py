"""PyTorch StarNet state dict -> Keras StarNet: numerical equivalence and error messages.

The PyTorch side is ``tests/torch_refs/starnet_torch.py``, **our own
transcription** of the published StarNet with timm's ``starnet`` state-dict
key names and shapes, *not timm itself*: timm needs torchvision, and PyPI's
torchvision does not import beside the torch pinned here (torch 2.13.0:
"operator torchvision::nms does not exist"); the torch/torchvision pair that
would work replaces the pinned torch.  Both models get random weights and
random BatchNorm statistics and are compared in eval mode on a small input.
"""

import keras
import numpy as np
import pytest
from helpers import assert_close, to_np

torch = pytest.importorskip("torch")

from hadamard_zoo import models  # noqa: E402
from hadamard_zoo.models.convert_starnet import (  # noqa: E402
    StarNetConversionError,
    convert_starnet_state_dict,
    starnet_from_torch,
)
from torch_refs.starnet_torch import randomize_, starnet  # noqa: E402

SIZE = 64  # even: the stride-2 convs must pad like PyTorch (1 on every side)


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    net = randomize_(starnet("starnet_s050", num_classes=7), seed=1).eval()
    x = np.random.default_rng(0).normal(size=(2, 3, SIZE, SIZE)).astype("float32")
    with torch.no_grad():
        t = torch.from_numpy(x)
        stem = net.stem(t)
        stages = []
        for stage in net.stages:
            stem = stage(stem)
            stages.append(stem.numpy().transpose(0, 2, 3, 1))
        logits = net(t).numpy()
        pooled = net.forward_features(t).mean(dim=(2, 3)).numpy()
    return net.state_dict(), x.transpose(0, 2, 3, 1), logits, pooled, stages


def _build(**kw):
    return models.create_model("starnet_s050", input_shape=(SIZE, SIZE, 3), include_preprocessing=False, **kw)


def test_logits_match_the_pytorch_transcription(reference):
    sd, x, logits, _, _ = reference
    model = starnet_from_torch("starnet_s050", sd, include_preprocessing=False, input_shape=(SIZE, SIZE, 3))
    assert model.output_shape == (None, 7)
    assert_close(to_np(model(x, training=False)), logits, 1e-4, 1e-4, "logits")


def test_headless_and_feature_maps_match(reference):
    sd, x, _, pooled, stages = reference
    headless = _build(include_top=False, pooling="avg")
    report = convert_starnet_state_dict(sd, headless)
    assert report["skipped"] == ["head.bias", "head.weight"]
    assert_close(to_np(headless(x, training=False)), pooled, 1e-4, 1e-4, "pooled features")
    feats = _build(features_only=True)
    convert_starnet_state_dict(sd, feats)
    for i, (out, ref) in enumerate(zip(feats(x, training=False), stages)):
        assert_close(to_np(out), ref, 1e-4, 1e-4, f"stage {i}")


def test_mlp_ratio_4_variant_and_checkpoint_wrapping():
    net = randomize_(starnet("starnet_s100", num_classes=3), seed=2).eval()
    x = np.random.default_rng(1).normal(size=(1, 3, 32, 32)).astype("float32")
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    # the authors' checkpoints: {"state_dict": ...}; DataParallel adds "module."
    ckpt = {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}, "epoch": 300}
    model = starnet_from_torch("starnet_s100", ckpt, include_preprocessing=False, input_shape=(32, 32, 3))
    assert_close(to_np(model(x.transpose(0, 2, 3, 1), training=False)), ref, 1e-4, 1e-4, "s100 logits")


def test_preprocessing_matches_timm_normalization(reference):
    sd, x, logits, _, _ = reference
    mean = np.array([0.485, 0.456, 0.406], "float32")
    std = np.array([0.229, 0.224, 0.225], "float32")
    pixels = (x * std + mean) * 255.0  # raw [0, 255]-scale pixels whose timm-normalized form is x
    model = starnet_from_torch("starnet_s050", sd, input_shape=(SIZE, SIZE, 3))
    assert_close(to_np(model(pixels, training=False)), logits, 1e-4, 1e-4, "logits from raw pixels")


def test_missing_key_is_named(reference):
    sd = dict(reference[0])
    del sd["stages.2.3.f2.conv.weight"]
    with pytest.raises(StarNetConversionError, match=r"missing 1 key.*'stages\.2\.3\.f2\.conv\.weight'"):
        convert_starnet_state_dict(sd, _build(num_classes=7))


def test_shape_mismatch_names_key_and_both_shapes(reference):
    sd = dict(reference[0])
    sd["stages.1.1.f1.conv.weight"] = torch.zeros(64, 32, 1, 1)
    model = _build(num_classes=7)
    before = to_np(model.get_layer("stem").conv.kernel)
    with pytest.raises(StarNetConversionError) as info:
        convert_starnet_state_dict(sd, model)
    msg = str(info.value)
    assert "'stages.1.1.f1.conv.weight'" in msg
    assert "(64, 32, 1, 1)" in msg and "(96, 32, 1, 1)" in msg and "(1, 1, 32, 96)" in msg
    # nothing was assigned
    np.testing.assert_array_equal(to_np(model.get_layer("stem").conv.kernel), before)
    with pytest.raises(StarNetConversionError, match=r"'head\.weight'.*\(7, 128\).*\(10, 128\)"):
        convert_starnet_state_dict(reference[0], _build(num_classes=10))


def test_unexpected_keys_and_wrong_variant(reference):
    sd = dict(reference[0])
    sd["stages.2.9.f1.conv.weight"] = torch.zeros(1)
    with pytest.raises(StarNetConversionError, match=r"unexpected key.*'stages\.2\.9\.f1\.conv\.weight'"):
        convert_starnet_state_dict(sd, _build(num_classes=7))
    report = convert_starnet_state_dict(sd, _build(num_classes=7), strict=False)
    assert report["unexpected"] == ["stages.2.9.f1.conv.weight"]
    with pytest.raises(StarNetConversionError, match="missing"):
        starnet_from_torch("starnet_s100", reference[0], include_preprocessing=False)
    with pytest.raises(StarNetConversionError, match="no StarNet layers"):
        convert_starnet_state_dict(reference[0], keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
