"""The shipped checkpoints: load on every backend, same predictions, tamper-proof, metric reproducible.

``tests/data/checkpoint_outputs.npz`` holds each checkpoint's outputs on a fixed
input, computed on JAX (``python tests/checkpoint_inputs.py``); every backend
must reproduce them to a relative 1e-4 (float32 kernels differ by backend).
"""

import os
import shutil

import numpy as np
import pytest
from checkpoint_inputs import example_input
from helpers import to_np

from hadamard_zoo import models, pretrained
from hadamard_zoo.training import evaluate

ENTRIES = pretrained.load_manifest()
EXPECTED = np.load(os.path.join(os.path.dirname(__file__), "data", "checkpoint_outputs.npz"))


def test_manifest_is_complete_and_files_match():
    assert ENTRIES, "weights/manifest.json lists no checkpoint"
    for entry in ENTRIES:
        for key in pretrained.REQUIRED_KEYS:
            assert key in entry, f"{entry['name']} lacks {key}"
        path = pretrained.weights_dir() / entry["file"]
        assert pretrained.sha256_of(path) == entry["sha256"], entry["name"]
        assert entry["model"] in models.list_models()
    defaults = {}
    for entry in ENTRIES:
        if entry.get("default"):
            assert entry["model"] not in defaults, f"two defaults for {entry['model']}"
            defaults[entry["model"]] = entry["name"]


def test_readme_table_lists_every_checkpoint_with_its_manifest_value():
    """The README's checkpoint table is kept true: one row per manifest entry, with its value and eval command."""
    readme = (pretrained.weights_dir().parent / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().split()[0].strip("`"): line for line in readme.splitlines() if line.startswith("| `")}
    for entry in ENTRIES:
        row = rows.get(entry["name"])
        assert row is not None, f"README.md has no checkpoint-table row for {entry['name']}"
        assert f"{entry['value']:.4f}" in row, f"README row of {entry['name']} does not show its manifest value {entry['value']}"
        assert entry["eval_command"] in row, f"README row of {entry['name']} lacks `{entry['eval_command']}`"
        assert ("(default)" in row) == bool(entry.get("default")), f"README row of {entry['name']}: default flag differs"


def test_targets_doc_shows_the_manifest_values_of_the_defaults_it_names():
    """docs/pretrained_targets.md names each target's default checkpoints; their values must be the manifest's."""
    doc = (pretrained.weights_dir().parent / "docs" / "pretrained_targets.md").read_text(encoding="utf-8")
    by_name = {entry["name"]: entry for entry in ENTRIES}
    rows = [line.split("|") for line in doc.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) >= 10, "docs/pretrained_targets.md lost its target table"
    named = set()
    for cells in rows:
        tags, measured = cells[2].split("`")[1::2], cells[3]
        assert tags, f"targets-doc row without a checkpoint: {'|'.join(cells)}"
        for tag in tags:
            entry = by_name.get(tag)
            assert entry is not None, f"docs/pretrained_targets.md names {tag}, which the manifest lacks"
            assert entry.get("default"), f"docs/pretrained_targets.md lists {tag}, which is not a default"
            assert f"{entry['value']:.4f}" in measured, f"docs/pretrained_targets.md shows {measured.strip()} for {tag}, manifest {entry['value']}"
            named.add(tag)
    defaults = {entry["name"] for entry in ENTRIES if entry.get("default")}
    assert not defaults - named, (
        "docs/pretrained_targets.md misses defaults: " + ", ".join(sorted(defaults - named)))


def test_shipped_files_hold_model_variables_only():
    """No optimizer slots in weights/ (they would triple its size) and the manifest's storage dtype is true."""
    import h5py

    for entry in ENTRIES:
        with h5py.File(pretrained.weights_dir() / entry["file"], "r") as f:
            assert not set(f) & set(pretrained.TRAINING_STATE_GROUPS), f"{entry['name']} ships optimizer state"
            dtypes = set()
            f.visititems(lambda n, o: dtypes.add(o.dtype.name) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" else None)
        assert dtypes == {entry.get("storage_dtype", "float32")}, (entry["name"], dtypes)


@pytest.mark.parametrize("float16", [False, True])
def test_inference_copy_drops_optimizer_state_and_keeps_the_variables(tmp_path, float16):
    import h5py
    import keras

    def build():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])

    trained = build()
    trained.compile("adam", "mse")
    trained.fit(np.ones((8, 4), "float32"), np.zeros((8, 3), "float32"), epochs=2, verbose=0)
    trained.save_weights(tmp_path / "full.weights.h5")
    pretrained.save_inference_copy(tmp_path / "full.weights.h5", tmp_path / "slim.weights.h5", float16=float16)
    with h5py.File(tmp_path / "full.weights.h5", "r") as f:
        assert "optimizer" in f
    with h5py.File(tmp_path / "slim.weights.h5", "r") as f:
        assert "optimizer" not in f
    fresh = build()
    fresh.load_weights(tmp_path / "slim.weights.h5")
    tol = 1e-3 if float16 else 0.0
    for a, b in zip(fresh.get_weights(), trained.get_weights()):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_checkpoint_predictions_match_across_backends(entry):
    model = models.create_model(entry["model"], pretrained=entry["name"])
    assert model.count_params() == entry["params"]
    got = to_np(model(example_input(model)))
    want = EXPECTED[entry["name"]]
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def test_family_default_loads_pretrained():
    model = models.ncp_resnet(pretrained=True)
    assert model.name == "ncp_resnet_cifar_small"


