"""Training (fit, checkpoints, resume), evaluation and recipes, on tiny synthetic data."""

import contextlib
import csv
import io
import json
import math
import shutil
import textwrap

import keras
import numpy as np
import pytest
from helpers import assert_close, to_np

from hadamard_zoo import pretrained, training
from hadamard_zoo.training import classifier as C
from hadamard_zoo.training import command_text, fit, schedules
from hadamard_zoo.training import lm as L
from hadamard_zoo.training import recipes as R
from hadamard_zoo.training.tasks import task_for


def synthetic_images(n, seed):
    """28x28x1 uint8 images whose brightness depends on the label (learnable, not trivial)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = (rng.random((n, 28, 28, 1)) * 80 + y[:, None, None, None] * 17).astype(np.uint8)
    return x, y


def synthetic_data():
    return synthetic_images(80, 0), synthetic_images(40, 1)


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """Stands in for an interruption (Ctrl-C, a killed job) after epoch 1."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def pinet_run(tmp_path_factory):
    """pinet_ccp, limit=64: one epoch, 'interrupted'; then the same command resumes for epoch 2."""
    out = tmp_path_factory.mktemp("runs") / "pinet_ccp"
    kw = dict(dataset=synthetic_data(), epochs=2, batch_size=32, limit=64, output_dir=out, verbose=0,
              augment={"crop_padding": 2, "flip": True})
    first = training.train("pinet_ccp", resume=False, callbacks=[StopAfterFirstEpoch()], **kw)
    after_first = {
        "rows": _rows(out / "history.csv"),
        "checkpoints": sorted(p.name for p in (out / "checkpoints").iterdir()),
        "png": (out / "learning_curve.png").read_bytes()[:8],
        "run": json.loads((out / "run.json").read_text()),
    }
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        second = training.train("pinet_ccp", resume=True, **kw)
    return {"dir": out, "first": first, "after_first": after_first, "second": second, "log": log.getvalue()}


