"""The image-classifier task: ``train`` with ``model.fit``, ``evaluate`` (top-1 on the test split), its manifest entry.

Data flow: uint8 arrays (from :mod:`hadamard_zoo.data` or keras.datasets-style
arrays) -> :class:`~hadamard_zoo.training.image_batches.ArrayBatches`, a ``keras.utils.PyDataset``
that shuffles and augments in numpy (:mod:`.augment`: random crop with zero padding, horizontal
flip, Cutout, MixUp/CutMix) and yields float32 pixels in [0, 255] with integer labels, or
soft targets ``(N, classes)`` when batches are mixed -> the model, whose preprocessing
is in the model. :mod:`.losses` (:class:`SparseCrossentropy`, :class:`Top1Accuracy`) takes either.
"""

from __future__ import annotations

import platform

import keras
import numpy as np

from hadamard_zoo.training import swa as SWA
from hadamard_zoo.training.augment import CUTOUT_FILL, cutout, mix_batch, random_crop_flip  # noqa: F401
from hadamard_zoo.training.callbacks import standard_callbacks
from hadamard_zoo.training.command_text import command_line
from hadamard_zoo.training.fit import fit_remaining, open_run
from hadamard_zoo.training.image_batches import ArrayBatches
from hadamard_zoo.training.losses import (  # noqa: F401  (public here since before the split)
    SparseCrossentropy,
    Top1Accuracy,
    is_soft,
    targets_of,
    top1_hits,
)
from hadamard_zoo.training.manifest_entry import manifest_entry as base_manifest_entry
from hadamard_zoo.training.plots import plot_history
from hadamard_zoo.training.run_dir import RunDir
from hadamard_zoo.training.splits import split_indices, subset_indices
from hadamard_zoo.training.tasks import builder_takes


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
    if builder_takes(model_name, "input_shape") and "input_shape" not in args and input_shape is not None:
        args["input_shape"] = [int(s) for s in input_shape]
    if builder_takes(model_name, "num_classes") and "num_classes" not in args and num_classes is not None:
        args["num_classes"] = int(num_classes)
    if builder_takes(model_name, "classifier_activation") and "classifier_activation" not in args:
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
    tr_idx, va_idx = split_indices(len(x_all), recipe.validation_split, recipe.seed)
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

    run = RunDir(output_dir or f"runs/{model_name}")
    run.create()
    identity = {"model": model_name, "dataset": data["name"]}
    def build():
        if not isinstance(model, str):
            return model, None
        args = model_arguments(model, recipe.model_args, x_tr.shape[1:], data["num_classes"])
        return M.create_model(model, **args), args

    loss = SparseCrossentropy(label_smoothing=recipe.label_smoothing)
    net, initial_epoch, model_args = open_run(run, recipe, steps, resume, build, loss, model_name, identity,
                                                metrics=[Top1Accuracy()])

    command = command or command_line(
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
    cbs = standard_callbacks(run, recipe, monitor, mode, [train_ds], resumed=initial_epoch > 0) + list(callbacks)
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
    history = fit_remaining(net, run, recipe, train_ds, val_ds, initial_epoch, cbs, verbose, finalize=finalize)
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
        idx = subset_indices(len(data["x_test"]), limit)
        acc = top1(net, data["x_test"][idx], data["y_test"][idx], eval_bs)
        results.update(test_split="test", test_metric="top1", test_value=acc, test_n=len(idx))
        print(f"{model_name}: top-1 {acc:.4f} on {len(idx)} {data['display']} test images.", flush=True)
    png = plot_history(run, ("accuracy",), title=f"{model_name} on {data['display']}")
    results["learning_curve"] = str(png) if png else None
    if "test_value" in results and isinstance(model, str) and data["name"] != "arrays":
        results["manifest_entry"] = manifest_entry(model_name, data, results, command, run, limit)
    run.write_json(run.results_json, results)
    return results


def manifest_entry(model_name, data, results, command, run, limit):
    """A ``weights/manifest.json`` entry for this run's final weights (file to be copied to weights/)."""
    return base_manifest_entry(
        model_name, data["name"], run.final, dataset=data["display"], split="test", metric="top1",
        value=results["test_value"], params=results["params"], train_command=command, limit=limit,
        model_args=(RunDir(run.path).read_run() or {}).get("model_args"),
    )


def evaluate(checkpoint, dataset=None, limit=None, batch_size=None, data_dir=None, cache_dir=None):
    """Top-1 accuracy of ``checkpoint`` (a :class:`hadamard_zoo.training.evaluate.Checkpoint`) on the test split.

    ``dataset``: a dataset name, or arrays ``((x_train, y_train), (x_test, y_test))`` / ``(x_test, y_test)``;
    ``limit``: a seeded subset of that many test images (:func:`~hadamard_zoo.training.splits.subset_indices`).
    """
    from hadamard_zoo.data import images
    from hadamard_zoo.training.recipes import resolve_recipe

    if isinstance(dataset, str):
        data = load_data(dataset, data_dir, cache_dir, need_train=False)
    else:
        arrays = images.from_arrays(dataset)
        (x_te, y_te) = arrays[1] if images.is_split_pair(arrays) else arrays
        data = {"name": "arrays", "display": "user arrays", "x_test": x_te, "y_test": y_te,
                "num_classes": int(y_te.max()) + 1}
    x, y = data["x_test"], data["y_test"]
    net = checkpoint.build(lambda: model_arguments(checkpoint.model_name, resolve_recipe(checkpoint.model_name).model_args,
                                                   x.shape[1:], data["num_classes"]))
    idx = subset_indices(len(x), limit)
    acc = top1(net, x[idx], y[idx], batch_size or 256)
    return {"model": checkpoint.model_name or net.name, "dataset": data["display"], "split": "test", "metric": "top1",
            "value": acc, "n": int(len(idx)), "limit": limit}
