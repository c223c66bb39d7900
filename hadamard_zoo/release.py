"""Release tooling: writing checkpoints into ``weights/`` and their manifest entries.

This module owns every write to the weights folder (``weights/`` or
``$HADAMARD_ZOO_WEIGHTS``); :mod:`hadamard_zoo.pretrained` only reads it.

* :func:`save_inference_copy`: a ``.weights.h5`` without optimizer state
  (optionally float16) -- what ships.
* :func:`publish`: a finished run folder (``results.json`` + final weights) ->
  a shipped file, its sha256 and its manifest entry.
* :func:`retag`: rename a shipped checkpoint (file, entry, and every command
  line of the manifest that names it).

``weights/manifest.json`` is ``{"checkpoints": [entry, ...]}``; order matters
(listing order; a republished tag keeps its place).  One entry is a flat dict::

    {"name": "monet_cifar.cifar10",            # the tag: pretrained="monet_cifar.cifar10"
     "model": "monet_cifar",                   # registry name it loads into
     "default": true,                          # the model's pretrained=True (one per model)
     "file": "monet_cifar.cifar10.weights.h5", # in the weights folder
     "sha256": "<64 hex>",                     # of that file, checked before every load
     "storage_dtype": "float16",               # written by publish
     "dataset": "...", "split": "test", "metric": "top1", "value": 0.8802,
     "params": 2402074,                        # the built model's count_params()
     "model_args": {"num_classes": 10, ...},   # optional: builder arguments the weights need
     "train_command": "KERAS_BACKEND=jax hadamard-zoo train ...",
     "eval_command": "hadamard-zoo eval monet_cifar.cifar10",
     "backend": "jax", "date": "YYYY-MM-DD",
     "soup_of": ["tag", ...]}                  # optional: a soup's ingredients

:data:`hadamard_zoo.pretrained.REQUIRED_KEYS` lists the keys every entry must have.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from hadamard_zoo.hashing import sha256_of
from hadamard_zoo.pretrained import CheckpointError, load_manifest, weights_dir

#: Top-level groups of a Keras ``.weights.h5`` that hold training state, not the model's variables.
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
                              f"retag that checkpoint first (hadamard_zoo.release.retag) or publish under another name.")
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
