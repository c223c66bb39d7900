"""MONet's Mu-layer primitives (Cheng et al., "Multilinear Operator Networks", ICLR 2024).

* ``mu_product(u, v, alpha, ...) = LN(u) + alpha * (LN(u) * LN(v))``: the
  second-order (Hadamard) interaction of the Mu-layer (survey appendix S.2.2,
  ``PolyMlp.forward``: ``out1 = norm1(U1 x)``, ``out2 = norm3(U3 U2 x)``,
  ``out1 + alpha * out1 * out2``), with both LayerNorms over the last axis
  (epsilon 1e-6 in MONet) computed inside the op.
* ``spatial_shift(x)``: MONet's (S2-MLP style) spatial shift of a channels-last
  tensor ``(B, H, W, C)``: four channel groups moved by one position
  +H, -H, +W, -W, the border row/column keeping its own value (survey appendix
  S.2.2, ``Spatial_Shift``).

Both are written with ``keras.ops`` (``*_reference``) and have accelerated
paths: ``jax.jit`` / XLA of the reference on JAX and TensorFlow, hand-fused
ATen code on torch.
"""

from __future__ import annotations

import numbers

import keras
from keras import ops

from hadamard_zoo.ops import _checks
from hadamard_zoo.ops._dispatch import dispatch

_HALF = ("float16", "bfloat16")


# ------------------------------------------------------------------ mu_product
def _layer_norm_last(x, gamma, beta, epsilon):
    mean = ops.mean(x, axis=-1, keepdims=True)
    centered = ops.subtract(x, mean)
    variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
    y = ops.multiply(centered, ops.rsqrt(ops.add(variance, epsilon)))
    if gamma is not None:
        y = ops.multiply(y, gamma)
    if beta is not None:
        y = ops.add(y, beta)
    return y


def mu_product_reference(u, v, alpha, gamma_u=None, beta_u=None, gamma_v=None, beta_v=None, epsilon=1e-6):
    dtype = keras.backend.standardize_dtype(u.dtype)
    compute = "float32" if dtype in _HALF else dtype  # LayerNorm statistics in >= float32

    def cast(t):
        return None if t is None else ops.cast(t, compute)

    a = _layer_norm_last(cast(u), cast(gamma_u), cast(beta_u), epsilon)
    b = _layer_norm_last(cast(v), cast(gamma_v), cast(beta_v), epsilon)
    alpha = alpha if isinstance(alpha, numbers.Number) else cast(alpha)
    out = ops.add(a, ops.multiply(alpha, ops.multiply(a, b)))
    return ops.cast(out, dtype)


def _check_vector(name, t, size):
    if t is None:
        return
    shape = _checks.shape_of(t)
    if len(shape) != 1 or (size is not None and shape[0] is not None and shape[0] != size):
        raise ValueError(f"mu_product: {name} must have shape ({size},) (the feature size), got {shape}.")


def mu_product(u, v, alpha=1.0, gamma_u=None, beta_u=None, gamma_v=None, beta_v=None, epsilon=1e-6):
    """MONet's Mu-layer interaction ``a + alpha * (a * b)``, ``a = LN(u)``, ``b = LN(v)``.

    ``LN`` is LayerNorm over the last axis, ``(t - mean) / sqrt(var + epsilon) * gamma + beta``
    (biased variance, statistics in float32 for half-precision inputs), the two
    branches with their own ``gamma``/``beta`` (MONet's ``norm1`` and ``norm3``).

    Args:
        u: ``(..., h)``, the first branch ``U1 x`` (after the spatial shift if any).
        v: ``(..., h)``, the low-rank second branch ``U3 U2 x``.
        alpha: the learnable scale of the second-order term: a scalar tensor, a
            shape-``(1,)`` tensor (MONet's ``alpha``, init 1) or a Python number.
        gamma_u, beta_u, gamma_v, beta_v: ``(h,)`` LayerNorm scales/offsets, or None
            (no scale / no offset).
        epsilon: LayerNorm epsilon (MONet: 1e-6).

    Returns:
        ``(..., h)`` in the dtype of ``u``: the second-degree (Hadamard) interaction of
        the two normalised branches (survey appendix S.2.2, ``PolyMlp``).
    """
    _checks.check_rank("mu_product: u", u, min_rank=1)
    _checks.check_same_shape("mu_product: u and v", u, v)
    size = _checks.shape_of(u)[-1]
    for name, t in (("gamma_u", gamma_u), ("beta_u", beta_u), ("gamma_v", gamma_v), ("beta_v", beta_v)):
        _check_vector(name, t, size)
    if not isinstance(alpha, numbers.Number):
        shape = _checks.shape_of(alpha)
        if len(shape) > 1 or (len(shape) == 1 and shape[0] not in (1, None)):
            raise ValueError(f"mu_product: alpha must be a scalar or have shape (1,), got shape {shape}.")
    if not float(epsilon) > 0.0:
        raise ValueError(f"mu_product: epsilon must be > 0, got {epsilon!r}.")
    return dispatch(
        "mu_product", mu_product_reference, u, v, alpha, gamma_u, beta_u, gamma_v, beta_v, epsilon=float(epsilon)
    )


