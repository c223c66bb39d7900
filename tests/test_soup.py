"""Uniform model soups (hadamard_zoo/training/soup.py, ``hadamard-zoo soup``), on every backend."""

import json

import keras
import numpy as np
import pytest
from helpers import assert_close, to_np

from hadamard_zoo import cli, pretrained, release
from hadamard_zoo import models as M
from hadamard_zoo.training import classifier as C
from hadamard_zoo.training import evaluate_checkpoint
from hadamard_zoo.training.soup import average_checkpoints, soup
from hadamard_zoo.training.swa import batch_norm_layers, recalibrate_batch_norm

MODEL = "ncp_resnet_cifar_small"
TINY = {"depths": [1, 1, 1], "widths": [4, 8, 8], "input_shape": [12, 12, 3], "num_classes": 10,
        "classifier_activation": None}


def _images(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = (rng.random((n, 12, 12, 3)) * 80 + y[:, None, None, None] * 17).astype(np.uint8)
    return x, y


DATA = (_images(48, 0), _images(24, 1))


def _ingredients(tmp_path, k=3, args=TINY):
    """``k`` weight files of one tiny architecture with different weights and BatchNorm statistics,
    each in a run folder whose run.json names the model and its arguments."""
    paths = []
    for i in range(k):
        keras.utils.set_random_seed(i)
        net = M.create_model(MODEL, **args)
        for layer in batch_norm_layers(net):  # statistics the soup must not keep
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 5.0 + i, "float32"))
        run = tmp_path / f"run{i}"
        run.mkdir()
        (run / "run.json").write_text(json.dumps({"model": MODEL, "model_args": args, "task": "classifier"}))
        net.save_weights(str(run / "final.weights.h5"))
        paths.append(run / "final.weights.h5")
    return paths


def test_soup_is_the_mean_of_the_trainable_weights_with_recomputed_batch_norm(tmp_path):
    paths = _ingredients(tmp_path)
    results = soup(MODEL, paths, dataset=DATA, output_dir=tmp_path / "soup", batch_size=16, verbose=False)

    nets = []
    for p in paths:
        net = M.create_model(MODEL, **TINY)
        net.load_weights(str(p))
        nets.append(net)
    made = M.create_model(MODEL, **TINY)
    made.load_weights(results["final_weights"])
    for i, variable in enumerate(made.trainable_variables):
        expected = np.mean([to_np(n.trainable_variables[i]) for n in nets], axis=0)
        assert_close(to_np(variable), expected, atol=1e-6)

    check = M.create_model(MODEL, **TINY)  # the same average, BatchNorm recomputed here by hand
    for i, variable in enumerate(check.trainable_variables):
        variable.assign(to_np(made.trainable_variables[i]))
    x_train = DATA[0][0].astype("float32")
    recalibrate_batch_norm(check, [x_train[j:j + 16] for j in range(0, len(x_train), 16)])
    for mine, theirs in zip(batch_norm_layers(made), batch_norm_layers(check)):
        assert_close(to_np(mine.moving_mean), to_np(theirs.moving_mean), atol=1e-5)
        assert_close(to_np(mine.moving_variance), to_np(theirs.moving_variance), atol=1e-4)
        assert float(np.max(to_np(mine.moving_mean))) < 5.0  # none of the ingredients' statistics survive

    assert results["test_value"] == pytest.approx(C.top1(made, *DATA[1]))
    entry = results["manifest_entry"]
    assert entry["train_command"].startswith(f"hadamard-zoo soup {MODEL} {paths[0]}")
    assert entry["soup_of"] == [str(p) for p in paths] and entry["model_args"] == TINY
    assert entry["value"] == round(results["test_value"], 4) and entry["params"] == made.count_params()
    again = evaluate_checkpoint(tmp_path / "soup", dataset=DATA, verbose=False)  # the run folder evaluates as trained
    assert again["value"] == pytest.approx(results["test_value"])


def test_soup_refuses_too_few_repeated_or_mismatched_ingredients(tmp_path):
    paths = _ingredients(tmp_path, k=2)
    with pytest.raises(ValueError, match="at least two"):
        soup(MODEL, paths[:1], dataset=DATA, output_dir=tmp_path / "s", verbose=False)
    with pytest.raises(ValueError, match="named twice"):
        soup(MODEL, [paths[0], paths[0]], dataset=DATA, output_dir=tmp_path / "s", verbose=False)
    (tmp_path / "wider").mkdir()
    wider = _ingredients(tmp_path / "wider", k=1, args={**TINY, "widths": [4, 8, 16]})
    with pytest.raises(ValueError, match="different model arguments"):
        soup(MODEL, [paths[0], wider[0]], dataset=DATA, output_dir=tmp_path / "s", verbose=False)
    (tmp_path / "wider" / "run0" / "run.json").unlink()  # no run.json: the file itself does not fit
    with pytest.raises(pretrained.CheckpointError):
        soup(MODEL, [paths[0], wider[0]], dataset=DATA, output_dir=tmp_path / "s", verbose=False)
    with pytest.raises(ValueError, match="image classifiers"):
        soup("gcnn_char_small", paths, dataset=DATA, output_dir=tmp_path / "s", verbose=False)
    assert not (tmp_path / "s" / "final.weights.h5").exists()


def test_average_checkpoints_refuses_ingredients_that_differ_outside_the_trainable_weights(tmp_path):
    def net_with_frozen(value):
        net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="a"), keras.layers.Dense(2, name="b")])
        net.get_layer("b").trainable = False
        net.get_layer("b").kernel.assign(np.full((2, 2), value, "float32"))
        return net

    first, second = tmp_path / "one.weights.h5", tmp_path / "two.weights.h5"
    net_with_frozen(1.0).save_weights(str(first))
    net_with_frozen(2.0).save_weights(str(second))
    with pytest.raises(ValueError, match="non-trainable variable"):
        average_checkpoints(net_with_frozen(0.0), [first, second])
    net_with_frozen(1.0).save_weights(str(second))
    assert average_checkpoints(net_with_frozen(0.0), [first, second]) == 2


def test_cli_soup_writes_a_run_folder_that_publish_ships(tmp_path, capsys, monkeypatch):
    paths = _ingredients(tmp_path, k=2)
    real_load = C.load_data

    def synthetic(dataset, *args, **kwargs):  # the CLI names a dataset; give it the synthetic arrays
        assert dataset == "cifar10"
        return {**real_load(DATA), "name": "cifar10", "display": "CIFAR-10 (synthetic)"}

    monkeypatch.setattr(C, "load_data", synthetic)
    out = tmp_path / "cli_soup"
    assert cli.main(["soup", MODEL, str(paths[0]), str(paths[1]), "--output-dir", str(out), "--batch-size", "16"]) == 0
    printed = capsys.readouterr().out
    assert "uniform soup of 2 checkpoints" in printed and f"Run folder: {out}" in printed
    weights = tmp_path / "weights"
    entry = release.publish(out, weights, name=f"{MODEL}.cifar10_soup")
    assert entry["train_command"].startswith(f"KERAS_BACKEND={keras.config.backend()} hadamard-zoo soup {MODEL} ")
    assert entry["train_command"].endswith(f"--batch-size 16 --output-dir {out}")
    net = M.create_model(MODEL, **TINY)
    pretrained.load_pretrained(net, MODEL, f"{MODEL}.cifar10_soup", directory=weights)  # hash and fit checked

    assert cli.main(["soup", MODEL, str(paths[0]), "nope.weights.h5", "--output-dir", str(tmp_path / "bad")]) != 0
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