def test_tampered_copy_is_refused(tmp_path, monkeypatch):
    for item in pretrained.weights_dir().iterdir():
        shutil.copy(item, tmp_path / item.name)
    entry = ENTRIES[0]
    path = tmp_path / entry["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    monkeypatch.setenv("HADAMARD_ZOO_WEIGHTS", str(tmp_path))
    with pytest.raises(pretrained.CheckpointError, match="corrupt or was modified"):
        models.create_model(entry["model"], pretrained=entry["name"])


def test_checkpoint_for_other_architecture_is_refused():
    entry = next(e for e in ENTRIES if e["model"] == "pinet_ccp")
    with pytest.raises(pretrained.CheckpointError, match="is for model 'pinet_ccp'"):
        models.create_model("pinet_ncp", pretrained=entry["name"])
    with pytest.raises(pretrained.CheckpointError, match="does not fit"):
        models.create_model("pinet_ncp", pretrained=str(pretrained.weights_dir() / entry["file"]))


def _dataset_available(entry, shared):
    ds = entry["dataset"].lower()
    if "fashion" in ds:
        return os.path.isdir("/usr/share/datasets/fashion-mnist")
    return os.path.isdir(shared)


# The full-split metric of each checkpoint is re-measured once per CI run, on one backend
# (``tasks.py test`` runs the suite once per backend; ``@pytest.mark.backends``, tests/conftest.py,
# skips it on the others with a reason naming where it runs): the backend that evaluates that model
# fastest on the 2-core CI machine, measured with ``hadamard-zoo eval TAG`` on each (CONTRIBUTING.md,
# "Test budget"); a model missing here is evaluated on the backend that trained it.  On every
# backend `test_checkpoint_predictions_match_across_backends` checks that the same weights give
# the same outputs on a small fixed batch, so the value measured on one backend holds on all.
EVAL_BACKEND = {  # model: backend; `hadamard-zoo eval` wall seconds per backend (jax / tensorflow / torch)
    "monet_cifar": "jax",  # 33 / 83 / 134 (6 checkpoints)
    "rotate_fb15k237_small": "jax",  # 60 / 135 / 143
    "rotate_wn18rr_small": "jax",  # 37 / 50 / 54
    "ncp_resnet18_cifar": "tensorflow",  # 140 / 106 / 119
    "ncp_resnet_cifar_small": "tensorflow",  # 19 / 14 / 83 (5 checkpoints)
    "starnet_cifar": "tensorflow",  # 40 / 19 / 120 (2 checkpoints)
    "gcnn_char_small": "tensorflow",  # 10 / 4.4 / 6.9
    "linear_attention_lm_char": "torch",  # 13 / 8.8 / 6.3
    "cope_generator_fmnist": "torch",  # 20 / 9.6 / 4.7
    "pinet_ccp": "torch",  # 2.8 / 0.4 / 0.2 (the four Fashion-MNIST MLPs alike)
    "pinet_ncp": "torch",
    "pinet_ccp_h64": "torch",
    "pinet_ncp_h64": "torch",
    "rotate_countries": "torch",  # 0.9 / 0.1 / 0.1
    "rotate_countries_s3": "torch",
}


def _eval_backend(entry):
    return EVAL_BACKEND.get(entry["model"], entry["backend"])


def test_every_checkpoint_is_re_measured_on_some_backend():
    assert {e["backend"] for e in ENTRIES} <= {"jax", "tensorflow", "torch"}, [e["backend"] for e in ENTRIES]
    assert set(EVAL_BACKEND.values()) <= {"jax", "tensorflow", "torch"}, EVAL_BACKEND
    assert not set(EVAL_BACKEND) - set(models.list_models()), sorted(set(EVAL_BACKEND) - set(models.list_models()))


@pytest.mark.data
@pytest.mark.parametrize(
    "entry",
    [pytest.param(e, marks=pytest.mark.backends(_eval_backend(e), reason="a full-split evaluation runs once per CI run"))
     for e in ENTRIES],
    ids=[e["name"] for e in ENTRIES],
)
def test_eval_command_reproduces_manifest_value(entry, shared_datasets):
    """`hadamard-zoo eval <tag>` on the full test split gives the manifest value (±0.002)."""
    if not _dataset_available(entry, shared_datasets):
        pytest.skip(f"dataset for {entry['name']} is not installed")
    result = evaluate.evaluate_checkpoint(entry["name"])
    value = result["value"] if isinstance(result, dict) else result
    assert abs(value - entry["value"]) <= 0.002, (value, entry["value"])


def test_new_head_keeps_the_pretrained_backbone():
    """timm's convention: pretrained=True with another num_classes loads all but the head."""
    full = models.create_model("pinet_ccp", pretrained=True)
    with pytest.warns(UserWarning, match="left at initialization"):
        five = models.create_model("pinet_ccp", pretrained=True, num_classes=5)
    assert five.output_shape == (None, 5)
    copied = 0
    for layer in five.layers[:-1]:
        for mine, theirs in zip(layer.get_weights(), full.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
            copied += 1
    assert copied >= 2  # the CCP polynomial's stacked U_n and biases
    assert five.layers[-1].get_weights()[0].shape != full.layers[-1].get_weights()[0].shape


def test_headless_backbone_gives_the_pretrained_features():
    full = models.create_model("ncp_resnet_cifar_small", pretrained=True)
    backbone = models.create_model("ncp_resnet_cifar_small", pretrained=True, include_top=False, pooling="avg")
    x = example_input(full, batch=2)
    assert backbone.output_shape == (None, full.get_layer("head").input.shape[-1])
    # the features are the ones the pretrained head reads: head(features) == full model
    head = full.get_layer("head")
    logits = to_np(head(backbone(x)))
    np.testing.assert_allclose(logits, to_np(full(x)), rtol=1e-4, atol=1e-4)


def test_list_models_pretrained_lists_exactly_the_manifest_models():
    assert models.list_models(pretrained=True) == sorted({e["model"] for e in ENTRIES})