def test_train_one_epoch_writes_csv_checkpoint_and_png(pinet_run):
    a = pinet_run["after_first"]
    assert [r["epoch"] for r in a["rows"]] == ["0"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(a["rows"][0])
    assert a["checkpoints"] == ["epoch_001.keras"]
    assert a["png"] == b"\x89PNG\r\n\x1a\n"
    assert a["run"]["num_train"] == 64 and a["run"]["model_args"]["input_shape"] == [28, 28, 1]
    first = pinet_run["first"]
    assert first["epochs_done"] == 1 and first["test_n"] == 40 and 0.0 <= first["test_value"] <= 1.0


def test_resume_continues_at_the_next_epoch(pinet_run):
    out = pinet_run["dir"]
    assert "Resuming from" in pinet_run["log"] and "epoch_001.keras" in pinet_run["log"]
    assert [r["epoch"] for r in _rows(out / "history.csv")] == ["0", "1"]
    assert (out / "checkpoints" / "epoch_002.keras").exists()
    restored = keras.saving.load_model(str(out / "checkpoints" / "epoch_002.keras"))
    # 64 samples / batch 32 = 2 steps per epoch: the optimizer state went on from step 2, not 0
    assert int(to_np(restored.optimizer.iterations)) == 4
    assert pinet_run["second"]["epochs_done"] == 2
    results = json.loads((out / "results.json").read_text())
    assert results["test_value"] == pinet_run["second"]["test_value"]


def test_eval_reproduces_the_training_value(pinet_run, tmp_path):
    out, second = pinet_run["dir"], pinet_run["second"]
    data = synthetic_data()
    result = training.evaluate_checkpoint(out, dataset=data, limit=64, verbose=False)
    assert result["metric"] == "top1" and result["n"] == 40
    assert result["value"] == pytest.approx(second["test_value"], abs=1e-9)
    # as a manifest entry: the file is hashed, loaded, evaluated and compared with the manifest value
    wdir = tmp_path / "weights"
    wdir.mkdir()
    shutil.copy(out / "final.weights.h5", wdir / "tiny.weights.h5")
    run = json.loads((out / "run.json").read_text())
    entry = {"name": "pinet_ccp.synthetic", "model": "pinet_ccp", "file": "tiny.weights.h5",
             "sha256": pretrained.sha256_of(wdir / "tiny.weights.h5"), "dataset": "synthetic", "split": "test",
             "metric": "top1", "value": second["test_value"], "params": second["params"],
             "train_command": "-", "eval_command": "-", "backend": keras.config.backend(), "date": "2026-11-27",
             "model_args": run["model_args"]}
    (wdir / "manifest.json").write_text(json.dumps([entry]))
    result = training.evaluate_checkpoint("pinet_ccp.synthetic", dataset=data, weights_dir=wdir, verbose=False)
    assert result["difference"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="say which model"):
        training.evaluate_checkpoint(wdir / "tiny.weights.h5", dataset=data)


def tiny_lm(vocab, context):
    inp = keras.Input((context,), dtype="int32")
    x = keras.layers.Embedding(vocab, 8)(inp)
    return keras.Model(inp, keras.layers.Dense(vocab)(x), name="tiny_char_lm")


def test_char_lm_training_reports_nats_and_bits(tmp_path):
    text = "to be, or not to be: that is the question. " * 12
    train_text, val_text = text[:450], text[450:]
    vocab = len(set(text))
    results = training.train(tiny_lm(vocab, 16), dataset=(train_text, val_text), task="lm", epochs=1, batch_size=8,
                             context_length=16, limit=16, output_dir=tmp_path / "lm", verbose=0, learning_rate=0.01)
    row = _rows(tmp_path / "lm" / "history.csv")[0]
    assert float(row["val_bits_per_char"]) == pytest.approx(float(row["val_loss"]) / math.log(2), rel=1e-6)
    assert results["test_metric"] == "nats_per_char" and 0 < results["test_value"] < 2 * math.log(vocab)
    assert results["bits_per_char"] == pytest.approx(results["test_value"] / math.log(2))
    again = training.evaluate_checkpoint(tmp_path / "lm" / "checkpoints" / "epoch_001.keras",
                                         dataset=(train_text, val_text), limit=16, verbose=False)
    assert again["value"] == pytest.approx(results["test_value"], rel=1e-5)


# ----------------------------------------------------------------------------- pieces (no fit)


def test_shipped_recipes_are_valid():
    from hadamard_zoo import models
    from hadamard_zoo.data import dataset_info

    recipes = R.load_recipes()
    assert "pinet_ccp" in recipes
    registered = set(models.list_models())
    for name, recipe in recipes.items():
        full = R.resolve_recipe(name)
        if name in registered:  # recipes may name models whose family is not merged yet
            task = task_for(name, full)
            if task.name == "kg":  # KG datasets are hadamard_zoo.data.kg's (rotate_small takes any: --dataset)
                from hadamard_zoo.data import kg as kgdata

                assert full.dataset is None or kgdata.canonical_name(full.dataset), name
                continue
            info = dataset_info(full.dataset)
            assert info.kind == task.dataset_kind, name
            task = task.name
            if task == "gan":  # its discriminator and scoring classifier exist
                assert full.discriminator in registered, name
                assert full.eval_classifier in {e["name"] for e in pretrained.load_manifest()}, name


def test_resolve_recipe_overrides_and_by_dataset(tmp_path):
    (tmp_path / "r.yaml").write_text(textwrap.dedent("""
        pinet_ccp:
          dataset: fashion_mnist
          epochs: 7
          by_dataset:
            cifar10: {epochs: 30, augment: {crop_padding: 4, flip: true}}
    """))
    r = R.resolve_recipe("pinet_ccp", directory=tmp_path, epochs=None, batch_size=64)
    assert (r.dataset, r.epochs, r.batch_size, r.optimizer) == ("fashion_mnist", 7, 64, "adamw")
    r = R.resolve_recipe("pinet_ccp", dataset="CIFAR-10", directory=tmp_path)
    assert r.epochs == 30 and r.augment == {"crop_padding": 4, "flip": True}
    (tmp_path / "bad.yaml").write_text("pinet_ncp: {epochs: 3, lerning_rate: 0.1}\n")
    with pytest.raises(R.RecipeError, match=r"bad.yaml: recipe 'pinet_ncp': unknown recipe key\(s\) \['lerning_rate'\]"):
        R.load_recipes(tmp_path)
    with pytest.raises(R.RecipeError, match="optimizer must be one of"):
        R.resolve_recipe("pinet_ccp", directory=tmp_path / "none", optimizer="lion")


def test_jit_compile_can_be_set_per_backend(tmp_path):
    (tmp_path / "r.yaml").write_text("pinet_ccp: {dataset: fashion_mnist, jit_compile: {tensorflow: false}}\n")
    r = R.resolve_recipe("pinet_ccp", directory=tmp_path)
    assert fit.jit_compile_for_backend(r.jit_compile, "tensorflow") is False
    assert fit.jit_compile_for_backend(r.jit_compile, "jax") == "auto"
    assert fit.jit_compile_for_backend(True, "torch") is True
    (tmp_path / "r.yaml").write_text("pinet_ccp: {dataset: fashion_mnist, jit_compile: {tensorflw: false}}\n")
    with pytest.raises(R.RecipeError, match="jit_compile must be"):
        R.load_recipes(tmp_path)


def test_schedules():
    rec = R.resolve_recipe("x", directory="/nonexistent", epochs=10, learning_rate=0.1, warmup_epochs=1)
    s = schedules.build_schedule(rec, steps_per_epoch=10)
    lr = lambda step: float(to_np(s(step)))  # noqa: E731
    assert lr(0) == 0.0 and lr(10) == pytest.approx(0.1) and lr(100) == pytest.approx(0.0, abs=1e-7)
    assert lr(5) == pytest.approx(0.05) and lr(55) == pytest.approx(0.05, rel=1e-4)
    oc = schedules.build_schedule(R.resolve_recipe("x", directory="/nonexistent", epochs=10, learning_rate=0.1,
                                           schedule="one_cycle"), 10)
    lr = lambda step: float(to_np(oc(step)))  # noqa: E731
    assert lr(0) == pytest.approx(0.1 / 25) and lr(30) == pytest.approx(0.1) and lr(100) < 1e-5
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(oc))
    assert float(to_np(restored(42))) == pytest.approx(lr(42))


