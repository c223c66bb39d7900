"""Knowledge-graph scoring layers: RotatE (Sun et al., ICLR 2019; survey Sec. 3)."""

from __future__ import annotations

import math

import keras
from keras import ops

from hadamard_zoo import ops as hops
from hadamard_zoo.checks import check_positive_int

# the constant of the reference code (codes/model.py)
_PI = 3.14159265358979323846


def _number(name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}.")
    return float(value)


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class RotatEScore(keras.layers.Layer):
    """RotatE triple scores ``gamma - sum_i |h_i r_i - t_i|`` (Sun et al. 2019; survey Sec. 3).

    As the reference code (DeepGraphLearning/KnowledgeGraphEmbedding, with
    ``-de``): entities are ``2 * hidden_dim`` reals ``[re | im]``
    (``entity_embedding (num_entities, 2 hidden_dim)``), relations
    ``hidden_dim`` parameters (``relation_embedding (num_relations, hidden_dim)``);
    both are initialized ``U(-rho, rho)`` with ``rho = (gamma + epsilon) / hidden_dim``
    (the reference's ``embedding_range``), and a relation parameter maps to the
    phase ``theta = param / (rho / pi)``, so initial phases are uniform in
    ``[-pi, pi]``; phases are never clipped.

    ``call(triples)``: ``triples`` int ``(batch, 3)`` rows ``[head, relation, tail]``
    -> scores ``(batch,)``.  ``mode="head"`` uses the reference's head-batch
    arithmetic ``|conj(r) o t - h|`` (equal in exact arithmetic).

    ``score_all_tails(heads, relations)`` and ``score_all_heads(relations, tails)``:
    ``(batch,)`` int ids -> ``(batch, num_entities)`` scores against every entity,
    through the entity-chunked :func:`hadamard_zoo.ops.rotate_score_all` (no
    ``(batch, entities, hidden_dim)`` tensor).
    """

    def __init__(
        self,
        num_entities,
        num_relations,
        hidden_dim,
        gamma=12.0,
        epsilon=2.0,
        chunk_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_entities = check_positive_int("num_entities", num_entities)
        self.num_relations = check_positive_int("num_relations", num_relations)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        chunk_size = check_positive_int("chunk_size", chunk_size, allow_none=True)
        self.gamma = _number("gamma", gamma)
        self.epsilon = _number("epsilon", epsilon)
        self.chunk_size = chunk_size
        self.embedding_range = (self.gamma + self.epsilon) / hidden_dim
        if self.embedding_range <= 0:
            raise ValueError(
                f"gamma + epsilon must be > 0 (the init range (gamma + epsilon) / hidden_dim), "
                f"got gamma={gamma!r}, epsilon={epsilon!r}."
            )

    def build(self, input_shape=None):
        if input_shape is not None:
            if len(input_shape) < 1 or input_shape[-1] != 3:
                raise ValueError(
                    f"RotatEScore expects integer triples of shape (batch, 3) [head, relation, tail], "
                    f"got {tuple(input_shape)}."
                )
        init = keras.initializers.RandomUniform(-self.embedding_range, self.embedding_range)
        self.entity_embedding = self.add_weight(
            name="entity_embedding", shape=(self.num_entities, 2 * self.hidden_dim), initializer=init
        )
        self.relation_embedding = self.add_weight(
            name="relation_embedding", shape=(self.num_relations, self.hidden_dim), initializer=init
        )

    # -- helpers
    def _ensure_built(self):
        if not self.built:
            self.build()
            self.built = True

    def _entities(self):
        return ops.cast(self.entity_embedding, self.compute_dtype)

    def _phases(self, relations):
        rel = ops.take(ops.cast(self.relation_embedding, self.compute_dtype), relations, axis=0)
        return ops.divide(rel, ops.cast(self.embedding_range / _PI, rel.dtype))

    def relation_phase(self, relations):
        """Phases ``theta`` (radians) of relation ids ``(...)`` -> ``(..., hidden_dim)``."""
        self._ensure_built()
        return self._phases(ops.cast(relations, "int32"))

    # -- scoring
    def call(self, triples, mode="tail"):
        triples = ops.cast(triples, "int32")
        ent = self._entities()
        head = ops.take(ent, triples[..., 0], axis=0)
        tail = ops.take(ent, triples[..., 2], axis=0)
        phase = self._phases(triples[..., 1])
        dist = hops.rotate_distance(head, phase, tail, mode=mode)
        return ops.subtract(ops.cast(self.gamma, dist.dtype), dist)

    def _score_all(self, query_ids, relations, mode):
        self._ensure_built()
        query_ids = ops.cast(query_ids, "int32")
        relations = ops.cast(relations, "int32")
        if len(query_ids.shape) != 1 or len(relations.shape) != 1:
            raise ValueError(
                f"expected 1-D id vectors (batch,), got shapes {tuple(query_ids.shape)} and "
                f"{tuple(relations.shape)}."
            )
        ent = self._entities()
        query = ops.take(ent, query_ids, axis=0)
        dist = hops.rotate_score_all(query, self._phases(relations), ent, mode=mode, chunk_size=self.chunk_size)
        return ops.subtract(ops.cast(self.gamma, dist.dtype), dist)

    def score_corruptions(self, triples, negatives, head_batch):
        """Scores of corrupted triples, as the reference's negative sampling scores them.

        Args:
            triples: int ``(B, 3)`` true triples ``[head, relation, tail]``.
            negatives: int ``(B, n)`` candidate entities per row, or ``(n,)`` shared by every row.
            head_batch: bool ``(B,)``; True replaces the head (``|conj(r) o t - h'|``),
                False the tail (``|h o r - t'|``).

        Returns:
            ``(B, n)`` scores ``gamma - d``.  Both sides use one kernel: an anchor
            (``h`` or ``t``), a signed phase (``theta`` or ``-theta``) and the candidates.
        """
        triples = ops.cast(triples, "int32")
        negatives = ops.cast(negatives, "int32")
        is_head = ops.expand_dims(ops.cast(head_batch, "bool"), -1)
        ent = self._entities()
        phase = self._phases(triples[:, 1])
        anchor = ops.where(is_head, ops.take(ent, triples[:, 2], axis=0), ops.take(ent, triples[:, 0], axis=0))
        signed_phase = ops.where(is_head, -phase, phase)
        candidates = ops.take(ent, negatives, axis=0)
        if len(negatives.shape) == 1:  # one (n, 2k) table for every row
            dist = hops.rotate_score_all(anchor, signed_phase, candidates, mode="tail", chunk_size=self.chunk_size)
        else:  # per row: (B, n, 2k)
            dist = hops.rotate_distance(ops.expand_dims(anchor, 1), ops.expand_dims(signed_phase, 1), candidates)
        return ops.subtract(ops.cast(self.gamma, dist.dtype), dist)

    def score_all_tails(self, heads, relations):
        """Scores of ``(h, r, e)`` for every entity ``e``: ``(batch,)`` ids -> ``(batch, num_entities)``."""
        return self._score_all(heads, relations, "tail")

    def score_all_heads(self, relations, tails):
        """Scores of ``(e, r, t)`` for every entity ``e`` (reference head-batch form) -> ``(batch, num_entities)``."""
        return self._score_all(tails, relations, "head")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_entities=self.num_entities,
            num_relations=self.num_relations,
            hidden_dim=self.hidden_dim,
            gamma=self.gamma,
            epsilon=self.epsilon,
            chunk_size=self.chunk_size,
        )
        return config
