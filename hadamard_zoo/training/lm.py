"""The character language-model task: ``train`` with ``model.fit`` (Tiny Shakespeare by default),
``evaluate`` (validation nats per character) and its manifest entry.

The model maps int ids ``(batch, T)`` to logits ``(batch, T, vocab)``; the loss is
sparse cross-entropy from logits averaged over every position, so ``val_loss`` is
in nats per character (``val_bits_per_char = val_loss / ln 2`` is logged too).
Training batches are random windows (nanoGPT style), a function of
``(seed, epoch, batch)``; validation is the non-overlapping windows of the
validation text, in order.
"""

from __future__ import annotations

import math
import platform

import keras
import numpy as np

from hadamard_zoo.data.text import char_windows
from hadamard_zoo.text import CharTokenizer
from hadamard_zoo.training.callbacks import standard_callbacks
from hadamard_zoo.training.command_text import command_line
from hadamard_zoo.training.fit import fit_remaining, open_run
from hadamard_zoo.training.manifest_entry import manifest_entry
from hadamard_zoo.training.plots import plot_history
from hadamard_zoo.training.run_dir import RunDir
from hadamard_zoo.training.tasks import builder_takes

CONTEXT_ARG_NAMES = ("context_length", "sequence_length", "max_length", "max_len", "block_size", "seq_len", "maxlen")


class RandomWindows(keras.utils.PyDataset):
    """``steps`` batches of ``batch_size`` random windows ``(x, y = x shifted by one)`` per epoch."""

    def __init__(self, ids, context_length, batch_size, steps, seed=0):
        super().__init__()
        self.ids = np.asarray(ids, np.int32)
        self.T, self.batch_size, self.steps, self.seed = int(context_length), int(batch_size), int(steps), int(seed)
        if len(self.ids) < self.T + 1:
            raise ValueError(f"the training text has {len(self.ids)} characters; context_length {self.T} needs {self.T + 1}.")
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return self.steps

    def __getitem__(self, idx):
        rng = np.random.default_rng([self.seed, self.epoch, int(idx), 11])
        starts = rng.integers(0, len(self.ids) - self.T, self.batch_size)
        offsets = np.arange(self.T)
        return self.ids[starts[:, None] + offsets], self.ids[starts[:, None] + offsets + 1]


class WindowBatches(keras.utils.PyDataset):
    """Fixed ``(x, y)`` windows in order, ``batch_size`` at a time."""

    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, int(batch_size)

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, idx):
        s = slice(idx * self.batch_size, (idx + 1) * self.batch_size)
        return self.x[s], self.y[s]


def load_text(dataset, data_dir=None):
    """``dict(name, display, train, val)`` from a dataset name or ``(train_text, val_text)``."""
    from hadamard_zoo.data import dataset_info

    if isinstance(dataset, str):
        info = dataset_info(dataset)
        if info.kind != "text":
            raise ValueError(f"dataset {info.name!r} is {info.kind}, not a text dataset.")
        train_text, val_text = info.load(data_dir=data_dir)
        return {"name": info.name, "display": info.display, "train": train_text, "val": val_text}
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2 and all(isinstance(t, str) for t in dataset):
        return {"name": "text", "display": "user text", "train": dataset[0], "val": dataset[1]}
    raise ValueError("an LM dataset is a dataset name or a (train_text, val_text) pair of strings.")


def model_arguments(model_name, recipe_args, tokenizer, context_length=None):
    """The recipe's ``model_args`` plus the ``CharTokenizer``'s vocabulary (size, and the tokenizer when the builder
    takes one, so the trained model can generate text) and, when the recipe sets one, the context length."""
    args = dict(recipe_args or {})
    if builder_takes(model_name, "vocab_size") and "vocab_size" not in args:
        args["vocab_size"] = len(tokenizer)
    if builder_takes(model_name, "tokenizer") and "tokenizer" not in args:
        args["tokenizer"] = tokenizer.get_config()
    if context_length is not None:
        for name in CONTEXT_ARG_NAMES:
            if builder_takes(model_name, name) and name not in args:
                args[name] = int(context_length)
                break
    return args