def test_label_smoothing_loss_matches_keras_categorical():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype("float32")
    labels = rng.integers(0, 5, 6)
    mine = C.SparseCrossentropy(label_smoothing=0.1)(labels, logits)
    ref = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(np.eye(5)[labels], logits)
    assert_close(to_np(mine), to_np(ref), 1e-5, 1e-6)


def test_augmentation_crops_and_flips():
    x = np.arange(2 * 4 * 4 * 1, dtype=np.uint8).reshape(2, 4, 4, 1)
    out = C.random_crop_flip(x, np.random.default_rng(0), crop_padding=0, flip=True)
    for a, b in zip(out, x):
        assert np.array_equal(a, b) or np.array_equal(a, b[:, ::-1])
    out = C.random_crop_flip(x, np.random.default_rng(1), crop_padding=1)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for a, p in zip(out, padded):
        assert any(np.array_equal(a, p[i:i + 4, j:j + 4]) for i in range(3) for j in range(3))


def test_cutout_erases_one_clipped_square_per_image():
    x = np.zeros((200, 8, 8, 3), np.uint8)
    out = C.cutout(x, np.random.default_rng(0), 4, fill=1.0)
    assert out.dtype == np.float32 and x.max() == 0  # a copy; the input is untouched
    erased = out[..., 0] == 1.0
    assert np.array_equal(erased, (out == 1.0).all(-1))  # every channel of a pixel together
    counts = erased.sum(axis=(1, 2))
    assert counts.max() == 16 and counts.min() >= 4  # whole 4x4 squares inside, clipped at corners
    for mask in erased:
        r, c = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        assert mask.sum() == len(r) * len(c) and np.ptp(r) == len(r) - 1 and np.ptp(c) == len(c) - 1
    ds = C.ArrayBatches(x, np.zeros(200, np.int32), 50, shuffle=True, seed=1, cutout=4)
    np.testing.assert_array_equal(ds[1][0], ds[1][0])  # a function of (seed, epoch, batch)
    assert (ds[1][0] == C.CUTOUT_FILL).any()
    with pytest.raises(ValueError, match="cutout"):
        C.ArrayBatches(x, np.zeros(200), 50, cutout=-1)


