"""Uniform model soups: one classifier whose weights are the mean of several checkpoints'.

A uniform soup (Wortsman et al. 2022, "Model soups: averaging weights of multiple
fine-tuned models improves accuracy without increasing inference time") of ``k``
checkpoints of the same architecture that lie in one basin (for instance the
successive warm restarts of one training run) is::

    w_soup = (1 / k) * sum_{i=1}^{k} w_i        (every trainable variable)

The soup's BatchNorm statistics belong to none of the ingredients, so they are
recomputed with one pass over the training images (un-augmented, in their stored
order, ``batch_size`` at a time) in training mode, as after stochastic weight
averaging (:func:`hadamard_zoo.training.swa.recalibrate_batch_norm`). Other
non-trainable variables must be equal in every ingredient; a soup of checkpoints
that differ there is refused rather than silently taking one of them.

The result is a run folder like ``train``'s (``run.json``, ``final.weights.h5``,
``results.json`` with the test metric and a ready ``weights/manifest.json`` entry),
so :func:`hadamard_zoo.release.publish` ships it like any trained run.

>>> from hadamard_zoo.training.soup import soup
>>> soup("monet_cifar", ["monet_cifar.cifar10_stage3", "monet_cifar.cifar10_stage4",
...                      "monet_cifar.cifar10_stage5"], output_dir="runs/monet_soup")
"""

from __future__ import annotations

import platform
import shlex
from pathlib import Path

import keras
import numpy as np

from hadamard_zoo import pretrained
from hadamard_zoo.training import recipes as R
from hadamard_zoo.training.run_dir import RunDir
from hadamard_zoo.training.splits import split_indices, subset_indices
from hadamard_zoo.training.swa import batch_norm_layers, recalibrate_batch_norm
from hadamard_zoo.training.tasks import task_for


def _ingredient(model_name, spec):
    """``(path, manifest entry or None, model_args or None)`` of one ingredient; its hash is checked."""
    path, entry = pretrained.resolve(model_name, spec)
    pretrained.verify(path, entry)
    args = (entry or {}).get("model_args")
    if entry is None:
        from hadamard_zoo.training.evaluate import run_json_near

        run = run_json_near(Path(path))
        if run is not None and run.get("model") == model_name:
            args = run.get("model_args")
    return path, entry, args


def _variable_values(variables):
    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]


