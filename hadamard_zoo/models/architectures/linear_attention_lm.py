"""Causal linear-attention language models (survey Eq. 7 and appendix S.2.1).

``architecture="s21"``: exactly the survey's appendix S.2.1 ``LanguageModel``:
token embedding → one linear self-attention (``Q K^T`` masked by a Hadamard
product with the lower-triangular ones matrix, times ``V``; single head, no
feature map, no normalization, no scaling, biased ``W_q, W_k, W_v``, no output
projection) → linear output layer to the vocabulary.

``architecture="prenorm"``: a deeper character model built from the same
primitive: token embedding (+ learned positions) → ``num_layers`` ×
[LayerNorm → :class:`~hadamard_zoo.layers.CausalLinearAttention` (``elu+1``
feature map, row-normalized as Katharopoulos et al. 2020, multi-head, output
projection) → residual → LayerNorm → :class:`~hadamard_zoo.layers.GLUFeedForward`
(SwiGLU) → residual] → LayerNorm → linear output layer.

Both return a :class:`~hadamard_zoo.models._generation.CausalLM` (ids
``(batch, time)`` → logits ``(batch, time, vocab)``) with ``generate``.
"""

from __future__ import annotations

import keras

from hadamard_zoo.checks import check_positive_int
from hadamard_zoo.layers.sequence import GLUFeedForward, PositionEmbedding
from hadamard_zoo.models._generation import CausalLM

_ARCHITECTURES = ("s21", "prenorm")
_POSITIONAL = (None, "learned")


def _attention_layer():
    try:
        from hadamard_zoo.layers import CausalLinearAttention
    except ImportError as exc:  # pragma: no cover - the layer ships with the package
        raise ImportError(
            "hadamard_zoo.layers.CausalLinearAttention is not available; the linear-attention LM needs it."
        ) from exc
    return CausalLinearAttention


def build_linear_attention_lm(
    vocab_size=65,
    context_length=256,
    hidden_dim=256,
    num_layers=4,
    num_heads=4,
    architecture="prenorm",
    feature_map="elu+1",
    normalize=True,
    ffn_hidden_dim=683,
    ffn_activation="swish",
    positional_embedding="learned",
    dropout=0.0,
    chunk_size=64,
    tokenizer=None,
    name="linear_attention_lm",
):
    """Build a causal linear-attention LM (a :class:`CausalLM`).

    Args:
        vocab_size: V.
        context_length: training window, ``generate``'s window, and the number
            of learned positions.
        hidden_dim: d, the embedding and attention width.
        num_layers: number of blocks (``"s21"``: must be 1).
        num_heads: attention heads (``"s21"``: must be 1).
        architecture: ``"s21"`` (the appendix model) or ``"prenorm"``.
        feature_map: ``None`` (identity, the appendix) or ``"elu+1"``.
        normalize: divide each row by its masked sum (Katharopoulos); False in the appendix.
        ffn_hidden_dim, ffn_activation: the GLU FFN of the ``"prenorm"`` blocks
            (683 ≈ 8/3·256 keeps a SwiGLU at the parameter count of a 4·d ReLU FFN).
        positional_embedding: ``"learned"`` (``context_length`` positions) or None.
        dropout: on the embeddings and after each residual branch (``"prenorm"``).
        chunk_size: time steps per chunk of the chunked causal linear attention.
        tokenizer: optional :class:`hadamard_zoo.text.CharTokenizer` (or its config).
    """
    if architecture not in _ARCHITECTURES:
        raise ValueError(f"architecture must be one of {_ARCHITECTURES}, got {architecture!r}.")
    if positional_embedding not in _POSITIONAL:
        raise ValueError(f"positional_embedding must be one of {_POSITIONAL}, got {positional_embedding!r}.")
    positive = (("vocab_size", vocab_size), ("hidden_dim", hidden_dim), ("num_layers", num_layers), ("num_heads", num_heads))
    for arg, value in positive:
        check_positive_int(arg, value)
    if not isinstance(context_length, int) or context_length < 1:
        raise ValueError(f"context_length must be a positive integer, got {context_length!r}.")
    if architecture == "s21" and (num_layers != 1 or num_heads != 1):
        raise ValueError(
            f"architecture='s21' is the appendix model: one single-head attention layer; got "
            f"num_layers={num_layers}, num_heads={num_heads}."
        )
    CausalLinearAttention = _attention_layer()

    inputs = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(
        vocab_size,
        hidden_dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0 if architecture == "s21" else 0.02),
        name="embedding",
    )(inputs)
    if positional_embedding == "learned":
        x = PositionEmbedding(context_length, name="position_embedding")(x)

    if architecture == "s21":
        x = CausalLinearAttention(
            hidden_dim,
            num_heads=1,
            feature_map=feature_map,
            normalize=normalize,
            use_bias=True,
            chunk_size=chunk_size,
            output_projection=False,
            name="linear_self_attn",
        )(x)
        outputs = keras.layers.Dense(vocab_size, name="fc_out")(x)
        return CausalLM(inputs, outputs, context_length=context_length, tokenizer=tokenizer, name=name)

    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(num_layers):
        h = keras.layers.LayerNormalization(epsilon=1e-5, name=f"block_{i}_norm_1")(x)
        h = CausalLinearAttention(
            hidden_dim,
            num_heads=num_heads,
            feature_map=feature_map,
            normalize=normalize,
            use_bias=True,
            chunk_size=chunk_size,
            output_projection=True,
            name=f"block_{i}_attention",
        )(h)
        if dropout:
            h = keras.layers.Dropout(dropout, name=f"block_{i}_dropout_1")(h)
        x = keras.layers.Add(name=f"block_{i}_residual_1")([x, h])
        h = keras.layers.LayerNormalization(epsilon=1e-5, name=f"block_{i}_norm_2")(x)
        h = GLUFeedForward(ffn_hidden_dim, activation=ffn_activation, name=f"block_{i}_ffn")(h)
        if dropout:
            h = keras.layers.Dropout(dropout, name=f"block_{i}_dropout_2")(h)
        x = keras.layers.Add(name=f"block_{i}_residual_2")([x, h])
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
    outputs = keras.layers.Dense(vocab_size, name="logits")(x)
    return CausalLM(inputs, outputs, context_length=context_length, tokenizer=tokenizer, name=name)
