"""Pretrained checkpoints: the manifest, hash verification and loading.

``weights/manifest.json`` holds one entry per checkpoint::

    {"name": "ncp_resnet_cifar_small.cifar10", "model": "ncp_resnet_cifar_small",
     "default": true, "file": "ncp_resnet_cifar_small.cifar10.weights.h5",
     "sha256": "...", "dataset": "CIFAR-10 (JPEG q75 copy)", "split": "test",
     "metric": "top1", "value": 0.91, "params": 123, "train_command": "...",
     "eval_command": "...", "backend": "jax", "date": "2026-11-27"}

Nothing is ever downloaded: files are read from the ``weights/`` folder (or
``HADAMARD_ZOO_WEIGHTS``), their sha256 is checked before loading, and a file
whose variables do not fit the model is refused with a message that says so.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from hadamard_zoo.data._common import sha256_of

WEIGHTS_DIR_ENV = "HADAMARD_ZOO_WEIGHTS"
REQUIRED_KEYS = (
    "name", "model", "file", "sha256", "dataset", "split", "metric", "value",
    "params", "train_command", "eval_command", "backend", "date",
)


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit the requested model."""


def weights_dir() -> Path:
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "weights"


def load_manifest(directory=None) -> list[dict]:
    path = Path(directory or weights_dir()) / "manifest.json"
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    entries = data.get("checkpoints", data) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise CheckpointError(f"{path}: expected a list of checkpoint entries.")
    for entry in entries:
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise CheckpointError(f"{path}: entry {entry.get('name', '?')!r} lacks key(s) {missing}.")
    return entries


def entries_for(model_name: str, directory=None) -> list[dict]:
    return [e for e in load_manifest(directory) if e["model"] == model_name]




def resolve(model_name: str, spec, directory=None) -> tuple[Path, dict | None]:
    """Turn ``pretrained=`` into ``(file path, manifest entry or None)``."""
    directory = Path(directory or weights_dir())
    entries = load_manifest(directory)
    available = sorted(e["name"] for e in entries if e["model"] == model_name)
    if spec is True:
        mine = [e for e in entries if e["model"] == model_name]
        if not mine:
            everything = sorted(f"{e['name']} (model {e['model']})" for e in entries) or ["none yet"]
            raise CheckpointError(
                f"No pretrained checkpoint exists for {model_name!r}. Checkpoints that exist: "
                f"{', '.join(everything)}. Build it with pretrained=False, or pass a .weights.h5 path."
            )
        entry = next((e for e in mine if e.get("default")), mine[0])
        return directory / entry["file"], entry
    if isinstance(spec, (str, os.PathLike)):
        spec_str = str(spec)
        by_name = {e["name"]: e for e in entries}
        if spec_str in by_name:
            entry = by_name[spec_str]
            if entry["model"] != model_name:
                raise CheckpointError(
                    f"Checkpoint {spec_str!r} is for model {entry['model']!r}, not {model_name!r}. "
                    f"Checkpoints for {model_name!r}: {available or 'none'}."
                )
            return directory / entry["file"], entry
        if spec_str.endswith(".h5") or os.sep in spec_str or os.path.exists(spec_str):
            path = Path(spec_str)
            if not path.exists():
                raise CheckpointError(f"Weights file {path} does not exist.")
            return path, None
        raise CheckpointError(
            f"Unknown checkpoint {spec_str!r} for {model_name!r}; available: {available or 'none'} "
            f"(or pass a path to a .weights.h5 file)."
        )
    raise CheckpointError(f"pretrained must be False, True, a checkpoint name or a file path; got {spec!r}.")


def verify(path: Path, entry: dict | None) -> None:
    if not Path(path).exists():
        raise CheckpointError(
            f"Checkpoint file {path} is missing. It ships in the repository's weights/ folder; "
            f"set {WEIGHTS_DIR_ENV} if you keep the files elsewhere."
        )
    if entry is not None:
        digest = sha256_of(path)
        if digest != entry["sha256"]:
            raise CheckpointError(
                f"Checkpoint {path} is corrupt or was modified: sha256 {digest} does not match the "
                f"manifest's {entry['sha256']} for {entry['name']!r}. Restore the file from the repository."
            )


def load_weights_checked(model, path) -> None:
    """``model.load_weights`` that refuses, clearly, a file for another architecture."""
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        raise CheckpointError(f"{path} is not a readable HDF5 weights file: {exc}") from exc
    try:
        model.load_weights(str(path))
    except Exception as exc:  # keras raises ValueError with layer-level detail
        raise CheckpointError(
            f"Checkpoint {path} does not fit model {model.name!r} (its variables differ in number "
            f"or shape from the model's: was it saved from another architecture or other "
            f"num_classes/input settings?). Keras said: {exc}"
        ) from exc


