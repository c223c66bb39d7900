"""Gated convolutional language models (GCNN; Dauphin et al., ICML 2017).

The network is fairseq's ``FConvDecoder`` as configured by ``fconv_lm`` (the
released implementation of the paper):

    ids → Embedding (N(0, 0.1)) → dropout → fc1 (linear to the first width)
        → [residual block of gated convolutions] × ... → head

Every gated convolution is :class:`hadamard_zoo.layers.GatedConv1D`
(``(X*W + b) ⊙ σ(X*V + c)``, causal), preceded by dropout.  The layer spec is
fairseq's: ``(filters, kernel_size[, residual])``, where ``residual`` is how
many layers back the skip connection starts (default 1: every layer is its own
residual block; 0: no skip; the bottleneck "B" blocks are
``(b, 1, 0), (b, k, 0), (c, 1, 3)``).  A skip adds ``P x`` (a linear projection
when the width changes) and scales by ``sqrt(0.5)``.

Heads: ``"softmax"`` (``fc2`` to ``out_embed_dim``, dropout, ``fc3`` to the
vocabulary, as fairseq; or a single Dense when ``out_embed_dim`` is None) or
``"adaptive"`` (:class:`hadamard_zoo.layers.AdaptiveSoftmax` on the last
convolution's output, cutoffs as in the paper).  The model outputs logits
(softmax) or normalized log-probabilities (adaptive); both are trained with
``SparseCategoricalCrossentropy(from_logits=True)``.

Not reproduced: fairseq's weight normalization of the *linear* layers (fc1,
projections, fc2/fc3; ``weight_norm=True`` applies it to the convolutions only)
and its incremental (one-token) decoding.
"""

from __future__ import annotations

import ast
import re

import keras

from hadamard_zoo.checks import check_positive_int
from hadamard_zoo.layers.sequence import (
    AdaptiveSoftmax,
    GatedBottleneckBlock,
    GatedConv1D,
    GatedResidualBlock,
    gcnn_kernel_initializer,
)
from hadamard_zoo.models._generation import CausalLM

_HEADS = ("softmax", "adaptive")
_TERM = re.compile(r"^\s*(\[.*\])\s*(?:\*\s*(\d+))?\s*$", re.S)


