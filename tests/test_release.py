"""Manifest maintenance (hadamard_zoo.release): retag an old default, publish a run in front of it;
the old names in hadamard_zoo.pretrained still work, with a DeprecationWarning."""

import ast
import json
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from hadamard_zoo import hashing
from hadamard_zoo import pretrained as P
from hadamard_zoo import release as R


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
    entry = R.retag("toy.data", "toy.data_stage2", weights, notes="stage 2")
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
        R.retag(name, new_name, weights)
    assert (weights / "manifest.json").read_text() == before  # nothing changed


def test_retag_refuses_a_missing_file(weights):
    (weights / "toy.data.weights.h5").unlink()
    with pytest.raises(P.CheckpointError, match="is missing"):
        R.retag("toy.data", "toy.data_stage2", weights)


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
    R.retag("toy.data", "toy.data_stage2", weights)
    entry = R.publish(run_dir, weights, before="toy.data_stage2",
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
        R.publish(run_dir, weights, before="toy.nope")


def test_publish_refuses_to_overwrite_another_checkpoints_file(weights, run_dir):
    """toy.data is still in the manifest: publishing the run as toy.data_new into toy.data's file is refused."""
    with pytest.raises(P.CheckpointError, match="retag that checkpoint first"):
        R.publish(run_dir, weights, name="toy.data_new", file="toy.data.weights.h5")
    assert (weights / "toy.data.weights.h5").read_bytes() == b"toy.data"


def test_publish_under_another_name_writes_its_own_file(weights, run_dir):
    entry = R.publish(run_dir, weights, name="toy.data_100ep", default=False)
    assert entry["file"] == "toy.data_100ep.weights.h5" and (weights / entry["file"]).exists()
    assert entry["eval_command"] == "hadamard-zoo eval toy.data_100ep"
    assert (weights / "toy.data.weights.h5").read_bytes() == b"toy.data"  # the default is untouched
    assert [e["name"] for e in P.load_manifest(weights) if e.get("default")] == ["toy.data"]


# ----------------------------------------------------------------- deprecated aliases in pretrained
@pytest.mark.parametrize("name", ["save_inference_copy", "publish", "retag", "TRAINING_STATE_GROUPS"])
def test_old_pretrained_names_warn_and_are_the_release_objects(name):
    with pytest.warns(DeprecationWarning, match=rf"hadamard_zoo\.pretrained\.{name} moved to hadamard_zoo\.release\.{name}"):
        moved = getattr(P, name)
    assert moved is getattr(R, name)


def test_old_pretrained_retag_still_renames(weights):
    with pytest.warns(DeprecationWarning, match="moved to hadamard_zoo.release.retag"):
        from hadamard_zoo.pretrained import retag
    entry = retag("toy.data", "toy.data_stage2", weights)
    assert entry["name"] == "toy.data_stage2" and (weights / "toy.data_stage2.weights.h5").exists()
    assert [e["name"] for e in P.load_manifest(weights)][0] == "toy.data_stage2"


def test_old_pretrained_publish_still_publishes(weights, run_dir):
    with pytest.warns(DeprecationWarning, match="moved to hadamard_zoo.release.publish"):
        entry = P.publish(run_dir, weights, name="toy.data_100ep", default=False)
    assert entry["sha256"] == hashing.sha256_of(weights / "toy.data_100ep.weights.h5")


def test_reading_names_do_not_warn_and_unknown_names_raise():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.sha256_of is hashing.sha256_of and callable(P.resolve) and callable(P.load_pretrained)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        P.no_such_name  # noqa: B018


def test_sha256_of_is_the_files_sha256(tmp_path):
    import hashlib

    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 9000  # > one 1 MiB block
    path.write_bytes(data)
    assert hashing.sha256_of(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("module", ["pretrained", "release", "hashing"])
def test_checkpoint_modules_import_no_private_module_of_another_package(module):
    """``from hadamard_zoo.data._common import ...`` and the like are what ``hashing`` is for."""
    path = Path(P.__file__).parent / f"{module}.py"
    imported = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
        elif isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
    assert imported, f"parsed no imports from {path}"
    private = [m for m in imported if m.startswith("hadamard_zoo.") and any(p.startswith("_") for p in m.split(".")[1:])]
    assert not private, f"{module}.py imports private modules {private}"
