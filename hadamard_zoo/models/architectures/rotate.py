"""RotatE knowledge-graph embeddings (Sun et al., ICLR 2019), trainable with ``model.fit``.

Entities are complex vectors ``h, t in C^k`` stored as ``[re | im]`` halves of a
real ``(E, 2k)`` table; relations are phases ``theta in R^k`` (stored as
``r``, with ``theta = r / (embedding_range / pi)``, ``embedding_range =
(gamma + epsilon) / k``, as the reference code).  The Hadamard product
``h o r`` rotates every coordinate of ``h`` by ``theta``; the distance is the
sum of the complex moduli ``d_r(h, t) = sum_i |h_i r_i - t_i|`` and the score is
``gamma - d_r(h, t)``.

Training follows the reference code (DeepGraphLearning/KnowledgeGraphEmbedding,
``codes/model.py``): batches of positive triples each with ``n`` corrupted heads
(head-batch) or tails (tail-batch), alternating, and the self-adversarial
negative-sampling loss

    L = -log sigma(gamma - d(h, t)) - sum_i p_i log sigma(d(h'_i, t'_i) - gamma),
    p = softmax(alpha * (gamma - d_neg))      (no gradient through p)

averaged over the batch with the word2vec-style subsampling weights
``1 / sqrt(count(h, r) + count(t, r^-1))`` (counts start at 4), as
``(positive_loss + negative_loss) / 2``, plus the optional L3 penalty
``lambda * (||E||_3^3 + ||R||_3^3)``.  The batches come from
:class:`hadamard_zoo.training.kg.NegativeSamplingDataset`; see
:func:`hadamard_zoo.training.kg.train_kg` for the whole recipe.

A head-batch negative is scored as the reference does, ``|conj(r) o t - h'|``
(equal to ``|h' o r - t|`` because ``|r_i| = 1``), so both corruption sides use
one kernel: an *anchor* (``h`` or ``t``), a signed phase (``theta`` or
``-theta``) and the candidate entities.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from hadamard_zoo.layers import RotatEScore

TAIL_BATCH = 0
HEAD_BATCH = 1


def self_adversarial_loss(
    positive_score,
    negative_score,
    subsampling_weight=None,
    adversarial_temperature=1.0,
    negative_adversarial_sampling=True,
    negative_mask=None,
):
    """The reference code's negative-sampling loss (``KGEModel.train_step``).

    Args:
        positive_score: ``(B,)`` scores ``gamma - d(h, t)`` of the true triples.
        negative_score: ``(B, n)`` scores of their corruptions.
        subsampling_weight: ``(B,)`` weights, or None for the plain mean (``--uni_weight``).
        adversarial_temperature: alpha; the negatives' weights are
            ``softmax(alpha * negative_score)``, held constant (stop-gradient).
        negative_adversarial_sampling: False for the uniform mean over negatives.
        negative_mask: optional ``(B, n)`` 1/0 mask; 0 drops a negative (a shared
            negative that is a known true triple of that row).

    Returns:
        ``(loss, positive_loss, negative_loss)`` scalars, ``loss = (pos + neg) / 2``.
    """
    positive_score = ops.cast(positive_score, "float32")
    negative_score = ops.cast(negative_score, "float32")
    log_neg = ops.log_sigmoid(-negative_score)
    if negative_mask is not None:
        mask = ops.cast(negative_mask, "float32")
    if negative_adversarial_sampling:
        logits = negative_score * adversarial_temperature
        if negative_mask is not None:
            logits = ops.where(mask > 0, logits, ops.full_like(logits, -1e30))
        weights = ops.stop_gradient(ops.softmax(logits, axis=1))
        if negative_mask is not None:
            weights = weights * mask  # a row with every negative masked contributes 0
        negative_term = ops.sum(weights * log_neg, axis=1)
    elif negative_mask is not None:
        negative_term = ops.sum(mask * log_neg, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
    else:
        negative_term = ops.mean(log_neg, axis=1)
    positive_term = ops.log_sigmoid(positive_score)
    if subsampling_weight is None:
        positive_loss = -ops.mean(positive_term)
        negative_loss = -ops.mean(negative_term)
    else:
        w = ops.cast(subsampling_weight, "float32")
        total = ops.sum(w)
        positive_loss = -ops.sum(w * positive_term) / total
        negative_loss = -ops.sum(w * negative_term) / total
    return (positive_loss + negative_loss) / 2.0, positive_loss, negative_loss


def _check_vocab(name, vocab, size):
    if vocab is None:
        return None
    vocab = [str(v) for v in vocab]
    if len(vocab) != size:
        raise ValueError(f"{name} has {len(vocab)} names but the model has {size} ids; they must match.")
    if len(set(vocab)) != len(vocab):
        raise ValueError(f"{name} holds repeated names; every id needs its own name.")
    return vocab


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class RotatE(keras.Model):
    """RotatE as a ``keras.Model``: ``model(triples)`` scores, ``fit`` trains, ``predict_tails`` answers.

    Args:
        num_entities, num_relations: table sizes.
        hidden_dim: k, the complex dimension (the entity table is ``(E, 2k)``).
        gamma: the margin; score = gamma - distance.
        epsilon: the init/phase range is ``(gamma + epsilon) / k`` (reference: 2.0).
        adversarial_temperature: alpha of the self-adversarial weights.
        negative_adversarial_sampling: self-adversarial weights (True, the reference's
            ``-adv`` used by every best config) or the uniform mean.
        uni_weight: True ignores the subsampling weights (reference ``--uni_weight``).
        regularization: lambda of the L3 penalty (0: off, as every RotatE best config).
        entity_vocab, relation_vocab: optional id -> name lists, so the prediction
            methods accept and return names.
        chunk_size: entities per chunk of the one-vs-all scoring and of shared
            negatives (None: the op's default, about 16 MB blocks).

    Calling conventions:
        * ``model(triples)`` with int ``(B, 3)`` ``(head, relation, tail)`` ids: ``(B,)`` scores.
        * ``model(batch)`` with the dict of a :class:`~hadamard_zoo.training.kg.NegativeSamplingDataset`
          (``triples``, ``negatives``, ``mode``, ``subsampling_weight`` [, ``negative_mask``]):
          ``{"positive_score": (B,), "negative_score": (B, n)}``; ``compute_loss``
          turns it into the self-adversarial loss, so ``model.fit(dataset)`` trains.
    """

    def __init__(
        self,
        num_entities,
        num_relations,
        hidden_dim=500,
        gamma=12.0,
        epsilon=2.0,
        adversarial_temperature=1.0,
        negative_adversarial_sampling=True,
        uni_weight=False,
        regularization=0.0,
        entity_vocab=None,
        relation_vocab=None,
        chunk_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # the scorer checks the table sizes, gamma, epsilon and chunk_size
        self.scorer = RotatEScore(
            num_entities, num_relations, hidden_dim, gamma=gamma, epsilon=epsilon,
            chunk_size=chunk_size, name="rotate_score", dtype=self.dtype_policy,
        )
        for name, value in (("adversarial_temperature", adversarial_temperature), ("regularization", regularization)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}.")
        if regularization < 0:
            raise ValueError(f"regularization must be >= 0, got {regularization!r}.")
        self.adversarial_temperature = float(adversarial_temperature)
        self.negative_adversarial_sampling = bool(negative_adversarial_sampling)
        self.uni_weight = bool(uni_weight)
        self.regularization = float(regularization)
        self.entity_vocab = _check_vocab("entity_vocab", entity_vocab, self.num_entities)
        self.relation_vocab = _check_vocab("relation_vocab", relation_vocab, self.num_relations)
        self._entity_index = None
        self._relation_index = None
        self.build()

    # ------------------------------------------------------------ structure
    def build(self, input_shape=None):
        if not self.scorer.built:
            self.scorer.build((None, 3))
        self.built = True

    # the table sizes and scoring constants are the scorer's
    num_entities = property(lambda self: self.scorer.num_entities)
    num_relations = property(lambda self: self.scorer.num_relations)
    hidden_dim = property(lambda self: self.scorer.hidden_dim)
    gamma = property(lambda self: self.scorer.gamma)
    epsilon = property(lambda self: self.scorer.epsilon)
    chunk_size = property(lambda self: self.scorer.chunk_size)
    embedding_range = property(lambda self: self.scorer.embedding_range)

    @property
    def entity_embedding(self):
        return self.scorer.entity_embedding

    @property
    def relation_embedding(self):
        return self.scorer.relation_embedding

    def relation_phase(self, relation_ids):
        """Phases ``theta = r / (embedding_range / pi)`` of the given relations, ``(..., k)``."""
        return self.scorer.relation_phase(relation_ids)

    # ------------------------------------------------------------ scoring
    def call(self, inputs, training=False):
        if isinstance(inputs, dict):
            return self.sample_scores(inputs)
        return self.scorer(inputs)

    def sample_scores(self, batch):
        """Scores of a training batch: positives ``(B,)`` and negatives ``(B, n)``
        (tail-batch rows ``|h o r - t'|``, head-batch rows ``|conj(r) o t - h'|``)."""
        head_batch = ops.equal(ops.cast(batch["mode"], "int32"), HEAD_BATCH)
        return {
            "positive_score": self.scorer(batch["triples"]),  # the reference's 'single' mode
            "negative_score": self.scorer.score_corruptions(batch["triples"], batch["negatives"], head_batch),
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, dict) or "negative_score" not in y_pred:
            raise ValueError(
                "RotatE trains on negative-sampling batches: fit it on a "
                "hadamard_zoo.training.kg.NegativeSamplingDataset (dict batches with 'triples', "
                "'negatives', 'mode', 'subsampling_weight'), not on (x, y) pairs."
            )
        weight = None if self.uni_weight else x.get("subsampling_weight")
        loss, _, _ = self_adversarial_loss(
            y_pred["positive_score"],
            y_pred["negative_score"],
            subsampling_weight=weight,
            adversarial_temperature=self.adversarial_temperature,
            negative_adversarial_sampling=self.negative_adversarial_sampling,
            negative_mask=x.get("negative_mask"),
        )
        if self.regularization:
            loss = loss + self.regularization * self.l3_penalty()
        for extra in self.losses:
            loss = loss + ops.cast(extra, loss.dtype)
        return loss

    def l3_penalty(self):
        """``||E||_3^3 + ||R||_3^3`` as the reference's ``-r`` regularization."""
        e = ops.cast(self.scorer.entity_embedding, "float32")
        r = ops.cast(self.scorer.relation_embedding, "float32")
        return ops.sum(ops.abs(e) ** 3) + ops.sum(ops.abs(r) ** 3)

    def score_all_tails(self, heads, relations):
        """``(B, E)`` scores of ``(heads[b], relations[b], e)`` for every entity ``e``."""
        return self.scorer.score_all_tails(heads, relations)

    def score_all_heads(self, relations, tails):
        """``(B, E)`` scores of ``(e, relations[b], tails[b])`` for every entity ``e``."""
        return self.scorer.score_all_heads(relations, tails)

    def score_triples(self, triples):
        """``(B,)`` numpy scores of int ``(B, 3)`` triples (ids)."""
        return np.asarray(ops.convert_to_numpy(self.scorer(ops.convert_to_tensor(np.asarray(triples), "int32"))))

    # ------------------------------------------------------------ link prediction
    def entity_id(self, entity) -> int:
        return self._lookup(entity, self.entity_vocab, "_entity_index", self.num_entities, "entity")

    def relation_id(self, relation) -> int:
        return self._lookup(relation, self.relation_vocab, "_relation_index", self.num_relations, "relation")

    def _lookup(self, value, vocab, cache_attr, size, what):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if not 0 <= int(value) < size:
                raise ValueError(f"{what} id {value} is out of range [0, {size}).")
            return int(value)
        if isinstance(value, str):
            if vocab is None:
                raise ValueError(
                    f"{what} {value!r} is a name but this model has no {what}_vocab; pass an id, or build "
                    f"the model with {what}_vocab= (train_kg does this from the dataset)."
                )
            index = getattr(self, cache_attr)
            if index is None:
                index = {n: i for i, n in enumerate(vocab)}
                setattr(self, cache_attr, index)
            if value not in index:
                import difflib

                close = difflib.get_close_matches(value, vocab, n=3)
                hint = f" Did you mean {close}?" if close else ""
                raise ValueError(f"Unknown {what} {value!r}.{hint}")
            return index[value]
        raise ValueError(f"{what} must be an int id or a name (str), got {value!r}.")

    def _name(self, i):
        return self.entity_vocab[i] if self.entity_vocab is not None else int(i)

    def _top_k(self, scores, k, exclude):
        scores = np.asarray(scores, dtype=np.float64).copy()
        if exclude is not None and len(exclude):
            scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
        k = min(int(k), int(np.isfinite(scores).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._name(i), float(scores[i])) for i in top]

    def predict_tails(self, head, relation, k=10, exclude=None):
        """The ``k`` best tails of ``(head, relation, ?)``: a list of ``(entity, score)``.

        ``head`` / ``relation`` are ids or names (names need the vocabularies);
        entities come back as names when the model has ``entity_vocab``, else ids.
        ``exclude``: entity ids (or names) to leave out, e.g. the known answers.
        """
        h, r = self.entity_id(head), self.relation_id(relation)
        scores = ops.convert_to_numpy(self.score_all_tails(np.asarray([h]), np.asarray([r])))[0]
        return self._top_k(scores, k, self._ids(exclude))

    def predict_heads(self, relation, tail, k=10, exclude=None):
        """The ``k`` best heads of ``(?, relation, tail)``: a list of ``(entity, score)``."""
        r, t = self.relation_id(relation), self.entity_id(tail)
        scores = ops.convert_to_numpy(self.score_all_heads(np.asarray([r]), np.asarray([t])))[0]
        return self._top_k(scores, k, self._ids(exclude))

    def _ids(self, entities):
        if entities is None:
            return None
        return [self.entity_id(e) for e in entities]

    # ------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        config.update(
            num_entities=self.num_entities,
            num_relations=self.num_relations,
            hidden_dim=self.hidden_dim,
            gamma=self.gamma,
            epsilon=self.epsilon,
            adversarial_temperature=self.adversarial_temperature,
            negative_adversarial_sampling=self.negative_adversarial_sampling,
            uni_weight=self.uni_weight,
            regularization=self.regularization,
            entity_vocab=self.entity_vocab,
            relation_vocab=self.relation_vocab,
            chunk_size=self.chunk_size,
        )
        return config