def default_context_length(model, recipe_args=None, fallback=128):
    """A registered model's own context length (its variant's argument or builder default), else ``fallback``."""
    import inspect

    if not isinstance(model, str):
        shape = model.input_shape[0] if isinstance(model.input_shape, list) else model.input_shape
        return shape[1] if len(shape) == 2 and shape[1] is not None else fallback
    from hadamard_zoo.models import get_config

    cfg = get_config(model)
    params = inspect.signature(cfg.builder_fn()).parameters
    for name in CONTEXT_ARG_NAMES:
        for source in (recipe_args or {}, cfg.arguments):
            if name in source:
                return int(source[name])
        if name in params and isinstance(params[name].default, int):
            return int(params[name].default)
    return fallback


def mean_nll(model, x, y, batch_size=64):
    """Mean next-character negative log-likelihood (nats) over every position of ``(x, y)``."""
    total, count = 0.0, 0
    ds = WindowBatches(x, y, batch_size)
    for i in range(len(ds)):
        xb, yb = ds[i]
        logits = np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(xb)), np.float64)
        m = logits.max(axis=-1, keepdims=True)
        logz = np.log(np.exp(logits - m).sum(axis=-1)) + m[..., 0]
        picked = np.take_along_axis(logits, yb[..., None].astype(np.int64), axis=-1)[..., 0]
        total += float((logz - picked).sum())
        count += yb.size
    return total / count


def check_context(net, context_length):
    shape = net.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    if len(shape) == 2 and shape[1] is not None and shape[1] != context_length:
        raise ValueError(
            f"the model takes sequences of length {shape[1]} but the recipe's context_length is "
            f"{context_length}; pass context_length={shape[1]} (or build the model for {context_length})."
        )