def load_pretrained(model, model_name: str, spec, directory=None):
    path, entry = resolve(model_name, spec, directory)
    verify(path, entry)
    if entry is not None and "params" in entry and entry["params"] != model.count_params():
        raise CheckpointError(
            f"Checkpoint {entry['name']!r} holds a model with {entry['params']:,} parameters but the "
            f"model built has {model.count_params():,}: build it with the checkpoint's settings "
            f"(e.g. num_classes, include_top) to load these weights."
        )
    load_weights_checked(model, path)
    return model


def transfer_backbone(source, target, changed=()) -> list[str]:
    """Copy ``source``'s weights into ``target`` layer by layer (matched by name).

    For fine-tuning: ``target`` is the same architecture with another head
    (``num_classes``, ``include_top=False``...).  Layers of ``target`` missing from
    ``source`` or whose weight shapes differ are left at their initialization and
    returned (the new head); every other layer of ``target`` is copied.  Refuses
    (``CheckpointError``) when nothing but the head should differ yet a layer with
    weights before the head does not fit.
    """
    by_name = {layer.name: layer for layer in source.layers}
    fresh = []
    for layer in target.layers:
        if not layer.weights:
            continue
        other = by_name.get(layer.name)
        if other is None or [tuple(w.shape) for w in other.weights] != [tuple(w.shape) for w in layer.weights]:
            fresh.append(layer.name)
            continue
        layer.set_weights(other.get_weights())
    copied = sum(1 for layer in target.layers if layer.weights) - len(fresh)
    head_like = [n for n in fresh if any(target.get_layer(n) is l for l in target.layers[-3:])]
    if len(fresh) > len(head_like) or copied == 0:
        raise CheckpointError(
            f"Cannot transfer the checkpoint into {target.name!r}: layers {fresh} do not match the "
            f"checkpoint's (changed arguments: {list(changed)}); only the classifier head may differ."
        )
    if fresh:
        import warnings

        warnings.warn(
            f"{target.name}: loaded the pretrained backbone; {fresh} left at initialization "
            f"(changed: {', '.join(changed)}). Train the new head before use.",
            stacklevel=3,
        )
    return fresh


TRAINING_STATE_GROUPS = ("optimizer",)


def save_inference_copy(src, dst, float16=True) -> None:
    """Copy a Keras ``.weights.h5`` file without its training state.

    The model's variables (``layers``/``vars`` groups) are kept; the optimizer's
    slots that ``model.save_weights`` writes for a compiled model (Adam moments:
    twice the model's size) are dropped.  With ``float16`` every float32 array
    is stored as float16; Keras casts on load, so the copy loads into float32
    models on any backend.  Use float16 where the metric does not move (check
    with ``hadamard-zoo eval``).
    """
    import h5py
    import numpy as np

    with h5py.File(src, "r") as fi, h5py.File(dst, "w") as fo:
        for key, value in fi.attrs.items():
            fo.attrs[key] = value

        def copy(name, obj):
            if name.split("/")[0] in TRAINING_STATE_GROUPS:
                return
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                if float16 and getattr(data, "dtype", None) == np.float32:
                    data = data.astype(np.float16)
                fo.create_dataset(name, data=data)
                target = fo[name]
            else:
                target = fo.require_group(name)
            for key, value in obj.attrs.items():
                target.attrs[key] = value

        fi.visititems(copy)