def _labelled_constant_images(n=8, size=8):
    """Image ``i`` is all ``10 * i`` and has label ``i``: a mixed image tells which two it came from."""
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None, None, None] * 10, size * size * 3).reshape(n, size, size, 3)
    return x, np.arange(n)


def test_mixup_blends_images_and_targets_by_the_same_ratio():
    x, y = _labelled_constant_images()
    out, q = C.mix_batch(x.copy(), y, 8, np.random.default_rng(0), mixup=0.8)
    assert out.shape == x.shape and q.shape == (8, 8) and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(-1), 1.0, rtol=1e-6)
    for i in range(8):
        j = [k for k in np.nonzero(q[i])[0] if k != i]
        lam = q[i, i] if j else 1.0  # paired with itself: nothing changes
        partner = j[0] if j else i
        assert np.ptp(out[i]) < 1e-4  # a blend of two constant images is constant
        assert out[i, 0, 0, 0] == pytest.approx(10 * (lam * i + (1 - lam) * partner), abs=1e-3)
    assert (q.max(-1) < 1).any()  # something was mixed


def test_cutmix_pastes_one_box_and_weights_targets_by_its_area():
    x, y = _labelled_constant_images(size=16)
    out, q = C.mix_batch(x.copy(), y, 8, np.random.default_rng(3), cutmix=1.0)
    for i in range(8):
        own = out[i, ..., 0] == 10 * i
        pasted = ~own
        assert q[i, i] == pytest.approx(own.mean(), abs=1e-6) or np.nonzero(q[i])[0].tolist() == [i]
        if pasted.any():  # one rectangle
            r, c = np.nonzero(pasted.any(1))[0], np.nonzero(pasted.any(0))[0]
            assert pasted.sum() == len(r) * len(c)
            assert len(np.unique(out[i][pasted])) == 1  # all from one partner
    assert (q.max(-1) < 1).any()


def test_mixed_batches_are_reproducible_and_validated():
    x, y = synthetic_images(64, 0)
    ds = C.ArrayBatches(x, y, 16, shuffle=True, seed=2, mixup=0.8, cutmix=1.0, num_classes=10)
    xb, qb = ds[1]
    assert xb.dtype == np.float32 and qb.shape == (16, 10)
    np.testing.assert_array_equal(ds[1][0], xb)
    np.testing.assert_array_equal(ds[1][1], qb)
    plain = C.ArrayBatches(x, y, 16, shuffle=True, seed=2)
    assert plain[1][1].dtype == np.int32 and plain[1][1].shape == (16,)
    with pytest.raises(ValueError, match="num_classes"):
        C.ArrayBatches(x, y, 16, mixup=0.2)
    with pytest.raises(ValueError, match="Beta parameters"):
        C.ArrayBatches(x, y, 16, cutmix=-1, num_classes=10)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        C.mix_batch(x[:4], np.array([0, 1, 2, 7]), 5, np.random.default_rng(0), mixup=1.0)


def test_loss_and_accuracy_take_soft_targets():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 5)).astype("float32")
    q = rng.dirichlet(np.ones(5), 6).astype("float32")
    mine = C.SparseCrossentropy(label_smoothing=0.1)(q, logits)
    ref = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(q, logits)
    assert_close(to_np(mine), to_np(ref), 1e-5, 1e-6)
    labels = rng.integers(0, 5, 6)
    acc = C.Top1Accuracy()
    acc.update_state(np.eye(5, dtype="float32")[labels] * 0.7 + 0.06, logits)  # soft: its largest class counts
    expected = float((logits.argmax(-1) == labels).mean())
    assert float(to_np(acc.result())) == pytest.approx(expected)
    acc.reset_state()
    acc.update_state(labels.reshape(6, 1), logits)  # integer labels, with or without a trailing axis
    assert float(to_np(acc.result())) == pytest.approx(expected)
    restored = keras.metrics.deserialize(keras.metrics.serialize(acc))
    assert isinstance(restored, C.Top1Accuracy) and restored.name == "accuracy"


