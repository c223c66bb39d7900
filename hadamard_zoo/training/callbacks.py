"""Keras callbacks every recipe run uses (epoch-seeded data, extra log columns, checkpoints, CSV)."""

from __future__ import annotations

import math

import keras

from hadamard_zoo.training.run_dir import RunDir


class EpochSync(keras.callbacks.Callback):
    """Tell the data pipelines which epoch runs, so shuffles and augmentation are a
    function of (seed, epoch, batch): a resumed run sees the batches an uninterrupted one would."""

    def __init__(self, *datasets):
        super().__init__()
        self.datasets = [d for d in datasets if d is not None]

    def on_epoch_begin(self, epoch, logs=None):
        for d in self.datasets:
            d.set_epoch(epoch)


class ExtraLogs(keras.callbacks.Callback):
    """Add the learning rate (and, for LMs, bits per character) to the epoch logs before CSVLogger."""

    def __init__(self, bits_per_char=False):
        super().__init__()
        self.bits_per_char = bits_per_char

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        try:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except Exception:  # pragma: no cover - optimizer without a readable rate
            pass
        if self.bits_per_char:
            for key in ("loss", "val_loss"):
                if key in logs:
                    logs[key.replace("loss", "bits_per_char")] = float(logs[key]) / math.log(2.0)


class PruneCheckpoints(keras.callbacks.Callback):
    """Keep the newest ``keep`` epoch checkpoints (None keeps all)."""

    def __init__(self, run: RunDir, keep):
        super().__init__()
        self.run, self.keep = run, keep

    def on_epoch_end(self, epoch, logs=None):
        if not self.keep:
            return
        for _, p in self.run.epoch_checkpoints()[: -int(self.keep)]:
            try:
                p.unlink()
            except OSError:
                pass


def standard_callbacks(run: RunDir, recipe, monitor, mode, datasets, bits_per_char=False, resumed=False):
    return [
        EpochSync(*datasets),
        ExtraLogs(bits_per_char=bits_per_char),
        keras.callbacks.ModelCheckpoint(str(run.checkpoints / "epoch_{epoch:03d}.keras")),
        PruneCheckpoints(run, recipe.keep_checkpoints),
        keras.callbacks.ModelCheckpoint(
            str(run.best), monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.CSVLogger(str(run.csv), append=resumed),
        keras.callbacks.TerminateOnNaN(),
    ]
