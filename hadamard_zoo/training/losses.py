"""Loss and metric of image classifiers that take integer labels or MixUp/CutMix soft targets.

:class:`SparseCrossentropy` is categorical cross-entropy with label smoothing; :class:`Top1Accuracy`
is top-1 accuracy. Both read ``y_true`` as labels ``(N,)`` or as soft targets ``(N, classes)``
(:func:`is_soft` tells them apart by shape).
"""

from __future__ import annotations

import keras


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
