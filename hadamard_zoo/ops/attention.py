"""Causal linear attention: the lower-triangular Hadamard mask of survey Eq. 7.

Survey Eq. 7 (masked linear self-attention; appendix S.2.1)::

    Y = ((Q K^T) * M) V                      M[i, j] = 1 if j <= i else 0

``*`` is the Hadamard product with the causal mask ``M``.  With
``normalize=True`` the rows are divided by their sum, as in Katharopoulos et
al. (ICML 2020, "Transformers are RNNs")::

    Y = ((Q K^T) * M) V  /  (((Q K^T) * M) 1 + eps)

No ``1/sqrt(d)`` scaling and no feature map are applied here: the caller scales
``q`` or applies ``phi`` (the layer :class:`hadamard_zoo.layers.CausalLinearAttention`
applies ``phi = elu + 1`` when asked).

Three equivalent forms (anchors: ``seq_kg_anchors.md`` Sec. 2):

* masked (the reference, O(T^2) time and memory): :func:`causal_linear_attention_reference`;
* chunked (the accelerated path on every backend, O(T) memory): split time into
  chunks of ``C``; chunk ``c`` gets the masked product inside the chunk plus
  ``Q_c S_{c-1}``, where ``S_{c-1} = sum_{c' < c} K_{c'}^T V_{c'}`` is the
  exclusive running state, computed for all chunks at once with batched matmuls
  and a cumulative sum;
* recurrent (one token at a time, for generation): :func:`linear_attention_step`.
"""

from __future__ import annotations

from keras import ops

from hadamard_zoo.ops import _checks
from hadamard_zoo.ops._dispatch import dispatch


# ---------------------------------------------------------------- validation
def _check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
        raise ValueError(f"eps must be a non-negative number, got {eps!r}.")


def _check_qkv(name, q, k, v):
    _checks.check_rank(f"{name}: q", q, min_rank=3)
    r = len(_checks.shape_of(q))
    if r > 4:
        raise ValueError(
            f"{name}: q must have shape (batch, time, dim) or (batch, heads, time, dim), "
            f"got {_checks.shape_of(q)} (rank {r})."
        )
    _checks.check_same_shape(f"{name}: q and k", q, k)
    _checks.check_rank(f"{name}: v", v, rank=r)
    sq, sv = _checks.shape_of(q), _checks.shape_of(v)
    for axis, (a, b) in enumerate(zip(sq[:-1], sv[:-1])):
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"{name}: v must match q on every axis but the last (batch, [heads,] time), "
                f"got q {sq} and v {sv} (axis {axis} differs)."
            )


# ----------------------------------------------------------------- reference
def _transpose_last(x):
    # ops.transpose with an explicit permutation (keras' swapaxes fails on tf.Variable)
    perm = list(range(len(x.shape)))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return ops.transpose(x, perm)


def causal_linear_attention_reference(q, k, v, normalize=False, eps=1e-6, chunk_size=128):
    del chunk_size  # the masked form does not chunk
    t = ops.shape(q)[-2]
    scores = ops.matmul(q, _transpose_last(k))  # (..., T, T)
    mask = ops.tril(ops.ones((t, t), dtype=scores.dtype))
    scores = ops.multiply(scores, mask)  # the causal Hadamard mask (Eq. 7)
    y = ops.matmul(scores, v)
    if normalize:
        den = ops.add(ops.sum(scores, axis=-1, keepdims=True), ops.cast(eps, scores.dtype))
        y = ops.divide(y, den)
    return y


