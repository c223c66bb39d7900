"""Negative-sampling training of KG embeddings (RotatE) with ``model.fit``, as the reference code.

The reference (DeepGraphLearning/KnowledgeGraphEmbedding, ``codes/dataloader.py``
and ``codes/run.py``) trains with:

* batches of ``B`` positive triples, each with ``n`` negatives that corrupt the
  head (head-batch) or the tail (tail-batch); the two kinds alternate batch by
  batch (tail-batch first), each drawn from its own shuffled pass over the
  training triples;
* negatives drawn uniformly over all entities, dropping candidates that make a
  *training* triple true (``true_head`` / ``true_tail``), until ``n`` remain;
* subsampling weights ``1 / sqrt(count(h, r) + count(t, r^-1))`` with counts
  starting at 4;
* Adam at ``lr``; at ``warm_up_steps`` (default ``max_steps // 2``) a new Adam
  at ``lr / 10`` (its moments start again), the next drop 3x later.

:class:`NegativeSamplingDataset` produces those batches as a
``keras.utils.PyDataset`` and :func:`train_kg` runs the recipe with ``fit``
(:class:`ReferenceLRDrop` is the learning-rate drop).  One option departs from
the reference for speed: ``shared_negatives=True`` draws one set of ``n``
negatives for the whole batch (scored as one ``(B, n)`` block by the chunked
op) and masks, instead of resampling, the pairs that are known training
triples.  The default is ``False`` (the reference's per-positive negatives).

Command line (Countries S1 with the reference's best configuration)::

    KERAS_BACKEND=jax python -m hadamard_zoo.training.kg --model rotate_countries \\
        --dataset countries_S1 --save runs/rotate_countries_s1.weights.h5
"""

from __future__ import annotations

import argparse
import json
import math
import time

import keras
import numpy as np

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
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
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


class ReferenceLRDrop(keras.callbacks.Callback):
    """The reference's schedule: at ``warm_up_steps`` a fresh Adam at ``lr / 10``; then 3x later.

    "Fresh" means the optimizer's moments and step counter are zeroed, as
    ``torch.optim.Adam(...)`` re-created in ``run.py``.  Steps count across epochs.
    """

    def __init__(self, warm_up_steps, factor=0.1, growth=3, reset_optimizer=True, verbose=0):
        super().__init__()
        self.next_drop = int(warm_up_steps)
        self.factor = float(factor)
        self.growth = int(growth)
        self.reset_optimizer = bool(reset_optimizer)
        self.verbose = verbose
        self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
        if self.step == self.next_drop and self.next_drop > 0:
            model = self.model
            if keras.config.backend() == "jax":
                model.jax_state_sync()  # the next step re-reads the variables
            opt = model.optimizer
            new_lr = float(keras.ops.convert_to_numpy(opt.learning_rate)) * self.factor
            if self.reset_optimizer:
                for v in opt.variables:
                    v.assign(keras.ops.zeros(v.shape, v.dtype))
            opt.learning_rate = new_lr
            if self.verbose:
                print(f"step {self.step}: learning rate -> {new_lr:g}" + (" (fresh Adam)" if self.reset_optimizer else ""))
            self.next_drop *= self.growth

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1


