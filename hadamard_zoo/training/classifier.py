"""Image-classifier training with ``model.fit`` (same code on jax, tensorflow and torch).

Data flow: uint8 arrays (from :mod:`hadamard_zoo.data` or keras.datasets-style
arrays) -> :class:`ArrayBatches`, a ``keras.utils.PyDataset`` that shuffles and
augments in numpy (:mod:`.augment`: random crop with zero padding, horizontal flip,
Cutout, MixUp/CutMix) and yields float32 pixels in [0, 255] with integer labels, or
soft targets ``(N, classes)`` when batches are mixed -> the model, whose preprocessing
is in the model. :class:`SparseCrossentropy` and :class:`Top1Accuracy` take either.
"""

from __future__ import annotations

import math
import platform

import keras
import numpy as np

from hadamard_zoo.training import recipes as R
from hadamard_zoo.training import swa as SWA
from hadamard_zoo.training.augment import CUTOUT_FILL, cutout, mix_batch, random_crop_flip  # noqa: F401


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class SparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with label smoothing from integer labels or soft targets (logits by default).

    ``y_true``: integer labels shaped like ``y_pred`` without its class axis (a trailing
    axis of 1 is allowed), or soft targets ``q`` of ``y_pred``'s shape (MixUp/CutMix).
    Equals ``CategoricalCrossentropy(label_smoothing=eps)``:
    ``(1 - eps) * sum_k(-q_k log p_k) + eps * mean_k(-log p_k)``, with ``q`` one-hot for labels.
    """

    def __init__(self, label_smoothing=0.0, from_logits=True, name="sparse_crossentropy", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_pred = ops.cast(y_pred, "float32")
        if self.from_logits:
            logp = ops.log_softmax(y_pred, axis=-1)
        else:
            logp = ops.log(ops.clip(y_pred, 1e-7, 1.0))
        nll = -ops.sum(logp * targets_of(y_true, y_pred, logp.dtype), axis=-1)
        if self.label_smoothing:
            return (1.0 - self.label_smoothing) * nll - self.label_smoothing * ops.mean(logp, axis=-1)
        return nll

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing, from_logits=self.from_logits)
        return config


def is_soft(y_true, y_pred):
    """Whether ``y_true`` holds soft targets (``y_pred``'s rank and class count) rather than labels."""
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    return len(true_shape) == len(pred_shape) and pred_shape[-1] not in (None, 1) and true_shape[-1] == pred_shape[-1]


def targets_of(y_true, y_pred, dtype="float32"):
    """``y_true`` as a distribution over ``y_pred``'s last axis: soft targets as they are, labels one-hot."""
    ops = keras.ops
    if is_soft(y_true, y_pred):
        return ops.cast(y_true, dtype)
    labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
    return ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=dtype)


