"""Stochastic weight averaging (SWA) for the classifier trainer, on every backend.

SWA (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better
Generalization") trains on at a high constant (or cyclic) learning rate and keeps the
uniform average of the weights at the end of each of the last ``n`` epochs::

    w_swa = (1 / n) * sum_{e = E - n + 1}^{E} w_e

The average's BatchNorm statistics belong to none of the averaged models, so they are
recomputed afterwards with one pass over the training pipeline in training mode
(what ``torch.optim.swa_utils.update_bn`` does): the moving mean and variance become
the equal-weight mean of the per-batch statistics.

The recipe key ``swa_epochs`` turns it on (:func:`hadamard_zoo.training.classifier.train`).
The running sum after epoch ``e`` is saved next to the epoch checkpoints as
``swa/epoch_NNN.npz``, so an interrupted run resumes with the same average.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

STATE_SUBDIR = "swa"


def batch_norm_layers(model) -> list:
    """Every ``keras.layers.BatchNormalization`` inside ``model`` (nested models included)."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batch_norm(model, batches) -> int:
    """Recompute the moving mean and variance of every BatchNorm layer of ``model``.

    ``batches``: a sequence of ``(x, y)`` or ``x`` batches (a ``keras.utils.PyDataset`` such as
    the training pipeline). Each layer's statistics become the equal-weight average, over the
    batches, of the batch mean and variance seen in training mode (a momentum of ``k / (k + 1)``
    at batch ``k``). Weights are not changed; every layer's momentum is restored after.
    Returns the number of BatchNorm layers (0: nothing to do, the model is not called).
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    if len(batches) == 0:
        raise ValueError("recalibrate_batch_norm needs at least one batch.")
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, layer.moving_mean.dtype))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, layer.moving_variance.dtype))
    try:
        for k in range(len(batches)):
            batch = batches[k]
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            for layer in layers:
                layer.momentum = k / (k + 1.0)
            model(keras.ops.convert_to_tensor(x), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)


class WeightAverage(keras.callbacks.Callback):
    """Keep the sum of the trainable weights at the end of epochs ``first_epoch, first_epoch + 1, ...``
    (0-based) in ``run_dir/swa/epoch_NNN.npz`` (``NNN`` = epochs done, as the epoch checkpoints).

    Resuming after ``initial_epoch`` epochs reads the sum saved then; the two newest files are kept.
    """

    def __init__(self, run_dir, first_epoch: int, initial_epoch: int = 0):
        super().__init__()
        self.dir = Path(run_dir) / STATE_SUBDIR
        self.first_epoch, self.initial_epoch = int(first_epoch), int(initial_epoch)
        self.total, self.count = None, 0

    def on_train_begin(self, logs=None):
        if self.initial_epoch > self.first_epoch:
            self.total, self.count = read_state(self.dir.parent, self.initial_epoch, self.model)

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first_epoch:
            return
        weights = [np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64) for v in self.model.trainable_variables]
        self.total = weights if self.total is None else [t + w for t, w in zip(self.total, weights)]
        self.count += 1
        self.dir.mkdir(parents=True, exist_ok=True)
        path = state_path(self.dir.parent, epoch + 1)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, count=self.count, shapes=_shapes(self.model), **{f"w{i}": t for i, t in enumerate(self.total)})
        tmp.replace(path)
        for old in sorted(self.dir.glob("epoch_*.npz"))[:-2]:
            old.unlink(missing_ok=True)


def _shapes(model) -> np.ndarray:
    """The trainable variables' shapes, one row each (zero-padded): what a saved sum must match
    (variable paths change when a model is reloaded from its checkpoint)."""
    shapes = [tuple(int(d) for d in v.shape) for v in model.trainable_variables]
    rank = max([len(s) for s in shapes] + [1])
    return np.array([[len(s), *s, *([0] * (rank - len(s)))] for s in shapes], dtype=np.int64)


def state_path(run_dir, epochs_done: int) -> Path:
    return Path(run_dir) / STATE_SUBDIR / f"epoch_{int(epochs_done):03d}.npz"


def read_state(run_dir, epochs_done: int, model):
    """``(sums, count)`` saved after ``epochs_done`` epochs; a clear error when missing or not this model's."""
    path = state_path(run_dir, epochs_done)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the run folder holds no weight average for its {epochs_done} finished epochs "
            f"(was it trained without swa_epochs?). Train it again from the start (--no-resume) or without swa_epochs."
        )
    with np.load(path) as state:
        shapes, count = state["shapes"], int(state["count"])
        sums = [state[f"w{i}"] for i in range(len(shapes))]
    if shapes.shape != _shapes(model).shape or not np.array_equal(shapes, _shapes(model)):
        raise ValueError(f"{path} averages other variables than this model's trainable ones; it belongs to another "
                         f"model. Delete {path.parent} or train into a new --output-dir.")
    return sums, count


def apply_average(model, run_dir, epochs_done: int, expected_count: int, batches) -> int:
    """Set ``model``'s trainable weights to the average saved after ``epochs_done`` epochs and
    recompute its BatchNorm statistics over ``batches``; returns the number of averaged models."""
    sums, count = read_state(run_dir, epochs_done, model)
    if count != expected_count:
        raise ValueError(f"{state_path(run_dir, epochs_done)} averages {count} epochs, the recipe {expected_count}: "
                         f"the run folder was trained with another swa_epochs; use a new --output-dir.")
    for variable, total in zip(model.trainable_variables, sums):
        variable.assign((total / count).astype(variable.dtype))
    recalibrate_batch_norm(model, batches)
    return count
