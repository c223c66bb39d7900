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

The rest of this module is shared by :mod:`.classifier` and :mod:`.lm`:
optimizer and schedule construction, the run folder (checkpoints, CSV, plot,
``run.json``/``results.json``) and resuming from the last epoch checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path

import keras
import numpy as np
import yaml

from hadamard_zoo import configs
from hadamard_zoo.training import swa

RECIPES_SUBDIR = "recipes"

# Every key a recipe may set, with its default.
DEFAULTS = {
    "dataset": None,
    "task": None,  # "classifier" | "lm"; default from the model's kind
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
    "by_dataset": {},
}
OPTIMIZERS = ("adamw", "adam", "sgd")
BACKENDS = ("jax", "tensorflow", "torch")
SCHEDULES = ("cosine", "one_cycle", "constant")
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
AUGMENT_KEYS = {"crop_padding", "flip", "cutout", "mixup", "cutmix"}
TASKS = ("classifier", "lm", "gan")
KIND_TO_TASK = {"image_classifier": "classifier", "language_model": "lm", "kg_embedding": "kg", "generator": "gan"}


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


def jit_compile_for_backend(value, backend=None):
    """``Model.compile``'s ``jit_compile`` for ``backend`` (default: the current one).

    ``value`` is ``"auto"``, a bool, or a mapping such as ``{"tensorflow": False}``
    (backends not named get ``"auto"``): XLA on TensorFlow's CPU makes depthwise-conv
    models an order of magnitude slower to train, while JAX needs ``jit`` to be fast.
    """
    if isinstance(value, dict):
        return value.get(backend or keras.config.backend(), "auto")
    return value


def _validate(model, values, where):
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
    if v["schedule"] not in SCHEDULES:
        raise RecipeError(f"{where}: schedule must be one of {SCHEDULES}, got {v['schedule']!r}.")
    if v["task"] is not None and v["task"] not in TASKS:
        raise RecipeError(f"{where}: task must be one of {TASKS}, got {v['task']!r}.")
    for key in ("epochs", "batch_size", "context_length"):
        if key == "context_length" and v[key] is None:
            continue
        if not isinstance(v[key], int) or v[key] < 1:
            raise RecipeError(f"{where}: {key} must be a positive integer, got {v[key]!r}.")
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
        _validate(model, {k: x for k, x in sub.items()}, f"{where}: by_dataset[{ds!r}]")
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
            _validate(model, values, f"{path}: recipe {model!r}")
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
    _validate(model, overrides, f"overrides for {model!r}")
    values.update(overrides)
    values["augment"] = dict(values.get("augment") or {})
    if values["swa_epochs"] > values["epochs"]:
        raise RecipeError(f"{model!r}: swa_epochs ({values['swa_epochs']}) cannot exceed epochs ({values['epochs']}); "
                          f"average at most the {values['epochs']} epochs the run trains.")
    return Recipe(model, values, source)


# ----------------------------------------------------------------------------- optimizer and schedule


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


# ----------------------------------------------------------------------------- the run folder