def top1_hits(y_true, y_pred):
    """1.0 where ``argmax(y_pred)`` is the label (for soft targets: their largest class), else 0.0."""
    ops = keras.ops
    if is_soft(y_true, y_pred):
        labels = ops.argmax(y_true, axis=-1)
    else:
        labels = ops.reshape(y_true, ops.shape(y_pred)[:-1])
    return ops.cast(ops.equal(ops.cast(labels, "int32"), ops.cast(ops.argmax(y_pred, axis=-1), "int32")), "float32")


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class Top1Accuracy(keras.metrics.MeanMetricWrapper):
    """Top-1 accuracy from integer labels or soft targets (a mixed batch counts its larger share)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(fn=top1_hits, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class ArrayBatches(keras.utils.PyDataset):
    """Batches of ``(float32 images in [0, 255], labels)`` from in-memory arrays.

    Labels are int32 ``(N,)``; with ``mixup`` or ``cutmix`` (Beta parameters, :func:`mix_batch`)
    they are float32 soft targets ``(N, num_classes)``. With ``shuffle``, each epoch's order
    is a permutation seeded by ``(seed, epoch)``; augmentation draws from ``(seed, epoch,
    batch)``. :class:`recipes.EpochSync` sets the epoch, so a resumed run repeats an
    uninterrupted run's batches.
    """

    def __init__(self, x, y, batch_size, shuffle=False, seed=0, crop_padding=0, flip=False, cutout=0,
                 mixup=0.0, cutmix=0.0, num_classes=None):
        super().__init__()
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels.")
        if len(x) == 0:
            raise ValueError("no samples to batch.")
        self.x, self.y = x, np.asarray(y).astype(np.int32)
        self.batch_size = int(batch_size)
        self.shuffle, self.seed = shuffle, int(seed)
        self.crop_padding, self.flip = int(crop_padding or 0), bool(flip)
        self.cutout = int(cutout or 0)
        if self.cutout < 0:
            raise ValueError(f"cutout is the side of the erased square in pixels (>= 0), got {cutout}.")
        self.mixup, self.cutmix = float(mixup or 0.0), float(cutmix or 0.0)
        if self.mixup < 0 or self.cutmix < 0:
            raise ValueError(f"mixup and cutmix are Beta parameters >= 0, got {mixup} and {cutmix}.")
        if (self.mixup or self.cutmix) and not num_classes:
            raise ValueError("mixup/cutmix make soft targets: pass num_classes.")
        self.num_classes = int(num_classes) if num_classes else None
        self.epoch = 0
        self._order = None

    def set_epoch(self, epoch):
        if epoch != self.epoch:
            self.epoch, self._order = int(epoch), None

    def order(self):
        if self._order is None:
            n = len(self.x)
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        return self._order

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, idx):
        sel = self.order()[idx * self.batch_size : (idx + 1) * self.batch_size]
        if not self.shuffle:
            sel = slice(int(sel[0]), int(sel[-1]) + 1)
        xb, yb = self.x[sel], self.y[sel]
        if self.crop_padding or self.flip:
            rng = np.random.default_rng([self.seed, self.epoch, int(idx), 7])
            xb = random_crop_flip(xb, rng, self.crop_padding, self.flip)
        xb = xb.astype(np.float32)  # a fresh batch, never a view of self.x
        if self.cutout:
            cutout(xb, np.random.default_rng([self.seed, self.epoch, int(idx), 11]), self.cutout)
        if self.mixup or self.cutmix:
            rng = np.random.default_rng([self.seed, self.epoch, int(idx), 13])
            xb, yb = mix_batch(xb, yb, self.num_classes, rng, self.mixup, self.cutmix)
        return xb, yb


# ----------------------------------------------------------------------------- data and model


def load_data(dataset, data_dir=None, cache_dir=None, need_train=True):
    """``dict(name, display, x_train, y_train, x_test, y_test, num_classes)``.

    ``dataset``: a name from ``hadamard_zoo.data.DATASETS``, or keras.datasets-style arrays
    ``((x_train, y_train), (x_test, y_test))`` (or just ``(x_train, y_train)``).
    """
    from hadamard_zoo import data as D

    if isinstance(dataset, str):
        info = D.dataset_info(dataset)
        if info.kind != "image":
            raise ValueError(f"dataset {info.name!r} is {info.kind}, not an image-classification dataset.")
        kw = {"data_dir": data_dir, "cache_dir": cache_dir}
        x_tr = y_tr = None
        if need_train:
            x_tr, y_tr = info.load(split="train", **kw)
        x_te, y_te = info.load(split=info.eval_split, **kw)
        return {
            "name": info.name, "display": info.display, "x_train": x_tr, "y_train": y_tr,
            "x_test": x_te, "y_test": y_te, "num_classes": info.num_classes,
        }
    arrays = D.from_arrays(dataset)
    if D.images.is_split_pair(arrays):
        (x_tr, y_tr), (x_te, y_te) = arrays
    else:
        (x_tr, y_tr), (x_te, y_te) = arrays, (None, None)
    labels = [y for y in (y_tr, y_te) if y is not None]
    return {
        "name": "arrays", "display": "user arrays", "x_train": x_tr, "y_train": y_tr,
        "x_test": x_te, "y_test": y_te, "num_classes": int(max(int(y.max()) for y in labels)) + 1,
    }


def model_arguments(model_name, recipe_args, input_shape, num_classes):
    """The recipe's ``model_args`` plus what the data fixes: input shape, classes, logits output."""
    args = dict(recipe_args or {})
    if R.builder_takes(model_name, "input_shape") and "input_shape" not in args and input_shape is not None:
        args["input_shape"] = [int(s) for s in input_shape]
    if R.builder_takes(model_name, "num_classes") and "num_classes" not in args and num_classes is not None:
        args["num_classes"] = int(num_classes)
    if R.builder_takes(model_name, "classifier_activation") and "classifier_activation" not in args:
        args["classifier_activation"] = None  # the loss takes logits
    return args


