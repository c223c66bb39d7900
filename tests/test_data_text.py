"""Tiny Shakespeare reader, character vocabulary and next-character windows."""

from pathlib import Path

import numpy as np
import pytest

from hadamard_zoo.data import _common, text
from hadamard_zoo.data._common import DatasetError, DatasetNotFoundError

SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 3


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.delenv(_common.DATA_ENV, raising=False)


def write_sample(root, body=SAMPLE):
    path = root / "text" / "tinyshakespeare.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def test_split_is_first_90_last_10(tmp_path):
    write_sample(tmp_path)
    train, val = text.load_tiny_shakespeare(tmp_path, verify=False)
    n = int(len(SAMPLE) * 0.9)
    assert train == SAMPLE[:n] and val == SAMPLE[n:]
    # the file itself, or its folder, also works as data_dir
    assert text.load_tiny_shakespeare(tmp_path / "text" / "tinyshakespeare.txt", verify=False) == (train, val)
    assert text.load_tiny_shakespeare(tmp_path / "text", verify=False) == (train, val)


def test_verify_and_missing_messages(tmp_path):
    write_sample(tmp_path)
    with pytest.raises(DatasetError, match=r"characters, expected 1,115,394.*verify=False"):
        text.load_tiny_shakespeare(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"(?s)tinyshakespeare.txt.*HADAMARD_ZOO_DATA"):
        text.load_tiny_shakespeare(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="val_fraction"):
        text.split_text("abc", 1.5)


def test_char_windows_shift_by_one():
    ids = np.arange(20)
    x, y = text.char_windows(ids, context_length=5)
    assert x.shape == y.shape == (3, 5)
    np.testing.assert_array_equal(x[1], [5, 6, 7, 8, 9])
    np.testing.assert_array_equal(y, x + 1)
    x2, _ = text.char_windows(ids, 5, stride=2, limit=4)
    assert x2[:, 0].tolist() == [0, 2, 4, 6]
    with pytest.raises(ValueError, match="needs at least 11"):
        text.char_windows(ids[:10], 10)


@pytest.mark.data
def test_real_tiny_shakespeare(shared_datasets):
    path = Path(shared_datasets) / "text" / "tinyshakespeare.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    train, val = text.load_tiny_shakespeare(shared_datasets)  # verify: sha256, length, 65 characters
    assert (len(train), len(val)) == (1_003_854, 111_540)
    assert len(set(train + val)) == 65
    assert train.startswith("First Citizen:")
