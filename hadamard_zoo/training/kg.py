"""The knowledge-graph task (RotatE): ``train`` by a recipe with ``model.fit``, ``evaluate`` (filtered ranking), its manifest entry.

The reference (DeepGraphLearning/KnowledgeGraphEmbedding, ``codes/run.py``) trains with
negative sampling (:class:`~hadamard_zoo.training.kg_sampling.NegativeSamplingDataset`) and
Adam at ``lr``; at ``warm_up_steps`` (default ``steps // 2``) a new Adam at ``lr / 10`` (its
moments start again), the next drop 3x later (:class:`ReferenceLRDrop`).

Recipes are in ``zoo_configs/recipes/kg.yaml`` like every other task's: ``steps`` (the
reference's ``max_steps``; ``--steps``) or ``epochs`` x ``steps_per_epoch``, ``batch_size``,
``num_negatives``, ``learning_rate``, ``warm_up_steps``, ``shared_negatives``. A run folder
holds ``run.json``, ``history.csv`` (loss and learning rate per epoch), epoch checkpoints
(``train`` again resumes after the last one), ``final.weights.h5``, ``learning_curve.png``
and ``results.json`` (test metrics and a manifest entry)::

    KERAS_BACKEND=jax hadamard-zoo train rotate_countries_quick
    hadamard-zoo eval rotate_countries.s1

:func:`train_kg` fits an already built model (no run folder), for notebooks.
"""

from __future__ import annotations

import json
import math
import platform
import warnings

import keras
import numpy as np

from hadamard_zoo.training.callbacks import standard_callbacks
from hadamard_zoo.training.command_text import command_line
from hadamard_zoo.training.fit import fit_remaining, open_run
from hadamard_zoo.training.kg_sampling import (  # noqa: F401  (public here since before the split)
    NegativeSamplingDataset,
    TripleIndex,
    subsampling_weights,
)
from hadamard_zoo.training.manifest_entry import manifest_entry as base_manifest_entry
from hadamard_zoo.training.plots import plot_history
from hadamard_zoo.training.recipes import Recipe
from hadamard_zoo.training.run_dir import RunDir
from hadamard_zoo.training.splits import subset_indices

DEFAULT_EVAL_BATCH_SIZE = 64  # queries per ranking batch (memory only)


class ReferenceLRDrop(keras.callbacks.Callback):
    """The reference's schedule: at ``warm_up_steps`` a fresh Adam at ``lr / 10``; then 3x later.

    "Fresh" means the optimizer's moments and step counter are zeroed, as
    ``torch.optim.Adam(...)`` re-created in ``run.py``.  Steps count across epochs;
    ``initial_step`` is where a resumed run starts (the drops before it have happened:
    the optimizer state restored from the epoch checkpoint carries them).
    """

    def __init__(self, warm_up_steps, factor=0.1, growth=3, reset_optimizer=True, verbose=0, initial_step=0,
                 base_learning_rate=None):
        super().__init__()
        self.next_drop = int(warm_up_steps)
        self.factor = float(factor)
        self.growth = int(growth)
        self.reset_optimizer = bool(reset_optimizer)
        self.verbose = verbose
        self.step = int(initial_step)
        drops = 0
        while 0 < self.next_drop < self.step:
            self.next_drop *= self.growth
            drops += 1
        # a resumed run whose schedule was rebuilt: the rate the drops before initial_step left
        self._resume_lr = None if base_learning_rate is None or not self.step else float(base_learning_rate) * self.factor ** drops

    def on_train_batch_begin(self, batch, logs=None):
        if self._resume_lr is not None:
            if keras.config.backend() == "jax":
                self.model.jax_state_sync()
            self.model.optimizer.learning_rate = self._resume_lr
            self._resume_lr = None
        if self.step == self.next_drop and self.next_drop > 0:
            model = self.model
            if keras.config.backend() == "jax":
                model.jax_state_sync()  # the next step re-reads the variables
            opt = model.optimizer
            new_lr = float(keras.ops.convert_to_numpy(opt.learning_rate)) * self.factor
            if self.reset_optimizer:
                for v in opt.variables:
                    v.assign(keras.ops.zeros(v.shape, v.dtype))
            opt.learning_rate = new_lr
            if self.verbose:
                print(f"step {self.step}: learning rate -> {new_lr:g}" + (" (fresh Adam)" if self.reset_optimizer else ""))
            self.next_drop *= self.growth

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1


