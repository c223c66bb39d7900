"""Causal linear self-attention with the Hadamard causal mask (survey Eq. 7, appendix S.2.1)."""

from __future__ import annotations

import keras
from keras import ops

from hadamard_zoo import ops as hops
from hadamard_zoo.checks import check_positive_int

_FEATURE_MAPS = (None, "elu+1")


def elu_plus_one(x):
    """``phi(x) = elu(x) + 1`` (Katharopoulos et al. 2020), as ``x + 1`` for ``x > 0`` else ``exp(x)``.

    The same function as ``ops.elu(x) + 1``, without its cancellation: for ``x << 0``
    ``expm1(x) + 1`` keeps only ~6e-8 of absolute precision, so features near 1e-6 (which
    trained models use to sharpen attention) came out with percent-level relative
    errors that differed by backend, and the normalized attention ``num / den``
    magnified them.  ``exp`` of ``x`` masked to ``x <= 0`` keeps full relative precision,
    never overflows in the branch ``where`` discards (whose gradient would be NaN), and
    has the derivative 1 at 0 on every backend (``minimum``'s tie gives 0.5 on torch).
    """
    positive = ops.greater(x, 0)
    return ops.where(positive, ops.add(x, 1.0), ops.exp(ops.where(positive, ops.zeros_like(x), x)))


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class CausalLinearAttention(keras.layers.Layer):
    """Causal linear self-attention ``((phi(Q) phi(K)^T) * M) V`` (survey Eq. 7).

    ``Q = z W_q + b_q``, ``K = z W_k + b_k``, ``V = z W_v + b_v``; ``M`` is the
    lower-triangular ones matrix applied by Hadamard product, so position ``i``
    sees positions ``j <= i`` only.  Options:

    * ``feature_map``: None (the survey's S.2.1 block) or ``"elu+1"``
      (``phi(x) = elu(x) + 1``, Katharopoulos et al. 2020), applied to Q and K;
    * ``normalize``: divide each row by ``((phi(Q) phi(K)^T) * M) 1 + 1e-6``
      (Katharopoulos); use it with ``feature_map="elu+1"`` so the normalizer is positive;
    * ``num_heads``: split ``hidden_dim`` into heads of ``hidden_dim // num_heads``;
    * ``output_projection``: a final ``Dense(hidden_dim)``.

    With ``num_heads=1, feature_map=None, normalize=False, output_projection=False``
    (the defaults) this is exactly the appendix S.2.1 ``LinearSelfAttention``.
    No ``1/sqrt(d)`` scaling (as in S.2.1).

    Input ``(batch, time, features)``; output ``(batch, time, hidden_dim)``.
    Weights: ``query``, ``key``, ``value`` (and ``output``) Dense layers.
    ``chunk_size`` is the chunk length of the accelerated (chunked, O(T)
    memory) form; it does not change the result.
    """

    def __init__(
        self,
        hidden_dim,
        num_heads=1,
        feature_map=None,
        normalize=False,
        use_bias=True,
        chunk_size=128,
        output_projection=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        num_heads = check_positive_int("num_heads", num_heads)
        chunk_size = check_positive_int("chunk_size", chunk_size)
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})."
            )
        if isinstance(feature_map, str):
            feature_map = feature_map.lower()
        if feature_map not in _FEATURE_MAPS:
            raise ValueError(
                f"Unknown feature_map {feature_map!r}; expected None (identity, survey S.2.1) "
                f"or 'elu+1' (Katharopoulos et al. 2020)."
            )
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.feature_map = feature_map
        self.normalize = bool(normalize)
        self.use_bias = bool(use_bias)
        self.chunk_size = chunk_size
        self.output_projection = bool(output_projection)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

        def dense(name):
            return keras.layers.Dense(
                hidden_dim,
                use_bias=self.use_bias,
                kernel_initializer=self.kernel_initializer,
                bias_initializer=self.bias_initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.query_dense = dense("query")
        self.key_dense = dense("key")
        self.value_dense = dense("value")
        self.output_dense = dense("output") if self.output_projection else None

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"CausalLinearAttention expects inputs of shape (batch, time, features), "
                f"got {tuple(input_shape)} (rank {len(input_shape)})."
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"CausalLinearAttention needs a known feature dimension, got {tuple(input_shape)}."
            )
        for layer in (self.query_dense, self.key_dense, self.value_dense):
            layer.build(input_shape)
        if self.output_dense is not None:
            self.output_dense.build(tuple(input_shape[:-1]) + (self.hidden_dim,))

    def _split_heads(self, x):
        if self.num_heads == 1:
            return x
        shape = ops.shape(x)
        x = ops.reshape(x, (shape[0], shape[1], self.num_heads, self.hidden_dim // self.num_heads))
        return ops.transpose(x, (0, 2, 1, 3))

    def _merge_heads(self, x):
        if self.num_heads == 1:
            return x
        x = ops.transpose(x, (0, 2, 1, 3))
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.hidden_dim))

    def call(self, inputs):
        q = self.query_dense(inputs)
        k = self.key_dense(inputs)
        v = self.value_dense(inputs)
        if self.feature_map == "elu+1":
            q = elu_plus_one(q)
            k = elu_plus_one(k)
        y = hops.causal_linear_attention(
            self._split_heads(q),
            self._split_heads(k),
            self._split_heads(v),
            normalize=self.normalize,
            chunk_size=self.chunk_size,
        )
        y = self._merge_heads(y)
        if self.output_dense is not None:
            y = self.output_dense(y)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            num_heads=self.num_heads,
            feature_map=self.feature_map,
            normalize=self.normalize,
            use_bias=self.use_bias,
            chunk_size=self.chunk_size,
            output_projection=self.output_projection,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config
