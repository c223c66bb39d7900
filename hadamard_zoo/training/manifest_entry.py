"""The ``weights/manifest.json`` entry of a finished run: one shared core for every task.

Each task's trainer measures its metric and calls :func:`manifest_entry` with it; the
entry has every key of :data:`hadamard_zoo.pretrained.REQUIRED_KEYS` (``name``, ``model``,
``file``, ``sha256``, ``dataset``, ``split``, ``metric``, ``value``, ``params``,
``train_command``, ``eval_command``, ``backend``, ``date``) plus ``default`` and the task's
extra keys. ``hadamard_zoo.release.publish`` copies the run's weights into ``weights/`` and
writes the entry into the manifest.
"""

from __future__ import annotations

import datetime

import keras


def now() -> str:
    """Today's date (UTC) as the manifest writes it: ``YYYY-MM-DD``."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def manifest_entry(model_name, dataset_tag, weights_path, *, dataset, split, metric, value, params, train_command,
                   limit=None, **extra) -> dict:
    """The entry of checkpoint ``<model_name>.<dataset_tag>`` (``file`` ``<tag>.weights.h5``).

    Args:
        model_name: the registered model.
        dataset_tag: the tag's dataset part (``cifar10``, ``tiny_shakespeare``, ``wn18rr``).
        weights_path: the run's final weights (hashed here).
        dataset, split, metric, value: what was measured where (``value`` is rounded to 4 digits).
        params: the model's parameter count.
        train_command: the command that reproduces the run.
        limit: the ``--limit`` the metric was measured with (it joins the eval command).
        **extra: task-specific keys (``model_args``, ``context_length``, ``frechet_distance``...).
    """
    from hadamard_zoo.hashing import sha256_of

    tag = f"{model_name}.{dataset_tag}"
    entry = {
        "name": tag, "model": model_name, "default": True, "file": f"{tag}.weights.h5",
        "sha256": sha256_of(weights_path), "dataset": dataset, "split": split, "metric": metric,
        "value": round(float(value), 4), "params": int(params), "train_command": train_command,
        "eval_command": f"hadamard-zoo eval {tag}" + (f" --limit {limit}" if limit else ""),
        "backend": keras.config.backend(), "date": now(),
    }
    entry.update(extra)
    return entry