class RunDir:
    """``runs/<model>/``: ``run.json``, ``history.csv``, ``checkpoints/epoch_NNN.keras``,
    ``best.weights.h5``, ``final.weights.h5``, ``learning_curve.png``, ``results.json``."""

    def __init__(self, path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.csv = self.path / "history.csv"
        self.run_json = self.path / "run.json"
        self.results_json = self.path / "results.json"
        self.png = self.path / "learning_curve.png"
        self.best = self.path / "best.weights.h5"
        self.final = self.path / "final.weights.h5"

    def create(self):
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    def epoch_checkpoints(self) -> list[tuple[int, Path]]:
        out = []
        if self.checkpoints.is_dir():
            for p in self.checkpoints.glob("epoch_*.keras"):
                m = re.fullmatch(r"epoch_(\d+)\.keras", p.name)
                if m:
                    out.append((int(m.group(1)), p))
        return sorted(out)

    def last_checkpoint(self):
        ckpts = self.epoch_checkpoints()
        return ckpts[-1] if ckpts else (0, None)

    def clear(self):
        for _, p in self.epoch_checkpoints():
            p.unlink()
        for p in (self.csv, self.results_json, self.png, self.best, self.final):
            if p.exists():
                p.unlink()
        for p in sorted((self.path / swa.STATE_SUBDIR).glob("epoch_*.npz")):  # the weight average
            p.unlink()

    def read_run(self):
        if self.run_json.exists():
            return json.loads(self.run_json.read_text())
        return None

    def write_json(self, path, data):
        tmp = Path(str(path) + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
        os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def check_resumable(run: RunDir, identity: dict):
    """Refuse to resume a folder that holds another model/dataset's run."""
    old = run.read_run()
    if not old:
        return
    for key, value in identity.items():
        if key in old and old[key] != value:
            raise RecipeError(
                f"{run.path} holds a run with {key}={old[key]!r}, not {value!r}; pass another "
                f"output_dir (--output-dir) or resume=False (--no-resume) to start over there."
            )


def truncate_csv(path: Path, initial_epoch: int):
    """Keep the CSV rows of the epochs before ``initial_epoch`` (CSVLogger's epoch column is 0-based)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    keep = [r for r in body if r and r[0].isdigit() and int(r[0]) < initial_epoch]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(keep)


def read_history(path: Path) -> dict[str, list[float]]:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            try:
                out.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                out.setdefault(k, []).append(float("nan"))
    return out


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


def open_run(run: RunDir, recipe, steps, resume, build, loss, model_name, identity, metric=None):
    """The run's compiled model: resumed, or built fresh.

    Resuming (``resume`` and an epoch checkpoint in ``run``) loads the newest
    checkpoint with its optimizer state (and dtype policy); the schedule is rebuilt when the
    epochs or steps per epoch changed.  Otherwise ``build()``, called under the
    recipe's ``dtype_policy``, returns ``(net, model_args)``; the net starts from ``recipe.init_weights`` when set
    and is compiled with the recipe's optimizer, ``loss`` and ``metric`` (default: sparse
    top-1 accuracy, named ``accuracy``).

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
            metrics=[metric or keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
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


def plot_history(run: RunDir, metric_keys=("accuracy",), title=""):
    """learning_curve.png from history.csv: loss, the metric(s) and the learning rate per epoch."""
    history = read_history(run.csv)
    if not history or "epoch" not in history:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no learning_curve.png (pip install matplotlib).", file=sys.stderr)
        return None
    epochs = [e + 1 for e in history["epoch"]]
    panels = [("loss", ["loss", "val_loss"])]
    for m in metric_keys:
        keys = [k for k in (m, f"val_{m}") if k in history]
        if keys:
            panels.append((m, keys))
    if "learning_rate" in history:
        panels.append(("learning rate", ["learning_rate"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, keys) in zip(axes[0], panels):
        for k in keys:
            if k in history:
                ax.plot(epochs, history[k], marker="o", markersize=3, label=k)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(run.png, dpi=100)
    plt.close(fig)
    return run.png


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
FLAG_KEYS = {"dataset": "--dataset", "epochs": "--epochs", "batch_size": "--batch-size",
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
    _validate("--set", out, "--set")
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
        for key, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size"), ("learning_rate", "--lr"),
                          ("seed", "--seed"), ("init_weights", "--init-weights")):
            if (base is None and recipe.values.get(key) is not None) or (
                    base is not None and base.values.get(key) != recipe.values.get(key)):
                parts += [flag, str(recipe.values.get(key))]
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


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def split_indices(n, validation_split, seed):
    """``(train_idx, val_idx)`` in a seeded random order; the first ``k`` go to validation.

    The order is random (not sorted) so that ``limit`` can take a prefix without
    picking one class from class-sorted files.
    """
    k = int(validation_split) if validation_split >= 1 else int(round(n * validation_split))
    k = min(k, n - 1) if n > 1 else 0
    perm = np.random.default_rng(seed).permutation(n)
    return perm[k:], perm[:k]


def subset_indices(n, limit, seed=0):
    """All of ``range(n)``, or a seeded random ``limit`` of them in increasing order.

    Training's final test metric and :func:`hadamard_zoo.training.evaluate_checkpoint`
    use this same subset for a given ``limit``, so their values agree.
    """
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[: int(limit)])


def task_for(model_name, recipe=None):
    if recipe is not None and recipe.task:
        return recipe.task
    from hadamard_zoo.models import get_config

    kind = get_config(model_name).kind
    return KIND_TO_TASK.get(kind, kind)


def builder_takes(model_name, arg) -> bool:
    import inspect

    from hadamard_zoo.models import get_config

    return arg in inspect.signature(get_config(model_name).builder_fn()).parameters