def causal_linear_attention(q, k, v, normalize=False, eps=1e-6, chunk_size=128):
    """Causal (masked) linear attention ``((Q K^T) * M) V`` (survey Eq. 7, S.2.1).

    Args:
        q: queries ``(B, T, D)`` or ``(B, H, T, D)`` (already passed through the
            feature map and scaled, if wanted).
        k: keys, same shape as ``q``.
        v: values ``(B, T, M)`` or ``(B, H, T, M)``.
        normalize: divide each row by ``((Q K^T) * M) 1 + eps`` (Katharopoulos
            et al. 2020); the survey's Eq. 7 / S.2.1 form is ``normalize=False``.
        eps: added to the normalizer (1e-6 as in fast-transformers).
        chunk_size: time steps per chunk of the accelerated (chunked) form; it
            only changes the summation order, not the result.  ``T`` need not be
            a multiple (the last chunk is zero-padded; zero keys contribute nothing).
            128 was the fastest on this project's 2-core CPU (B=4, T=4096, D=64):
            on JAX 1.3x (forward) to 2x (with gradients) faster than 64, on
            TensorFlow and torch equal to 64 within noise.

    Returns:
        ``(B, T, M)`` or ``(B, H, T, M)``.  Row ``i`` depends on keys/values
        ``j <= i`` only.

    The reference materializes the ``(T, T)`` scores (O(T^2) memory); the
    accelerated path (all backends) is the chunked form with O(T) memory.
    """
    _check_qkv("causal_linear_attention", q, k, v)
    chunk_size = _checks.check_positive_int("chunk_size", chunk_size, what="time steps per chunk")
    _check_eps(eps)
    return dispatch(
        "causal_linear_attention",
        causal_linear_attention_reference,
        q,
        k,
        v,
        normalize=bool(normalize),
        eps=float(eps),
        chunk_size=chunk_size,
    )


def linear_attention_step_reference(q_t, k_t, v_t, state, z_state=None, eps=1e-6):
    kv = ops.multiply(ops.expand_dims(k_t, -1), ops.expand_dims(v_t, -2))  # (..., D, M)
    state = ops.add(state, kv)
    y = ops.squeeze(ops.matmul(ops.expand_dims(q_t, -2), state), -2)  # (..., M)
    if z_state is not None:
        z_state = ops.add(z_state, k_t)
        den = ops.sum(ops.multiply(q_t, z_state), axis=-1, keepdims=True)
        y = ops.divide(y, ops.add(den, ops.cast(eps, den.dtype)))
    return y, state, z_state


def linear_attention_step(q_t, k_t, v_t, state, z_state=None, eps=1e-6):
    """One step of the recurrent form of causal linear attention (for generation).

    ``S_t = S_{t-1} + k_t v_t^T``, ``y_t = q_t^T S_t`` and, when ``z_state`` is
    given (normalized attention), ``z_t = z_{t-1} + k_t``,
    ``y_t = q_t^T S_t / (q_t^T z_t + eps)``.  Running it for ``t = 1..T`` from zero
    states gives row ``t`` of :func:`causal_linear_attention` (survey Eq. 7).

    Args:
        q_t, k_t: ``(..., D)`` the query and key of the new token.
        v_t: ``(..., M)`` its value.
        state: ``(..., D, M)`` running ``sum_j k_j v_j^T`` (zeros at the start).
        z_state: ``(..., D)`` running ``sum_j k_j`` or None (unnormalized).
        eps: added to the normalizer.

    Returns:
        ``(y_t (..., M), new state, new z_state or None)``.
    """
    _checks.check_same_shape("linear_attention_step: q_t and k_t", q_t, k_t)
    _checks.check_rank("linear_attention_step: state", state, rank=len(_checks.shape_of(q_t)) + 1)
    d, m = _checks.shape_of(state)[-2:]
    _checks.check_last_dim("linear_attention_step: q_t", q_t, d, "state (..., D, M)")
    _checks.check_last_dim("linear_attention_step: v_t", v_t, m, "state (..., D, M)")
    if z_state is not None:
        _checks.check_same_shape("linear_attention_step: z_state and k_t", z_state, k_t)
    _check_eps(eps)
    return dispatch(
        "linear_attention_step",
        linear_attention_step_reference,
        q_t,
        k_t,
        v_t,
        state,
        z_state,
        eps=float(eps),
    )


