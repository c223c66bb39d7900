"""Pretrained checkpoints, read side: the manifest, hash verification and loading.

``weights/manifest.json`` holds one entry per checkpoint::

    {"name": "ncp_resnet_cifar_small.cifar10", "model": "ncp_resnet_cifar_small",
     "default": true, "file": "ncp_resnet_cifar_small.cifar10.weights.h5",
     "sha256": "...", "dataset": "CIFAR-10 (JPEG q75 copy)", "split": "test",
     "metric": "top1", "value": 0.91, "params": 123, "train_command": "...",
     "eval_command": "...", "backend": "jax", "date": "2026-11-27"}

Nothing is ever downloaded: files are read from the ``weights/`` folder (or
``HADAMARD_ZOO_WEIGHTS``), their sha256 is checked before loading, and a file
whose variables do not fit the model is refused with a message that says so.

A load resolves its ``pretrained=`` spec once, with :func:`resolve`, into a
:class:`ResolvedCheckpoint` ``(path, entry)`` that :func:`load_pretrained` and
:func:`load_backbone` accept in place of the spec.

Writing checkpoints (``publish``, ``retag``, ``save_inference_copy``) lives in
:mod:`hadamard_zoo.release`; the old names here still work, with a
``DeprecationWarning``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import NamedTuple

from hadamard_zoo.hashing import sha256_of  # also reached as pretrained.sha256_of

WEIGHTS_DIR_ENV = "HADAMARD_ZOO_WEIGHTS"
REQUIRED_KEYS = (
    "name", "model", "file", "sha256", "dataset", "split", "metric", "value",
    "params", "train_command", "eval_command", "backend", "date",
)
#: A classifier's head is among its last ``HEAD_DEPTH`` layers (pooling, dropout, ``head``):
#: only layers there may differ from the checkpoint when loading a backbone.
HEAD_DEPTH = 3

# Release tooling that used to live here: name -> the module that has it now.
_MOVED = {
    "save_inference_copy": "hadamard_zoo.release",
    "publish": "hadamard_zoo.release",
    "retag": "hadamard_zoo.release",
    "TRAINING_STATE_GROUPS": "hadamard_zoo.release",
}


def __getattr__(name):
    """Deprecated aliases: ``pretrained.publish`` etc. warn and return :mod:`hadamard_zoo.release`'s."""
    if name in _MOVED:
        import importlib

        target = _MOVED[name]
        warnings.warn(f"hadamard_zoo.pretrained.{name} moved to {target}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(target), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


class ResolvedCheckpoint(NamedTuple):
    """A ``pretrained=`` spec, found: what one load reads.

    ``path``: the ``.weights.h5`` file (not yet verified); ``entry``: its manifest
    entry (a dict with :data:`REQUIRED_KEYS`), or None for a file given by path.
    A tuple, so ``path, entry = resolve(...)`` works.
    """

    path: Path
    entry: dict | None

    @property
    def model_args(self) -> dict:
        """Builder arguments the weights need (the entry's ``model_args``, e.g. an LM's tokenizer); ``{}`` if none."""
        return dict((self.entry or {}).get("model_args") or {})


def resolve(model_name: str, spec, directory=None) -> ResolvedCheckpoint:
    """Turn ``pretrained=`` into ``ResolvedCheckpoint(file path, manifest entry or None)``.

    ``spec``: True (the model's default checkpoint), a tag of the manifest, a path to a
    ``.weights.h5`` file, or an already resolved checkpoint (returned as it is).  Reads the
    manifest once; raises :class:`CheckpointError` naming what exists when nothing fits.
    """
    if isinstance(spec, ResolvedCheckpoint):
        return spec
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
        return ResolvedCheckpoint(directory / entry["file"], entry)
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
            return ResolvedCheckpoint(directory / entry["file"], entry)
        if spec_str.endswith(".h5") or os.sep in spec_str or os.path.exists(spec_str):
            path = Path(spec_str)
            if not path.exists():
                raise CheckpointError(f"Weights file {path} does not exist.")
            return ResolvedCheckpoint(path, None)
        raise CheckpointError(
            f"Unknown checkpoint {spec_str!r} for {model_name!r}; available: {available or 'none'} "
            f"(or pass a path to a .weights.h5 file)."
        )
    raise CheckpointError(f"pretrained must be False, True, a checkpoint name or a file path; got {spec!r}.")


def _resolved(model_name, spec, directory) -> ResolvedCheckpoint:
    return spec if isinstance(spec, ResolvedCheckpoint) else resolve(model_name, spec, directory)


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


def _check_readable(path) -> None:
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        raise CheckpointError(f"{path} is not a readable HDF5 weights file: {exc}") from exc


def load_weights_checked(model, path) -> None:
    """``model.load_weights`` that refuses, clearly, a file for another architecture."""
    _check_readable(path)
    try:
        model.load_weights(str(path))
    except Exception as exc:  # keras raises ValueError with layer-level detail
        raise CheckpointError(
            f"Checkpoint {path} does not fit model {model.name!r} (its variables differ in number "
            f"or shape from the model's: was it saved from another architecture or other "
            f"num_classes/input settings?). Keras said: {exc}"
        ) from exc


def load_pretrained(model, model_name: str, spec, directory=None):
    """Verify and load checkpoint ``spec`` (anything :func:`resolve` takes, or its result) into ``model``.

    ``model`` must be built with the checkpoint's settings: its parameter count is compared with
    the entry's ``params`` before loading.  Returns ``model``.
    """
    path, entry = _resolved(model_name, spec, directory)
    verify(path, entry)
    if entry is not None and "params" in entry and entry["params"] != model.count_params():
        raise CheckpointError(
            f"Checkpoint {entry['name']!r} holds a model with {entry['params']:,} parameters but the "
            f"model built has {model.count_params():,}: build it with the checkpoint's settings "
            f"(e.g. num_classes, include_top) to load these weights."
        )
    load_weights_checked(model, path)
    return model


def load_backbone(model, model_name: str, spec, directory=None, changed=()) -> list[str]:
    """Load checkpoint ``spec`` into ``model`` built with another head; returns the layers left fresh.

    For fine-tuning (timm's convention): ``model`` is the checkpoint's architecture with other
    head arguments (``num_classes``, ``include_top=False``, ``pooling``...).  Every layer
    before the last :data:`HEAD_DEPTH` must fit the checkpoint and is loaded (else
    :class:`CheckpointError`, naming ``changed``); each layer with weights among the last
    ``HEAD_DEPTH`` is loaded where its variables fit, otherwise left at its initialization
    and named in the returned list (with a ``UserWarning``: train it before use).  Keras
    matches the file's variables to layers as ``model.load_weights`` does, so the backbone's
    values are exactly the checkpoint's; the model is built once, by the caller.
    """
    path, entry = _resolved(model_name, spec, directory)
    verify(path, entry)
    _check_readable(path)
    weighted = [layer for layer in model.layers if layer.weights]
    head = [layer for layer in model.layers[-HEAD_DEPTH:] if layer.weights]
    try:
        model.load_weights(str(path), objects_to_skip=head)
    except Exception as exc:  # keras lists the layers that did not fit
        raise CheckpointError(
            f"Cannot load the backbone of checkpoint {path} into {model.name!r} (changed arguments: "
            f"{list(changed)}): only the classifier head (the last {HEAD_DEPTH} layers) may differ "
            f"from the checkpoint's. Keras said: {exc}"
        ) from exc
    import keras

    fresh = []
    for layer in head:  # each head layer alone: loaded where it fits (e.g. only the activation changed)
        initial = [keras.ops.convert_to_numpy(v) for v in layer.variables]
        others = [other for other in model.layers if other is not layer]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.load_weights(str(path), objects_to_skip=others)
        except Exception:
            for variable, value in zip(layer.variables, initial):  # undo a partial assignment
                variable.assign(value)
            fresh.append(layer.name)
    if weighted and len(fresh) == len(weighted):
        raise CheckpointError(
            f"Cannot load checkpoint {path} into {model.name!r}: none of its layers fit "
            f"(changed arguments: {list(changed)}); only the classifier head may differ."
        )
    if fresh:
        warnings.warn(
            f"{model.name}: loaded the pretrained backbone; {fresh} left at initialization "
            f"(changed: {', '.join(changed)}). Train the new head before use.",
            stacklevel=3,
        )
    return fresh


def transfer_backbone(source, target, changed=()) -> list[str]:
    """Copy ``source``'s weights into ``target`` layer by layer (matched by name).

    Two built models; :func:`load_backbone` does the same from a checkpoint file without
    building the checkpoint's model.  For fine-tuning: ``target`` is the same architecture with another head
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
        warnings.warn(
            f"{target.name}: loaded the pretrained backbone; {fresh} left at initialization "
            f"(changed: {', '.join(changed)}). Train the new head before use.",
            stacklevel=3,
        )
    return fresh
