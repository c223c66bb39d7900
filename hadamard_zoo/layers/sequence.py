"""Gated sequence layers: GCNN gated convolutions (Dauphin et al. 2017) and GLU FFNs (Shazeer 2020).

* :class:`GatedConv1D`: ``h(X) = (X*W + b) ⊙ σ(X*V + c)``, one convolution with
  ``2·filters`` outputs split by :func:`hadamard_zoo.ops.glu`; causal by default
  (``k−1`` zeros on the left, so output ``t`` sees inputs ``≤ t``).
* :class:`GatedResidualBlock` / :class:`GatedBottleneckBlock`: the GCNN residual
  blocks, as fairseq's ``FConvDecoder`` runs them: dropout before every
  convolution, a (1×1, linear) projection of the skip path when the width
  changes, and ``(h + residual)·sqrt(0.5)``.
* :class:`GLUFeedForward`: ``(act(x W) ⊙ x V) W2``: SwiGLU, GeGLU, GLU, bilinear, ReGLU.
* :class:`AdaptiveSoftmax`: the adaptive softmax output layer (Grave et al. 2017)
  used by GCNN on WikiText-103 / GBW.
* :class:`PositionEmbedding`: learned absolute positions added to token embeddings.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from hadamard_zoo import ops as hops
from hadamard_zoo.checks import check_positive_int, check_rate


def _check_sequence_input(owner, input_shape):
    if len(input_shape) != 3:
        raise ValueError(
            f"{owner} expects inputs of shape (batch, time, channels), got {tuple(input_shape)} "
            f"(rank {len(input_shape)})."
        )
    if input_shape[-1] is None:
        raise ValueError(f"{owner} needs a known channel dimension, got {tuple(input_shape)}.")


def _dropout_layer(rate, dtype_policy):
    return keras.layers.Dropout(rate, dtype=dtype_policy, name="dropout") if rate else None


def gcnn_kernel_initializer():
    """fairseq's GLU-aware He initialization: normal with variance ``4 / (k · c_in)``.

    (fairseq: ``std = sqrt(4 (1 − p) / (k · c_in))`` with dropout ``p``; the 4
    compensates the halving of the variance by the sigmoid gate.)
    """
    return keras.initializers.VarianceScaling(scale=4.0, mode="fan_in", distribution="untruncated_normal")


# --------------------------------------------------------------------------- GatedConv1D
@keras.saving.register_keras_serializable(package="hadamard_zoo")
class GatedConv1D(keras.layers.Layer):
    """GCNN gated convolution ``(X*W + b) ⊙ σ(X*V + c)`` (Dauphin et al. 2017, Eq. 1).

    Computed as ONE ``Conv1D`` with ``2·filters`` outputs followed by
    :func:`hadamard_zoo.ops.glu` (first half: the linear path ``X*W + b``; second
    half: the gate ``X*V + c``).

    Input ``(batch, time, channels)``; output ``(batch, time, filters)``.

    Args:
        filters: n, output channels.
        kernel_size: k, the width of the convolution over time (>= 1).
        causal: True (default) pads ``(k − 1)·dilation_rate`` zeros on the left,
            so output ``t`` depends on inputs ``≤ t`` only; False pads symmetrically
            (``"same"``).
        dilation_rate: >= 1 (GCNN uses 1).
        gate_activation: σ: ``"sigmoid"`` (GLU), or any name of
            :mod:`hadamard_zoo.ops.activations` (``"tanh"`` gives the paper's GTU
            ablation with a tanh gate on the second half).
        use_bias: biases ``b`` and ``c``.
        weight_norm: reparameterize the kernel as ``g · v / ‖v‖`` with one ``g``
            per output channel (Salimans & Kingma 2016), as fairseq does for every
            GCNN convolution.  ``g`` starts at ``‖v‖``, so the initial kernel is
            the initializer's.
        kernel_initializer: default: fairseq's normal with variance ``4/(k·c_in)``.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        causal=True,
        dilation_rate=1,
        gate_activation="sigmoid",
        use_bias=True,
        weight_norm=False,
        kernel_initializer=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        filters = check_positive_int("filters", filters, owner="GatedConv1D")
        kernel_size = check_positive_int("kernel_size", kernel_size, owner="GatedConv1D")
        dilation_rate = check_positive_int("dilation_rate", dilation_rate, owner="GatedConv1D")
        self.filters = filters
        self.kernel_size = kernel_size
        self.causal = bool(causal)
        self.dilation_rate = dilation_rate
        self.gate_activation = hops.canonical_activation(gate_activation)
        self.use_bias = bool(use_bias)
        self.weight_norm = bool(weight_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or gcnn_kernel_initializer())
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        _check_sequence_input("GatedConv1D", input_shape)
        c_in = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, c_in, 2 * self.filters), initializer=self.kernel_initializer
        )
        self.kernel_g = None
        if self.weight_norm:
            self.kernel_g = self.add_weight(name="kernel_g", shape=(2 * self.filters,), initializer="ones")
            kernel = ops.convert_to_numpy(self.kernel).astype("float64")  # numpy: no per-shape compile
            self.kernel_g.assign(np.sqrt(np.square(kernel).sum(axis=(0, 1))).astype(self.kernel_g.dtype))
        self.bias = (
            self.add_weight(name="bias", shape=(2 * self.filters,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )

    def effective_kernel(self):
        """The ``(k, c_in, 2·filters)`` kernel actually applied (after weight norm)."""
        kernel = self.kernel
        if self.kernel_g is None:
            return kernel
        norm = ops.sqrt(ops.sum(ops.square(kernel), axis=(0, 1), keepdims=True))
        return ops.multiply(kernel, ops.divide(self.kernel_g, ops.maximum(norm, 1e-12)))

    def call(self, inputs):
        x = inputs
        if self.causal:
            pad = (self.kernel_size - 1) * self.dilation_rate
            if pad:
                x = ops.pad(x, [[0, 0], [pad, 0], [0, 0]])
            padding = "valid"
        else:
            padding = "same"
        h = ops.conv(x, self.effective_kernel(), strides=1, padding=padding, dilation_rate=self.dilation_rate)
        if self.bias is not None:
            h = ops.add(h, self.bias)
        return hops.glu(h, activation=self.gate_activation, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "causal": self.causal,
            "dilation_rate": self.dilation_rate,
            "gate_activation": self.gate_activation,
            "use_bias": self.use_bias,
            "weight_norm": self.weight_norm,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


# ------------------------------------------------------------------ residual blocks
def _normalize_convolutions(owner, convolutions):
    if not isinstance(convolutions, (list, tuple)) or not convolutions:
        raise ValueError(
            f"{owner}: convolutions must be a non-empty list of (filters, kernel_size) pairs, got {convolutions!r}."
        )
    out = []
    for spec in convolutions:
        if not isinstance(spec, (list, tuple)) or len(spec) != 2:
            raise ValueError(f"{owner}: each convolution must be a (filters, kernel_size) pair, got {spec!r}.")
        filters, kernel_size = spec
        filters = check_positive_int("filters", filters, owner=owner)
        kernel_size = check_positive_int("kernel_size", kernel_size, owner=owner)
        out.append((int(filters), int(kernel_size)))
    return out


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class GatedResidualBlock(keras.layers.Layer):
    """A GCNN residual block: one or more :class:`GatedConv1D` wrapped by a skip connection.

    ``h = conv_L(drop(... conv_1(drop(x))))``, ``out = (h + P x) · residual_scale``
    where ``P`` is a linear 1×1 projection (with bias) when the width of ``x``
    differs from the block's output width, else the identity.  This is fairseq's
    ``FConvDecoder`` (Dauphin et al. 2017 as released): dropout before every
    convolution, ``residual_scale = sqrt(0.5)``.  fairseq's spec ``(c, k)`` with
    the default residual distance 1 is a block of one convolution.

    Args:
        convolutions: list of ``(filters, kernel_size)`` pairs, applied in order.
        causal, gate_activation, weight_norm, kernel_initializer: passed to
            every :class:`GatedConv1D`.
        dropout: rate applied before every convolution (training only).
        residual_scale: multiplies ``h + P x`` (``sqrt(0.5)`` keeps the variance).
    """

    def __init__(
        self,
        convolutions,
        causal=True,
        gate_activation="sigmoid",
        dropout=0.0,
        residual_scale=math.sqrt(0.5),
        weight_norm=False,
        kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.convolutions = _normalize_convolutions(type(self).__name__, convolutions)
        check_rate("dropout", dropout, owner=type(self).__name__)
        self.causal = bool(causal)
        self.gate_activation = hops.canonical_activation(gate_activation)
        self.dropout = float(dropout)
        self.residual_scale = float(residual_scale)
        self.weight_norm = bool(weight_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer) if kernel_initializer else None
        self.convs = [
            GatedConv1D(
                filters,
                kernel_size,
                causal=self.causal,
                gate_activation=self.gate_activation,
                weight_norm=self.weight_norm,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=f"conv_{i}",
            )
            for i, (filters, kernel_size) in enumerate(self.convolutions)
        ]
        self.drop = _dropout_layer(self.dropout, self.dtype_policy)
        self.projection = None

    @property
    def filters(self):
        return self.convolutions[-1][0]

    def build(self, input_shape):
        _check_sequence_input(type(self).__name__, input_shape)
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        if input_shape[-1] != self.filters:
            self.projection = keras.layers.Dense(self.filters, dtype=self.dtype_policy, name="projection")
            self.projection.build(tuple(input_shape))

    def call(self, inputs, training=None):
        residual = inputs if self.projection is None else self.projection(inputs)
        h = inputs
        for conv in self.convs:
            if self.drop is not None:
                h = self.drop(h, training=training)
            h = conv(h)
        return ops.multiply(ops.add(h, residual), self.residual_scale)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {
            **super().get_config(),
            "convolutions": [list(c) for c in self.convolutions],
            "causal": self.causal,
            "gate_activation": self.gate_activation,
            "dropout": self.dropout,
            "residual_scale": self.residual_scale,
            "weight_norm": self.weight_norm,
            "kernel_initializer": (
                None if self.kernel_initializer is None else keras.initializers.serialize(self.kernel_initializer)
            ),
        }


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class GatedBottleneckBlock(GatedResidualBlock):
    """GCNN bottleneck block ("B" models): 1×1 down, width-k, 1×1 up; the skip jumps all three.

    Each of the three is a gated convolution (fairseq ``fconv_lm_dauphin_gbw``:
    ``(b, 1, 0), (b, k, 0), (filters, 1, 3)``).

    Args:
        filters: output width (the 1×1 expansion).
        bottleneck_filters: width b of the reduced representation.
        kernel_size: k of the middle convolution.
    """

    def __init__(self, filters, bottleneck_filters, kernel_size, **kwargs):
        kwargs.pop("convolutions", None)
        filters = check_positive_int("filters", filters, owner="GatedBottleneckBlock")
        bottleneck_filters = check_positive_int("bottleneck_filters", bottleneck_filters, owner="GatedBottleneckBlock")
        kernel_size = check_positive_int("kernel_size", kernel_size, owner="GatedBottleneckBlock")
        super().__init__([(bottleneck_filters, 1), (bottleneck_filters, kernel_size), (filters, 1)], **kwargs)
        self.bottleneck_filters = bottleneck_filters
        self.kernel_size = kernel_size

    def get_config(self):
        config = super().get_config()
        config.pop("convolutions")
        config.update(filters=self.filters, bottleneck_filters=self.bottleneck_filters, kernel_size=self.kernel_size)
        return config


# --------------------------------------------------------------------- GLU FFN
@keras.saving.register_keras_serializable(package="hadamard_zoo")
class GLUFeedForward(keras.layers.Layer):
    """GLU-variant feed-forward network ``(act(x W) ⊙ x V) W2`` (Shazeer 2020).

    ``activation``: ``"swish"`` (SwiGLU), ``"gelu"`` (GeGLU), ``"sigmoid"`` (GLU),
    ``"identity"`` (bilinear), ``"relu"`` (ReGLU), or any other name of
    :mod:`hadamard_zoo.ops.activations`.  ``W`` and ``V`` are one fused
    ``(d, 2·hidden_dim)`` kernel (value half first, gate half second) and the
    product runs through :func:`hadamard_zoo.ops.glu`.

    Input ``(..., d)``; output ``(..., output_dim or d)``.  ``use_bias=False`` as
    in the paper.
    """

    def __init__(
        self,
        hidden_dim,
        output_dim=None,
        activation="swish",
        use_bias=False,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        hidden_dim = check_positive_int("hidden_dim", hidden_dim, owner="GLUFeedForward")
        if output_dim is not None:
            output_dim = check_positive_int("output_dim", output_dim, owner="GLUFeedForward")
        check_rate("dropout", dropout, owner="GLUFeedForward")
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.activation = hops.canonical_activation(activation)
        self.use_bias = bool(use_bias)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.drop = _dropout_layer(self.dropout, self.dtype_policy)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"GLUFeedForward expects inputs of shape (batch, ..., features) with known features, "
                f"got {tuple(input_shape)}."
            )
        d = input_shape[-1]
        out = self.output_dim or d
        h2 = 2 * self.hidden_dim
        self.kernel_in = self.add_weight(name="kernel_in", shape=(d, h2), initializer=self.kernel_initializer)
        self.kernel_out = self.add_weight(
            name="kernel_out", shape=(self.hidden_dim, out), initializer=self.kernel_initializer
        )
        self.bias_in = self.bias_out = None
        if self.use_bias:
            self.bias_in = self.add_weight(name="bias_in", shape=(h2,), initializer=self.bias_initializer)
            self.bias_out = self.add_weight(name="bias_out", shape=(out,), initializer=self.bias_initializer)

    def call(self, inputs, training=None):
        h = ops.matmul(inputs, self.kernel_in)
        if self.bias_in is not None:
            h = ops.add(h, self.bias_in)
        h = hops.glu(h, activation=self.activation, axis=-1)
        if self.drop is not None:
            h = self.drop(h, training=training)
        y = ops.matmul(h, self.kernel_out)
        if self.bias_out is not None:
            y = ops.add(y, self.bias_out)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim or input_shape[-1],)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "output_dim": self.output_dim,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


# -------------------------------------------------------------- adaptive softmax
@keras.saving.register_keras_serializable(package="hadamard_zoo")
class AdaptiveSoftmax(keras.layers.Layer):
    """Adaptive softmax output layer (Grave et al. 2017), as GCNN uses on WikiText-103.

    The vocabulary (sorted by frequency) is split by ``cutoffs`` into a head
    ``[0, c_0)`` and tail clusters ``[c_i, c_{i+1})``.  The head scores the
    ``c_0`` frequent words and one entry per tail cluster; cluster ``i`` has a
    projection to ``d // div_value**(i+1)`` dimensions, then to its words (no
    biases; fairseq / ``torch.nn.AdaptiveLogSoftmaxWithLoss`` layout).
    ``log p(w) = log p_head(w)`` for head words and
    ``log p_head(cluster i) + log p_i(w)`` for words of cluster ``i``.

    ``call(x)`` returns the full ``(..., vocab_size)`` **log-probabilities**; since
    they are normalized, they can be used wherever logits are expected
    (``SparseCategoricalCrossentropy(from_logits=True)`` then gives exactly the
    adaptive-softmax negative log-likelihood; sampling from them is exact).
    :meth:`nll` gives the per-token negative log-likelihood of given targets
    without concatenating the full distribution.

    Args:
        vocab_size: V.
        cutoffs: increasing cluster boundaries, all in ``(0, V)`` (a last cutoff
            equal to V is accepted and dropped, as in fairseq).
        div_value: dimension reduction factor of successive tail clusters (4).
        dropout: rate on the input and inside each tail projection (training only).
    """

    def __init__(self, vocab_size, cutoffs, div_value=4.0, dropout=0.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        vocab_size = check_positive_int("vocab_size", vocab_size, owner="AdaptiveSoftmax")
        cutoffs = [int(c) for c in cutoffs]
        if cutoffs and cutoffs[-1] == vocab_size:
            cutoffs = cutoffs[:-1]
        if not cutoffs or any(c <= 0 or c >= vocab_size for c in cutoffs) or sorted(set(cutoffs)) != cutoffs:
            raise ValueError(
                f"AdaptiveSoftmax: cutoffs must be a non-empty strictly increasing list of integers in "
                f"(0, vocab_size={vocab_size}), got {cutoffs!r}."
            )
        if not div_value > 0:
            raise ValueError(f"AdaptiveSoftmax: div_value must be > 0, got {div_value!r}.")
        check_rate("dropout", dropout, owner="AdaptiveSoftmax")
        self.vocab_size = vocab_size
        self.cutoffs = cutoffs
        self.div_value = float(div_value)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.drop = _dropout_layer(self.dropout, self.dtype_policy)

    @property
    def bounds(self):
        """``[(start, end), ...]`` of the tail clusters."""
        edges = self.cutoffs + [self.vocab_size]
        return [(edges[i], edges[i + 1]) for i in range(len(self.cutoffs))]

    def tail_dims(self, input_dim):
        dims = []
        for i in range(len(self.cutoffs)):
            dim = int(input_dim // self.div_value ** (i + 1))
            if dim < 1:
                raise ValueError(
                    f"AdaptiveSoftmax: input dimension {input_dim} // {self.div_value}**{i + 1} leaves no "
                    f"dimension for tail cluster {i}; use fewer cutoffs or a smaller div_value."
                )
            dims.append(dim)
        return dims

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"AdaptiveSoftmax expects inputs (batch, ..., features), got {tuple(input_shape)}.")
        d = input_shape[-1]
        init = self.kernel_initializer
        self.head = self.add_weight(name="head", shape=(d, self.cutoffs[0] + len(self.cutoffs)), initializer=init)
        self.tail_projections, self.tail_outputs = [], []
        for i, (dim, (lo, hi)) in enumerate(zip(self.tail_dims(d), self.bounds)):
            self.tail_projections.append(self.add_weight(name=f"tail_{i}_projection", shape=(d, dim), initializer=init))
            self.tail_outputs.append(self.add_weight(name=f"tail_{i}_output", shape=(dim, hi - lo), initializer=init))

    def _head_and_tails(self, x, training):
        if self.drop is not None:
            x = self.drop(x, training=training)
        head = ops.log_softmax(ops.matmul(x, self.head), axis=-1)
        tails = []
        for proj, out in zip(self.tail_projections, self.tail_outputs):
            h = ops.matmul(x, proj)
            if self.drop is not None:
                h = self.drop(h, training=training)
            tails.append(ops.log_softmax(ops.matmul(h, out), axis=-1))
        return head, tails

    def call(self, inputs, training=None):
        head, tails = self._head_and_tails(inputs, training)
        c0 = self.cutoffs[0]
        parts = [head[..., :c0]]
        for i, tail in enumerate(tails):
            parts.append(ops.add(tail, head[..., c0 + i : c0 + i + 1]))
        return ops.concatenate(parts, axis=-1)

    def nll(self, inputs, targets, training=None):
        """Per-token negative log-likelihood ``−log p(targets)``, shape ``targets.shape``."""
        head, tails = self._head_and_tails(inputs, training)
        t = ops.cast(targets, "int32")
        c0 = self.cutoffs[0]

        def pick(logp, index, size):
            index = ops.clip(index, 0, size - 1)
            return ops.squeeze(ops.take_along_axis(logp, ops.expand_dims(index, -1), axis=-1), -1)

        out = ops.negative(pick(head[..., :c0], t, c0))
        for i, (tail, (lo, hi)) in enumerate(zip(tails, self.bounds)):
            value = ops.negative(ops.add(head[..., c0 + i], pick(tail, t - lo, hi - lo)))
            out = ops.where(ops.logical_and(t >= lo, t < hi), value, out)
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.vocab_size,)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "cutoffs": list(self.cutoffs),
            "div_value": self.div_value,
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


# ---------------------------------------------------------- position embedding
@keras.saving.register_keras_serializable(package="hadamard_zoo")
class PositionEmbedding(keras.layers.Layer):
    """Adds learned absolute position embeddings to ``(batch, time, d)`` inputs (time <= max_length)."""

    def __init__(self, max_length, initializer=None, **kwargs):
        super().__init__(**kwargs)
        max_length = check_positive_int("max_length", max_length, owner="PositionEmbedding")
        self.max_length = max_length
        self.initializer = keras.initializers.get(initializer or keras.initializers.RandomNormal(stddev=0.02))

    def build(self, input_shape):
        _check_sequence_input("PositionEmbedding", input_shape)
        if input_shape[1] is not None and input_shape[1] > self.max_length:
            raise ValueError(
                f"PositionEmbedding: sequence length {input_shape[1]} exceeds max_length={self.max_length}."
            )
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.max_length, input_shape[-1]), initializer=self.initializer
        )

    def call(self, inputs):
        length = ops.shape(inputs)[1]
        if isinstance(length, int) and length > self.max_length:
            raise ValueError(
                f"PositionEmbedding: sequence length {length} exceeds max_length={self.max_length}."
            )
        positions = self.embeddings[:length]
        return ops.add(inputs, ops.cast(positions, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "initializer": keras.initializers.serialize(self.initializer),
        }
