"""``evaluate_checkpoint``: the metric of a checkpoint on its dataset's evaluation split.

What can be evaluated:

* a checkpoint tag from ``weights/manifest.json`` (``"pinet_ccp.fashion_mnist"``): the file's
  sha256 is checked, the metric is computed and compared with the manifest's value;
* a run folder (``runs/pinet_ccp``): its ``final.weights.h5``, with the model, arguments
  and dataset read from its ``run.json``;
* a ``.weights.h5`` file (with ``model=``, unless a ``run.json`` sits next to it);
* a ``.keras`` file (a full model, e.g. an epoch checkpoint).

The checkpoint is resolved once into a :class:`Checkpoint`; its task (from the run's
``run.json``, else the model's kind, :mod:`hadamard_zoo.training.tasks`) computes the metric:
top-1 on the test split for image classifiers, validation nats per character for character
LMs, classifier agreement for generators, filtered MRR (Countries: AUC-PR) for KG models.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras

from hadamard_zoo import pretrained
from hadamard_zoo.training.run_dir import RunDir
from hadamard_zoo.training.tasks import task_for, task_named


@dataclasses.dataclass
class Checkpoint:
    """A resolved checkpoint: what to load and what is known about it.

    ``kind`` is ``"manifest"`` (a tag; ``entry`` is its manifest entry), ``"weights"``
    (a ``.weights.h5``) or ``"keras"`` (a whole saved model); ``run`` is the ``run.json``
    of the run folder it came from, if any.
    """

    kind: str
    path: Path
    model_name: str | None
    entry: dict | None = None
    run: dict | None = None

    @property
    def model_args(self):
        return (self.run or {}).get("model_args") or (self.entry or {}).get("model_args")

    def build(self, fallback_args=dict, **build_kwargs):
        """The model with these weights loaded: a ``.keras`` file as saved; otherwise built from the
        run's / entry's ``model_args`` (else ``fallback_args()``) plus ``build_kwargs``, weights checked."""
        from hadamard_zoo import models as M

        if self.kind == "keras":
            return keras.saving.load_model(str(self.path), compile=False)
        args = self.model_args if self.model_args is not None else fallback_args()
        net = M.create_model(self.model_name, **args, **build_kwargs)
        if self.entry is not None:
            pretrained.load_pretrained(net, self.model_name, self.entry["name"], directory=self.path.parent)
        else:
            pretrained.verify(self.path, None)
            pretrained.load_weights_checked(net, self.path)
        return net


def run_json_near(path: Path):
    """The ``run.json`` of the run folder ``path`` is in (or is), else None."""
    for folder in (path if path.is_dir() else path.parent, path.parent.parent):
        candidate = folder / "run.json"
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def resolve_checkpoint(spec, model=None, weights_dir=None) -> Checkpoint:
    """A tag, run folder, ``.weights.h5`` or ``.keras`` path as a :class:`Checkpoint`."""
    spec_str = str(spec)
    entries = {e["name"]: e for e in pretrained.load_manifest(weights_dir)}
    if spec_str in entries:
        entry = entries[spec_str]
        if model is not None and model != entry["model"]:
            raise pretrained.CheckpointError(f"checkpoint {spec_str!r} is for model {entry['model']!r}, not {model!r}.")
        return Checkpoint("manifest", Path(weights_dir or pretrained.weights_dir()) / entry["file"], entry["model"], entry)
    path = Path(spec_str)
    if path.is_dir():
        run = run_json_near(path)
        if run is None:
            raise pretrained.CheckpointError(f"{path} is a folder without run.json; pass a .weights.h5 or .keras file.")
        weights = path / "final.weights.h5"
        if not weights.exists():
            ckpts = RunDir(path).epoch_checkpoints()
            if not ckpts:
                raise pretrained.CheckpointError(f"{path} holds neither final.weights.h5 nor an epoch checkpoint.")
            return Checkpoint("keras", ckpts[-1][1], model or run["model"], None, run)
        return Checkpoint("weights", weights, model or run["model"], None, run)
    if not path.exists():
        known = sorted(entries) or ["none yet"]
        raise pretrained.CheckpointError(
            f"{spec_str!r} is neither a checkpoint tag in {Path(weights_dir or pretrained.weights_dir()) / 'manifest.json'} "
            f"(tags: {', '.join(known)}) nor an existing file or run folder."
        )
    run = run_json_near(path)
    if spec_str.endswith(".keras"):
        return Checkpoint("keras", path, model or (run or {}).get("model"), None, run)
    if run is not None and model is not None and run.get("model") != model:
        run = None  # a file next to another model's run.json
    name = model or (run or {}).get("model")
    if name is None:
        raise ValueError(f"{path}: say which model these weights are for (model=..., --model NAME).")
    return Checkpoint("weights", path, name, None, run)


def checkpoint_task(checkpoint: Checkpoint):
    """The task that evaluates ``checkpoint``: its run's ``task``, else its model's (a bare ``.keras`` file: classifier)."""
    if checkpoint.run and checkpoint.run.get("task"):
        return task_named(checkpoint.run["task"])
    if checkpoint.model_name:
        return task_for(checkpoint.model_name)
    return task_named("classifier")


def evaluate_checkpoint(path_or_tag, model=None, dataset=None, limit=None, batch_size=None, data_dir=None,
                        cache_dir=None, weights_dir=None, verbose=True):
    """Compute a checkpoint's metric on its evaluation split, print it and return it.

    Args:
        path_or_tag: a manifest tag, a run folder, a ``.weights.h5`` or a ``.keras`` file.
        model: the registered model name (needed for a bare ``.weights.h5``).
        dataset: a dataset name, or arrays ``((x_train, y_train), (x_test, y_test))`` /
            ``(x_test, y_test)`` (classifiers) or ``(train_text, val_text)`` (LMs); default:
            the run's / manifest entry's / recipe's dataset.
        limit: evaluate on a fixed seeded subset of this many samples (windows for LMs,
            test triples for KG models), the same subset training's final evaluation used
            with the same ``limit``.
    Returns:
        dict with ``model``, ``checkpoint``, ``dataset``, ``split``, ``metric``, ``value``, ``n``
        and, for a manifest entry, ``manifest_value`` and ``difference``.
    """
    checkpoint = resolve_checkpoint(path_or_tag, model, weights_dir)
    task = checkpoint_task(checkpoint)
    if dataset is None:
        dataset = task.default_dataset(checkpoint)
        if dataset is None or dataset in ("arrays", "text"):
            raise ValueError(f"say which dataset to evaluate {path_or_tag!r} on (dataset=..., --dataset NAME).")
    result = task.evaluate(checkpoint, dataset=dataset, limit=limit, batch_size=batch_size, data_dir=data_dir,
                           cache_dir=cache_dir)
    return _finish(result, path_or_tag, checkpoint.entry, verbose)


def _finish(result, path_or_tag, entry, verbose):
    result["checkpoint"] = str(path_or_tag)
    if entry is not None:
        manifest_value = float(entry["value"])
        result["manifest_value"] = manifest_value
        mine = result["value"] if entry["metric"] == result["metric"] else result.get(entry["metric"])
        if mine is not None:
            result["difference"] = float(mine) - manifest_value
    if verbose:
        print(format_result(result), flush=True)
    return result


def format_result(r):
    line = (f"{r['model']} [{r['checkpoint']}]: {r['metric']} = {r['value']:.4f} on {r['n']} "
            f"{'characters' if r['metric'] == 'nats_per_char' else 'samples'} of {r['dataset']} ({r['split']})")
    if "bits_per_char" in r:
        line += f"; {r['bits_per_char']:.4f} bits/char"
    if "frechet_distance" in r:
        line += (f"; Frechet distance {r['frechet_distance']:.4f} in {r['classifier']} features "
                 f"(real train vs test: {r['frechet_distance_train_vs_test']:.4f}; the classifier's own test top-1 "
                 f"{r['classifier_test_accuracy']:.4f})")
    if "manifest_value" in r:
        diff = r.get("difference")
        line += f"\n  manifest value {r['manifest_value']:.4f}" + (f", difference {diff:+.4f}" if diff is not None else "")
        if r.get("limit"):
            line += f" (evaluated with limit={r['limit']}; the manifest value may use another subset)"
    return line

__all__ = ["Checkpoint", "evaluate_checkpoint", "format_result", "resolve_checkpoint"]
