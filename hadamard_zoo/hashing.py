"""File hashes shared by the checkpoint readers and writers.

``sha256_of(path) -> str``: the 64-character lowercase hex sha256 of a file's
bytes, read 1 MiB at a time (a checkpoint of hundreds of MB never sits in
memory whole).  ``weights/manifest.json`` records this digest for each
checkpoint; :mod:`hadamard_zoo.pretrained` compares it before loading and
:mod:`hadamard_zoo.release` writes it when publishing.
"""

from __future__ import annotations

import hashlib

_BLOCK = 1 << 20


def sha256_of(path) -> str:
    """Hex sha256 (64 characters) of the file at ``path`` (str or os.PathLike)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()
