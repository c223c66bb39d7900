"""Training and evaluation: recipes in ``zoo_configs/recipes/``, ``model.fit`` for classifiers and char LMs.

>>> from hadamard_zoo import training
>>> results = training.train("pinet_ccp")                       # the recipe: Fashion-MNIST, 20 epochs
>>> results = training.train("pinet_ccp", dataset="cifar10", epochs=2, limit=2048)
>>> training.evaluate_checkpoint("runs/pinet_ccp")              # or a manifest tag, or a .weights.h5 + model=

A run folder (default ``runs/<model>``) holds ``run.json``, ``history.csv``
(CSVLogger), ``checkpoints/epoch_NNN.keras`` (full model + optimizer state, for
resuming), ``best.weights.h5``, ``final.weights.h5``, ``learning_curve.png`` and
``results.json`` (final metrics and a ready ``weights/manifest.json`` entry).
Running ``train`` again on the same folder resumes after the last finished epoch.
"""

from __future__ import annotations

from hadamard_zoo.training.evaluate import evaluate_checkpoint  # noqa: F401
from hadamard_zoo.training.recipes import Recipe, RecipeError, load_recipes, resolve_recipe  # noqa: F401


def train(model, dataset=None, epochs=None, batch_size=None, output_dir=None, resume=True, limit=None,
          verbose="auto", data_dir=None, cache_dir=None, callbacks=(), recipe=None, command=None, **overrides):
    """Train a zoo model by its recipe with ``model.fit``.

    Args:
        model: a registered model name (its recipe is ``zoo_configs/recipes/*.yaml[model]``),
            or a ``keras.Model`` (then give ``dataset`` and, for an LM, ``task="lm"``).
        dataset: a dataset name (``cifar10``, ``fashion_mnist``, ``mnist_5k``, ``tiny_shakespeare``)
            replacing the recipe's; or keras.datasets-style arrays ``((x_train, y_train),
            (x_test, y_test))``; or, for LMs, ``(train_text, val_text)``.
        epochs, batch_size: replace the recipe's values.
        output_dir: the run folder (default ``runs/<model>``).
        resume: continue from the folder's last epoch checkpoint (False starts over and
            deletes that folder's checkpoints, history and results).
        limit: use at most this many training (and validation, and test) samples: a quick run.
        data_dir, cache_dir: passed to the dataset readers.
        callbacks: extra Keras callbacks.
        recipe: a :class:`Recipe` to use instead of the registered one.
        **overrides: other recipe keys (``learning_rate=``, ``augment=``, ``task=``...).
    Returns:
        the ``results.json`` dict.
    """
    from hadamard_zoo.training import recipes as R

    name = model if isinstance(model, str) else model.name
    if isinstance(model, str):
        from hadamard_zoo.models import get_config

        name = get_config(model).name  # a family name -> its default variant; unknown -> ValueError
        model = name
        if recipe is None and R.task_for(name) == "kg":  # the KG trainer reads its recipe from the zoo config
            return _train_kg(name, dataset, batch_size, output_dir, data_dir, {**overrides, "epochs": epochs})
    if recipe is None:
        recipe = R.resolve_recipe(
            name, dataset if isinstance(dataset, str) else None, epochs=epochs, batch_size=batch_size, **overrides
        )
    if dataset is None and recipe.dataset is None:
        raise ValueError(
            f"{name!r} has no training recipe (see zoo_configs/recipes/); pass a dataset "
            f"(--dataset), e.g. one of cifar10, fashion_mnist, mnist_5k, tiny_shakespeare."
        )
    if isinstance(model, str):
        task = R.task_for(name, recipe)
        if recipe.init_weights:  # fail before the data is read: unknown tag, missing or corrupt file
            from hadamard_zoo import pretrained

            pretrained.verify(*pretrained.resolve(name, recipe.init_weights))
            if task not in ("classifier", "lm"):
                raise ValueError(f"init_weights is supported for image classifiers and language models, "
                                 f"not for {name!r} ({task}).")
        if recipe.dtype_policy != "float32" and task not in ("classifier", "lm"):
            raise ValueError(f"dtype_policy {recipe.dtype_policy!r} is supported for image classifiers and language "
                             f"models, not for {name!r} ({task}); train it in float32.")
    else:
        task = recipe.task or ("lm" if len(model.output_shape) == 3 else "classifier")
        if recipe.dtype_policy != "float32":
            raise ValueError(f"dtype_policy {recipe.dtype_policy!r} applies to models train() builds; build this "
                             f"model under keras.config.set_dtype_policy({recipe.dtype_policy!r}) instead.")
    if recipe.swa_epochs and task != "classifier":
        raise ValueError(f"swa_epochs (weight averaging) is supported for image classifiers, not for {name!r} ({task}); "
                         f"train it without swa_epochs.")
    kwargs = dict(dataset=dataset, output_dir=output_dir, resume=resume, limit=limit, verbose=verbose,
                  data_dir=data_dir, cache_dir=cache_dir, callbacks=callbacks, command=command)
    if task == "classifier":
        from hadamard_zoo.training import classifier

        return classifier.train(model, recipe, **kwargs)
    if task == "lm":
        from hadamard_zoo.training import lm

        return lm.train(model, recipe, **kwargs)
    if task == "kg":
        return _train_kg(name, dataset, batch_size, output_dir, data_dir, overrides)
    if task == "gan":
        from hadamard_zoo.training import generator

        return generator.train(name, recipe, **kwargs)
    raise NotImplementedError(
        f"{name!r} is a {task!r} model; train() handles image classifiers, character language models, CoPE "
        f"generators and (through hadamard_zoo.training.kg) knowledge-graph models."
    )


def _train_kg(name, dataset, batch_size, output_dir, data_dir, overrides):
    """Knowledge-graph models train with their own loop: hand over to ``hadamard_zoo.training.kg``."""
    from pathlib import Path

    try:
        from hadamard_zoo.training import kg
    except ImportError as exc:  # pragma: no cover - the KG trainer is part of the package
        raise NotImplementedError(f"{name!r} is a knowledge-graph model; hadamard_zoo.training.kg is missing.") from exc
    out = Path(output_dir or f"runs/{name}")
    out.mkdir(parents=True, exist_ok=True)
    argv = ["--model", name, "--save", str(out / "final.weights.h5"), "--metrics-json", str(out / "results.json")]
    if isinstance(dataset, str):
        argv += ["--dataset", dataset]
    if batch_size:
        argv += ["--batch-size", str(batch_size)]
    if data_dir:
        argv += ["--data-dir", str(data_dir)]
    flags = {"steps": "--steps", "learning_rate": "--lr", "steps_per_epoch": "--steps-per-epoch", "seed": "--seed"}
    unknown = sorted(k for k, v in overrides.items() if v is not None and k not in flags)
    if unknown:
        raise ValueError(f"{name!r} trains with hadamard_zoo.training.kg, which takes {sorted(flags)} here, not {unknown}; "
                         f"see python -m hadamard_zoo.training.kg --help for the rest.")
    for key, flag in flags.items():
        if overrides.get(key) is not None:
            argv += [flag, str(overrides[key])]
    print("Knowledge-graph model: python -m hadamard_zoo.training.kg " + " ".join(argv), flush=True)
    return kg.main(argv)