# ---------------------------------------------------------- the chunked form
def _pad_time(x, pad):
    widths = [[0, 0]] * (len(x.shape) - 2) + [[0, pad], [0, 0]]
    return ops.pad(x, widths)


def causal_linear_attention_chunked(q, k, v, normalize=False, eps=1e-6, chunk_size=128):
    """The chunked form in ``keras.ops`` (needs a static time length).

    For chunk ``c`` (``M_C`` the ``C x C`` causal mask)::

        Y_c = ((Q_c K_c^T) * M_C) V_c + Q_c S_{c-1},   S_{c-1} = sum_{c' < c} K_{c'}^T V_{c'}

    All chunks at once: the per-chunk states ``K_c^T V_c`` are one batched
    matmul, their exclusive running sum one ``cumsum``.  Memory is
    ``O(T (C + D M / C))`` instead of ``O(T^2)``.
    """
    shape_q = tuple(q.shape)
    t, d = shape_q[-2], shape_q[-1]
    lead = tuple(ops.shape(q)[:-2])  # may hold dynamic sizes (TF graphs)
    m = tuple(v.shape)[-1]
    c = min(chunk_size, t)
    n = -(-t // c)
    pad = n * c - t
    if pad:
        q, k, v = _pad_time(q, pad), _pad_time(k, pad), _pad_time(v, pad)
    q = ops.reshape(q, (-1, n, c, d))
    k = ops.reshape(k, (-1, n, c, d))
    v = ops.reshape(v, (-1, n, c, m))
    k_t = _transpose_last(k)  # (N, n, D, C)

    scores = ops.multiply(ops.matmul(q, k_t), ops.tril(ops.ones((c, c), dtype=q.dtype)))
    y = ops.matmul(scores, v)  # intra-chunk, (N, n, C, M)
    if n > 1:
        kv = ops.matmul(k_t, v)  # per-chunk states K_c^T V_c, (N, n, D, M)
        state = ops.cumsum(ops.pad(kv[:, :-1], [[0, 0], [1, 0], [0, 0], [0, 0]]), axis=1)
        y = ops.add(y, ops.matmul(q, state))  # inter-chunk, exclusive state S_{c-1}
    if normalize:
        den = ops.sum(scores, axis=-1)  # (N, n, C)
        if n > 1:
            ksum = ops.sum(k, axis=2)  # (N, n, D)
            z = ops.cumsum(ops.pad(ksum[:, :-1], [[0, 0], [1, 0], [0, 0]]), axis=1)
            den = ops.add(den, ops.squeeze(ops.matmul(q, ops.expand_dims(z, -1)), -1))
        den = ops.add(den, ops.cast(eps, den.dtype))
        y = ops.divide(y, ops.expand_dims(den, -1))
    y = ops.reshape(y, lead + (n * c, m))
    if pad:
        y = y[..., :t, :]
    return y


def _static_time(q):
    t = tuple(q.shape)[-2]
    return t if isinstance(t, int) else None


# ------------------------------------------------------------ accelerated paths
from hadamard_zoo.ops import _backend_utils as _bu  # noqa: E402
from hadamard_zoo.ops._dispatch import register  # noqa: E402


@register("causal_linear_attention", "jax")
def _cla_jax(q, k, v, normalize, eps, chunk_size):
    return _bu.jax_jit(
        causal_linear_attention_chunked, q, k, v, normalize=normalize, eps=eps, chunk_size=chunk_size
    )


@register("causal_linear_attention", "tensorflow")
def _cla_tf(q, k, v, normalize, eps, chunk_size):
    # The chunked form is algorithmically better, so it runs in TF graphs too
    # (Keras' train step), not only eagerly.  Eager calls run it as plain ops:
    # an XLA cluster was not faster here (see docs/benchmarks.md).
    import tensorflow as tf

    q, k, v = (tf.convert_to_tensor(t) for t in (q, k, v))
    if _static_time(q) is None or tuple(q.shape)[-1] is None or tuple(v.shape)[-1] is None:
        return NotImplemented
    return causal_linear_attention_chunked(q, k, v, normalize=normalize, eps=eps, chunk_size=chunk_size)


def _exclusive_prefix_sum_torch(x):
    """``out[:, i] = sum_{j < i} x[:, j]`` along axis 1 (the chunk axis, a few dozen long).

    A loop of additions: ``torch.cumsum`` along a non-last axis ran at ~0.1
    Gelem/s on this CPU (8 ms for the states of B=4, T=4096, D=M=64), the loop 1 ms.
    """
    import torch

    parts = x.unbind(1)  # one node whose backward is a single stack (x[:, i] would
    acc = torch.zeros_like(parts[0])  # make every step's backward a full-size zeros)
    out = [acc]
    for part in parts[:-1]:
        acc = acc + part
        out.append(acc)
    return torch.stack(out, dim=1)


_TORCH_MASKS = {}


def _torch_mask(c, dtype, device):
    """The ``C x C`` causal mask, cached (one small op less per call)."""
    import torch

    key = (c, dtype, str(device))
    if key not in _TORCH_MASKS:
        _TORCH_MASKS[key] = torch.ones(c, c, dtype=dtype, device=device).tril_()
    return _TORCH_MASKS[key]


def _chunked_torch(q, k, v, normalize, eps, chunk_size):
    """The chunked form with ATen batched GEMMs and in-place masking / accumulation.

    Same algorithm as :func:`causal_linear_attention_chunked`; the in-place
    operations are on GEMM outputs that no backward formula saves, so autograd
    stays valid.
    """
    import torch
    import torch.nn.functional as F

    lead, t, d, m = q.shape[:-2], q.shape[-2], q.shape[-1], v.shape[-1]
    c = min(chunk_size, t)
    n = -(-t // c)
    pad = n * c - t
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
    q3 = q.reshape(-1, c, d)  # (N * n, C, D): chunks of every sequence, in order
    k3 = k.reshape(-1, c, d)
    v3 = v.reshape(-1, c, m)
    k3t = k3.transpose(1, 2)
    mask = _torch_mask(c, q.dtype, q.device)
    scores = torch.bmm(q3, k3t).mul_(mask)  # intra-chunk (Q_c K_c^T) * M_C
    y = torch.bmm(scores, v3)
    if n > 1:
        kv = torch.bmm(k3t, v3).reshape(-1, n, d, m)  # K_c^T V_c
        state = _exclusive_prefix_sum_torch(kv)  # S_{c-1}
        y = torch.bmm(q3, state.reshape(-1, d, m)).add_(y)
    if normalize:
        den = scores.sum(-1)  # (N * n, C)
        if n > 1:
            z = _exclusive_prefix_sum_torch(k3.sum(1).reshape(-1, n, d)).reshape(-1, d, 1)
            den = den + torch.bmm(q3, z).squeeze(-1)
        y = y / (den + eps).unsqueeze(-1)
    y = y.reshape(*lead, n * c, m)
    return y[..., :t, :] if pad else y


@register("causal_linear_attention", "torch")
def _cla_torch(q, k, v, normalize, eps, chunk_size):
    q, k, v = _bu.torch_tensors(q, k, v)
    if not _bu.torch_plain(q, k, v) or len({q.dtype, k.dtype, v.dtype}) != 1:
        return NotImplemented
    return _chunked_torch(q, k, v, normalize, eps, chunk_size)


def _step_positional(q_t, k_t, v_t, state, z_state, eps):
    return linear_attention_step_reference(q_t, k_t, v_t, state, z_state, eps=eps)


@register("linear_attention_step", "jax")
def _step_jax(q_t, k_t, v_t, state, z_state, eps):
    return _bu.jax_jit(_step_positional, q_t, k_t, v_t, state, z_state, eps=eps)
