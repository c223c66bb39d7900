"""Training and evaluation of zoo models by their recipes (``zoo_configs/recipes/``).

>>> from hadamard_zoo import training
>>> results = training.train("pinet_ccp")                       # the recipe: Fashion-MNIST, 20 epochs
>>> results = training.train("pinet_ccp", dataset="cifar10", epochs=2, limit=2048)
>>> training.evaluate_checkpoint("runs/pinet_ccp")              # or a manifest tag, or a .weights.h5 + model=

Each kind of model is one task of :mod:`.tasks` (image classifier, language model,
conditional generator, knowledge-graph embedding), which owns its trainer, its evaluation
and its manifest entry. A run folder (default ``runs/<model>``, :mod:`.run_dir`) holds
``run.json``, ``history.csv``, epoch checkpoints (for resuming), ``final.weights.h5``,
``learning_curve.png`` and ``results.json`` (final metrics and a ready
``weights/manifest.json`` entry). Running ``train`` again on the same folder resumes after
the last finished epoch. CONTRIBUTING.md maps the modules of this package.
"""

from __future__ import annotations

from hadamard_zoo.training.evaluate import evaluate_checkpoint  # noqa: F401
from hadamard_zoo.training.recipes import Recipe, RecipeError, load_recipes, resolve_recipe  # noqa: F401
from hadamard_zoo.training.tasks import TASKS, task_for  # noqa: F401


def train(model, dataset=None, epochs=None, batch_size=None, output_dir=None, resume=True, limit=None,
          verbose="auto", data_dir=None, cache_dir=None, callbacks=(), recipe=None, command=None, steps=None,
          **overrides):
    """Train a zoo model by its recipe.

    Args:
        model: a registered model name (its recipe is ``zoo_configs/recipes/*.yaml[model]``),
            or a ``keras.Model`` (then give ``dataset`` and, for an LM, ``task="lm"``).
        dataset: a dataset name (``cifar10``, ``fashion_mnist``, ``mnist_5k``, ``tiny_shakespeare``,
            a KG dataset such as ``WN18RR``) replacing the recipe's; or keras.datasets-style arrays
            ``((x_train, y_train), (x_test, y_test))``; or, for LMs, ``(train_text, val_text)``.
        epochs, batch_size: replace the recipe's values.
        steps: KG models: optimizer steps in all (the recipe's ``steps``); ``epochs`` without
            ``steps`` trains that many epochs of ``steps_per_epoch`` steps instead.
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
    from hadamard_zoo.training.tasks import task_of_model

    prebuilt = not isinstance(model, str)
    if prebuilt:
        name = model.name
    else:
        from hadamard_zoo.models import get_config

        name = get_config(model).name  # a family name -> its default variant; unknown -> ValueError
        model = name
    resolved_here = recipe is None
    if resolved_here:
        recipe = resolve_recipe(name, dataset if isinstance(dataset, str) else None, epochs=epochs,
                                batch_size=batch_size, steps=steps, **overrides)
    if dataset is None and recipe.dataset is None:
        raise ValueError(
            f"{name!r} has no training recipe with a dataset (see zoo_configs/recipes/); pass a dataset "
            f"(--dataset), e.g. one of cifar10, fashion_mnist, mnist_5k, tiny_shakespeare, nations."
        )
    if prebuilt:
        task = TASKS[recipe.task] if recipe.task else task_of_model(model)
        if not task.prebuilt_models:
            raise ValueError(f"train() builds {task.name} models from their names; pass a registered name.")
    else:
        task = task_for(name, recipe)
    if resolved_here and task.counts_steps and epochs is not None and steps is None:
        recipe.values["steps"] = None  # epochs x steps_per_epoch, not the recipe's step count
    task.check_recipe(name, recipe, prebuilt=prebuilt)
    if recipe.init_weights:  # fail before the data is read: unknown tag, missing or corrupt file
        from hadamard_zoo import pretrained

        pretrained.verify(*pretrained.resolve(name, recipe.init_weights))
    return task.train(model, recipe, dataset=dataset, output_dir=output_dir, resume=resume, limit=limit,
                      verbose=verbose, data_dir=data_dir, cache_dir=cache_dir, callbacks=callbacks, command=command)