def top1(model, x, y, batch_size=256):
    """Top-1 accuracy of ``model`` (logits or probabilities) on uint8/float images."""
    pred = model.predict(ArrayBatches(x, y, batch_size), verbose=0)
    pred = np.asarray(keras.ops.convert_to_numpy(pred))
    return float((np.argmax(pred, axis=-1) == np.asarray(y).reshape(-1)).mean())


# ----------------------------------------------------------------------------- training


def train(model, recipe, dataset=None, output_dir=None, resume=True, limit=None, verbose="auto",
          data_dir=None, cache_dir=None, callbacks=(), command=None):
    """Train an image classifier by ``recipe`` with ``model.fit``; see :func:`hadamard_zoo.training.train`.

    Returns the ``results.json`` dict (final validation/test metrics, paths, a manifest entry).
    """
    from hadamard_zoo import models as M

    model_name = model if isinstance(model, str) else model.name
    keras.utils.set_random_seed(int(recipe.seed))
    data = load_data(dataset if dataset is not None else recipe.dataset, data_dir, cache_dir)
    x_all, y_all = data["x_train"], data["y_train"]
    tr_idx, va_idx = R.split_indices(len(x_all), recipe.validation_split, recipe.seed)
    if limit is not None:
        tr_idx, va_idx = tr_idx[: int(limit)], va_idx[: int(limit)]
    x_tr, y_tr = x_all[tr_idx], y_all[tr_idx]
    aug = recipe.augment or {}
    train_ds = ArrayBatches(x_tr, y_tr, recipe.batch_size, shuffle=True, seed=recipe.seed,
                            crop_padding=aug.get("crop_padding", 0), flip=aug.get("flip", False),
                            cutout=aug.get("cutout", 0), mixup=aug.get("mixup", 0.0), cutmix=aug.get("cutmix", 0.0),
                            num_classes=data["num_classes"])
    eval_bs = recipe.eval_batch_size or 2 * recipe.batch_size
    val_ds = ArrayBatches(x_all[va_idx], y_all[va_idx], eval_bs) if len(va_idx) else None
    steps = len(train_ds)

    run = R.RunDir(output_dir or f"runs/{model_name}")
    run.create()
    identity = {"model": model_name, "dataset": data["name"]}
    def build():
        if not isinstance(model, str):
            return model, None
        args = model_arguments(model, recipe.model_args, x_tr.shape[1:], data["num_classes"])
        return M.create_model(model, **args), args

    loss = SparseCrossentropy(label_smoothing=recipe.label_smoothing)
    net, initial_epoch, model_args = R.open_run(run, recipe, steps, resume, build, loss, model_name, identity,
                                                metric=Top1Accuracy())

    command = command or R.command_line(
        model_name, recipe, dataset=data["name"] if data["name"] != "arrays" else None, limit=limit,
        output_dir=str(run.path) if output_dir is not None else None,
    )
    run.write_json(run.run_json, {
        **identity, "task": "classifier", "dataset_display": data["display"], "model_args": model_args,
        "recipe": recipe.to_dict(), "recipe_source": recipe.source, "epochs": recipe.epochs,
        "steps_per_epoch": steps, "limit": limit, "num_train": len(x_tr), "num_val": len(va_idx),
        "backend": keras.config.backend(), "keras": keras.__version__, "python": platform.python_version(),
        "train_command": command,
    })

    monitor, mode = ("val_accuracy", "max") if val_ds is not None else ("accuracy", "max")
    cbs = R.standard_callbacks(run, recipe, monitor, mode, [train_ds], resumed=initial_epoch > 0) + list(callbacks)
    finalize = None
    if recipe.swa_epochs:
        first = recipe.epochs - recipe.swa_epochs
        # before the epoch checkpoint is written, so a checkpoint never runs ahead of the average
        cbs.insert(2, SWA.WeightAverage(run.path, first, initial_epoch))

        def finalize(net):
            done = run.last_checkpoint()[0]
            if done < recipe.epochs:  # stopped early (interrupted, NaN): the live weights; resuming finishes the average
                print(f"{model_name}: stopped after {done} of {recipe.epochs} epochs; the weight average is "
                      f"applied when the run finishes (run the same command again).", flush=True)
                return
            train_ds.set_epoch(recipe.epochs)  # the BatchNorm pass sees the same batches after a resume
            n = SWA.apply_average(net, run.path, recipe.epochs, recipe.swa_epochs, train_ds)
            print(f"{model_name}: weights averaged over the last {n} epochs; BatchNorm statistics recomputed "
                  f"over {len(train_ds)} training batches.", flush=True)
    history = R.fit_remaining(net, run, recipe, train_ds, val_ds, initial_epoch, cbs, verbose, finalize=finalize)
    epochs_done = len(history.get("epoch", []))
    results = {
        **identity, "dataset_display": data["display"], "epochs_done": epochs_done, "params": net.count_params(),
        "final_weights": str(run.final), "best_weights": str(run.best) if run.best.exists() else None,
        "history_csv": str(run.csv), "backend": keras.config.backend(), "limit": limit,
    }
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if history.get(key):
            results[f"final_{key}"] = history[key][-1]
    if data["x_test"] is not None:
        idx = R.subset_indices(len(data["x_test"]), limit)
        acc = top1(net, data["x_test"][idx], data["y_test"][idx], eval_bs)
        results.update(test_split="test", test_metric="top1", test_value=acc, test_n=len(idx))
        print(f"{model_name}: top-1 {acc:.4f} on {len(idx)} {data['display']} test images.", flush=True)
    png = R.plot_history(run, ("accuracy",), title=f"{model_name} on {data['display']}")
    results["learning_curve"] = str(png) if png else None
    if "test_value" in results and isinstance(model, str) and data["name"] != "arrays":
        results["manifest_entry"] = manifest_entry(model_name, data, results, command, run, limit)
    run.write_json(run.results_json, results)
    return results


def manifest_entry(model_name, data, results, command, run, limit):
    """A ``weights/manifest.json`` entry for this run's final weights (file to be copied to weights/)."""
    from hadamard_zoo.pretrained import sha256_of

    tag = f"{model_name}.{data['name']}"
    return {
        "name": tag, "model": model_name, "default": True, "file": f"{tag}.weights.h5",
        "sha256": sha256_of(run.final), "dataset": data["display"], "split": "test", "metric": "top1",
        "value": round(float(results["test_value"]), 4), "params": results["params"],
        "train_command": command, "eval_command": f"hadamard-zoo eval {tag}" + (f" --limit {limit}" if limit else ""),
        "backend": keras.config.backend(), "date": R.now(),
        "model_args": (R.RunDir(run.path).read_run() or {}).get("model_args"),
    }
