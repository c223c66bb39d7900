"""Autoregressive sampling shared by the language models, and the ``CausalLM`` model class.

:func:`generate` works for any causal model mapping token ids ``(batch, time)``
to next-token logits (or log-probabilities) ``(batch, time, vocab)`` on every
backend: the model runs on a sliding window of its context length through
``predict_on_batch`` (compiled once: the window is always right-padded to the
same length, which a causal model cannot see), and sampling is done in numpy
with a seeded ``numpy.random.Generator``, so a seed gives the same text on
every backend for the same logits.

:class:`CausalLM` is the ``keras.Model`` the LM builders return: a Functional
model that also knows its ``context_length`` and, optionally, a
:class:`hadamard_zoo.text.CharTokenizer`, both saved in ``.keras`` files::

    model = hadamard_zoo.models.create_model("gcnn_char_small")
    model.tokenizer = CharTokenizer.from_text(text)
    model.generate("ROMEO:", num_tokens=200, temperature=0.8, seed=0)
"""

from __future__ import annotations

import keras
import numpy as np

from hadamard_zoo.checks import check_positive_int
from hadamard_zoo.text import CharTokenizer


def _window(model):
    """Tokens fed per step: the context length, or the receptive field when it is shorter.

    A model whose last output depends on its last ``receptive_field`` inputs only
    (a convolutional LM) gives the same next-token logits from that many tokens
    as from the whole context, at a fraction of the cost.
    """
    window = _context_length(model)
    field = getattr(model, "receptive_field", None)
    if isinstance(field, int) and 0 < field < window:
        window = field
    return window


def _context_length(model):
    length = getattr(model, "context_length", None)
    if length is None:
        try:
            length = model.input_shape[1]
        except (AttributeError, IndexError, TypeError):
            length = None
    if not isinstance(length, int) or length < 1:
        raise ValueError(
            "generate: cannot tell the model's context length; build it with a fixed sequence "
            "length or give it a `context_length` attribute (CausalLM does)."
        )
    return length


