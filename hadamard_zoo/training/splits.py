"""Seeded index splits shared by training and evaluation (so their subsets agree)."""

from __future__ import annotations

import numpy as np


def split_indices(n, validation_split, seed):
    """``(train_idx, val_idx)`` in a seeded random order; the first ``k`` go to validation.

    The order is random (not sorted) so that ``limit`` can take a prefix without
    picking one class from class-sorted files.
    """
    k = int(validation_split) if validation_split >= 1 else int(round(n * validation_split))
    k = min(k, n - 1) if n > 1 else 0
    perm = np.random.default_rng(seed).permutation(n)
    return perm[k:], perm[:k]


def subset_indices(n, limit, seed=0):
    """All of ``range(n)``, or a seeded random ``limit`` of them in increasing order.

    Training's final test metric and :func:`hadamard_zoo.training.evaluate_checkpoint`
    use this same subset for a given ``limit``, so their values agree.
    """
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[: int(limit)])