def train_kg(
    model,
    dataset,
    steps=None,
    batch_size=None,
    num_negatives=None,
    learning_rate=None,
    warm_up_steps=None,
    shared_negatives=None,
    steps_per_epoch=None,
    seed=0,
    verbose=1,
    callbacks=None,
    jit_compile="auto",
):
    """Train a KG model with the reference recipe; returns the ``History``.

    Args:
        model: a :class:`hadamard_zoo.models.architectures.rotate.RotatE` (e.g. ``create_model("rotate_countries",
            dataset=ds)``); missing settings come from the model's recipe (``zoo_configs/recipes/kg.yaml``)
            when the model's name is registered, else the defaults below.
        dataset: a :class:`hadamard_zoo.data.kg.KGDataset`; trains on ``dataset.train``.
        steps: optimizer steps (reference ``max_steps``); rounded up to whole epochs.
        batch_size, num_negatives, learning_rate: as the reference's ``-b``, ``-n``, ``-lr``.
        warm_up_steps: step of the lr/10 drop (default ``steps // 2``).
        shared_negatives: see :class:`NegativeSamplingDataset` (default: the config's, else
            False, the reference).
        steps_per_epoch: steps per Keras epoch (default: one pass over the training triples).
    """
    cfg = _registered_recipe(model.name)
    steps = int(steps or cfg.get("steps") or 1000)
    batch_size = int(batch_size or cfg.get("batch_size", 512))
    num_negatives = int(num_negatives or cfg.get("num_negatives", 64))
    learning_rate = float(learning_rate or cfg.get("learning_rate", 1e-4))
    warm_up_steps = int(warm_up_steps if warm_up_steps is not None else cfg.get("warm_up_steps") or steps // 2)
    if shared_negatives is None:
        shared_negatives = bool(cfg.get("shared_negatives", False))
    data = NegativeSamplingDataset(
        dataset.train, dataset.num_entities, dataset.num_relations, batch_size=batch_size,
        num_negatives=num_negatives, shared_negatives=shared_negatives, steps_per_epoch=steps_per_epoch,
        seed=seed,
    )
    spe = min(len(data), steps)
    data.steps_per_epoch = spe
    epochs = math.ceil(steps / spe)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=jit_compile)
    cbs = [ReferenceLRDrop(warm_up_steps, verbose=verbose)] + list(callbacks or [])
    return model.fit(data, epochs=epochs, verbose=verbose, callbacks=cbs)


def _registered_recipe(model_name) -> dict:
    """The recipe values of a registered model (``{}`` for an unregistered name)."""
    from hadamard_zoo.models import list_models
    from hadamard_zoo.training.recipes import resolve_recipe

    return resolve_recipe(model_name).values if model_name in list_models() else {}


def load_dataset(dataset, data_dir=None):
    """A :class:`hadamard_zoo.data.kg.KGDataset` from a name (any alias) or as given."""
    from hadamard_zoo.data import kg as kgdata

    if dataset is None:
        raise ValueError("say which KG dataset to use (dataset=..., --dataset NAME); known: "
                         f"{kgdata.known_datasets()}.")
    if isinstance(dataset, str):
        return kgdata.load_kg(kgdata.canonical_name(dataset), data_dir=data_dir)
    return dataset


def dataset_tag(ds) -> str:
    """The dataset part of a checkpoint tag: ``WN18RR`` -> ``wn18rr``, ``countries_S1`` -> ``countries_s1``."""
    return ds.name.lower().replace("-", "").replace(" ", "_")


def _check_schedule(model_name, recipe):
    image_only = [key for key in ("augment", "label_smoothing", "swa_epochs") if recipe.values.get(key)]
    if image_only:
        raise ValueError(f"{model_name!r}: {', '.join(image_only)} do(es) not apply to knowledge-graph models (their "
                         f"batches are negative-sampled triples); train without them.")
    if recipe.schedule != "constant" or recipe.warmup_epochs or recipe.optimizer != "adam":
        raise ValueError(f"{model_name!r}: knowledge-graph recipes train with the reference's schedule (Adam at a "
                         f"constant rate, dropped to a tenth at warm_up_steps); set optimizer: adam, schedule: "
                         f"constant, warmup_epochs: 0 (got {recipe.optimizer}, {recipe.schedule}, "
                         f"warmup_epochs {recipe.warmup_epochs}).")


