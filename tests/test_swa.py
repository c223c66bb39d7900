"""Stochastic weight averaging (recipe key ``swa_epochs``, hadamard_zoo/training/swa.py), on every backend."""

import shutil

import keras
import numpy as np
import pytest
from helpers import assert_close, to_np

from hadamard_zoo import training
from hadamard_zoo.training import command_text
from hadamard_zoo.training import recipes as R
from hadamard_zoo.training import swa as SWA


def _images(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = (rng.random((n, 12, 12, 1)) * 80 + y[:, None, None, None] * 17).astype(np.uint8)
    return x, y


def _data():
    return _images(64, 0), _images(32, 1)


def _conv_bn_net():
    return keras.Sequential([
        keras.Input((12, 12, 1)),
        keras.layers.Rescaling(1.0 / 255),
        keras.layers.Conv2D(4, 3, name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, name="head"),
    ], name="conv_bn_net")


class RecordTrainable(keras.callbacks.Callback):
    """The trainable weights at the end of every epoch, by variable path."""

    def __init__(self):
        super().__init__()
        self.per_epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.per_epoch.append({v.path: to_np(v).copy() for v in self.model.trainable_variables})


class StopAfterEpoch(keras.callbacks.Callback):
    """Stands in for an interruption after ``n`` epochs."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.n:
            self.model.stop_training = True


def test_recalibrate_batch_norm_sets_the_equal_weight_mean_of_the_batch_statistics():
    rng = np.random.default_rng(0)
    batches = [(rng.normal(3.0, 2.0, (8, 5)).astype("float32"), None) for _ in range(4)]
    net = keras.Sequential([keras.Input((5,)), keras.layers.BatchNormalization(momentum=0.99)])
    bn = net.layers[0]
    assert SWA.recalibrate_batch_norm(net, batches) == 1
    xs = np.stack([b[0] for b in batches])
    assert_close(to_np(bn.moving_mean), xs.mean(axis=(0, 1)), atol=1e-5)
    assert_close(to_np(bn.moving_variance), xs.var(axis=1).mean(axis=0), atol=1e-4)  # biased per-batch variance
    assert bn.momentum == 0.99  # restored
    assert SWA.recalibrate_batch_norm(keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)]), batches) == 0
    with pytest.raises(ValueError, match="at least one batch"):
        SWA.recalibrate_batch_norm(net, [])


def test_swa_ships_the_average_of_the_last_epochs_and_a_resumed_run_ships_the_same(tmp_path):
    kw = dict(dataset=_data(), epochs=3, swa_epochs=2, batch_size=16, verbose=0, learning_rate=0.05,
              schedule="constant", optimizer="sgd", augment={"crop_padding": 2, "flip": True})
    keras.utils.set_random_seed(0)
    whole, seen = _conv_bn_net(), RecordTrainable()
    res = training.train(whole, output_dir=tmp_path / "whole", callbacks=[seen], **kw)
    assert len(seen.per_epoch) == 3
    for v in whole.trainable_variables:  # epochs 2 and 3 are averaged, epoch 1 is not
        expected = (seen.per_epoch[1][v.path] + seen.per_epoch[2][v.path]) / 2
        assert_close(to_np(v), expected, atol=1e-6)
        assert not np.allclose(to_np(v), seen.per_epoch[2][v.path])
    assert sorted(p.name for p in (tmp_path / "whole" / "swa").iterdir()) == ["epoch_002.npz", "epoch_003.npz"]
    assert 0.0 <= res["test_value"] <= 1.0
    shipped = _conv_bn_net()
    shipped.load_weights(res["final_weights"])
    for a, b in zip(shipped.weights, whole.weights):  # final.weights.h5 holds the average and its BN statistics
        assert_close(to_np(a), to_np(b), atol=0)

    keras.utils.set_random_seed(0)
    out = tmp_path / "interrupted"
    training.train(_conv_bn_net(), output_dir=out, callbacks=[StopAfterEpoch(2)], **kw)
    assert sorted(p.name for p in (out / "swa").iterdir()) == ["epoch_002.npz"]
    resumed = training.train(_conv_bn_net(), output_dir=out, **kw)  # the prebuilt net is replaced by the checkpoint
    again = _conv_bn_net()
    again.load_weights(resumed["final_weights"])
    for a, b in zip(again.weights, whole.weights):
        assert_close(to_np(a), to_np(b), atol=1e-5, rtol=1e-5)


def test_swa_epochs_is_validated_and_refused_where_it_does_not_apply(tmp_path):
    with pytest.raises(R.RecipeError, match="swa_epochs .3. cannot exceed epochs .2."):
        R.resolve_recipe("pinet_ccp", epochs=2, swa_epochs=3)
    with pytest.raises(R.RecipeError, match="swa_epochs must be a whole number"):
        command_text.parse_set(["swa_epochs=-1"])
    assert command_text.parse_set(["swa_epochs=5"]) == {"swa_epochs": 5}  # --epochs comes separately: no check against 10
    with pytest.raises(ValueError, match="swa_epochs .weight averaging. is supported for image classifiers"):
        training.train("gcnn_char_small", swa_epochs=1, output_dir=tmp_path / "lm")
    command = command_text.command_line("pinet_ccp", R.resolve_recipe("pinet_ccp", epochs=4, swa_epochs=2))
    assert "--epochs 4" in command and "--set swa_epochs=2" in command


def test_a_run_folder_without_its_weight_average_says_so(tmp_path):
    kw = dict(dataset=_data(), epochs=2, swa_epochs=1, batch_size=32, verbose=0)
    out = tmp_path / "run"
    training.train(_conv_bn_net(), output_dir=out, **kw)
    shutil.rmtree(out / "swa")
    with pytest.raises(FileNotFoundError, match="holds no weight average for its 2 finished epochs"):
        training.train(_conv_bn_net(), output_dir=out, **kw)  # all epochs done: finalize needs the average
    training.train(_conv_bn_net(), output_dir=tmp_path / "other", **kw)
    other = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="belongs to another model"):
        SWA.read_state(tmp_path / "other", 2, other)