def parse_layer_spec(layers):
    """fairseq's layer spec → list of ``(filters, kernel_size, residual)``.

    Accepts fairseq's string form (``"[(850, 6)] * 3 + [(1024, 4)]"``) or a list
    of ``[filters, kernel_size]`` / ``[filters, kernel_size, residual]`` entries.
    """
    if isinstance(layers, str):
        items, terms = [], []
        depth, start = 0, 0
        for i, ch in enumerate(layers):  # split on '+' outside brackets
            depth += ch in "[("
            depth -= ch in "])"
            if ch == "+" and depth == 0:
                terms.append(layers[start:i])
                start = i + 1
        terms.append(layers[start:])
        for term in terms:
            match = _TERM.match(term)
            if not match:
                raise ValueError(
                    f"layers: cannot parse {term.strip()!r} in {layers!r}; expected "
                    f"'[(filters, kernel), ...] * n' terms joined by '+'."
                )
            try:
                chunk = ast.literal_eval(match.group(1))
            except (ValueError, SyntaxError) as exc:
                raise ValueError(f"layers: cannot parse {match.group(1)!r}: {exc}") from None
            items.extend(list(chunk) * int(match.group(2) or 1))
        layers = items
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"layers must be a non-empty list of (filters, kernel_size[, residual]), got {layers!r}.")
    spec = []
    for entry in layers:
        if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3):
            raise ValueError(f"layers: each entry must be (filters, kernel_size[, residual]), got {entry!r}.")
        filters, kernel_size, residual = (*entry, 1) if len(entry) == 2 else entry
        for name, value, low in (("filters", filters, 1), ("kernel_size", kernel_size, 1), ("residual", residual, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"layers: {name} must be an integer >= {low}, got {value!r} in {entry!r}.")
        spec.append((filters, kernel_size, residual))
    return spec


def _group_blocks(spec):
    """Group the spec into residual blocks: ``[(convolutions, residual?)]``.

    A layer with residual distance r closes a block made of itself and the r−1
    layers before it, which must have residual 0 (the structure of every fairseq
    GCNN preset).  Layers with residual 0 not closed by a later layer are plain.
    """
    blocks, pending = [], []
    for filters, kernel_size, residual in spec:
        pending.append((filters, kernel_size))
        if residual == 0:
            continue
        if residual > len(pending):
            raise ValueError(
                f"layers: residual distance {residual} at layer ({filters}, {kernel_size}, {residual}) reaches "
                f"back past the previous block (only {len(pending)} layer(s) since it); residual blocks "
                f"may not overlap."
            )
        blocks.extend((conv, False) for conv in pending[: len(pending) - residual])
        blocks.append((pending[len(pending) - residual :], True))
        pending = []
    blocks.extend((conv, False) for conv in pending)
    return blocks


def receptive_field(layers) -> int:
    """Number of past tokens (including the current one) an output depends on."""
    return 1 + sum(k - 1 for _, k, _ in parse_layer_spec(layers))


def build_gcnn_lm(
    vocab_size=65,
    context_length=256,
    embedding_dim=128,
    layers="[(192, 5)] * 10",
    head="softmax",
    out_embed_dim=None,
    adaptive_cutoffs=None,
    adaptive_div_value=4.0,
    dropout=0.0,
    weight_norm=False,
    gate_activation="sigmoid",
    tokenizer=None,
    name="gcnn_lm",
):
    """Build a GCNN language model (a :class:`CausalLM`).

    Args:
        vocab_size: V.
        context_length: tokens per training sample and the window of ``generate``
            (the model itself accepts any length).
        embedding_dim: token embedding size (fairseq ``decoder_embed_dim``).
        layers: fairseq layer spec (see :func:`parse_layer_spec`).
        head: ``"softmax"`` or ``"adaptive"``.
        out_embed_dim: softmax head only: width of fairseq's ``fc2`` before the
            output layer; None maps the last convolution straight to the logits.
        adaptive_cutoffs: adaptive head only: cluster boundaries (e.g.
            ``[10000, 20000, 200000]`` for WikiText-103).
        adaptive_div_value: adaptive head: tail dimension reduction factor.
        dropout: before every convolution, on the embeddings and in the head.
        weight_norm: weight normalization of every gated convolution.
        gate_activation: σ of the gates (``"sigmoid"``: GLU).
        tokenizer: optional :class:`hadamard_zoo.text.CharTokenizer` (or its config).

    Returns:
        ``CausalLM``: int ids ``(batch, time)`` → ``(batch, time, vocab_size)``.
    """
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an integer >= 2, got {vocab_size!r}.")
    check_positive_int("embedding_dim", embedding_dim)
    if head not in _HEADS:
        raise ValueError(f"head must be one of {_HEADS}, got {head!r}.")
    if head == "adaptive" and not adaptive_cutoffs:
        raise ValueError("head='adaptive' needs adaptive_cutoffs, e.g. [10000, 20000, 200000].")
    spec = parse_layer_spec(layers)
    blocks = _group_blocks(spec)

    inputs = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(
        vocab_size, embedding_dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1), name="embedding"
    )(inputs)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    x = keras.layers.Dense(spec[0][0], name="fc1")(x)
    init = gcnn_kernel_initializer()
    if dropout:  # fairseq: std sqrt(4 (1 - p) / (k c_in))
        init = keras.initializers.VarianceScaling(
            scale=4.0 * (1.0 - dropout), mode="fan_in", distribution="untruncated_normal"
        )
    common = dict(gate_activation=gate_activation, weight_norm=weight_norm, kernel_initializer=init)
    for i, (block, residual) in enumerate(blocks):
        if residual:
            is_bottleneck = (
                len(block) == 3 and block[0][1] == 1 and block[2][1] == 1 and block[0][0] == block[1][0]
            )
            if is_bottleneck:
                layer = GatedBottleneckBlock(
                    block[2][0], block[0][0], block[1][1], dropout=dropout, name=f"block_{i}", **common
                )
            else:
                layer = GatedResidualBlock(block, dropout=dropout, name=f"block_{i}", **common)
            x = layer(x)
        else:
            filters, kernel_size = block
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"block_{i}_dropout")(x)
            x = GatedConv1D(filters, kernel_size, name=f"block_{i}", **common)(x)
    if head == "adaptive":
        outputs = AdaptiveSoftmax(
            vocab_size, adaptive_cutoffs, div_value=adaptive_div_value, dropout=dropout, name="adaptive_softmax"
        )(x)
    else:
        if out_embed_dim:
            x = keras.layers.Dense(out_embed_dim, name="fc2")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name="fc2_dropout")(x)
        outputs = keras.layers.Dense(vocab_size, name="logits")(x)
    return CausalLM(
        inputs,
        outputs,
        context_length=context_length,
        receptive_field=1 + sum(k - 1 for _, k, _ in spec),
        tokenizer=tokenizer,
        name=name,
    )


def gcnn_body_parameters(embedding_dim, layers):
    """Parameters of fc1 and the gated convolutions (with their skip projections), no weight norm.

    The arithmetic of fairseq's ``FConvDecoder`` (embedding and head excluded).
    """
    spec = parse_layer_spec(layers)
    total = embedding_dim * spec[0][0] + spec[0][0]  # fc1
    width = spec[0][0]
    for block, residual in _group_blocks(spec):
        convs = block if residual else [block]
        block_in = width
        for filters, kernel_size in convs:
            total += kernel_size * width * 2 * filters + 2 * filters
            width = filters
        if residual and block_in != width:
            total += block_in * width + width
    return total


__all__ = ["build_gcnn_lm", "parse_layer_spec", "receptive_field", "gcnn_body_parameters"]