def average_checkpoints(net, paths) -> int:
    """Load each ``.weights.h5`` of ``paths`` into ``net`` in turn and set its trainable variables
    to their uniform mean. BatchNorm moving statistics are left for the caller to recompute; every
    other non-trainable variable must agree across the checkpoints (else ``ValueError``).
    Returns the number of averaged checkpoints."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError(f"a soup needs at least two checkpoints, got {len(paths)}.")
    bn_ids = {id(v) for layer in batch_norm_layers(net) for v in (layer.moving_mean, layer.moving_variance)}
    # integer state (dropout seed generators) plays no part in inference and is not compared
    fixed = [v for v in net.non_trainable_variables
             if id(v) not in bn_ids and "float" in keras.backend.standardize_dtype(v.dtype)]
    sums, reference = None, None
    for path in paths:
        pretrained.load_weights_checked(net, path)
        values = [a.astype(np.float64) for a in _variable_values(net.trainable_variables)]
        sums = values if sums is None else [s + v for s, v in zip(sums, values)]
        others = _variable_values(fixed)
        if reference is None:
            reference = others
        else:
            for variable, ref, mine in zip(fixed, reference, others):
                if not np.array_equal(ref, mine):
                    raise ValueError(
                        f"{path} differs from {paths[0]} in the non-trainable variable {variable.path}: "
                        f"only trainable weights are averaged, so these checkpoints cannot form a soup.")
    for variable, total in zip(net.trainable_variables, sums):
        variable.assign((total / len(paths)).astype(keras.backend.standardize_dtype(variable.dtype)))
    return len(paths)


def soup(model, ingredients, dataset=None, output_dir=None, batch_size=128, limit=None, data_dir=None,
         cache_dir=None, command=None, verbose=True) -> dict:
    """Average the checkpoints ``ingredients`` of image classifier ``model`` into one.

    Args:
        model: the registered model name every ingredient belongs to.
        ingredients: two or more manifest tags or ``.weights.h5`` paths (hashes are checked;
            their ``model_args`` must agree).
        dataset: the dataset whose training images recompute BatchNorm and whose test split
            measures the soup (default: the model's recipe's).
        output_dir: the run folder (default ``runs/<model>_soup``).
        batch_size: images per BatchNorm batch (the mean of per-batch statistics is kept).
        limit: use at most this many training and test images (a quick check).
    Returns:
        the ``results.json`` dict: ``test_value`` (top-1) and a ``manifest_entry``.
    """
    from hadamard_zoo import models as M
    from hadamard_zoo.training import classifier as C

    ingredients = [str(i) for i in ingredients]
    if len(ingredients) < 2:
        raise ValueError(f"a soup needs at least two checkpoints of {model!r}, got {ingredients}.")
    if len(set(ingredients)) != len(ingredients):
        raise ValueError(f"the same checkpoint is named twice in {ingredients}; a uniform soup takes each once.")
    model_name = M.get_config(model).name
    task = task_for(model_name)
    if task.name != "classifier":
        raise ValueError(f"soups are built for image classifiers; {model_name!r} is a {task.name} model "
                         f"({task.model_kind}). Average checkpoints of a classifier instead.")
    found = [_ingredient(model_name, spec) for spec in ingredients]
    args = [a for _, _, a in found if a is not None]
    if any(a != args[0] for a in args):
        raise ValueError(f"the ingredients were built with different model arguments ({args}); "
                         f"a soup averages checkpoints of one architecture.")
    recipe = R.resolve_recipe(model_name)
    dataset = dataset or recipe.dataset
    data = C.load_data(dataset, data_dir, cache_dir)
    model_args = args[0] if args else C.model_arguments(model_name, recipe.model_args, data["x_train"].shape[1:],
                                                       data["num_classes"])
    net = M.create_model(model_name, **model_args)
    count = average_checkpoints(net, [p for p, _, _ in found])

    train_idx = split_indices(len(data["x_train"]), recipe.validation_split, recipe.seed)[0]
    train_idx = train_idx[: int(limit)] if limit is not None else train_idx  # a seeded subset, as train's
    x_tr = data["x_train"][np.sort(train_idx)]  # the recipe's training images (validation held out), stored order
    batches = C.ArrayBatches(x_tr, np.zeros(len(x_tr), np.int32), batch_size)
    recalibrate_batch_norm(net, batches)

    run = RunDir(output_dir or f"runs/{model_name}_soup")
    run.path.mkdir(parents=True, exist_ok=True)
    net.save_weights(str(run.final))
    options = {"--dataset": data["name"] if data["name"] not in ("arrays", recipe.dataset) else None,
               "--batch-size": batch_size if int(batch_size) != 128 else None,
               "--output-dir": run.path if output_dir is not None else None, "--limit": limit}
    command = command or shlex.join(["hadamard-zoo", "soup", model_name, *ingredients]
                                    + [str(x) for k, v in options.items() if v is not None for x in (k, v)])
    identity = {"model": model_name, "dataset": data["name"]}
    run.write_json(run.run_json, {
        **identity, "task": "classifier", "dataset_display": data["display"], "model_args": model_args,
        "soup_of": ingredients, "batch_norm_images": int(len(x_tr)), "batch_norm_batch_size": int(batch_size),
        "backend": keras.config.backend(), "keras": keras.__version__, "python": platform.python_version(),
        "train_command": command,
    })
    idx = subset_indices(len(data["x_test"]), limit)
    acc = C.top1(net, data["x_test"][idx], data["y_test"][idx])
    if verbose:
        print(f"{model_name}: uniform soup of {count} checkpoints ({', '.join(ingredients)}); BatchNorm recomputed "
              f"over {len(x_tr)} training images; top-1 {acc:.4f} on {len(idx)} {data['display']} test images.",
              flush=True)
    results = {
        **identity, "dataset_display": data["display"], "soup_of": ingredients, "params": net.count_params(),
        "final_weights": str(run.final), "backend": keras.config.backend(), "limit": limit,
        "test_split": "test", "test_metric": "top1", "test_value": acc, "test_n": int(len(idx)),
    }
    results["manifest_entry"] = C.manifest_entry(model_name, data, results, command, run, limit)
    results["manifest_entry"]["soup_of"] = ingredients
    run.write_json(run.results_json, results)
    return results