def publish(run_dir, directory=None, float16=True, before=None, **extra) -> dict:
    """Add a finished training run to ``weights/``: copy its final weights
    without optimizer state (float16 by default), hash them and write its entry into the manifest,
    replacing an entry of the same name; the train command is prefixed with the
    run's ``KERAS_BACKEND``; a republished tag keeps its place.  ``extra`` adds or overrides fields
    (e.g. ``device=...``, ``notes=...``).  ``before`` names an entry the new one is placed in front
    of (a new default goes before the checkpoint it replaces, see :func:`retag`).  Returns the entry.
    """
    run_dir = Path(run_dir)
    directory = Path(directory or weights_dir())
    results = json.loads((run_dir / "results.json").read_text())
    entry = dict(results["manifest_entry"])
    if "name" in extra and extra["name"] != entry["name"]:  # published under another tag: its own file
        extra.setdefault("file", f"{extra['name']}.weights.h5")
        extra.setdefault("eval_command", _tag_as_word(entry["name"]).sub(extra["name"], entry["eval_command"]))
    entry.update(extra)
    manifest_path = directory / "manifest.json"
    entries = load_manifest(directory)
    names = [e["name"] for e in entries]
    if before is not None and before not in names:  # checked before anything in weights/ is written
        raise CheckpointError(f"publish(before={before!r}): no such entry in {manifest_path}; "
                              f"known: {', '.join(names)}.")
    taken = {e["file"]: e["name"] for e in entries if e["name"] != entry["name"]}
    if entry["file"] in taken:
        raise CheckpointError(f"publish: {entry['file']} is the file of {taken[entry['file']]!r}; "
                              f"retag that checkpoint first (hadamard_zoo.pretrained.retag) or publish under another name.")
    src = Path(results.get("final_weights") or run_dir / "final.weights.h5")
    if not src.exists():
        src = run_dir / "final.weights.h5"
    dst = directory / entry["file"]
    directory.mkdir(parents=True, exist_ok=True)
    save_inference_copy(src, dst, float16=float16)
    entry["storage_dtype"] = "float16" if float16 else "float32"
    entry["sha256"] = sha256_of(dst)
    command, backend = entry.get("train_command", ""), entry.get("backend")
    if backend and command and not command.startswith("KERAS_BACKEND="):  # numerics differ by backend: name it
        entry["train_command"] = f"KERAS_BACKEND={backend} {command}"
    if entry.get("default"):
        for e in entries:
            if e["model"] == entry["model"]:
                e["default"] = False
    if entry["name"] in names:  # republishing a tag keeps its place in the manifest
        entries[names.index(entry["name"])] = entry
    elif before is not None:
        entries.insert(names.index(before), entry)
    else:
        entries.append(entry)
    _write_manifest(directory, entries)
    return entry


def _tag_as_word(name):
    """A regex for checkpoint tag ``name`` as a whole word of a command line (``eval name``,
    ``--init-weights name``, ``--init-weights=name``, a soup's ingredient): not the start of a longer
    tag (``name_stage2``) nor the end of a path (``runs/name``)."""
    return re.compile(r"(?<=[\s=])" + re.escape(name) + r"(?=\s|$)")


def _write_manifest(directory, entries) -> None:
    (Path(directory) / "manifest.json").write_text(json.dumps({"checkpoints": entries}, indent=2) + "\n")


def retag(name: str, new_name: str, directory=None, **extra) -> dict:
    """Rename checkpoint ``name`` to ``new_name``: its file, manifest entry and eval command.

    The usual step before publishing a better run under a model's default tag: the old default
    keeps its file and hash under the new name and stops being the default; ``extra`` adds or
    overrides fields (e.g. ``notes=...``).  Train commands of other entries that start from
    ``name`` (``--init-weights name``, or ``hadamard-zoo soup MODEL ... name ...`` and its ``soup_of``
    list) are rewritten to ``new_name``, so they stay reproducible.
    The file is renamed, not copied (``git add -A weights`` then records a rename).  Returns the
    renamed entry.  Raises :class:`CheckpointError` if ``name`` is unknown or ``new_name`` taken.
    """
    directory = Path(directory or weights_dir())
    entries = load_manifest(directory)
    names = [e["name"] for e in entries]
    if name not in names:
        raise CheckpointError(f"retag: no checkpoint named {name!r} in {directory / 'manifest.json'}; "
                              f"known: {', '.join(names)}.")
    if new_name in names:
        raise CheckpointError(f"retag: {new_name!r} is already in {directory / 'manifest.json'}; choose another name.")
    entry = entries[names.index(name)]
    old_file = directory / entry["file"]
    new_file = directory / entry["file"].replace(name, new_name, 1)
    if new_file == old_file or new_file.exists():
        raise CheckpointError(f"retag: cannot rename {old_file.name} for {new_name!r} "
                              f"({new_file.name} exists or the file name does not contain {name!r}).")
    if not old_file.exists():
        raise CheckpointError(f"retag: {old_file} (the file of {name!r}) is missing.")
    old_file.rename(new_file)
    as_word = _tag_as_word(name)
    entry.update(name=new_name, file=new_file.name, default=False,
                 eval_command=as_word.sub(new_name, entry["eval_command"]))
    entry.update(extra)
    for other in entries:
        other["train_command"] = as_word.sub(new_name, other["train_command"])
        if "soup_of" in other:  # a soup's ingredients (hadamard_zoo.training.soup)
            other["soup_of"] = [new_name if tag == name else tag for tag in other["soup_of"]]
    _write_manifest(directory, entries)
    return entry
