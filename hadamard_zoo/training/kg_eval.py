"""Evaluation of KG embeddings as the reference code does it (``KGEModel.test_step``).

* :func:`evaluate_ranking`: the *filtered* link-prediction metrics.  Every
  test triple ``(h, r, t)`` is asked twice, ``(h, r, ?)`` and ``(?, r, t)``; the
  true entity is ranked against all entities, leaving out the other entities
  that make a triple of train + valid + test true.  MRR, MR and HITS@1/3/10
  are averaged over the ``2 N`` queries (heads and tails together), as the
  reference does.  Scores come from the model's entity-chunked one-vs-all
  scoring (``score_all_tails`` / ``score_all_heads``), so WN18RR's 40,943
  entities never need a ``(B, E, k)`` tensor.
* :func:`evaluate_countries`: Countries' AUC-PR.  Each test triple
  ``(country, locatedin, region)`` is scored against every region of
  ``regions.list`` (5 candidates); labels are 1 for the true region; the
  average precision of all those pooled scores (scikit-learn's
  ``average_precision_score``, which the reference calls ``auc_pr``) is reported.

Ties (choices where the papers are silent): the reference sorts with
``torch.argsort`` whose order among equal scores is unspecified; here a tied
entity counts one half (``rank = 1 + #greater + #equal / 2``, the expected rank
under a random order), so a constant scorer gets the middle rank, not rank 1.
NaN scores rank last.
"""

from __future__ import annotations

import numpy as np
from keras import ops

METRICS = ("MRR", "MR", "HITS@1", "HITS@3", "HITS@10")


class _Groups:
    """For each key (e.g. ``(h, r)``), the entity ids of the true triples, in CSR form."""

    def __init__(self, keys, values):
        order = np.lexsort((values, keys))
        self.keys = keys[order]
        self.values = values[order]

    def ranges(self, query_keys):
        lo = np.searchsorted(self.keys, query_keys, side="left")
        hi = np.searchsorted(self.keys, query_keys, side="right")
        return lo, hi

    def rows_cols(self, query_keys):
        lo, hi = self.ranges(query_keys)
        lengths = hi - lo
        rows = np.repeat(np.arange(len(query_keys)), lengths)
        starts = np.repeat(lo - np.cumsum(np.r_[0, lengths[:-1]]), lengths)
        cols = self.values[np.arange(lengths.sum()) + starts]
        return rows, cols