# --------------------------------------------------------------- spatial_shift
def _shift_groups(channels):
    """Channel boundaries of the four groups, exactly as MONet: c//4, c//2, 3c//4."""
    c = channels
    return (0, c // 4, c // 2, 3 * c // 4, c)


def _shift_forward(t, axis):
    """out[i] = t[i-1] for i >= 1, out[0] = t[0] along ``axis`` (1 or 2)."""
    if axis == 1:
        return ops.concatenate([t[:, :1], t[:, :-1]], axis=1)
    return ops.concatenate([t[:, :, :1], t[:, :, :-1]], axis=2)


def _shift_backward(t, axis):
    """out[i] = t[i+1] for i <= n-2, out[n-1] = t[n-1] along ``axis`` (1 or 2)."""
    if axis == 1:
        return ops.concatenate([t[:, 1:], t[:, -1:]], axis=1)
    return ops.concatenate([t[:, :, 1:], t[:, :, -1:]], axis=2)


def spatial_shift_reference(x):
    b0, b1, b2, b3, b4 = _shift_groups(_checks.shape_of(x)[-1])
    parts = [
        _shift_forward(x[:, :, :, b0:b1], 1),
        _shift_backward(x[:, :, :, b1:b2], 1),
        _shift_forward(x[:, :, :, b2:b3], 2),
        _shift_backward(x[:, :, :, b3:b4], 2),
    ]
    parts = [p for p, (lo, hi) in zip(parts, ((b0, b1), (b1, b2), (b2, b3), (b3, b4))) if hi > lo]
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)


def spatial_shift(x):
    """MONet's spatial shift of a channels-last feature map (survey appendix S.2.2, ``Spatial_Shift``).

    With ``c = C`` and the channel groups ``[0, c//4)``, ``[c//4, c//2)``,
    ``[c//2, 3c//4)``, ``[3c//4, c)``::

        group 1: out[:, i] = x[:, i-1]   (i >= 1)      shifted +1 along H (axis 1)
        group 2: out[:, i] = x[:, i+1]   (i <= H-2)    shifted -1 along H
        group 3: out[:, :, j] = x[:, :, j-1]           shifted +1 along W (axis 2)
        group 4: out[:, :, j] = x[:, :, j+1]           shifted -1 along W

    and the row/column a shift leaves uncovered keeps its own value (the
    reference's in-place slice copy ``x[:, 1:] = x[:, :-1]`` leaves ``x[:, 0]``
    untouched: edges are duplicated, not zero-padded).  When ``C`` is not a
    multiple of 4 the boundaries are still ``c//4, c//2, 3c//4`` (the last group
    takes the remainder; a group can be empty for ``C < 4``), as in MONet's code.

    Note: the reference's in-place copies overlap (source and destination share
    memory); numpy (and CUDA kernels, where MONet was trained) give the shift
    above, but PyTorch's sequential CPU copy smears row 0 over the whole
    +1-shifted groups.  This op always computes the shift.

    Args:
        x: ``(B, H, W, C)``.
    Returns:
        ``(B, H, W, C)``.
    """
    _checks.check_rank("spatial_shift: x (batch, height, width, channels)", x, rank=4)
    if _checks.shape_of(x)[-1] is None:
        raise ValueError(f"spatial_shift: the channel dimension must be known, got shape {_checks.shape_of(x)}.")
    return dispatch("spatial_shift", spatial_shift_reference, x)


# ------------------------------------------------------------ accelerated paths
from hadamard_zoo.ops import _backend_utils as _bu  # noqa: E402
from hadamard_zoo.ops._dispatch import register  # noqa: E402


@register("mu_product", "jax")
def _mu_product_jax(u, v, alpha, gamma_u, beta_u, gamma_v, beta_v, epsilon):
    return _bu.jax_jit(mu_product_reference, u, v, alpha, gamma_u, beta_u, gamma_v, beta_v, epsilon=epsilon)


@register("mu_product", "tensorflow")
def _mu_product_tf(u, v, alpha, gamma_u, beta_u, gamma_v, beta_v, epsilon):
    if any(t is None for t in (gamma_u, beta_u, gamma_v, beta_v)):
        return NotImplemented
    if isinstance(alpha, numbers.Number):
        import tensorflow as tf

        alpha = tf.constant(alpha, dtype=u.dtype)
    return _bu.tf_xla(mu_product_reference, u, v, alpha, gamma_u, beta_u, gamma_v, beta_v, epsilon=epsilon)


