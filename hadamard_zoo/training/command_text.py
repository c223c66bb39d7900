"""Recipes as command-line text: ``--augment`` and ``--set`` parsing, and the ``hadamard-zoo train``
command that reproduces a run (:func:`command_line`, recorded in ``run.json`` and the manifest)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

from hadamard_zoo.training.recipes import AUGMENT_KEYS, DEFAULTS, RecipeError, resolve_recipe, validate


def parse_augment(text) -> dict:
    """Parse ``--augment`` text, ``"key=value,key=value"``, into an ``augment`` mapping.

    ``crop_padding`` and ``cutout`` take whole pixels, ``flip`` true/false (or 1/0), ``mixup`` and
    ``cutmix`` a Beta parameter. Raises :class:`RecipeError` naming the bad item.
    """
    out = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in AUGMENT_KEYS or not value:
            raise RecipeError(f"--augment {text!r}: {item.strip()!r} is not key=value with a key from "
                              f"{sorted(AUGMENT_KEYS)}; e.g. --augment mixup=0.2,cutmix=1.0")
        try:
            if key == "flip":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            elif key in ("crop_padding", "cutout"):
                out[key] = int(value)
            else:
                out[key] = float(value)
        except ValueError:
            kind = {"flip": "true or false", "crop_padding": "a whole number of pixels",
                    "cutout": "a whole number of pixels"}.get(key, "a number >= 0 (a Beta parameter)")
            raise RecipeError(f"--augment {text!r}: {key} must be {kind}, got {value!r}.") from None
    if not out:
        raise RecipeError(f"--augment {text!r} names no augmentation; e.g. --augment mixup=0.2,cutmix=1.0")
    return out


def format_augment(augment, base=None) -> str:
    """The ``--augment`` text that turns ``base`` (a recipe's augment mapping) into ``augment``;
    ``""`` when they have the same effect. Inverse of :func:`parse_augment`."""
    base = base or {}
    off = {"flip": False, "crop_padding": 0, "cutout": 0, "mixup": 0.0, "cutmix": 0.0}
    items = []
    for key in sorted(AUGMENT_KEYS):
        want, had = augment.get(key, off[key]), base.get(key, off[key])
        if want != had:
            items.append(f"{key}={str(want).lower() if key == 'flip' else want}")
    return ",".join(items)


# recipe keys with a train flag of their own; ``--set`` refuses them and names the flag
FLAG_KEYS = {"dataset": "--dataset", "epochs": "--epochs", "steps": "--steps", "batch_size": "--batch-size",
             "learning_rate": "--lr", "seed": "--seed", "init_weights": "--init-weights", "augment": "--augment"}


def parse_set(items) -> dict:
    """Parse ``--set KEY=VALUE`` items (a list of strings) into recipe overrides.

    VALUE is read as JSON, else as YAML, so ``weight_decay=0.05``, ``optimizer=sgd``,
    ``clipnorm=null`` and ``model_args={depth: 3}`` all work; a mapping or list replaces
    the recipe's whole value.  Keys with a flag of their own (:data:`FLAG_KEYS`) and
    ``by_dataset`` are refused; values are range-checked as a recipe's are.
    Raises :class:`RecipeError` naming the bad item.
    """
    out = {}
    settable = sorted(set(DEFAULTS) - set(FLAG_KEYS) - {"by_dataset"})
    for item in items or ():
        key, sep, text = (part.strip() for part in str(item).partition("="))
        if key in FLAG_KEYS:
            raise RecipeError(f"--set {item!r}: {key} has its own flag; use {FLAG_KEYS[key]} instead.")
        if not sep or key not in settable or not text:
            raise RecipeError(f"--set {item!r} is not KEY=VALUE with a recipe key from {settable}; "
                              f"e.g. --set weight_decay=0.05")
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise RecipeError(f"--set {item!r}: {text!r} is not a JSON or YAML value: {exc}") from None
        out[key] = value
    validate("--set", out, "--set")
    return out


def format_set_value(value) -> str:
    """``value`` as ``--set`` text that :func:`parse_set` reads back to an equal value."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            if yaml.safe_load(value) == value and "," not in value:
                return value
    return json.dumps(value, separators=(",", ":"))


def command_line(model, recipe=None, dataset=None, limit=None, output_dir=None) -> str:
    """The shortest ``hadamard-zoo train`` command that reproduces a run: the flags that differ from the recipe."""
    parts = ["hadamard-zoo", "train", model]
    base = None
    if recipe is not None:
        try:
            base = resolve_recipe(model)
        except Exception:  # pragma: no cover - an unregistered model: spell everything out
            base = None
        if dataset is not None and (base is None or base.dataset != dataset):
            base = resolve_recipe(model, dataset) if base is not None else None
            parts += ["--dataset", str(dataset)]
        for key, flag in (("epochs", "--epochs"), ("steps", "--steps"), ("batch_size", "--batch-size"), ("learning_rate", "--lr"),
                          ("seed", "--seed"), ("init_weights", "--init-weights")):
            value = recipe.values.get(key)
            if value is not None and (base is None or base.values.get(key) != value):
                parts += [flag, str(value)]  # None (KG steps given as --epochs): the flag is left out
        augment = format_augment(recipe.values.get("augment") or {}, base.values.get("augment") if base else None)
        if augment:
            parts += ["--augment", augment]
        for key in sorted(set(recipe.values) - set(FLAG_KEYS) - {"by_dataset"}):
            if base is None or base.values.get(key) != recipe.values.get(key):
                if base is None and recipe.values.get(key) == DEFAULTS.get(key):
                    continue
                parts += ["--set", f"{key}={format_set_value(recipe.values.get(key))}"]
    if limit is not None:
        parts += ["--limit", str(limit)]
    if output_dir is not None and Path(output_dir) != Path("runs") / model:
        parts += ["--output-dir", str(output_dir)]
    return " ".join(shlex.quote(p) for p in parts)