def ranks_from_scores(scores, targets, filter_rows=None, filter_cols=None, ties="mean"):
    """Ranks of ``scores[i, targets[i]]`` among row ``i``, after removing filtered entries.

    Args:
        scores: ``(B, E)`` (higher is better).
        targets: ``(B,)`` the true entity of each row.
        filter_rows, filter_cols: entries to leave out (the target itself is always kept).
        ties: ``"mean"`` (``1 + #greater + #equal / 2``), ``"optimistic"`` or ``"pessimistic"``.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    scores[np.isnan(scores)] = -np.inf
    b = np.arange(len(targets))
    target_score = scores[b, targets].copy()
    if filter_rows is not None and len(filter_rows):
        scores[filter_rows, filter_cols] = -np.inf
    scores[b, targets] = np.nan  # excluded from both counts below
    greater = np.sum(scores > target_score[:, None], axis=1)
    equal = np.sum(scores == target_score[:, None], axis=1)
    if ties == "mean":
        return 1.0 + greater + equal / 2.0
    if ties == "optimistic":
        return 1.0 + greater
    if ties == "pessimistic":
        return 1.0 + greater + equal
    raise ValueError(f"ties must be 'mean', 'optimistic' or 'pessimistic', got {ties!r}.")


def metrics_from_ranks(ranks) -> dict:
    ranks = np.asarray(ranks, dtype=np.float64)
    return {
        "MRR": float(np.mean(1.0 / ranks)),
        "MR": float(np.mean(ranks)),
        "HITS@1": float(np.mean(ranks <= 1)),
        "HITS@3": float(np.mean(ranks <= 3)),
        "HITS@10": float(np.mean(ranks <= 10)),
    }


def evaluate_ranking(
    model,
    dataset,
    split="test",
    batch_size=64,
    filtered=True,
    ties="mean",
    triples=None,
    true_triples=None,
    per_side=False,
    verbose=0,
):
    """Filtered MRR / MR / HITS@1,3,10 over head and tail prediction (reference ``test_step``).

    Args:
        model: anything with ``score_all_tails(heads, relations)`` and
            ``score_all_heads(relations, tails)`` returning ``(B, E)`` scores
            (:class:`hadamard_zoo.models.architectures.rotate.RotatE`).
        dataset: a :class:`hadamard_zoo.data.kg.KGDataset`.
        split: ``"test"`` or ``"valid"`` (or ``"train"``).
        batch_size: queries scored at once (memory ``batch_size x E`` floats, plus
            the op's entity chunks).
        filtered: leave out the other true answers (train + valid + test); False
            gives the "raw" setting.
        ties: see :func:`ranks_from_scores`.
        triples, true_triples: override the queries / the filter set.
        per_side: also return ``tail_*`` and ``head_*`` metrics.

    Returns:
        ``{"MRR", "MR", "HITS@1", "HITS@3", "HITS@10"}`` averaged over the
        ``2 N`` queries (plus ``num_queries``).
    """
    queries = np.asarray(dataset.split(split) if triples is None else triples, dtype=np.int64)
    if queries.ndim != 2 or queries.shape[1] != 3:
        raise ValueError(f"triples must be (N, 3), got shape {queries.shape}.")
    num_rel = dataset.num_relations
    if filtered:
        known = np.asarray(dataset.all_true_triples() if true_triples is None else true_triples, dtype=np.int64)
        by_hr = _Groups(known[:, 0] * num_rel + known[:, 1], known[:, 2])
        by_rt = _Groups(known[:, 2] * num_rel + known[:, 1], known[:, 0])
    ranks = {"tail": [], "head": []}
    for start in range(0, len(queries), batch_size):
        q = queries[start : start + batch_size]
        h, r, t = q[:, 0], q[:, 1], q[:, 2]
        for side in ("tail", "head"):
            if side == "tail":
                scores = model.score_all_tails(h.astype(np.int32), r.astype(np.int32))
                targets, groups, keys = t, by_hr if filtered else None, h * num_rel + r
            else:
                scores = model.score_all_heads(r.astype(np.int32), t.astype(np.int32))
                targets, groups, keys = h, by_rt if filtered else None, t * num_rel + r
            scores = np.asarray(ops.convert_to_numpy(scores))
            rows = cols = None
            if groups is not None:
                rows, cols = groups.rows_cols(keys)
            ranks[side].append(ranks_from_scores(scores, targets, rows, cols, ties=ties))
        if verbose:
            print(f"evaluate_ranking: {min(start + batch_size, len(queries))}/{len(queries)} triples", flush=True)
    tail = np.concatenate(ranks["tail"]) if ranks["tail"] else np.zeros((0,))
    head = np.concatenate(ranks["head"]) if ranks["head"] else np.zeros((0,))
    if len(tail) == 0:
        raise ValueError(f"no {split} triples to evaluate.")
    out = metrics_from_ranks(np.concatenate([head, tail]))
    out["num_queries"] = int(len(head) + len(tail))
    if per_side:
        out.update({f"tail_{k}": v for k, v in metrics_from_ranks(tail).items()})
        out.update({f"head_{k}": v for k, v in metrics_from_ranks(head).items()})
    return out


def average_precision(y_true, y_score) -> float:
    """Average precision ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds.

    The same number as ``sklearn.metrics.average_precision_score`` (equal scores
    form one threshold), which the reference uses as Countries' AUC-PR.
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_score = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score differ in length: {y_true.shape} vs {y_score.shape}.")
    if y_true.sum() <= 0:
        raise ValueError("average precision needs at least one positive label.")
    order = np.argsort(-y_score, kind="mergesort")
    y_score, y_true = y_score[order], y_true[order]
    last_of_threshold = np.r_[np.nonzero(np.diff(y_score))[0], len(y_score) - 1]
    tps = np.cumsum(y_true)[last_of_threshold]
    fps = 1 + last_of_threshold - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def evaluate_countries(model, dataset, split="test"):
    """Countries' AUC-PR: test queries ``(country, locatedin, ?)`` scored against the regions.

    As the reference ``test_step`` with ``--countries``: for every test triple and
    every region of ``regions.list``, the triple ``(country, relation, region)``
    is scored; label 1 for the true region.  Returns ``{"AUC-PR": ...}``, the
    average precision of the pooled scores.
    """
    if getattr(dataset, "regions", None) is None:
        raise ValueError(f"{dataset.name} has no regions.list; AUC-PR evaluation is for the Countries datasets.")
    queries = np.asarray(dataset.split(split), dtype=np.int64)
    regions = np.asarray(dataset.regions, dtype=np.int64)
    samples = np.array([(h, r, c) for h, r, _ in queries for c in regions], dtype=np.int64)
    labels = np.array([1 if c == t else 0 for _, _, t in queries for c in regions])
    scores = model.score_triples(samples)
    return {"AUC-PR": average_precision(labels, scores)}