def train_kg(
    model,
    dataset,
    steps=None,
    batch_size=None,
    num_negatives=None,
    learning_rate=None,
    warm_up_steps=None,
    shared_negatives=None,
    steps_per_epoch=None,
    seed=0,
    verbose=1,
    callbacks=None,
    jit_compile="auto",
):
    """Train a KG model with the reference recipe; returns the ``History``.

    Args:
        model: a :class:`hadamard_zoo.models.architectures.rotate.RotatE` (e.g. ``create_model("rotate_countries",
            dataset=ds)``); missing settings come from ``model.training_config`` (the zoo config).
        dataset: a :class:`hadamard_zoo.data.kg.KGDataset`; trains on ``dataset.train``.
        steps: optimizer steps (reference ``max_steps``); rounded up to whole epochs.
        batch_size, num_negatives, learning_rate: as the reference's ``-b``, ``-n``, ``-lr``.
        warm_up_steps: step of the lr/10 drop (default ``steps // 2``).
        shared_negatives: see :class:`NegativeSamplingDataset` (default: the config's, else
            False, the reference).
        steps_per_epoch: steps per Keras epoch (default: one pass over the training triples).
    """
    cfg = dict(getattr(model, "training_config", {}) or {})
    steps = int(steps or cfg.get("max_steps", 1000))
    batch_size = int(batch_size or cfg.get("batch_size", 512))
    num_negatives = int(num_negatives or cfg.get("num_negatives", 64))
    learning_rate = float(learning_rate or cfg.get("learning_rate", 1e-4))
    warm_up_steps = int(warm_up_steps if warm_up_steps is not None else cfg.get("warm_up_steps") or steps // 2)
    if shared_negatives is None:
        shared_negatives = bool(cfg.get("shared_negatives", False))
    data = NegativeSamplingDataset(
        dataset.train, dataset.num_entities, dataset.num_relations, batch_size=batch_size,
        num_negatives=num_negatives, shared_negatives=shared_negatives, steps_per_epoch=steps_per_epoch,
        seed=seed,
    )
    spe = min(len(data), steps)
    data.steps_per_epoch = spe
    epochs = math.ceil(steps / spe)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=jit_compile)
    cbs = [ReferenceLRDrop(warm_up_steps, verbose=verbose)] + list(callbacks or [])
    return model.fit(data, epochs=epochs, verbose=verbose, callbacks=cbs)


def bench_train_step(model, dataset, batch_size=512, num_negatives=1024, shared_negatives=True, steps=3,
                     learning_rate=1e-4, jit_compile="auto"):
    """Time training steps (seconds per step, after one compile step); returns a dict.

    ``sample_s`` is the numpy batch construction, ``step_s`` the compiled
    forward + backward + Adam update (``train_on_batch``), both medians.
    """
    data = NegativeSamplingDataset(
        dataset.train, dataset.num_entities, dataset.num_relations, batch_size=batch_size,
        num_negatives=num_negatives, shared_negatives=shared_negatives,
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=jit_compile)
    t0 = time.perf_counter()
    model.train_on_batch(data.batch(0))
    compile_s = time.perf_counter() - t0
    sample_s, step_s = [], []
    for i in range(1, steps + 1):
        t0 = time.perf_counter()
        x = data.batch(i)
        t1 = time.perf_counter()
        loss = model.train_on_batch(x)
        float(np.asarray(loss))  # wait for the result
        t2 = time.perf_counter()
        sample_s.append(t1 - t0)
        step_s.append(t2 - t1)
    return {
        "backend": keras.config.backend(), "batch_size": batch_size, "num_negatives": num_negatives,
        "shared_negatives": shared_negatives, "first_step_s": round(compile_s, 3),
        "sample_s": round(float(np.median(sample_s)), 4), "step_s": round(float(np.median(step_s)), 4),
        "steps_per_s": round(1.0 / float(np.median(np.add(step_s, sample_s))), 4),
    }


def manifest_entry(model_name, dataset, metrics, params, weights_path, train_command):
    """The ``weights/manifest.json`` entry of a KG run evaluated on its test split
    (what :func:`hadamard_zoo.pretrained.publish` reads from ``results.json``).

    The tag is ``<model>.<dataset>`` (``rotate_wn18rr_small.wn18rr``); the metric is
    the filtered MRR when ranking metrics were measured (HITS@k and MR are kept
    beside it), else the first one (Countries: AUC-PR).
    """
    from hadamard_zoo.data._common import sha256_of
    from hadamard_zoo.training.recipes import now

    metric = "MRR" if "MRR" in metrics else next(iter(metrics))
    tag = f"{model_name}.{dataset.name.lower().replace('-', '').replace(' ', '_')}"
    entry = {
        "name": tag, "model": model_name, "default": True, "file": f"{tag}.weights.h5",
        "sha256": sha256_of(weights_path), "dataset": dataset.name, "kg_dataset": dataset.name, "split": "test",
        "metric": metric, "value": round(float(metrics[metric]), 4), "params": int(params),
        "train_command": train_command, "eval_command": f"hadamard-zoo eval {tag}",
        "backend": keras.config.backend(), "date": now(),
    }
    entry.update({k: round(float(v), 4) for k, v in metrics.items() if k not in (metric, "num_queries")})
    return entry