def _sample(logits, temperature, top_k, rng):
    """One token id per row of ``logits`` (``(batch, vocab)`` float64)."""
    if not np.all(np.isfinite(logits)):
        raise FloatingPointError("generate: the model produced non-finite logits.")
    if temperature == 0:
        return np.argmax(logits, axis=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]
        logits = np.where(logits < kth, -np.inf, logits)
    logits = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=-1, keepdims=True)
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(logits.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((cdf < u).sum(axis=-1), logits.shape[-1] - 1)


def generate(model, prompt_ids, num_tokens, temperature=1.0, seed=None, top_k=None):
    """Sample ``num_tokens`` continuation tokens from a causal LM.

    Args:
        model: a causal keras model, ids ``(batch, time)`` → logits ``(batch, time, vocab)``.
        prompt_ids: ``(time,)`` or ``(batch, time)`` integer ids, at least one token.
        num_tokens: how many tokens to append (>= 0).
        temperature: > 0 divides the logits; 0 means greedy (argmax).
        seed: seed of the ``numpy.random.Generator`` (None: fresh entropy).
        top_k: sample only among the k most likely tokens (None: all).

    Returns:
        int32 numpy array: the prompt followed by the sampled tokens, of shape
        ``(time + num_tokens,)`` or ``(batch, time + num_tokens)``.
    """
    ids = np.asarray(prompt_ids)
    if ids.ndim not in (1, 2) or ids.shape[-1] < 1:
        raise ValueError(
            f"generate: prompt_ids must be (time,) or (batch, time) with time >= 1, got shape {ids.shape}."
        )
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"generate: prompt_ids must be integers, got dtype {ids.dtype}.")
    if not isinstance(num_tokens, (int, np.integer)) or num_tokens < 0:
        raise ValueError(f"generate: num_tokens must be a non-negative integer, got {num_tokens!r}.")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"generate: temperature must be >= 0 (0 is greedy), got {temperature!r}.")
    check_positive_int("top_k", top_k, owner="generate", allow_none=True)
    squeeze = ids.ndim == 1
    tokens = ids.reshape(1, -1) if squeeze else ids
    tokens = tokens.astype(np.int32)
    window = _window(model)
    rng = np.random.default_rng(seed)
    batch = tokens.shape[0]
    buffer = np.zeros((batch, window), dtype=np.int32)
    out = [tokens]
    current = tokens
    for _ in range(int(num_tokens)):
        context = current[:, -window:]
        length = context.shape[1]
        buffer[:, :length] = context
        buffer[:, length:] = 0  # right padding: a causal model's output at length-1 cannot see it
        logits = np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(buffer)))
        if logits.ndim != 3 or logits.shape[:2] != (batch, window):
            raise ValueError(
                f"generate: the model must map (batch, time) ids to (batch, time, vocab) logits, got {logits.shape}."
            )
        nxt = _sample(logits[:, length - 1].astype(np.float64), temperature, top_k, rng).astype(np.int32)
        current = np.concatenate([current[:, -window:], nxt[:, None]], axis=1)
        out.append(nxt[:, None])
    result = np.concatenate(out, axis=1)
    return result[0] if squeeze else result


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class CausalLM(keras.Model):
    """A Functional causal language model with ``generate`` and an optional tokenizer.

    Built like a Functional model (``CausalLM(inputs, outputs, context_length=256)``);
    ``context_length`` (the longest window the model is trained on and sees when
    generating), ``receptive_field`` (for models whose outputs depend on that
    many past tokens only, such as convolutional LMs: ``generate`` then feeds
    only that many) and ``tokenizer`` are kept in its config, so they survive
    ``model.save("lm.keras")`` / ``keras.saving.load_model``.
    """

    def __init__(self, *args, context_length=None, receptive_field=None, tokenizer=None, **kwargs):
        super().__init__(*args, **kwargs)
        for name, value in (("context_length", context_length), ("receptive_field", receptive_field)):
            check_positive_int(name, value, owner="CausalLM", allow_none=True)
        self.context_length = context_length
        self.receptive_field = receptive_field
        self.tokenizer = tokenizer

    @property
    def tokenizer(self):
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer):
        if isinstance(tokenizer, dict):
            tokenizer = CharTokenizer.from_config(tokenizer)
        if tokenizer is not None and not isinstance(tokenizer, CharTokenizer):
            raise ValueError(f"CausalLM: tokenizer must be a CharTokenizer or None, got {type(tokenizer).__name__}.")
        self._tokenizer = tokenizer

    def get_config(self):
        config = super().get_config()
        config["context_length"] = self.context_length
        config["receptive_field"] = self.receptive_field
        config["tokenizer"] = None if self._tokenizer is None else self._tokenizer.get_config()
        return config

    def generate(self, prompt, num_tokens=100, temperature=1.0, seed=None, top_k=None):
        """Continue ``prompt`` by ``num_tokens`` sampled tokens.

        Args:
            prompt: a string (needs ``self.tokenizer``) or token ids ``(time,)`` /
                ``(batch, time)``.
            num_tokens, temperature, seed, top_k: see :func:`generate`
                (``temperature=0`` is greedy; a fixed ``seed`` gives the same output).

        Returns:
            the prompt and its continuation: a string for a string prompt, else ids.
        """
        if isinstance(prompt, str):
            if self._tokenizer is None:
                raise ValueError(
                    "CausalLM.generate got a string prompt but the model has no tokenizer; set "
                    "`model.tokenizer = CharTokenizer.from_text(text)` or pass token ids."
                )
            ids = generate(self, self._tokenizer.encode(prompt), num_tokens, temperature, seed, top_k)
            return self._tokenizer.decode(ids)
        return generate(self, prompt, num_tokens, temperature, seed, top_k)
