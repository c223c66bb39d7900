"""``evaluate_checkpoint``: the metric of a checkpoint on its dataset's evaluation split.

What can be evaluated:

* a checkpoint tag from ``weights/manifest.json`` (``"pinet_ccp.fashion_mnist"``): the file's
  sha256 is checked, the metric is computed and compared with the manifest's value;
* a run folder (``runs/pinet_ccp``): its ``final.weights.h5``, with the model, arguments
  and dataset read from its ``run.json``;
* a ``.weights.h5`` file (with ``model=``, unless a ``run.json`` sits next to it);
* a ``.keras`` file (a full model, e.g. an epoch checkpoint).

Metrics: ``top1`` on the test split for image classifiers; validation loss in
nats per character (and bits per character) for character LMs; knowledge-graph
models are handed to ``hadamard_zoo.training.kg.evaluate_checkpoint``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras

from hadamard_zoo import pretrained
from hadamard_zoo.training import recipes as R


def _run_json_near(path: Path):
    for folder in (path if path.is_dir() else path.parent, path.parent.parent):
        candidate = folder / "run.json"
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def _resolve(spec, model, weights_dir):
    """``(kind, path, model_name, entry or None, run.json dict or None)``."""
    spec_str = str(spec)
    entries = {e["name"]: e for e in pretrained.load_manifest(weights_dir)}
    if spec_str in entries:
        entry = entries[spec_str]
        if model is not None and model != entry["model"]:
            raise pretrained.CheckpointError(f"checkpoint {spec_str!r} is for model {entry['model']!r}, not {model!r}.")
        return "manifest", Path(weights_dir or pretrained.weights_dir()) / entry["file"], entry["model"], entry, None
    path = Path(spec_str)
    if path.is_dir():
        run = _run_json_near(path)
        if run is None:
            raise pretrained.CheckpointError(f"{path} is a folder without run.json; pass a .weights.h5 or .keras file.")
        weights = path / "final.weights.h5"
        if not weights.exists():
            ckpts = R.RunDir(path).epoch_checkpoints()
            if not ckpts:
                raise pretrained.CheckpointError(f"{path} holds neither final.weights.h5 nor an epoch checkpoint.")
            return "keras", ckpts[-1][1], model or run["model"], None, run
        return "weights", weights, model or run["model"], None, run
    if not path.exists():
        known = sorted(entries) or ["none yet"]
        raise pretrained.CheckpointError(
            f"{spec_str!r} is neither a checkpoint tag in {Path(weights_dir or pretrained.weights_dir()) / 'manifest.json'} "
            f"(tags: {', '.join(known)}) nor an existing file or run folder."
        )
    run = _run_json_near(path)
    if spec_str.endswith(".keras"):
        return "keras", path, model or (run or {}).get("model"), None, run
    if run is not None and model is not None and run.get("model") != model:
        run = None  # a file next to another model's run.json
    name = model or (run or {}).get("model")
    if name is None:
        raise ValueError(f"{path}: say which model these weights are for (model=..., --model NAME).")
    return "weights", path, name, None, run


def _task(model_name, run, entry):
    if run and run.get("task"):
        return run["task"]
    if entry and entry.get("metric") in ("nats_per_char", "bits_per_char", "val_loss"):
        return "lm"
    return R.task_for(model_name)


def evaluate_checkpoint(path_or_tag, model=None, dataset=None, limit=None, batch_size=None, data_dir=None,
                        cache_dir=None, weights_dir=None, verbose=True):
    """Compute a checkpoint's metric on its evaluation split, print it and return it.

    Args:
        path_or_tag: a manifest tag, a run folder, a ``.weights.h5`` or a ``.keras`` file.
        model: the registered model name (needed for a bare ``.weights.h5``).
        dataset: a dataset name, or arrays ``((x_train, y_train), (x_test, y_test))`` /
            ``(x_test, y_test)`` (classifiers) or ``(train_text, val_text)`` (LMs); default:
            the run's / manifest entry's / recipe's dataset.
        limit: evaluate on a fixed seeded subset of this many samples (windows for LMs),
            the same subset training's final evaluation used with the same ``limit``.
    Returns:
        dict with ``model``, ``checkpoint``, ``dataset``, ``split``, ``metric``, ``value``, ``n``
        and, for a manifest entry, ``manifest_value`` and ``difference``.
    """
    kind, path, model_name, entry, run = _resolve(path_or_tag, model, weights_dir)
    task = _task(model_name, run, entry) if model_name else (run or {}).get("task", "classifier")
    model_args = (run or {}).get("model_args") or (entry or {}).get("model_args")
    if task == "kg":
        result = _evaluate_kg(kind, path, model_name, entry, model_args, dataset, limit, batch_size, data_dir)
        return _finish(result, path_or_tag, entry, verbose)

    if dataset is None and task != "kg":
        dataset = (run or {}).get("dataset") or (entry or {}).get("dataset")
        if dataset is None and model_name:
            dataset = R.resolve_recipe(model_name).dataset
        if dataset is None or dataset in ("arrays", "text"):
            raise ValueError(f"say which dataset to evaluate {path_or_tag!r} on (dataset=..., --dataset NAME).")

    if task == "gan":
        result = _evaluate_gan(kind, path, model_name, entry, run, model_args, dataset, data_dir)
    elif task == "lm":
        result = _evaluate_lm(kind, path, model_name, entry, run, model_args, dataset, limit, batch_size, data_dir)
    else:
        result = _evaluate_classifier(kind, path, model_name, entry, model_args, dataset, limit, batch_size,
                                      data_dir, cache_dir)
    return _finish(result, path_or_tag, entry, verbose)


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


def _build(kind, path, model_name, entry, model_args, fallback_args):
    from hadamard_zoo import models as M

    if kind == "keras":
        return keras.saving.load_model(str(path), compile=False)
    args = model_args if model_args is not None else fallback_args()
    net = M.create_model(model_name, **args)
    if entry is not None:
        pretrained.load_pretrained(net, model_name, entry["name"], directory=path.parent)
    else:
        pretrained.verify(path, None)
        pretrained.load_weights_checked(net, path)
    return net


def _evaluate_classifier(kind, path, model_name, entry, model_args, dataset, limit, batch_size, data_dir, cache_dir):
    from hadamard_zoo.data import images
    from hadamard_zoo.training import classifier as C

    if isinstance(dataset, str):
        data = C.load_data(dataset, data_dir, cache_dir, need_train=False)
    else:
        arrays = images.from_arrays(dataset)
        (x_te, y_te) = arrays[1] if images.is_split_pair(arrays) else arrays
        data = {"name": "arrays", "display": "user arrays", "x_test": x_te, "y_test": y_te,
                "num_classes": int(y_te.max()) + 1}
    x, y = data["x_test"], data["y_test"]
    def fallback_args():
        return C.model_arguments(model_name, R.resolve_recipe(model_name).model_args, x.shape[1:], data["num_classes"])

    net = _build(kind, path, model_name, entry, model_args, fallback_args)
    idx = R.subset_indices(len(x), limit)
    acc = C.top1(net, x[idx], y[idx], batch_size or 256)
    return {"model": model_name or net.name, "dataset": data["display"], "split": "test", "metric": "top1",
            "value": acc, "n": int(len(idx)), "limit": limit}


def _evaluate_lm(kind, path, model_name, entry, run, model_args, dataset, limit, batch_size, data_dir):
    from hadamard_zoo.data.text import char_windows
    from hadamard_zoo.text import CharTokenizer
    from hadamard_zoo.training import lm as L

    text = L.load_text(dataset, data_dir)
    tokenizer = CharTokenizer(list((run or {}).get("vocab") or sorted(set(text["train"] + text["val"]))))
    T = (run or {}).get("context_length") or (entry or {}).get("context_length")
    recipe = R.resolve_recipe(model_name) if model_name else None
    if T is None and recipe is not None:
        T = recipe.context_length
    net = _build(kind, path, model_name, entry, model_args,
                 lambda: L.model_arguments(model_name, recipe.model_args, tokenizer, recipe.context_length))
    if T is None:
        T = L.default_context_length(model_name if kind != "keras" else net, recipe.model_args if recipe else None)
    x, y = char_windows(tokenizer.encode(text["val"]), int(T), limit=limit)
    nats = L.mean_nll(net, x, y, batch_size or 64)
    return {"model": model_name or net.name, "dataset": text["display"], "split": "val", "metric": "nats_per_char",
            "value": nats, "bits_per_char": nats / math.log(2.0), "n": int(y.size), "limit": limit,
            "context_length": int(T)}


def _evaluate_gan(kind, path, model_name, entry, run, model_args, dataset, data_dir):
    from hadamard_zoo.training import generator as GEN

    classifier = (entry or {}).get("eval_classifier") or ((run or {}).get("recipe") or {}).get("eval_classifier")
    if classifier is None and model_name:
        classifier = R.resolve_recipe(model_name).eval_classifier
    gen = _build(kind, path, model_name, entry, model_args, lambda: {})
    metrics = GEN.evaluate_generator(gen, dataset, classifier, data_dir=data_dir)
    return {"model": model_name or gen.name, **metrics, "n": metrics["n_generated"], "limit": None}


def _evaluate_kg(kind, path, model_name, entry, model_args, dataset, limit, batch_size, data_dir):
    """Filtered MRR (or Countries' AUC-PR) on the test split, with hadamard_zoo.training.kg_eval."""
    import numpy as np

    from hadamard_zoo import models as M
    from hadamard_zoo.data import kg as kgdata
    from hadamard_zoo.training import kg_eval

    cfg = M.get_config(model_name)
    name = None
    if dataset is not None:
        name = kgdata.canonical_name(dataset)  # unknown -> a ValueError naming the known ones
    else:
        for candidate in ((entry or {}).get("kg_dataset"), (entry or {}).get("dataset"),
                          (cfg.arguments.get("training") or {}).get("dataset")):
            try:
                name = kgdata.canonical_name(candidate) if candidate else None
            except (KeyError, ValueError):
                name = None
            if name:
                break
    if name is None:
        raise ValueError(f"say which KG dataset to evaluate {model_name!r} on (--dataset).")
    ds = kgdata.load_kg(name, data_dir=data_dir)
    if kind == "keras":
        net = keras.saving.load_model(str(path), compile=False)
    else:
        net = M.create_model(model_name, dataset=ds, **(model_args or {}))
        if entry is not None:
            pretrained.load_pretrained(net, model_name, entry["name"], directory=path.parent)
        else:
            pretrained.verify(path, None)
            pretrained.load_weights_checked(net, path)
    if getattr(ds, "regions", None) is not None:
        metrics = kg_eval.evaluate_countries(net, ds, split="test")
        n = len(ds.split("test"))
    else:
        triples = np.asarray(ds.split("test"))
        triples = triples[R.subset_indices(len(triples), limit)]
        metrics = kg_eval.evaluate_ranking(net, ds, split="test", batch_size=batch_size or 64, triples=triples)
        n = len(triples)
    metric = (entry or {}).get("metric") if (entry or {}).get("metric") in metrics else next(iter(metrics))
    return {"model": model_name, "dataset": ds.name, "split": "test", "metric": metric,
            "value": float(metrics[metric]), "n": int(n), "limit": limit,
            **{k: float(v) for k, v in metrics.items() if k != metric}}


__all__ = ["evaluate_checkpoint", "format_result"]