def build_rotate(
    num_entities=None,
    num_relations=None,
    hidden_dim=500,
    gamma=12.0,
    epsilon=2.0,
    adversarial_temperature=1.0,
    negative_adversarial_sampling=True,
    uni_weight=False,
    regularization=0.0,
    dataset=None,
    entity_vocab=None,
    relation_vocab=None,
    chunk_size=None,
    training=None,
    name="rotate",
):
    """Build a :class:`RotatE` model (the registry's builder for ``zoo_configs/rotate.yaml``).

    Args:
        num_entities, num_relations: table sizes (a paper variant holds its dataset's).
        dataset: a :class:`hadamard_zoo.data.kg.KGDataset` (``hadamard_zoo.data.kg.load_kg(name)``):
            its sizes replace ``num_entities`` / ``num_relations`` and its names become the
            vocabularies (so ``create_model("rotate_small", dataset=ds)`` fits any KG). The
            builder reads no files: a dataset *name* is refused with what to pass instead.
        training: deprecated and ignored for the model (it never changed it); training
            settings are recipes in ``zoo_configs/recipes/kg.yaml``. Kept on the model as
            ``model.training_config`` for code that read it, with a ``DeprecationWarning``.
        other arguments: see :class:`RotatE`.
    """
    if isinstance(dataset, str):
        raise ValueError(
            f"build_rotate reads no datasets: pass dataset=hadamard_zoo.data.kg.load_kg({dataset!r}) (a KGDataset), "
            f"or num_entities= and num_relations=."
        )
    if dataset is not None:
        num_entities, num_relations = dataset.num_entities, dataset.num_relations
        entity_vocab = dataset.entities if entity_vocab is None else entity_vocab
        relation_vocab = dataset.relations if relation_vocab is None else relation_vocab
    if num_entities is None or num_relations is None:
        raise ValueError(
            "build_rotate needs num_entities and num_relations, or dataset= (a KGDataset from "
            "hadamard_zoo.data.kg.load_kg) to take them from."
        )
    model = RotatE(
        num_entities, num_relations, hidden_dim=hidden_dim, gamma=gamma, epsilon=epsilon,
        adversarial_temperature=adversarial_temperature,
        negative_adversarial_sampling=negative_adversarial_sampling, uni_weight=uni_weight,
        regularization=regularization, entity_vocab=entity_vocab, relation_vocab=relation_vocab,
        chunk_size=chunk_size, name=name,
    )
    if training is not None:
        import warnings

        warnings.warn("build_rotate(training=...) is deprecated: KG training settings are recipes in "
                      "zoo_configs/recipes/kg.yaml (hadamard_zoo.training.resolve_recipe).", DeprecationWarning,
                      stacklevel=2)
        model.training_config = dict(training)
    return model