# ---------------------------------------------------------------------- CLI
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m hadamard_zoo.training.kg",
        description="Train a RotatE variant on a KG dataset with the reference recipe, then evaluate it.",
    )
    parser.add_argument("--model", default="rotate_countries", help="zoo variant (see list_models('rotate*'))")
    parser.add_argument("--dataset", default=None, help="KG dataset name (default: the variant's)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=None, help="default: the variant's max_steps")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--negatives", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--warm-up-steps", type=int, default=None)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--shared-negatives", action="store_true", default=None,
                        help="one negative set per batch (faster; default: the variant's, else per positive)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="entities per chunk of the chunked RotatE op (memory/speed only; default: the op's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval", choices=["valid", "test", "none"], default="test")
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--save", default=None, help="write the weights (.weights.h5) here")
    parser.add_argument("--metrics-json", default=None, help="write the final metrics here")
    parser.add_argument("--verbose", type=int, default=2)
    parser.add_argument("--bench", type=int, default=0, metavar="N",
                        help="only time N training steps (after one compile step) and print seconds per step")
    args = parser.parse_args(argv)

    from hadamard_zoo import models
    from hadamard_zoo.data import kg
    from hadamard_zoo.training import kg_eval

    keras.utils.set_random_seed(args.seed)
    cfg = models.get_config(args.model)
    name = args.dataset or cfg.arguments.get("training", {}).get("dataset")
    if name is None:
        parser.error(f"{args.model} names no dataset; pass --dataset.")
    ds = kg.load_kg(name, data_dir=args.data_dir)
    model = models.create_model(args.model, dataset=ds, chunk_size=args.chunk_size)
    print(f"{args.model} on {ds}: {model.count_params():,} parameters, backend {keras.config.backend()}")
    if args.bench:
        tc = model.training_config
        out = bench_train_step(
            model, ds, batch_size=args.batch_size or tc.get("batch_size", 512),
            num_negatives=args.negatives or tc.get("num_negatives", 64),
            shared_negatives=bool(args.shared_negatives or tc.get("shared_negatives", False)),
            steps=args.bench,
        )
        max_steps = args.steps or tc.get("max_steps", 0)
        out["model"] = args.model
        if max_steps:
            out["max_steps"] = max_steps
            out["estimated_hours_for_max_steps"] = round(max_steps / out["steps_per_s"] / 3600, 2)
        print(json.dumps(out, indent=2))
        return out
    t0 = time.time()
    history = train_kg(
        model, ds, steps=args.steps, batch_size=args.batch_size, num_negatives=args.negatives,
        learning_rate=args.lr, warm_up_steps=args.warm_up_steps, shared_negatives=args.shared_negatives,
        steps_per_epoch=args.steps_per_epoch, seed=args.seed, verbose=args.verbose,
    )
    train_s = time.time() - t0
    result = {"model": args.model, "dataset": ds.name, "backend": keras.config.backend(),
              "train_seconds": round(train_s, 1), "final_loss": float(history.history["loss"][-1])}
    if args.save:
        model.save_weights(args.save)
        result["weights"] = args.save
    if args.eval != "none":
        t1 = time.time()
        if ds.regions is not None:
            metrics = kg_eval.evaluate_countries(model, ds, split=args.eval)
        else:
            metrics = kg_eval.evaluate_ranking(model, ds, split=args.eval, batch_size=args.eval_batch_size)
        result.update({f"{args.eval}_{k}": v for k, v in metrics.items()})
        result["eval_seconds"] = round(time.time() - t1, 1)
    if args.save and args.eval == "test":  # a publishable run (hadamard_zoo.pretrained.publish)
        import shlex
        import sys

        words = list(sys.argv[1:] if argv is None else argv)
        command = f"KERAS_BACKEND={keras.config.backend()} python -m hadamard_zoo.training.kg " + shlex.join(words)
        result["final_weights"] = args.save
        result["manifest_entry"] = manifest_entry(args.model, ds, metrics, model.count_params(), args.save, command)
    print(json.dumps(result, indent=2))
    if args.metrics_json:
        with open(args.metrics_json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
