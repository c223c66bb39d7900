"""Manifest maintenance: retag an old default, publish a run in front of it (hadamard_zoo.pretrained)."""

import json

import keras
import numpy as np
import pytest

from hadamard_zoo import pretrained as P


def _entry(name, model="toy", default=False, train_command="hadamard-zoo train toy"):
    return {
        "name": name, "model": model, "default": default, "file": f"{name}.weights.h5", "sha256": "0" * 64,
        "dataset": "toy", "split": "test", "metric": "top1", "value": 0.5, "params": 3,
        "train_command": train_command, "eval_command": f"hadamard-zoo eval {name}", "backend": "jax",
        "date": "2026-12-06",
    }


@pytest.fixture
def weights(tmp_path):
    entries = [
        _entry("toy.data", default=True, train_command="hadamard-zoo train toy --init-weights toy.data_30ep"),
        _entry("toy.data_30ep"),
        _entry("toy.data_ft", train_command="hadamard-zoo train toy --init-weights toy.data --epochs 3"),
        _entry("toy.data_other", train_command="hadamard-zoo train toy --init-weights=toy.data_30ep"),
        {**_entry("toy.data_soup", train_command="hadamard-zoo soup toy toy.data_30ep toy.data --output-dir runs/toy.data"),
         "soup_of": ["toy.data_30ep", "toy.data"]},
    ]
    for e in entries:
        (tmp_path / e["file"]).write_bytes(e["name"].encode())
    (tmp_path / "manifest.json").write_text(json.dumps({"checkpoints": entries}))
    return tmp_path


def test_retag_renames_file_entry_and_references(weights):
    entry = P.retag("toy.data", "toy.data_stage2", weights, notes="stage 2")
    assert entry["name"] == "toy.data_stage2" and entry["default"] is False and entry["notes"] == "stage 2"
    assert entry["file"] == "toy.data_stage2.weights.h5"
    assert entry["eval_command"] == "hadamard-zoo eval toy.data_stage2"
    assert not (weights / "toy.data.weights.h5").exists()
    assert (weights / "toy.data_stage2.weights.h5").read_bytes() == b"toy.data"  # same bytes, same hash
    by_name = {e["name"]: e for e in P.load_manifest(weights)}
    assert list(by_name) == ["toy.data_stage2", "toy.data_30ep", "toy.data_ft", "toy.data_other", "toy.data_soup"]  # order kept
    assert by_name["toy.data_ft"]["train_command"] == "hadamard-zoo train toy --init-weights toy.data_stage2 --epochs 3"
    # a longer tag that starts with the old name is not touched
    assert by_name["toy.data_stage2"]["train_command"].endswith("--init-weights toy.data_30ep")
    assert by_name["toy.data_other"]["train_command"].endswith("--init-weights=toy.data_30ep")
    soup = by_name["toy.data_soup"]  # a soup's ingredient is renamed; a path that ends in the tag is not
    assert soup["train_command"] == "hadamard-zoo soup toy toy.data_30ep toy.data_stage2 --output-dir runs/toy.data"
    assert soup["soup_of"] == ["toy.data_30ep", "toy.data_stage2"]


@pytest.mark.parametrize("name, new_name, match", [
    ("toy.nope", "toy.x", "no checkpoint named 'toy.nope'"),
    ("toy.data", "toy.data_30ep", "already in"),
])
def test_retag_refuses_unknown_or_taken_names(weights, name, new_name, match):
    before = (weights / "manifest.json").read_text()
    with pytest.raises(P.CheckpointError, match=match):
        P.retag(name, new_name, weights)
    assert (weights / "manifest.json").read_text() == before  # nothing changed


def test_retag_refuses_a_missing_file(weights):
    (weights / "toy.data.weights.h5").unlink()
    with pytest.raises(P.CheckpointError, match="is missing"):
        P.retag("toy.data", "toy.data_stage2", weights)


@pytest.fixture
def run_dir(tmp_path):
    """A finished run's folder as training leaves it: final weights and results.json."""
    run = tmp_path / "run"
    run.mkdir()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.set_weights([np.full((2, 1), 0.25, "float32"), np.zeros((1,), "float32")])
    model.save_weights(run / "final.weights.h5")
    entry = _entry("toy.data", default=True, train_command="hadamard-zoo train toy --init-weights toy.data")
    (run / "results.json").write_text(json.dumps({"manifest_entry": entry,
                                                  "final_weights": str(run / "final.weights.h5")}))
    return run


def test_publish_in_front_of_the_retagged_default(weights, run_dir):
    P.retag("toy.data", "toy.data_stage2", weights)
    entry = P.publish(run_dir, weights, before="toy.data_stage2",
                      train_command="hadamard-zoo train toy --init-weights toy.data_stage2")
    entries = P.load_manifest(weights)
    assert [e["name"] for e in entries][:2] == ["toy.data", "toy.data_stage2"]
    assert [e["name"] for e in entries if e.get("default")] == ["toy.data"]
    assert entry["train_command"] == "KERAS_BACKEND=jax hadamard-zoo train toy --init-weights toy.data_stage2"
    assert entry["sha256"] == P.sha256_of(weights / "toy.data.weights.h5")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    P.load_weights_checked(model, weights / "toy.data.weights.h5")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.layers[0].kernel), 0.25)


def test_publish_before_an_unknown_entry_is_refused(weights, run_dir):
    with pytest.raises(P.CheckpointError, match="no such entry"):
        P.publish(run_dir, weights, before="toy.nope")


def test_publish_refuses_to_overwrite_another_checkpoints_file(weights, run_dir):
    """toy.data is still in the manifest: publishing the run as toy.data_new into toy.data's file is refused."""
    with pytest.raises(P.CheckpointError, match="retag that checkpoint first"):
        P.publish(run_dir, weights, name="toy.data_new", file="toy.data.weights.h5")
    assert (weights / "toy.data.weights.h5").read_bytes() == b"toy.data"


def test_publish_under_another_name_writes_its_own_file(weights, run_dir):
    entry = P.publish(run_dir, weights, name="toy.data_100ep", default=False)
    assert entry["file"] == "toy.data_100ep.weights.h5" and (weights / entry["file"]).exists()
    assert entry["eval_command"] == "hadamard-zoo eval toy.data_100ep"
    assert (weights / "toy.data.weights.h5").read_bytes() == b"toy.data"  # the default is untouched
    assert [e["name"] for e in P.load_manifest(weights) if e.get("default")] == ["toy.data"]