def train(model, recipe, dataset=None, output_dir=None, resume=True, limit=None, verbose="auto",
          data_dir=None, cache_dir=None, callbacks=(), command=None):
    """Train a registered KG model by ``recipe`` in a run folder; see :func:`hadamard_zoo.training.train`.

    ``limit`` caps the training triples (a seeded subset) and the test queries. Returns the
    ``results.json`` dict (test metrics, paths, a manifest entry).
    """
    from hadamard_zoo import models as M

    if not isinstance(model, str):
        raise ValueError("knowledge-graph models train by name (train('rotate_countries')); for a model you built, "
                         "call hadamard_zoo.training.kg.train_kg(model, dataset).")
    _check_schedule(model, recipe)
    keras.utils.set_random_seed(int(recipe.seed))
    ds = load_dataset(dataset if dataset is not None else recipe.dataset, data_dir)
    triples = np.asarray(ds.train)
    if limit is not None:
        triples = triples[subset_indices(len(triples), limit, recipe.seed)]
    sampler = NegativeSamplingDataset(
        triples, ds.num_entities, ds.num_relations, batch_size=recipe.batch_size,
        num_negatives=recipe.num_negatives, shared_negatives=recipe.shared_negatives,
        steps_per_epoch=recipe.steps_per_epoch, seed=recipe.seed,
    )
    total = recipe.steps or recipe.epochs * len(sampler)
    spe = min(len(sampler), total)
    sampler.steps_per_epoch = spe
    epochs = math.ceil(total / spe)  # whole epochs: the run makes epochs x spe >= steps steps
    given, recipe = recipe, Recipe(recipe.model, {**recipe.values, "epochs": epochs, "steps": total}, recipe.source)

    run = RunDir(output_dir or f"runs/{model}")
    run.create()
    identity = {"model": model, "dataset": ds.name}

    def build():
        args = dict(recipe.model_args)
        return M.create_model(model, dataset=ds, **args), args

    net, initial_epoch, model_args = open_run(run, recipe, spe, resume, build, None, model, identity, metrics=[])
    command = command or command_line(model, given, dataset=ds.name if ds.name != recipe_dataset(model) else None,
                                      limit=limit, output_dir=str(run.path) if output_dir is not None else None)
    run.write_json(run.run_json, {
        **identity, "task": "kg", "dataset_display": ds.name, "model_args": model_args, "recipe": recipe.to_dict(),
        "recipe_source": recipe.source, "epochs": epochs, "steps": total, "steps_per_epoch": spe, "limit": limit,
        "num_train": int(len(triples)), "backend": keras.config.backend(), "keras": keras.__version__,
        "python": platform.python_version(), "train_command": command,
    })
    warm_up = recipe.warm_up_steps if recipe.warm_up_steps is not None else total // 2
    cbs = standard_callbacks(run, recipe, "loss", "min", [sampler], resumed=initial_epoch > 0)
    cbs.insert(0, ReferenceLRDrop(warm_up, verbose=1 if verbose else 0, initial_step=initial_epoch * spe,
                                  base_learning_rate=recipe.learning_rate))
    history = fit_remaining(net, run, recipe, sampler, None, initial_epoch, cbs + list(callbacks), verbose)
    metrics, n = test_metrics(net, ds, limit, recipe.eval_batch_size)
    metric = "MRR" if "MRR" in metrics else next(iter(metrics))
    results = {
        **identity, "task": "kg", "epochs_done": len(history.get("epoch", [])), "steps": epochs * spe,
        "params": net.count_params(), "final_weights": str(run.final), "history_csv": str(run.csv),
        "backend": keras.config.backend(), "limit": limit, "final_loss": (history.get("loss") or [None])[-1],
        "test_split": "test", "test_metric": metric, "test_value": float(metrics[metric]), "test_n": n,
        **{f"test_{k}": float(v) for k, v in metrics.items()},
    }
    print(f"{model}: {metric} {metrics[metric]:.4f} on {n} {ds.name} test triples.", flush=True)
    png = plot_history(run, (), title=f"{model} on {ds.name}")
    results["learning_curve"] = str(png) if png else None
    if limit is None:
        results["manifest_entry"] = manifest_entry(model, ds, metrics, net.count_params(), run.final, command,
                                                   model_args=model_args)
    run.write_json(run.results_json, results)
    return results


def recipe_dataset(model_name):
    return _registered_recipe(model_name).get("dataset")


def test_metrics(net, ds, limit=None, batch_size=None):
    """``(metrics, n)`` on the test split: AUC-PR for Countries (all of it), filtered ranking otherwise
    (``limit``: a seeded subset of the test triples)."""
    from hadamard_zoo.training import kg_eval

    if getattr(ds, "regions", None) is not None:
        return kg_eval.evaluate_countries(net, ds, split="test"), len(ds.split("test"))
    triples = np.asarray(ds.split("test"))
    triples = triples[subset_indices(len(triples), limit)]
    metrics = kg_eval.evaluate_ranking(net, ds, split="test", batch_size=batch_size or DEFAULT_EVAL_BATCH_SIZE,
                                       triples=triples)
    return metrics, len(triples)


