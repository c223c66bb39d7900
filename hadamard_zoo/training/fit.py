"""Opening a run (resume or build + compile) and fitting its remaining epochs.

:func:`open_run` returns the compiled model of a run folder: the newest epoch checkpoint when
resuming, else a freshly built one (under the recipe's dtype policy, from ``init_weights`` when
set). :func:`fit_remaining` fits the epochs after the last finished one and saves the final weights.
"""

from __future__ import annotations

import contextlib

import keras

from hadamard_zoo.training.run_dir import RunDir, check_resumable, read_history, truncate_csv
from hadamard_zoo.training.schedules import build_optimizer, build_schedule


def jit_compile_for_backend(value, backend=None):
    """``Model.compile``'s ``jit_compile`` for ``backend`` (default: the current one).

    ``value`` is ``"auto"``, a bool, or a mapping such as ``{"tensorflow": False}``
    (backends not named get ``"auto"``): XLA on TensorFlow's CPU makes depthwise-conv
    models an order of magnitude slower to train, while JAX needs ``jit`` to be fast.
    """
    if isinstance(value, dict):
        return value.get(backend or keras.config.backend(), "auto")
    return value


def load_for_resume(run: RunDir, resume: bool, epochs: int):
    """``(model or None, initial_epoch)`` from the newest epoch checkpoint."""
    if not resume:
        run.clear()
        return None, 0
    epoch, path = run.last_checkpoint()
    if path is None:
        return None, 0
    model = keras.saving.load_model(str(path))
    print(f"Resuming from {path} (epoch {epoch} of {epochs} done).", flush=True)
    return model, epoch


@contextlib.contextmanager
def global_dtype_policy(name):
    """Build models under the Keras dtype policy ``name`` (e.g. ``"mixed_bfloat16"``); the previous global policy comes back after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def open_run(run: RunDir, recipe, steps, resume, build, loss, model_name, identity, metrics=None):
    """The run's compiled model: resumed, or built fresh.

    Resuming (``resume`` and an epoch checkpoint in ``run``) loads the newest
    checkpoint with its optimizer state (and dtype policy); the schedule is rebuilt when the
    epochs or steps per epoch changed.  Otherwise ``build()``, called under the
    recipe's ``dtype_policy``, returns ``(net, model_args)``; the net starts from ``recipe.init_weights`` when set
    and is compiled with the recipe's optimizer, ``loss`` (None: the model's own ``compute_loss``) and
    ``metrics`` (default: sparse top-1 accuracy, named ``accuracy``; ``[]`` for none).

    Returns ``(net, initial_epoch, model_args)``.
    """
    if resume:
        check_resumable(run, identity)
    net, initial_epoch = load_for_resume(run, resume, recipe.epochs)  # a saved model keeps its dtype policy
    if net is None:
        with global_dtype_policy(recipe.dtype_policy):
            net, model_args = build()
        apply_init_weights(net, model_name, recipe)
        net.compile(
            optimizer=build_optimizer(recipe, steps),
            loss=loss,
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")] if metrics is None else list(metrics),
            jit_compile=jit_compile_for_backend(recipe.jit_compile),
        )
        return net, 0, model_args
    old = run.read_run() or {}
    if old.get("epochs") != recipe.epochs or old.get("steps_per_epoch") != steps:
        net.optimizer.learning_rate = build_schedule(recipe, steps)
        print(f"Schedule rebuilt for {recipe.epochs} epochs of {steps} steps.", flush=True)
    return net, initial_epoch, old.get("model_args")


def fit_remaining(net, run: RunDir, recipe, train_ds, val_ds, initial_epoch, callbacks, verbose, finalize=None):
    """``fit`` the epochs after ``initial_epoch``, call ``finalize(net)`` (if given), save the final
    weights; returns the history columns."""
    if initial_epoch < recipe.epochs:
        truncate_csv(run.csv, initial_epoch)
        net.fit(train_ds, validation_data=val_ds, epochs=recipe.epochs, initial_epoch=initial_epoch,
                callbacks=callbacks, verbose=verbose, shuffle=False)
    else:
        print(f"{run.path}: all {recipe.epochs} epochs are done; evaluating.", flush=True)
    if finalize is not None:
        finalize(net)
    net.save_weights(str(run.final))
    return read_history(run.csv)


def apply_init_weights(net, model_name, recipe):
    """Load ``recipe.init_weights`` (a manifest tag or a ``.weights.h5`` path) into a freshly built ``net``.

    The tag's hash and the file's fit to the architecture are checked as for ``pretrained=``;
    a mismatch raises :class:`hadamard_zoo.pretrained.CheckpointError`.
    """
    spec = recipe.values.get("init_weights")
    if not spec:
        return net
    from hadamard_zoo import pretrained

    pretrained.load_pretrained(net, model_name, spec)
    print(f"Initial weights: {spec}.", flush=True)
    return net
