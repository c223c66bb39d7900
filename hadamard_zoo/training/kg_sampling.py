"""Negative-sampling batches of the reference RotatE trainer, as a ``keras.utils.PyDataset``.

The reference (DeepGraphLearning/KnowledgeGraphEmbedding, ``codes/dataloader.py``) trains with:

* batches of ``B`` positive triples, each with ``n`` negatives that corrupt the
  head (head-batch) or the tail (tail-batch); the two kinds alternate batch by
  batch (tail-batch first), each drawn from its own shuffled pass over the
  training triples;
* negatives drawn uniformly over all entities, dropping candidates that make a
  *training* triple true (``true_head`` / ``true_tail``), until ``n`` remain;
* subsampling weights ``1 / sqrt(count(h, r) + count(t, r^-1))`` with counts
  starting at 4.

One option departs from the reference for speed: ``shared_negatives=True`` draws one set
of ``n`` negatives for the whole batch (scored as one ``(B, n)`` block by the chunked
op) and masks, instead of resampling, the pairs that are known training triples.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from hadamard_zoo.checks import check_positive_int
from hadamard_zoo.models.architectures.rotate import HEAD_BATCH, TAIL_BATCH

_MODES = {"both": (TAIL_BATCH, HEAD_BATCH), "tail": (TAIL_BATCH,), "head": (HEAD_BATCH,)}


def subsampling_weights(triples, start=4):
    """``1 / sqrt(count(h, r) + count(t, r^-1))`` per triple, counts starting at ``start``.

    The word2vec-style weights of the reference's ``count_frequency``: a partial
    triple seen ``c`` times has count ``start - 1 + c``.
    """
    triples = np.asarray(triples, dtype=np.int64)
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    num_rel = int(r.max()) + 1 if len(r) else 1
    counts = []
    for ent in (h, t):
        key = ent * num_rel + r
        _, inverse, cnt = np.unique(key, return_inverse=True, return_counts=True)
        counts.append(cnt[inverse.reshape(-1)] + (start - 1))
    return (1.0 / np.sqrt(counts[0] + counts[1])).astype(np.float32)


class TripleIndex:
    """Membership test for ``(h, r, t)`` triples.

    Sorted int64 keys + ``searchsorted``, behind a cheap necessary condition
    (``h`` is a head and ``t`` a tail of ``r`` somewhere), which rules most random
    candidates out with two table lookups.
    """

    _MAX_PREFILTER = 64_000_000  # entries of the two (relations, entities) bool tables

    def __init__(self, triples, num_entities, num_relations):
        self.num_entities = int(num_entities)
        self.num_relations = int(num_relations)
        triples = np.asarray(triples, dtype=np.int64).reshape(-1, 3)
        self.keys = np.unique(self.key(triples.T))
        self.head_of = self.tail_of = None
        if self.num_relations * self.num_entities <= self._MAX_PREFILTER:
            self.head_of = np.zeros((self.num_relations, self.num_entities), bool)
            self.tail_of = np.zeros((self.num_relations, self.num_entities), bool)
            self.head_of[triples[:, 1], triples[:, 0]] = True
            self.tail_of[triples[:, 1], triples[:, 2]] = True

    def key(self, hrt):
        h, r, t = (np.asarray(x, dtype=np.int64) for x in hrt)
        return (h * self.num_relations + r) * self.num_entities + t

    def _search(self, h, r, t):
        k = self.key((h, r, t))
        pos = np.searchsorted(self.keys, k)
        return self.keys[np.minimum(pos, self.keys.size - 1)] == k

    def contains(self, h, r, t):
        """Element-wise: is ``(h, r, t)`` (broadcast) one of the triples?"""
        h, r, t = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (h, r, t)))
        if self.keys.size == 0:
            return np.zeros(h.shape, dtype=bool)
        if self.head_of is None:
            return self._search(h, r, t)
        maybe = self.head_of[r, h] & self.tail_of[r, t]
        out = np.zeros(h.shape, dtype=bool)
        out[maybe] = self._search(h[maybe], r[maybe], t[maybe])
        return out


class NegativeSamplingDataset(keras.utils.PyDataset):
    """Training batches of the reference RotatE trainer, for ``model.fit``.

    Each item is a dict:

    * ``triples`` ``(B, 3)`` int32: the positive ``(head, relation, tail)`` ids;
    * ``negatives`` ``(B, n)`` int32 corrupting entities (or ``(n,)`` when shared);
    * ``mode`` ``(B,)`` int32: 0 tail-batch (the tail is replaced), 1 head-batch;
    * ``subsampling_weight`` ``(B,)`` float32 (ones when ``subsampling=False``);
    * ``negative_mask`` ``(B, n)`` float32, only with ``shared_negatives``: 0 where
      the shared negative makes a known triple with that row.

    Args:
        triples: ``(N, 3)`` training triples (ids).
        num_entities, num_relations: id ranges (``num_relations`` defaults to max + 1).
        batch_size, num_negatives: B and n.
        shared_negatives: one set of ``n`` negatives per batch (faster; masked, not
            resampled). Default False: ``n`` per positive, as the reference.
        filter_negatives: drop (per-positive) or mask (shared) negatives that form a
            triple of ``true_triples`` (reference: True, against the training triples).
        true_triples: triples known to be true for that filter (default ``triples``).
        subsampling: the reference's subsampling weights (False gives ones).
        modes: ``"both"`` (alternate tail-batch / head-batch, as the reference),
            ``"tail"`` or ``"head"``.
        steps_per_epoch: batches per ``fit`` epoch (default one pass: ``ceil(N / B)``).
        seed: batches are a deterministic function of ``(seed, global step)``.
        start_step: the global step of the first batch (resume a stream).
    """

    def __init__(
        self,
        triples,
        num_entities,
        num_relations=None,
        batch_size=1024,
        num_negatives=256,
        shared_negatives=False,
        filter_negatives=True,
        true_triples=None,
        subsampling=True,
        modes="both",
        steps_per_epoch=None,
        seed=0,
        start_step=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        triples = np.asarray(triples, dtype=np.int64)
        if triples.ndim != 2 or triples.shape[1] != 3 or len(triples) == 0:
            raise ValueError(f"triples must be a non-empty (N, 3) array of ids, got shape {triples.shape}.")
        if modes not in _MODES:
            raise ValueError(f"modes must be one of {sorted(_MODES)}, got {modes!r}.")
        for name, value in (("batch_size", batch_size), ("num_negatives", num_negatives), ("num_entities", num_entities)):
            check_positive_int(name, value)
        if num_relations is None:
            num_relations = int(triples[:, 1].max()) + 1
        ents = triples[:, [0, 2]]
        if ents.min() < 0 or ents.max() >= num_entities or triples[:, 1].min() < 0 or triples[:, 1].max() >= num_relations:
            raise ValueError(
                f"triple ids out of range: entities must be in [0, {num_entities}), relations in [0, {num_relations})."
            )
        self.triples = triples
        self.num_entities = int(num_entities)
        self.num_relations = int(num_relations)
        self.batch_size = int(batch_size)
        self.num_negatives = int(num_negatives)
        self.shared_negatives = bool(shared_negatives)
        self.filter_negatives = bool(filter_negatives)
        self.subsampling = bool(subsampling)
        self.modes = _MODES[modes]
        self.seed = int(seed)
        self.start_step = int(start_step)
        self.steps_per_epoch = int(steps_per_epoch or math.ceil(len(triples) / self.batch_size))
        self.weights = (subsampling_weights(triples) if self.subsampling
                        else np.ones(len(triples), np.float32))
        self.index = TripleIndex(triples if true_triples is None else true_triples, num_entities, num_relations)
        self._epoch = 0
        self._perm_cache = {}

    def __len__(self):
        return self.steps_per_epoch

    def on_epoch_end(self):
        self._epoch += 1

    def set_epoch(self, epoch):
        """Start epoch ``epoch`` (``EpochSync`` calls this, so a resumed run draws an uninterrupted run's batches)."""
        self._epoch = int(epoch)

    # ---------------------------------------------------------- sampling
    def global_step(self, idx):
        return self.start_step + self._epoch * self.steps_per_epoch + int(idx)

    def _permutation(self, stream, cycle):
        key = (stream, cycle)
        if key not in self._perm_cache:
            if len(self._perm_cache) > 8:
                self._perm_cache.clear()
            rng = np.random.default_rng([self.seed, 1 + stream, cycle])
            self._perm_cache[key] = rng.permutation(len(self.triples))
        return self._perm_cache[key]

    def positive_indices(self, step):
        """Rows of ``triples`` in batch ``step`` and its mode (each mode reads its own shuffled stream)."""
        mode = self.modes[step % len(self.modes)]
        j = step // len(self.modes)
        n = len(self.triples)
        pos = np.arange(j * self.batch_size, (j + 1) * self.batch_size)
        cycles, offsets = pos // n, pos % n
        idx = np.empty(self.batch_size, dtype=np.int64)
        for c in np.unique(cycles):
            sel = cycles == c
            idx[sel] = self._permutation(mode, int(c))[offsets[sel]]
        return idx, mode

    def _is_true(self, pos, cand, mode):
        h, r, t = pos[:, 0:1], pos[:, 1:2], pos[:, 2:3]
        if mode == HEAD_BATCH:
            return self.index.contains(cand, r, t)
        return self.index.contains(h, r, cand)

    def _per_positive(self, pos, mode, rng):
        """``n`` negatives per positive, each uniform over the entities that make no known triple.

        The reference draws ``2n``, drops the true ones and keeps the first ``n``
        (repeating when short): ``n`` independent draws from the uniform law over
        the non-true entities.  Redrawing only the rejected slots gives the same law
        without sorting (the rejected slots are few).
        """
        b, n = len(pos), self.num_negatives
        neg = rng.integers(0, self.num_entities, size=(b, n))
        if not self.filter_negatives:
            return neg
        rows, cols = np.nonzero(self._is_true(pos, neg, mode))
        for _ in range(1000):
            if rows.size == 0:
                return neg
            neg[rows, cols] = rng.integers(0, self.num_entities, size=rows.size)
            bad = self._is_true(pos[rows], neg[rows, cols][:, None], mode)[:, 0]
            rows, cols = rows[bad], cols[bad]
        raise ValueError(
            f"could not draw negatives for {len(np.unique(rows))} positive(s): (almost) every entity makes a "
            f"known triple with them. Use filter_negatives=False or more entities."
        )

    def batch(self, step):
        """The batch of global step ``step`` (a dict, see the class docstring)."""
        rows, mode = self.positive_indices(step)
        pos = self.triples[rows]
        rng = np.random.default_rng([self.seed, 0, step])
        x = {
            "triples": pos.astype(np.int32),
            "mode": np.full((len(pos),), mode, np.int32),
            "subsampling_weight": self.weights[rows],
        }
        if self.shared_negatives:
            neg = rng.integers(0, self.num_entities, size=self.num_negatives)
            if self.filter_negatives:
                mask = ~self._is_true(pos, neg[None, :], mode)
            else:
                mask = np.ones((len(pos), self.num_negatives), bool)
            x["negatives"] = neg.astype(np.int32)
            x["negative_mask"] = mask.astype(np.float32)
        else:
            x["negatives"] = self._per_positive(pos, mode, rng).astype(np.int32)
        return x

    def __getitem__(self, idx):
        if not 0 <= idx < len(self):
            raise IndexError(idx)
        return self.batch(self.global_step(idx))