def default_dataset(checkpoint):
    """The KG dataset a checkpoint was trained on: the entry's ``kg_dataset``, the run's, else the recipe's."""
    for candidate in ((checkpoint.entry or {}).get("kg_dataset"), (checkpoint.run or {}).get("dataset"),
                      recipe_dataset(checkpoint.model_name) if checkpoint.model_name else None):
        if candidate:
            return candidate
    return None


def evaluate(checkpoint, dataset=None, limit=None, batch_size=None, data_dir=None, cache_dir=None):
    """Filtered MRR, MR and HITS@k (Countries: AUC-PR) of ``checkpoint`` (a
    :class:`hadamard_zoo.training.evaluate.Checkpoint`) on the test split of ``dataset``."""
    ds = load_dataset(dataset, data_dir)
    net = checkpoint.build(dict, dataset=ds)
    metrics, n = test_metrics(net, ds, limit, batch_size)
    wanted = (checkpoint.entry or {}).get("metric")
    metric = wanted if wanted in metrics else next(iter(metrics))
    return {"model": checkpoint.model_name, "dataset": ds.name, "split": "test", "metric": metric,
            "value": float(metrics[metric]), "n": int(n), "limit": limit,
            **{k: float(v) for k, v in metrics.items() if k != metric}}


def manifest_entry(model_name, dataset, metrics, params, weights_path, train_command, **extra):
    """The ``weights/manifest.json`` entry of a KG run evaluated on its test split.

    The tag is ``<model>.<dataset>`` (``rotate_wn18rr_small.wn18rr``); the metric is
    the filtered MRR when ranking metrics were measured (HITS@k and MR are kept
    beside it), else the first one (Countries: AUC-PR).
    """
    metric = "MRR" if "MRR" in metrics else next(iter(metrics))
    entry = base_manifest_entry(
        model_name, dataset_tag(dataset), weights_path, dataset=dataset.name, split="test", metric=metric,
        value=metrics[metric], params=params, train_command=train_command, kg_dataset=dataset.name, **extra,
    )
    entry.update({k: round(float(v), 4) for k, v in metrics.items() if k not in (metric, "num_queries")})
    return entry


# ---------------------------------------------------------------------- deprecated command line
def main(argv=None):
    """``python -m hadamard_zoo.training.kg``: the command line before KG recipes joined ``hadamard-zoo train``.

    Kept so the recorded train commands still run; it warns and hands over to
    :func:`hadamard_zoo.training.train` (a run folder, ``--output-dir``), then copies the final
    weights to ``--save`` and the results to ``--metrics-json`` as before.
    """
    import argparse
    import shutil

    parser = argparse.ArgumentParser(prog="python -m hadamard_zoo.training.kg",
                                     description="Deprecated: use hadamard-zoo train MODEL [--steps N --set ...].")
    parser.add_argument("--model", default="rotate_countries")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--negatives", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--warm-up-steps", type=int, default=None)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--shared-negatives", action="store_true", default=None)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--eval-batch-size", type=int, default=None)
    parser.add_argument("--save", default=None)
    parser.add_argument("--metrics-json", default=None)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.warn("python -m hadamard_zoo.training.kg is deprecated; use hadamard-zoo train MODEL "
                  "(KG recipes are in zoo_configs/recipes/kg.yaml).", DeprecationWarning, stacklevel=2)
    print("python -m hadamard_zoo.training.kg is deprecated: running hadamard-zoo train instead.", flush=True)
    from hadamard_zoo import training

    overrides = {"num_negatives": args.negatives, "warm_up_steps": args.warm_up_steps,
                 "steps_per_epoch": args.steps_per_epoch, "shared_negatives": args.shared_negatives,
                 "eval_batch_size": args.eval_batch_size, "steps": args.steps, "learning_rate": args.lr,
                 "seed": args.seed}
    if args.chunk_size is not None:
        overrides["model_args"] = {"chunk_size": args.chunk_size}
    result = training.train(args.model, dataset=args.dataset, batch_size=args.batch_size, output_dir=args.output_dir,
                            data_dir=args.data_dir, verbose=args.verbose, **overrides)
    if args.save:
        shutil.copyfile(result["final_weights"], args.save)
    if args.metrics_json:
        with open(args.metrics_json, "w") as f:
            json.dump(result, f, indent=2, default=str)
    return result


if __name__ == "__main__":
    main()
