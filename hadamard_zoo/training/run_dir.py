"""The run folder: ``runs/<model>/`` and what is written into it.

``run.json`` (what was run), ``history.csv`` (one row per epoch), ``checkpoints/epoch_NNN.keras``
(full model + optimizer state, for resuming), ``best.weights.h5``, ``final.weights.h5``,
``learning_curve.png`` and ``results.json`` (final metrics and a ``weights/manifest.json`` entry).
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import numpy as np

from hadamard_zoo.training import swa
from hadamard_zoo.training.recipes import RecipeError


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
