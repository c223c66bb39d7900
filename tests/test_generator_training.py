"""CoPE generator training (task "gan") and its evaluation: Fréchet distance, class agreement, sample grid."""

import functools
import json

import numpy as np
import pytest

from hadamard_zoo import training
from hadamard_zoo.training import generator as GEN


def test_frechet_distance_matches_the_matrix_square_root_formula():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 0.5
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(scipy_linalg.sqrtm(s_a @ s_b))
    want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean)
    assert GEN.frechet_distance(a, b) == pytest.approx(want, rel=1e-6)


def test_frechet_distance_of_a_set_with_itself_is_zero_and_a_shift_is_its_squared_norm():
    x = np.random.default_rng(1).normal(size=(300, 4))
    assert GEN.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.0, 0.5])
    assert GEN.frechet_distance(x, x + shift) == pytest.approx((shift**2).sum(), rel=1e-8)


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same D"):
        GEN.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


def _synthetic(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = (rng.random((n, 28, 28, 1)) * 80 + y[:, None, None, None] * 17).astype(np.uint8)
    return x, y


# Test budget (CONTRIBUTING.md). The two training tests evaluate 20 samples per class instead of the
# recipe's 1,000: what they check (the run folder, resume, the moving average, the result keys) does
# not depend on the count, and the full-size evaluation of a trained generator (10,000 samples) is
# test_checkpoints.py's `hadamard-zoo eval cope_generator_fmnist.fashion_mnist`. They run under torch
# only (17 s there; 60 s on jax, 50 s on tensorflow): train()'s run folder, resume and shipping are
# backend-independent Python, while each backend's ConditionalGAN train step (hadamard_zoo/training/
# gan.py), its moving average included, is fitted on every backend by test_models_cope.py's
# test_gan_loop_steps_and_discriminator_learns_separable_toy and
# test_gan_generator_moving_average_and_its_standing_statistics.
N_PER_CLASS = 20
ONE_BACKEND = pytest.mark.backends("torch", reason="each backend's GAN train step is fitted in test_models_cope.py")


@pytest.fixture
def small_evaluation(monkeypatch):
    monkeypatch.setattr(GEN, "evaluate_generator", functools.partial(GEN.evaluate_generator, n_per_class=N_PER_CLASS))


@ONE_BACKEND
def test_gan_training_checkpoints_resumes_and_evaluates(tmp_path, small_evaluation):
    data = (_synthetic(64, 0), _synthetic(40, 1))
    out = tmp_path / "cope"
    kw = dict(dataset=data, batch_size=8, g_batch_size=8, steps_per_epoch=2, output_dir=out, verbose=0)
    first = training.train("cope_generator_fmnist", epochs=1, resume=False, **kw)
    assert (out / "final.weights.h5").exists() and (out / "samples.png").read_bytes()[:4] == b"\x89PNG"
    assert first["iterations"] == 2 and 0.0 <= first["value"] <= 1.0
    assert np.isfinite(first["frechet_distance"]) and first["frechet_distance"] >= 0
    assert len(first["class_accuracy_per_class"]) == 10
    assert first["n_generated"] == 10 * N_PER_CLASS  # the evaluation the run made is the one patched above
    second = training.train("cope_generator_fmnist", epochs=2, resume=True, **kw)
    rows = (out / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]  # epoch 1 kept, epoch 2 appended
    assert second["iterations"] == 4
    assert json.loads((out / "results.json").read_text())["iterations"] == 4
    assert "manifest_entry" not in second  # arrays, not a named dataset: nothing to publish
    # resuming with other training settings is refused, not silently restarted
    with pytest.raises(ValueError, match="other settings"):
        training.train("cope_generator_fmnist", epochs=3, resume=True, **{**kw, "batch_size": 16})


@ONE_BACKEND
def test_gan_training_with_a_moving_average_ships_and_resumes_it(tmp_path, small_evaluation):
    """g_ema_momentum: the average is saved per epoch, restored on resume, and is what
    final.weights.h5 holds; the live generator is evaluated beside it."""
    import keras

    from hadamard_zoo import models

    data = (_synthetic(64, 0), _synthetic(40, 1))
    out = tmp_path / "cope_ema"
    kw = dict(dataset=data, batch_size=8, g_batch_size=8, steps_per_epoch=2, output_dir=out, verbose=0, g_ema_momentum=0.5)
    training.train("cope_generator_fmnist", epochs=1, resume=False, **kw)
    assert (out / "epoch_001.gen_ema.weights.h5").exists()
    second = training.train("cope_generator_fmnist", epochs=2, resume=True, **kw)
    assert second["iterations"] == 4 and "moving average" in second["shipped"]
    assert second["n_generated"] == 10 * N_PER_CLASS
    assert json.loads((out / "run.json").read_text())["command"].startswith("hadamard-zoo train cope_generator_fmnist")
    assert 0.0 <= second["live_generator"]["value"] <= 1.0
    shipped, average = models.create_model("cope_generator_fmnist"), models.create_model("cope_generator_fmnist")
    shipped.load_weights(out / "final.weights.h5")
    average.load_weights(out / "epoch_002.gen_ema.weights.h5")
    live = models.create_model("cope_generator_fmnist")
    live.load_weights(out / "epoch_002.gen.weights.h5")
    for a, b in zip(shipped.weights, average.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert any(
        not np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
        for a, b in zip(shipped.trainable_weights, live.trainable_weights)
    )
