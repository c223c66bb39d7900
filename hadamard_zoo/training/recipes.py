"""Training recipes (``zoo_configs/recipes/*.yaml``) and the fit machinery they share.

A recipe is keyed by model name::

    pinet_ccp:
      dataset: fashion_mnist          # a name from hadamard_zoo.data.DATASETS
      epochs: 20
      batch_size: 128
      optimizer: adamw                # adamw | adam | sgd (momentum, nesterov)
      learning_rate: 0.001            # the peak rate of the schedule
      weight_decay: 0.0001
      schedule: cosine                # cosine | one_cycle | constant
      warmup_epochs: 1
      label_smoothing: 0.0
      augment: {crop_padding: 0, flip: false, cutout: 0}   # cutout: side of the erased square (px)
                                      # also mixup, cutmix: Beta alphas (e.g. 0.8, 1.0); 0, the default, is off
      validation_split: 0.1
      dtype_policy: float32           # or mixed_bfloat16 (variables and saved weights stay float32)
      by_dataset:                     # optional: what changes when --dataset picks another dataset
        cifar10: {epochs: 40, augment: {crop_padding: 4, flip: true}}

Recipes live outside the model-family YAML files (which the registry reads) in
``zoo_configs/recipes/`` (or ``$HADAMARD_ZOO_CONFIGS/recipes``); any number of
files, one model per key across all of them.  A model without a recipe trains
with :data:`DEFAULTS` once a dataset is given.

This module is the recipe schema only: :data:`DEFAULTS` (every key and its default),
:func:`validate`, :func:`load_recipes` and :func:`resolve_recipe`. What a run does with a
recipe lives beside it: :mod:`.schedules` (optimizers, schedules), :mod:`.run_dir` (the run
folder), :mod:`.fit` (resume, build, fit), :mod:`.callbacks`, :mod:`.plots`,
:mod:`.command_text` (``--set``/``--augment`` and the recorded train command) and
:mod:`.tasks` (which trainer a model uses).
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from pathlib import Path

import yaml

from hadamard_zoo import configs
from hadamard_zoo.checks import check_positive_int

RECIPES_SUBDIR = "recipes"

# Every key a recipe may set, with its default.
DEFAULTS = {
    "dataset": None,
    "task": None,  # a name from hadamard_zoo.training.tasks.TASKS; default: the model's kind
    "description": "",
    "epochs": 10,
    "batch_size": 128,
    "eval_batch_size": None,  # default: 2 x batch_size
    "optimizer": "adamw",
    "learning_rate": 1e-3,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 0.0,
    "clipnorm": None,
    "schedule": "cosine",
    "warmup_epochs": 0.0,
    "min_lr_ratio": 0.0,  # cosine: final rate = min_lr_ratio * learning_rate
    "one_cycle_pct_start": 0.3,
    "label_smoothing": 0.0,
    "augment": {},
    "validation_split": 0.1,
    "seed": 0,
    "model_args": {},
    # start from these weights instead of a fresh initialization (a warm restart or a fine-tune of the
    # same architecture): a checkpoint tag from weights/manifest.json or a .weights.h5 path; a resumed
    # run continues from its own epoch checkpoint instead
    "init_weights": None,
    "keep_checkpoints": 3,
    # Keras dtype policy the model is built with: "mixed_bfloat16" computes in bfloat16 with float32
    # variables (what is saved and published stays float32); 1.2-1.3x train steps on the Intel Xeon (docs/benchmarks.md)
    "dtype_policy": "float32",
    # stochastic weight averaging (image classifiers): the shipped weights are the average of the weights at
    # the end of each of the last swa_epochs epochs, with BatchNorm statistics recomputed (training/swa.py)
    "swa_epochs": 0,
    "jit_compile": "auto",  # Model.compile's ("auto", true, false), or per backend: {tensorflow: false} (others "auto")
    # language models
    "context_length": None,  # LM: window length; None: the model's own context_length (else 128)
    "steps_per_epoch": None,  # LM: batches of random windows per epoch (default: one pass worth)
    "val_windows": None,  # LM: validation windows per epoch (None: the whole split)
    # class-conditional GANs (task "gan", hadamard_zoo.training.generator); steps_per_epoch = generator iterations
    "discriminator": None,  # GAN: the discriminator variant
    "g_batch_size": None,  # GAN: fake samples per generator step (None: batch_size)
    "beta_1": 0.0,  # GAN: Adam betas (SNGAN)
    "beta_2": 0.9,
    "n_dis_schedule": None,  # GAN: [[until_iteration, n_dis], ...] (None: one D step per G step)
    "eval_classifier": None,  # GAN: manifest tag of the classifier that scores the samples
    "g_ema_momentum": None,  # GAN: momentum of the generator's moving average (None: none); the average is what ships
    # knowledge-graph embeddings (task "kg", hadamard_zoo.training.kg; the reference's recipe)
    "steps": None,  # KG: optimizer steps in all (the reference's max_steps); None: epochs x steps_per_epoch
    "num_negatives": 64,  # KG: negatives per positive triple
    "shared_negatives": False,  # KG: one negative set per batch (faster), masked instead of resampled
    "warm_up_steps": None,  # KG: step of the reference's drop to lr/10 with a fresh Adam (None: steps // 2)
    "by_dataset": {},
}
OPTIMIZERS = ("adamw", "adam", "sgd")
BACKENDS = ("jax", "tensorflow", "torch")
SCHEDULES = ("cosine", "one_cycle", "constant")
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
AUGMENT_KEYS = {"crop_padding", "flip", "cutout", "mixup", "cutmix"}


class RecipeError(ValueError):
    """A recipe file is malformed, or a recipe value is out of range."""


@dataclasses.dataclass
class Recipe:
    model: str
    values: dict
    source: str = "<defaults>"

    def __getattr__(self, key):
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key]
        raise AttributeError(key)

    def to_dict(self):
        return {"model": self.model, **{k: v for k, v in self.values.items() if k != "by_dataset"}}


def recipes_dir() -> Path:
    return configs.config_dir() / RECIPES_SUBDIR



def validate(model, values, where):
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise RecipeError(f"{where}: unknown recipe key(s) {unknown}; allowed: {sorted(DEFAULTS)}.")
    v = {**DEFAULTS, **values}
    if v["optimizer"] not in OPTIMIZERS:
        raise RecipeError(f"{where}: optimizer must be one of {OPTIMIZERS}, got {v['optimizer']!r}.")
    jit = v["jit_compile"]
    choices = [jit] if not isinstance(jit, dict) else list(jit.values())
    if (isinstance(jit, dict) and set(jit) - set(BACKENDS)) or any(c not in ("auto", True, False) for c in choices):
        raise RecipeError(f"{where}: jit_compile must be 'auto', true, false or a mapping from backends "
                          f"{BACKENDS} to those, got {jit!r}.")
    if v["dtype_policy"] not in DTYPE_POLICIES:
        raise RecipeError(f"{where}: dtype_policy must be one of {DTYPE_POLICIES}, got {v['dtype_policy']!r}.")
    n_swa = v["swa_epochs"]
    if not isinstance(n_swa, int) or isinstance(n_swa, bool) or n_swa < 0:
        raise RecipeError(f"{where}: swa_epochs must be a whole number of epochs >= 0 (0: off), got {n_swa!r}.")
    if not isinstance(v["shared_negatives"], bool):
        raise RecipeError(f"{where}: shared_negatives must be true or false, got {v['shared_negatives']!r}.")
    if v["schedule"] not in SCHEDULES:
        raise RecipeError(f"{where}: schedule must be one of {SCHEDULES}, got {v['schedule']!r}.")
    from hadamard_zoo.training.tasks import TASK_NAMES

    if v["task"] is not None and v["task"] not in TASK_NAMES:
        raise RecipeError(f"{where}: task must be one of {TASK_NAMES}, got {v['task']!r}.")
    for key in ("epochs", "batch_size", "context_length", "steps", "steps_per_epoch", "num_negatives",
                "warm_up_steps"):
        if key in ("context_length", "steps", "steps_per_epoch", "warm_up_steps") and v[key] is None:
            continue
        try:
            check_positive_int(key, v[key], owner=where)
        except ValueError as exc:
            raise RecipeError(str(exc)) from None
    for key in ("learning_rate", "weight_decay", "warmup_epochs", "min_lr_ratio", "label_smoothing"):
        if not isinstance(v[key], (int, float)) or v[key] < 0:
            raise RecipeError(f"{where}: {key} must be a number >= 0, got {v[key]!r}.")
    if not 0 <= v["label_smoothing"] < 1:
        raise RecipeError(f"{where}: label_smoothing must be in [0, 1), got {v['label_smoothing']}.")
    vs = v["validation_split"]
    if not (isinstance(vs, (int, float)) and (0 <= vs < 1 or (isinstance(vs, int) and vs >= 1))):
        raise RecipeError(f"{where}: validation_split must be a fraction in [0, 1) or a count, got {vs!r}.")
    if not isinstance(v["augment"], dict) or set(v["augment"]) - AUGMENT_KEYS:
        raise RecipeError(f"{where}: augment must be a mapping with keys from {sorted(AUGMENT_KEYS)}, got {v['augment']!r}.")
    for key in ("crop_padding", "cutout"):
        size = v["augment"].get(key, 0)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RecipeError(f"{where}: augment.{key} must be a whole number of pixels >= 0, got {size!r}.")
    for key in ("mixup", "cutmix"):
        alpha = v["augment"].get(key, 0.0)
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha < 0:
            raise RecipeError(f"{where}: augment.{key} is a Beta parameter, a number >= 0 (0: off), got {alpha!r}.")
    if v["init_weights"] is not None and not isinstance(v["init_weights"], str):
        raise RecipeError(f"{where}: init_weights must be a checkpoint tag or a .weights.h5 path, got {v['init_weights']!r}.")
    if not isinstance(v["model_args"], dict):
        raise RecipeError(f"{where}: model_args must be a mapping of builder arguments.")
    if not isinstance(v["by_dataset"], dict):
        raise RecipeError(f"{where}: by_dataset must map dataset names to recipe keys.")
    for ds, sub in v["by_dataset"].items():
        if not isinstance(sub, dict) or "by_dataset" in sub:
            raise RecipeError(f"{where}: by_dataset[{ds!r}] must be a mapping of recipe keys (not nested).")
        validate(model, {k: x for k, x in sub.items()}, f"{where}: by_dataset[{ds!r}]")
    return values


def load_recipes(directory=None) -> dict[str, Recipe]:
    """Every recipe under ``zoo_configs/recipes/*.yaml``, by model name."""
    directory = Path(directory) if directory else recipes_dir()
    out: dict[str, Recipe] = {}
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise RecipeError(f"{path}: expected a mapping of model name -> recipe.")
        for model, values in data.items():
            if not isinstance(values, dict):
                raise RecipeError(f"{path}: recipe {model!r} must be a mapping, got {type(values).__name__}.")
            if model in out:
                raise RecipeError(f"{path}: recipe {model!r} is also defined in {out[model].source}.")
            validate(model, values, f"{path}: recipe {model!r}")
            out[model] = Recipe(model, dict(values), str(path))
    return out


def resolve_recipe(model: str, dataset=None, directory=None, **overrides) -> Recipe:
    """The recipe for ``model`` (+ its ``by_dataset`` entry for ``dataset``), then ``overrides``.

    ``overrides`` with the value None are ignored (so CLI flags left out keep the recipe's value).
    """
    recipes = load_recipes(directory)
    base = recipes.get(model)
    values = dict(DEFAULTS)
    source = "<defaults>"
    if base is not None:
        values.update(base.values)
        source = base.source
    if dataset is not None and not isinstance(dataset, str):
        dataset_name = None  # arrays: no by_dataset entry
    else:
        dataset_name = dataset or values["dataset"]
    if dataset_name is not None and values["by_dataset"]:
        from hadamard_zoo.data import dataset_info

        wanted = dataset_info(dataset_name).name
        for key, sub in values["by_dataset"].items():
            if dataset_info(key).name == wanted:
                values.update(sub)
    if dataset is not None and isinstance(dataset, str):
        values["dataset"] = dataset
    overrides = {k: v for k, v in overrides.items() if v is not None}
    validate(model, overrides, f"overrides for {model!r}")
    values.update(overrides)
    values["augment"] = dict(values.get("augment") or {})
    if values["swa_epochs"] > values["epochs"]:
        raise RecipeError(f"{model!r}: swa_epochs ({values['swa_epochs']}) cannot exceed epochs ({values['epochs']}); "
                          f"average at most the {values['epochs']} epochs the run trains.")
    return Recipe(model, values, source)


# Names that lived here before the training package was split by job (issue 29): still importable,
# with a DeprecationWarning that names their new module.
_MOVED = {
    "jit_compile_for_backend": "fit", "load_for_resume": "fit", "global_dtype_policy": "fit", "open_run": "fit",
    "fit_remaining": "fit", "apply_init_weights": "fit",
    "OneCycle": "schedules", "build_schedule": "schedules", "build_optimizer": "schedules",
    "RunDir": "run_dir", "check_resumable": "run_dir", "truncate_csv": "run_dir", "read_history": "run_dir",
    "EpochSync": "callbacks", "ExtraLogs": "callbacks", "PruneCheckpoints": "callbacks",
    "standard_callbacks": "callbacks",
    "plot_history": "plots",
    "parse_augment": "command_text", "format_augment": "command_text", "FLAG_KEYS": "command_text",
    "parse_set": "command_text", "format_set_value": "command_text", "command_line": "command_text",
    "split_indices": "splits", "subset_indices": "splits",
    "now": "manifest_entry",
    "task_for": "tasks", "builder_takes": "tasks",
}


def __getattr__(name):
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"hadamard_zoo.training.recipes.{name} moved to hadamard_zoo.training.{module}.{name}",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(f"hadamard_zoo.training.{module}"), name)
