"""Reading checkpoints (hadamard_zoo.pretrained): one manifest lookup and one model build per load,
and a new head on the pretrained backbone (``pretrained=True, num_classes=...``).

The manifest-writing side (publish, retag) is tested in test_release.py.
"""

import functools
import json
import warnings

import keras
import numpy as np
import pytest
from helpers import rand, to_np

from hadamard_zoo import models
from hadamard_zoo import pretrained as P
from hadamard_zoo.models.architectures import pinet_mlp

MODEL = "pinet_ccp"  # 50k parameters: the fastest classifier with a checkpoint-shaped head
TAG = f"{MODEL}.test"


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    """A trained-looking pinet_ccp checkpoint in its own weights folder; returns the saved model."""
    monkeypatch.setenv(P.WEIGHTS_DIR_ENV, str(tmp_path))
    model = models.create_model(MODEL)
    for variable in model.trainable_variables:  # not the initializer's values: a copied layer is recognizable
        variable.assign(keras.random.normal(variable.shape, seed=7) * 0.1)
    path = tmp_path / f"{TAG}.weights.h5"
    model.save_weights(str(path))
    entry = {
        "name": TAG, "model": MODEL, "default": True, "file": path.name, "sha256": P.sha256_of(path),
        "dataset": "synthetic", "split": "test", "metric": "top1", "value": 0.0,
        "params": model.count_params(), "train_command": "-", "eval_command": "-",
        "backend": keras.config.backend(), "date": "2026-12-06",
        "model_args": {"num_classes": 10, "classifier_activation": None},
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"checkpoints": [entry]}))
    return model


def _counting(monkeypatch, owner, attr):
    """Replace ``owner.attr`` by a wrapper that counts its calls; returns the list of calls."""
    real = getattr(owner, attr)
    calls = []

    @functools.wraps(real)
    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attr, counted)
    return calls


def _weights(layer):
    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in layer.weights]


HEADS = [{}, {"num_classes": 5}, {"include_top": False}, {"classifier_activation": "softmax"}]


@pytest.mark.parametrize("head", HEADS, ids=lambda h: ",".join(h) or "same_head")
def test_a_load_reads_the_manifest_and_resolves_the_tag_once(checkpoint, monkeypatch, head):
    resolves = _counting(monkeypatch, P, "resolve")
    manifests = _counting(monkeypatch, P, "load_manifest")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "left at initialization" for a new head
        models.create_model(MODEL, pretrained=TAG, **head)
    assert len(resolves) == 1, resolves
    assert len(manifests) == 1, manifests


@pytest.mark.parametrize("head", HEADS, ids=lambda h: ",".join(h) or "same_head")
def test_a_load_builds_the_model_once(checkpoint, monkeypatch, head):
    builds = _counting(monkeypatch, pinet_mlp, "build_pinet_mlp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = models.create_model(MODEL, pretrained=True, **head)
    assert len(builds) == 1, builds
    expected = {"num_classes": (None, 5), "include_top": (None, 16)}
    assert model.output_shape == next((expected[k] for k in head if k in expected), (None, 10))


def _transferred_the_old_way(**head):
    """What create_model did before it built the model once: the checkpoint's model, the new-head
    model, and a layer-by-layer copy (transfer_backbone)."""
    source = models.create_model(MODEL, pretrained=True)
    target = models.create_model(MODEL, **{**P.resolve(MODEL, True).model_args, **head})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fresh = P.transfer_backbone(source, target, changed=sorted(head))
    return target, fresh


def test_new_head_gets_exactly_the_old_paths_backbone(checkpoint):
    old, old_fresh = _transferred_the_old_way(num_classes=5)
    with pytest.warns(UserWarning, match=r"\['fc_out'\] left at initialization \(changed: num_classes\)"):
        new = models.create_model(MODEL, pretrained=True, num_classes=5)
    assert old_fresh == ["fc_out"]
    assert [layer.name for layer in new.layers] == [layer.name for layer in old.layers]
    compared = 0
    for mine, theirs, saved in zip(new.layers[:-1], old.layers[:-1], checkpoint.layers[:-1]):
        for a, b, c in zip(_weights(mine), _weights(theirs), _weights(saved)):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
            compared += 1
    assert compared >= 2  # the CCP polynomial's stacked U_n and biases
    # the backbone's outputs (the head's inputs) are the checkpoint model's, bit for bit
    x = rand((3, 28, 28, 1), scale=50.0) + 100
    features = lambda m: to_np(keras.Model(m.input, m.get_layer("fc_out").input)(x))  # noqa: E731
    np.testing.assert_array_equal(features(new), features(old))
    np.testing.assert_array_equal(features(new), features(checkpoint))
    assert new.output_shape == (None, 5) and _weights(new.layers[-1])[0].shape == (16, 5)


def test_headless_backbone_gives_the_checkpoints_features(checkpoint):
    backbone = models.create_model(MODEL, pretrained=True, include_top=False)
    x = rand((3, 28, 28, 1), scale=50.0) + 100
    head = checkpoint.get_layer("fc_out")
    np.testing.assert_allclose(to_np(head(backbone(x))), to_np(checkpoint(x)), rtol=1e-6, atol=1e-6)


def test_a_head_that_still_fits_is_loaded(checkpoint):
    """Only the activation changed: the head's variables fit the checkpoint and are loaded, nothing is fresh."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "left at initialization"
        model = models.create_model(MODEL, pretrained=True, classifier_activation="softmax")
    for a, b in zip(_weights(model.get_layer("fc_out")), _weights(checkpoint.get_layer("fc_out"))):
        np.testing.assert_array_equal(a, b)
    x = rand((2, 28, 28, 1), scale=50.0) + 100
    np.testing.assert_allclose(to_np(model(x)), to_np(keras.ops.softmax(checkpoint(x))), rtol=1e-5, atol=1e-6)


def test_a_changed_backbone_is_refused_even_with_a_new_head(checkpoint):
    with pytest.raises(P.CheckpointError, match=r"only the classifier head.* may differ"):
        models.create_model(MODEL, pretrained=True, num_classes=5, hidden_size=32)


def test_a_resolved_checkpoint_is_what_the_loaders_take(checkpoint, monkeypatch):
    found = P.resolve(MODEL, True)
    assert isinstance(found, P.ResolvedCheckpoint) and found.entry["name"] == TAG
    path, entry = found  # still a (path, entry) pair for older callers
    assert path.name == f"{TAG}.weights.h5" and found.model_args == {"num_classes": 10, "classifier_activation": None}
    assert P.resolve(MODEL, found) is found
    resolves = _counting(monkeypatch, P, "resolve")
    model = P.load_pretrained(models.create_model(MODEL), MODEL, found)
    fresh = P.load_backbone(models.create_model(MODEL, include_top=False), MODEL, found, changed=["include_top"])
    assert resolves == [] and fresh == []
    for a, b in zip(_weights(model.layers[-1]), _weights(checkpoint.layers[-1])):
        np.testing.assert_array_equal(a, b)
    assert P.ResolvedCheckpoint(path, None).model_args == {}


def test_a_tampered_file_is_refused_before_loading_a_backbone(checkpoint, tmp_path):
    path = tmp_path / f"{TAG}.weights.h5"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(P.CheckpointError, match="corrupt or was modified"):
        models.create_model(MODEL, pretrained=True, num_classes=5)