@register("spatial_shift", "jax")
def _spatial_shift_jax(x):
    return _bu.jax_jit(spatial_shift_reference, x)


@register("spatial_shift", "tensorflow")
def _spatial_shift_tf(x):
    return _bu.tf_xla(spatial_shift_reference, x)


# torch: ATen's fused layer_norm kernels for both branches, then one addcmul
# (a + a * (alpha b)); gradients are autograd's through those kernels.
_TORCH_FLOATS = ("float32", "float64")


@register("mu_product", "torch")
def _mu_product_torch(u, v, alpha, gamma_u, beta_u, gamma_v, beta_v, epsilon):
    import torch
    import torch.nn.functional as F

    scalar_alpha = isinstance(alpha, numbers.Number)
    u, v, gamma_u, beta_u, gamma_v, beta_v = _bu.torch_tensors(u, v, gamma_u, beta_u, gamma_v, beta_v)
    if not scalar_alpha:
        (alpha,) = _bu.torch_tensors(alpha)
    candidates = (u, v, gamma_u, beta_u, gamma_v, beta_v) + (() if scalar_alpha else (alpha,))
    tensors = [t for t in candidates if t is not None]
    if not _bu.torch_plain(*tensors):
        return NotImplemented
    dtype = u.dtype
    if str(dtype).replace("torch.", "") not in _TORCH_FLOATS or any(t.dtype != dtype for t in tensors):
        return NotImplemented  # half precision: the reference keeps float32 statistics and products
    shape = (u.shape[-1],)
    a = F.layer_norm(u, shape, gamma_u, beta_u, epsilon)
    b = F.layer_norm(v, shape, gamma_v, beta_v, epsilon)
    if scalar_alpha:
        return torch.addcmul(a, a, b, value=alpha)
    return torch.addcmul(a, a, b * alpha.reshape(()))


_TORCH_FNS = {}


def _torch_shift_function():
    if _TORCH_FNS:
        return _TORCH_FNS["shift"]
    import torch

    class SpatialShiftFn(torch.autograd.Function):
        """One output allocation filled by slice copies; the backward is the adjoint shift."""

        @staticmethod
        def forward(ctx, x):
            b = _shift_groups(x.shape[-1])
            out = torch.empty_like(x)
            g = [slice(b[k], b[k + 1]) for k in range(4)]
            # +1 along H
            out[:, 1:, :, g[0]] = x[:, :-1, :, g[0]]
            out[:, :1, :, g[0]] = x[:, :1, :, g[0]]
            # -1 along H
            out[:, :-1, :, g[1]] = x[:, 1:, :, g[1]]
            out[:, -1:, :, g[1]] = x[:, -1:, :, g[1]]
            # +1 along W
            out[:, :, 1:, g[2]] = x[:, :, :-1, g[2]]
            out[:, :, :1, g[2]] = x[:, :, :1, g[2]]
            # -1 along W
            out[:, :, :-1, g[3]] = x[:, :, 1:, g[3]]
            out[:, :, -1:, g[3]] = x[:, :, -1:, g[3]]
            return out

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad):
            b = _shift_groups(grad.shape[-1])
            g = [slice(b[k], b[k + 1]) for k in range(4)]
            gx = torch.empty_like(grad)
            # adjoint of +1 along H: gx[j] = grad[j+1] (j <= H-2), gx[H-1] = 0, gx[0] += grad[0]
            gx[:, :-1, :, g[0]] = grad[:, 1:, :, g[0]]
            gx[:, -1:, :, g[0]] = 0
            gx[:, :1, :, g[0]] += grad[:, :1, :, g[0]]
            # adjoint of -1 along H: gx[j] = grad[j-1] (j >= 1), gx[0] = 0, gx[H-1] += grad[H-1]
            gx[:, 1:, :, g[1]] = grad[:, :-1, :, g[1]]
            gx[:, :1, :, g[1]] = 0
            gx[:, -1:, :, g[1]] += grad[:, -1:, :, g[1]]
            # the same along W
            gx[:, :, :-1, g[2]] = grad[:, :, 1:, g[2]]
            gx[:, :, -1:, g[2]] = 0
            gx[:, :, :1, g[2]] += grad[:, :, :1, g[2]]
            gx[:, :, 1:, g[3]] = grad[:, :, :-1, g[3]]
            gx[:, :, :1, g[3]] = 0
            gx[:, :, -1:, g[3]] += grad[:, :, -1:, g[3]]
            return gx

    _TORCH_FNS["shift"] = SpatialShiftFn
    return SpatialShiftFn


@register("spatial_shift", "torch")
def _spatial_shift_torch(x):
    (x,) = _bu.torch_tensors(x)
    if not _bu.torch_plain(x):
        return NotImplemented
    return _torch_shift_function().apply(x)