def train(model, recipe, dataset=None, output_dir=None, resume=True, limit=None, verbose="auto",
          data_dir=None, cache_dir=None, callbacks=(), command=None):
    """Train a character LM by ``recipe``; see :func:`hadamard_zoo.training.train`.

    ``limit`` caps the training windows per epoch and the validation windows.
    """
    from hadamard_zoo import models as M

    model_name = model if isinstance(model, str) else model.name
    keras.utils.set_random_seed(int(recipe.seed))
    text = load_text(dataset if dataset is not None else recipe.dataset, data_dir)
    tokenizer = CharTokenizer.from_text(text["train"] + text["val"])
    T, bs = recipe.context_length or default_context_length(model, recipe.model_args), recipe.batch_size
    train_ids, val_ids = tokenizer.encode(text["train"]), tokenizer.encode(text["val"])
    steps = recipe.steps_per_epoch or max(1, len(train_ids) // (bs * T))
    if limit is not None:
        steps = max(1, math.ceil(int(limit) / bs))
    train_ds = RandomWindows(train_ids, T, bs, steps, seed=recipe.seed)
    caps = [int(c) for c in (limit, recipe.val_windows) if c is not None]
    x_val, y_val = char_windows(val_ids, T, limit=min(caps) if caps else None)  # per-epoch validation
    x_eval, y_eval = char_windows(val_ids, T, limit=limit)  # the final metric, as evaluate_checkpoint computes it
    eval_bs = recipe.eval_batch_size or bs
    val_ds = WindowBatches(x_val, y_val, eval_bs)

    run = RunDir(output_dir or f"runs/{model_name}")
    run.create()
    identity = {"model": model_name, "dataset": text["name"]}
    def build():
        if isinstance(model, str):
            args = model_arguments(model, recipe.model_args, tokenizer, recipe.context_length)
            built = M.create_model(model, **args)
        else:
            built, args = model, None
        check_context(built, T)
        return built, args

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    net, initial_epoch, model_args = open_run(run, recipe, steps, resume, build, loss, model_name, identity)

    command = command or command_line(
        model_name, recipe, dataset=text["name"] if text["name"] != "text" else None, limit=limit,
        output_dir=str(run.path) if output_dir is not None else None,
    )
    run.write_json(run.run_json, {
        **identity, "task": "lm", "dataset_display": text["display"], "model_args": model_args,
        "vocab": "".join(tokenizer.vocab), "context_length": T, "recipe": recipe.to_dict(), "recipe_source": recipe.source,
        "epochs": recipe.epochs, "steps_per_epoch": steps, "limit": limit, "val_windows": len(x_val),
        "backend": keras.config.backend(), "keras": keras.__version__, "python": platform.python_version(),
        "train_command": command,
    })
    cbs = standard_callbacks(run, recipe, "val_loss", "min", [train_ds], bits_per_char=True,
                               resumed=initial_epoch > 0) + list(callbacks)
    history = fit_remaining(net, run, recipe, train_ds, val_ds, initial_epoch, cbs, verbose)
    nats = mean_nll(net, x_eval, y_eval, eval_bs)
    results = {
        **identity, "dataset_display": text["display"], "epochs_done": len(history.get("epoch", [])),
        "params": net.count_params(), "final_weights": str(run.final),
        "best_weights": str(run.best) if run.best.exists() else None, "history_csv": str(run.csv),
        "backend": keras.config.backend(), "limit": limit, "context_length": T,
        "test_split": "val", "test_metric": "nats_per_char", "test_value": nats,
        "bits_per_char": nats / math.log(2.0), "test_n": int(y_eval.size),
    }
    print(f"{model_name}: validation loss {nats:.4f} nats/char = {nats / math.log(2):.4f} bits/char "
          f"({y_eval.size} characters of {text['display']}).", flush=True)
    png = plot_history(run, ("bits_per_char",), title=f"{model_name} on {text['display']}")
    results["learning_curve"] = str(png) if png else None
    if isinstance(model, str) and text["name"] != "text":
        results["manifest_entry"] = manifest_entry(
            model_name, text["name"], run.final, dataset=text["display"], split="val", metric="nats_per_char",
            value=nats, params=results["params"], train_command=command, limit=limit, model_args=model_args,
            context_length=T,
        )
    run.write_json(run.results_json, results)
    return results


def evaluate(checkpoint, dataset=None, limit=None, batch_size=None, data_dir=None, cache_dir=None):
    """Validation loss (nats and bits per character) of ``checkpoint`` (a
    :class:`hadamard_zoo.training.evaluate.Checkpoint`) on ``dataset``'s validation text,
    in non-overlapping windows of the run's context length (``limit``: the first that many windows)."""
    from hadamard_zoo.training.recipes import resolve_recipe

    text = load_text(dataset, data_dir)
    run, entry, name = checkpoint.run or {}, checkpoint.entry or {}, checkpoint.model_name
    tokenizer = CharTokenizer(list(run.get("vocab") or sorted(set(text["train"] + text["val"]))))
    T = run.get("context_length") or entry.get("context_length")
    recipe = resolve_recipe(name) if name else None
    if T is None and recipe is not None:
        T = recipe.context_length
    net = checkpoint.build(lambda: model_arguments(name, recipe.model_args, tokenizer, recipe.context_length))
    if T is None:
        T = default_context_length(name if checkpoint.kind != "keras" else net, recipe.model_args if recipe else None)
    x, y = char_windows(tokenizer.encode(text["val"]), int(T), limit=limit)
    nats = mean_nll(net, x, y, batch_size or 64)
    return {"model": name or net.name, "dataset": text["display"], "split": "val", "metric": "nats_per_char",
            "value": nats, "bits_per_char": nats / math.log(2.0), "n": int(y.size), "limit": limit,
            "context_length": int(T)}
