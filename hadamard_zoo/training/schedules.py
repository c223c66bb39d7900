"""Optimizers and learning-rate schedules of a recipe.

``build_optimizer(recipe, steps_per_epoch)`` returns the Keras optimizer the recipe names
(``adamw`` | ``adam`` | ``sgd``) with the rate of ``build_schedule``: ``cosine`` (optional
linear warm-up, final rate ``min_lr_ratio * learning_rate``), ``one_cycle`` (:class:`OneCycle`)
or ``constant`` (optional warm-up).
"""

from __future__ import annotations

import math

import keras

from hadamard_zoo.training.recipes import Recipe


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle rate (Smith & Topin; PyTorch ``OneCycleLR`` with cosine annealing).

    Rises from ``max_lr / div_factor`` to ``max_lr`` over ``pct_start * total_steps``
    steps, then falls to ``max_lr / (div_factor * final_div_factor)``.
    """

    def __init__(self, max_lr, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4, name="OneCycle"):
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.name = name

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        up = max(1.0, self.pct_start * self.total_steps)
        down = max(1.0, self.total_steps - up)
        start = self.max_lr / self.div_factor
        end = start / self.final_div_factor

        def anneal(a, b, frac):
            frac = ops.clip(frac, 0.0, 1.0)
            return b + (a - b) * 0.5 * (1.0 + ops.cos(math.pi * frac))

        return ops.where(step < up, anneal(start, self.max_lr, step / up), anneal(self.max_lr, end, (step - up) / down))

    def get_config(self):
        return {
            "max_lr": self.max_lr, "total_steps": self.total_steps, "pct_start": self.pct_start,
            "div_factor": self.div_factor, "final_div_factor": self.final_div_factor, "name": self.name,
        }


def build_schedule(recipe: Recipe, steps_per_epoch: int):
    lr = float(recipe.learning_rate)
    total = max(1, int(recipe.epochs * steps_per_epoch))
    warmup = min(total - 1, int(round(recipe.warmup_epochs * steps_per_epoch)))
    if recipe.schedule == "constant":
        if warmup <= 0:
            return lr
        return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=1, alpha=1.0, warmup_target=lr, warmup_steps=warmup)
    if recipe.schedule == "one_cycle":
        return OneCycle(lr, total, pct_start=recipe.one_cycle_pct_start)
    # cosine, with linear warm-up from 0 when warmup_epochs > 0
    if warmup > 0:
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=total - warmup, alpha=recipe.min_lr_ratio, warmup_target=lr, warmup_steps=warmup
        )
    return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total, alpha=recipe.min_lr_ratio)


def build_optimizer(recipe: Recipe, steps_per_epoch: int):
    schedule = build_schedule(recipe, steps_per_epoch)
    common = {"learning_rate": schedule}
    if recipe.clipnorm:
        common["clipnorm"] = float(recipe.clipnorm)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=float(recipe.weight_decay), **common)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(**common)
    return keras.optimizers.SGD(
        momentum=float(recipe.momentum), nesterov=bool(recipe.nesterov),
        weight_decay=float(recipe.weight_decay) or None, **common,
    )