def test_training_with_mixup_and_cutmix_runs_and_evaluates_on_labels(tmp_path):
    res = training.train("pinet_ccp", dataset=synthetic_data(), epochs=1, batch_size=32, limit=64,
                         output_dir=tmp_path / "mix", verbose=0,
                         augment={"crop_padding": 2, "flip": True, "mixup": 0.8, "cutmix": 1.0})
    assert math.isfinite(res["final_loss"]) and 0.0 <= res["final_accuracy"] <= 1.0
    assert 0.0 <= res["test_value"] <= 1.0 and res["test_n"] == 40


def test_recipe_rejects_a_bad_mixing_parameter(tmp_path):
    (tmp_path / "r.yaml").write_text("pinet_ccp: {dataset: fashion_mnist, augment: {mixup: -0.5}}\n")
    with pytest.raises(R.RecipeError, match="augment.mixup is a Beta parameter"):
        R.load_recipes(tmp_path)


def test_recipe_rejects_a_bad_cutout_size(tmp_path):
    (tmp_path / "r.yaml").write_text("pinet_ccp: {dataset: fashion_mnist, augment: {cutout: 2.5}}\n")
    with pytest.raises(R.RecipeError, match="augment.cutout"):
        R.load_recipes(tmp_path)


def test_array_batches_are_a_function_of_seed_epoch_and_batch():
    x, y = synthetic_images(10, 0)
    ds = C.ArrayBatches(x, y, 4, shuffle=True, seed=3, crop_padding=2, flip=True)
    assert len(ds) == 3 and ds[2][0].shape == (2, 28, 28, 1) and ds[0][0].dtype == np.float32
    first = ds[0]
    ds.set_epoch(1)
    other = ds[0]
    ds.set_epoch(0)
    np.testing.assert_array_equal(ds[0][0], first[0])
    assert not np.array_equal(other[1], first[1]) or not np.array_equal(other[0], first[0])
    windows = L.RandomWindows(np.arange(100), 8, 4, steps=3, seed=0)
    xb, yb = windows[1]
    np.testing.assert_array_equal(yb, xb + 1)


def test_train_without_recipe_or_dataset_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "recipes_dir", lambda: tmp_path)  # no recipes at all
    with pytest.raises(ValueError, match="has no training recipe.*--dataset"):
        training.train("pinet_ncp", output_dir=tmp_path / "x")
    with pytest.raises(ValueError, match="Unknown model name"):
        training.train("pinet_cpp", dataset="cifar10")


def test_init_weights_starts_from_a_checkpoint(pinet_run, tmp_path):
    """``init_weights`` (``--init-weights``): a warm restart loads the weights before fit; with a zero
    learning rate the model stays exactly the checkpoint, so its test accuracy is the checkpoint's."""
    final = pinet_run["dir"] / "final.weights.h5"
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        warm = training.train("pinet_ccp", dataset=synthetic_data(), epochs=1, batch_size=32, limit=64,
                              output_dir=tmp_path / "warm", verbose=0, learning_rate=0.0, init_weights=str(final))
    assert f"Initial weights: {final}" in log.getvalue()
    assert warm["test_value"] == pytest.approx(pinet_run["second"]["test_value"], abs=1e-9)
    run = json.loads((tmp_path / "warm" / "run.json").read_text())
    assert run["recipe"]["init_weights"] == str(final)
    # the command that reproduces a warm restart names its starting weights
    rec = R.resolve_recipe("ncp_resnet_cifar_small", epochs=30, learning_rate=0.05, init_weights="some.tag")
    cmd = command_text.command_line("ncp_resnet_cifar_small", rec)
    assert "--init-weights some.tag" in cmd and "--epochs 30" in cmd and "--lr 0.05" in cmd
    assert "--init-weights" not in command_text.command_line("ncp_resnet_cifar_small", R.resolve_recipe("ncp_resnet_cifar_small"))


