"""The table of training tasks: one entry per kind of model, looked up once.

==============  ===================  ===================================  ========================
task            registry ``kind``    trainer module (train, evaluate)     metric (split)
==============  ===================  ===================================  ========================
classifier      image_classifier     :mod:`hadamard_zoo.training.classifier`  top-1 (test)
lm              language_model       :mod:`hadamard_zoo.training.lm`      nats per char (val)
gan             generator            :mod:`hadamard_zoo.training.generator`  class agreement (test)
kg              kg_embedding         :mod:`hadamard_zoo.training.kg`      filtered MRR / AUC-PR (test)
==============  ===================  ===================================  ========================

Each trainer module has ``train(model, recipe, **options) -> results dict`` (the run folder's
``results.json``, with its ``manifest_entry``) and ``evaluate(checkpoint, **options) -> result
dict``. ``hadamard_zoo.training.train``, ``evaluate_checkpoint``, ``soup`` and the CLI find a
model's task here (:func:`task_for`) and nowhere else. A :class:`Task` also says which recipe
features it supports, so an unsupported one is refused before any data is read.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect


@dataclasses.dataclass(frozen=True)
class Task:
    """One kind of training: its name, the registry kind it serves and its trainer module."""

    name: str
    model_kind: str
    module: str
    dataset_kind: str  # what hadamard_zoo.data calls its datasets: image | text | kg
    description: str
    plural: str  # what its models are called in messages ("image classifiers")
    init_weights: bool = False  # recipe feature: start from a checkpoint
    dtype_policy: bool = False  # recipe feature: mixed_bfloat16
    swa: bool = False  # recipe feature: weight averaging
    prebuilt_models: bool = False  # train(keras.Model) as well as a registered name
    counts_steps: bool = False  # its recipes count optimizer steps (``steps``); ``epochs`` alone replaces them

    def trainer(self):
        """The trainer module (imported on first use)."""
        return importlib.import_module(self.module)

    def train(self, model, recipe, **options) -> dict:
        return self.trainer().train(model, recipe, **options)

    def evaluate(self, checkpoint, **options) -> dict:
        return self.trainer().evaluate(checkpoint, **options)

    def default_dataset(self, checkpoint):
        """The dataset ``checkpoint`` is evaluated on when none is named: the trainer's own rule
        (``default_dataset(checkpoint)``) if it has one, else the run's, the entry's, then the recipe's."""
        own = getattr(self.trainer(), "default_dataset", None)
        if own is not None:
            return own(checkpoint)
        found = (checkpoint.run or {}).get("dataset") or (checkpoint.entry or {}).get("dataset")
        if found is None and checkpoint.model_name:
            from hadamard_zoo.training.recipes import resolve_recipe

            found = resolve_recipe(checkpoint.model_name).dataset
        return found

    def check_recipe(self, model_name, recipe, prebuilt=False) -> None:
        """Refuse recipe features this task does not implement (a ``ValueError`` naming the fix)."""
        what = f"{model_name!r} ({self.name})"
        if recipe.init_weights and not self.init_weights:
            raise ValueError(f"init_weights is supported for {_supporting('init_weights')}, not for {what}.")
        if recipe.dtype_policy != "float32":
            if not self.dtype_policy:
                raise ValueError(f"dtype_policy {recipe.dtype_policy!r} is supported for {_supporting('dtype_policy')}, "
                                 f"not for {what}; train it in float32.")
            if prebuilt:
                raise ValueError(f"dtype_policy {recipe.dtype_policy!r} applies to models train() builds; build this "
                                 f"model under keras.config.set_dtype_policy({recipe.dtype_policy!r}) instead.")
        if recipe.swa_epochs and not self.swa:
            raise ValueError(f"swa_epochs (weight averaging) is supported for {_supporting('swa')}, not for {what}; "
                             f"train it without swa_epochs.")


TASKS = {
    task.name: task
    for task in (
        Task("classifier", "image_classifier", "hadamard_zoo.training.classifier", "image",
             "image classifiers: model.fit with cross-entropy, top-1 on the test split", "image classifiers",
             init_weights=True, dtype_policy=True, swa=True, prebuilt_models=True),
        Task("lm", "language_model", "hadamard_zoo.training.lm", "text",
             "character language models: model.fit on random windows, nats/char on the validation split",
             "language models",
             init_weights=True, dtype_policy=True, prebuilt_models=True),
        Task("gan", "generator", "hadamard_zoo.training.generator", "image",
             "class-conditional GANs (CoPE): hinge loss, SNGAN Adam; classifier agreement of the samples",
             "conditional generators"),
        Task("kg", "kg_embedding", "hadamard_zoo.training.kg", "kg",
             "knowledge-graph embeddings (RotatE): negative sampling with model.fit, filtered ranking on test",
             "knowledge-graph models", counts_steps=True),
    )
}
TASK_NAMES = tuple(TASKS)
_BY_KIND = {task.model_kind: task for task in TASKS.values()}


def _supporting(feature) -> str:
    return " and ".join(t.plural for t in TASKS.values() if getattr(t, feature))


def task_named(name) -> Task:
    """The task called ``name`` (``classifier``, ``lm``, ``gan``, ``kg``)."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; tasks: {list(TASKS)}.") from None


def task_for(model_name, recipe=None) -> Task:
    """The task of a registered model: the recipe's ``task`` when it names one, else the model's ``kind``."""
    if recipe is not None and recipe.task:
        return task_named(recipe.task)
    from hadamard_zoo.models import get_config

    kind = get_config(model_name).kind
    if kind not in _BY_KIND:
        raise NotImplementedError(f"{model_name!r} is a {kind!r} model; no training task handles that kind "
                                  f"(tasks: {', '.join(f'{t.name} for {t.model_kind}' for t in TASKS.values())}).")
    return _BY_KIND[kind]


def task_of_model(model) -> Task:
    """The task of a built ``keras.Model`` that is not registered: ``lm`` for ``(B, T, V)`` outputs, else ``classifier``."""
    return TASKS["lm"] if len(model.output_shape) == 3 else TASKS["classifier"]


def builder_takes(model_name, arg) -> bool:
    """Whether the registered builder of ``model_name`` has a parameter ``arg``."""
    from hadamard_zoo.models import get_config

    return arg in inspect.signature(get_config(model_name).builder_fn()).parameters
