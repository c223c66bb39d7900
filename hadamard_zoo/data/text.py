"""Character-level text data: Tiny Shakespeare and next-character windows.

>>> from hadamard_zoo.text import CharTokenizer
>>> train_text, val_text = load_tiny_shakespeare()            # first 90% / last 10%
>>> tok = CharTokenizer.from_text(train_text + val_text)       # 65 characters
>>> x, y = char_windows(tok.encode(val_text), context_length=256)   # y is x shifted by one
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hadamard_zoo.checks import check_positive_int
from hadamard_zoo.data import _common
from hadamard_zoo.data._common import DatasetError, check

TINY_SHAKESPEARE_FILE = "text/tinyshakespeare.txt"
TINY_SHAKESPEARE_CHARS = 1_115_394
TINY_SHAKESPEARE_VOCAB = 65
TINY_SHAKESPEARE_HOW = (
    "it is ../shared/datasets/text/tinyshakespeare.txt on the project's machines (karpathy/char-rnn's "
    "data/tinyshakespeare/input.txt, MIT)."
)


def read_text(path) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc}).") from exc


def split_text(text: str, val_fraction=0.1):
    """``(text[:n], text[n:])`` with ``n = int(len(text) * (1 - val_fraction))`` (nanoGPT's split)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    n = int(len(text) * (1.0 - val_fraction))
    return text[:n], text[n:]


def tiny_shakespeare_path(data_dir=None) -> Path:
    """Where ``tinyshakespeare.txt`` is read from (a ``DatasetNotFoundError`` naming the paths tried if nowhere)."""
    return _common.find_file(
        TINY_SHAKESPEARE_FILE, data_dir, how_to_get=TINY_SHAKESPEARE_HOW, what="Tiny Shakespeare (tinyshakespeare.txt)"
    )


def load_tiny_shakespeare(data_dir=None, verify=True, val_fraction=0.1):
    """Tiny Shakespeare as ``(train_text, val_text)``: the first 90% and the last 10%.

    Args:
        data_dir: folder holding ``text/tinyshakespeare.txt`` (or ``tinyshakespeare.txt``,
            or the file itself); see :mod:`hadamard_zoo.data._common` for the defaults.
        verify: check the sha256 (datasets README), the length (1,115,394 characters)
            and the 65 distinct characters.
        val_fraction: the fraction at the end kept for validation (0.1 is the usual split).
    """
    path = tiny_shakespeare_path(data_dir)
    text = read_text(path)
    if verify:
        check(len(text) == TINY_SHAKESPEARE_CHARS, path, f"has {len(text):,} characters, expected {TINY_SHAKESPEARE_CHARS:,}")
        n_chars = len(set(text))
        check(n_chars == TINY_SHAKESPEARE_VOCAB, path, f"has {n_chars} distinct characters, expected {TINY_SHAKESPEARE_VOCAB}")
        _common.check_sha256(path)
    return split_text(text, val_fraction)


def char_windows(ids, context_length: int, stride=None, limit=None):
    """Next-character training pairs ``x, y`` of shape ``(N, context_length)``, ``y[:, t] = x[:, t+1]``'s source.

    Windows start every ``stride`` characters (default ``context_length``: non-overlapping,
    covering the text once, the usual validation set-up). ``limit`` keeps the first N.
    """
    ids = np.asarray(ids)
    check_positive_int("context_length", context_length)
    stride = stride or context_length
    n = (len(ids) - 1 - context_length) // stride + 1
    if n < 1:
        raise ValueError(
            f"the text has {len(ids)} characters; a window of context_length={context_length} needs at least "
            f"{context_length + 1}."
        )
    if limit is not None:
        n = min(n, int(limit))
    starts = np.arange(n) * stride
    offsets = np.arange(context_length)
    x = ids[starts[:, None] + offsets]
    y = ids[starts[:, None] + offsets + 1]
    return x.astype(np.int32), y.astype(np.int32)