def test_init_weights_refuses_other_architectures_and_bad_values(pinet_run, tmp_path):
    final = pinet_run["dir"] / "final.weights.h5"
    with pytest.raises(pretrained.CheckpointError, match="does not fit model"):
        training.train("pinet_ncp", dataset=synthetic_data(), epochs=1, batch_size=32, limit=64,
                       output_dir=tmp_path / "other", verbose=0, init_weights=str(final))
    with pytest.raises(pretrained.CheckpointError, match="Unknown checkpoint 'no.such.tag'"):
        training.train("pinet_ccp", dataset=synthetic_data(), epochs=1, batch_size=32, limit=64,
                       output_dir=tmp_path / "tag", verbose=0, init_weights="no.such.tag")
    with pytest.raises(R.RecipeError, match="init_weights must be a checkpoint tag"):
        R.resolve_recipe("pinet_ccp", init_weights=3)


class RecordDtypes(keras.callbacks.Callback):
    """Notes the compute dtypes of the model's weighted layers and its variables' dtypes when fit starts."""

    def on_train_begin(self, logs=None):
        self.compute = {layer.compute_dtype for layer in self.model.layers if layer.weights}
        self.variables = {str(v.dtype) for v in self.model.trainable_variables}


def test_mixed_bfloat16_computes_in_bfloat16_keeps_float32_weights_and_restores_the_policy(tmp_path):
    seen, seen_resumed = RecordDtypes(), RecordDtypes()
    out = tmp_path / "bf16"
    kw = dict(dataset=synthetic_data(), epochs=2, batch_size=32, limit=64, output_dir=out, verbose=0,
              dtype_policy="mixed_bfloat16")
    training.train("pinet_ccp", callbacks=[StopAfterFirstEpoch(), seen], **kw)
    assert seen.compute == {"bfloat16"} and seen.variables == {"float32"}
    res = training.train("pinet_ccp", callbacks=[seen_resumed], **kw)  # resumed from the epoch-1 checkpoint
    assert res["epochs_done"] == 2
    assert seen_resumed.compute == {"bfloat16"} and seen_resumed.variables == {"float32"}
    assert keras.config.dtype_policy().name == "float32"  # the global policy is back
    assert math.isfinite(res["final_loss"]) and 0.0 <= res["test_value"] <= 1.0
    run = json.loads((out / "run.json").read_text())
    assert run["recipe"]["dtype_policy"] == "mixed_bfloat16"
    assert "--set dtype_policy=mixed_bfloat16" in run["train_command"]
    # what was saved is float32 and loads into the float32 model that eval and pretrained= build
    from hadamard_zoo import models

    net = models.create_model("pinet_ccp", **run["model_args"])
    net.load_weights(res["final_weights"])
    assert {str(v.dtype) for v in net.weights} == {"float32"}
    assert {layer.compute_dtype for layer in net.layers if layer.weights} == {"float32"}


def test_dtype_policy_is_validated_and_refused_where_it_does_not_apply(tmp_path):
    (tmp_path / "r.yaml").write_text("pinet_ccp: {dataset: fashion_mnist, dtype_policy: bfloat16}\n")
    with pytest.raises(R.RecipeError, match="dtype_policy must be one of"):
        R.load_recipes(tmp_path)
    with pytest.raises(ValueError, match="dtype_policy 'mixed_bfloat16' is supported for image classifiers"):
        training.train("cope_generator_fmnist", dtype_policy="mixed_bfloat16", output_dir=tmp_path / "gan")
    prebuilt = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="build this model under keras.config.set_dtype_policy"):
        training.train(prebuilt, dataset=synthetic_data(), dtype_policy="mixed_bfloat16", output_dir=tmp_path / "seq")
