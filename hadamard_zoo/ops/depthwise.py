"""Depthwise 2-D convolution as a sum of Hadamard products of shifted maps.

A depthwise convolution with a ``kh x kw`` kernel (depth multiplier 1) is::

    y[b, p, q, c] = sum_{i < kh, j < kw} x_pad[b, p + i, q + j, c] * w[i, j, c]

i.e. ``y = sum_{i,j} shift_{i,j}(x) * w[i, j]``: ``kh * kw`` Hadamard products of
shifted copies of the input with per-channel weights (survey Sec. 5,
computational efficiency; StarNet's 7x7 depthwise convolutions).  Written this
way, XLA on CPU fuses it into one memory-bound loop, which is much faster than
its grouped-convolution kernel; the input gradient is again a shifted sum (with
the kernel flipped) and the kernel gradient is ``kh * kw`` reductions.

Measured on this project's reference CPU (2-core AMD EPYC, StarNet sizes
8x56x56x96 and 8x14x14x384, 7x7, float32; ``docs/benchmarks.md``):

* JAX (XLA, CPU): grouped convolution 229 / 68 ms forward, shifted sum 10.5 /
  3.5 ms: the shifted form with a custom VJP is registered (CPU, stride 1).
* TensorFlow: the native (oneDNN) depthwise convolution takes 3.0 / 1.1 ms
  forward and 33 / 10 ms with gradients; the shifted sum 142 / 61 ms eagerly,
  63 / 16 ms in a graph and 5.8 / 4.2 ms under XLA (176 / 54 ms with
  gradients): slower everywhere, so no accelerated path.
* torch: the shifted sum (69 / 6.6 ms) loses to the native convolution too, but
  ``keras.ops.depthwise_conv`` spends most of its 8.1 / 1.0 ms on layout copies
  (NHWC -> NCHW and back); ``F.conv2d`` on the zero-copy channels-last view of
  the same memory takes 2.1 / 0.4 ms.  That native path is registered.
"""

from __future__ import annotations

import functools

from keras import ops

from hadamard_zoo.ops import _checks
from hadamard_zoo.ops._dispatch import dispatch

def same_padding(size, k, stride=1):
    """Keras/TF "same" padding ``(before, after)`` of one spatial axis.

    Total ``max((ceil(size / stride) - 1) * stride + k - size, 0)``, the smaller
    half before (for stride 1 and an even kernel: one more zero after).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


# ----------------------------------------------------------------- reference
def depthwise_conv2d_reference(x, kernel, bias=None, strides=(1, 1), padding="same"):
    y = ops.depthwise_conv(x, kernel, strides=strides, padding=padding, data_format="channels_last")
    if bias is not None:
        y = ops.add(y, bias)
    return y


def depthwise_conv2d(x, kernel, bias=None, strides=1, padding="same"):
    """Depthwise 2-D convolution, depth multiplier 1, channels-last.

    ``y = sum_{i,j} shift_{i,j}(x) * w[i, j] (+ b)``: a sum of Hadamard products
    of shifted inputs with per-channel weights (survey Sec. 5; the 7x7
    depthwise convolutions of StarNet).  The reference is
    ``keras.ops.depthwise_conv``.

    Args:
        x: ``(B, H, W, C)``.
        kernel: ``(kh, kw, C, 1)``, the layout of ``keras.layers.DepthwiseConv2D``.
        bias: ``(C,)`` or None.
        strides: int or pair.
        padding: ``"same"`` (Keras/TF convention: for an even kernel the extra
            zero goes after) or ``"valid"``.

    Returns:
        ``(B, H', W', C)`` with ``H' = ceil(H / s)`` ("same") or
        ``ceil((H - kh + 1) / s)`` ("valid").

    Accelerated paths: JAX on CPU with stride 1, the shifted-product form with a
    custom VJP; torch, the native convolution on the channels-last view (no
    layout copies); TensorFlow, none (its native kernel was fastest; measured
    numbers in the module docstring).
    """
    _checks.check_rank("depthwise_conv2d: x", x, rank=4)
    _checks.check_rank("depthwise_conv2d: kernel", kernel, rank=4)
    ks = _checks.shape_of(kernel)
    if ks[3] is not None and ks[3] != 1:
        raise ValueError(
            f"depthwise_conv2d: kernel must have shape (kh, kw, C, 1) (depth multiplier 1), "
            f"got {ks}."
        )
    _checks.check_last_dim("depthwise_conv2d: x", x, ks[2], "kernel (kh, kw, C, 1)")
    if bias is not None:
        _checks.check_rank("depthwise_conv2d: bias", bias, rank=1)
        _checks.check_last_dim("depthwise_conv2d: bias", bias, ks[2], "kernel (kh, kw, C, 1)")
    strides = _checks.check_positive_int_pair("strides", strides)
    padding = _checks.check_padding(padding)
    if padding == "valid":
        xs = _checks.shape_of(x)
        for axis, (size, k) in enumerate(zip(xs[1:3], ks[:2])):
            if size is not None and k is not None and size < k:
                raise ValueError(
                    f"depthwise_conv2d: with padding='valid' the input ({xs}) must be at least "
                    f"as large as the kernel ({ks[:2]}) on spatial axis {axis + 1}."
                )
    return dispatch(
        "depthwise_conv2d", depthwise_conv2d_reference, x, kernel, bias, strides=strides, padding=padding
    )


# ------------------------------------------------------------ accelerated paths
from hadamard_zoo.ops import _backend_utils as _bu  # noqa: E402
from hadamard_zoo.ops._dispatch import register  # noqa: E402


def _pads(h, w, kh, kw, padding):
    if padding == "same":
        return same_padding(h, kh), same_padding(w, kw)
    return (0, 0), (0, 0)


@functools.lru_cache(maxsize=None)
def _jax_shifted_conv(kh, kw, padding):
    """``f(x, w2)`` with ``w2`` of shape ``(kh, kw, C)``, stride 1, as a custom-VJP function."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def shifted_sum(src, weights, rows, cols, out_h, out_w, flip=False):
        acc = None
        for i in range(kh):
            for j in range(kw):
                r, c = rows(i), cols(j)
                w = weights[kh - 1 - i, kw - 1 - j] if flip else weights[i, j]
                term = src[:, r : r + out_h, c : c + out_w, :] * w
                acc = term if acc is None else acc + term
        return acc

    def never(*probes):
        """A False that XLA cannot fold, computed from the first element of each probe
        (a value cannot be both NaN and infinite): it makes a computation wait for
        the probes' producers."""
        flag = None
        for probe in probes:
            p = probe.reshape(-1)[0]
            f = jnp.logical_and(jnp.isnan(p), jnp.isinf(p))
            flag = f if flag is None else jnp.logical_or(flag, f)
        return flag

    def run_once(fn, shape, dtype, *after):
        """``fn()`` inside a while loop that runs exactly once, after ``after``'s producers.

        A fusion fence: fused into a consumer that reduces (a loss, BatchNorm
        statistics), XLA's CPU library fusion split the shifted sum and materialized
        its kh*kw broadcast weights and slices (0.5 GB and 10x slower at StarNet
        size); ``optimization_barrier`` is dropped by XLA:CPU before fusion, a loop
        is not.  The start flag depends on data, so the loop cannot be unrolled
        away, and orders the big passes one after the other: run concurrently on
        this 2-core CPU, the forward, input-gradient and kernel-gradient passes
        thrashed each other (2x slower).
        """
        out = lax.while_loop(
            lambda c: jnp.logical_not(c[0]),
            lambda c: (jnp.ones((), bool), fn()),
            (never(*after), jnp.zeros(shape, dtype)),
        )
        return out[1]

    def kernel_grad(xp, g, oh, ow, after):
        """``gw[i, j, c] = sum_{b,p,q} xp[b, p+i, q+j, c] g[b, p, q, c]``, all taps at once.

        A loop over blocks of ``rows`` output rows of one image; each block's kh*kw
        products are one stacked reduction while the block is in cache.  Measured
        at 8x56x56x96, 7x7: 4-row blocks ~60 ms, vs ~100-250 ms for one
        reduction per tap over the whole tensor and ~270 ms for 49 independent
        reductions in one program.
        """
        b, c = g.shape[0], g.shape[3]
        rows = next((d for d in (4, 5, 3, 6, 7, 2, 8) if oh % d == 0), 4)
        nb = -(-oh // rows)
        if nb * rows != oh:  # zero cotangent rows contribute nothing
            g = jnp.pad(g, ((0, 0), (0, nb * rows - oh), (0, 0), (0, 0)))
            xp = jnp.pad(xp, ((0, 0), (0, nb * rows - oh), (0, 0), (0, 0)))

        def block(t, acc):
            bi, r0 = t // nb, (t % nb) * rows
            xs = lax.dynamic_slice(xp, (bi, r0, 0, 0), (1, rows + kh - 1, ow + kw - 1, c))[0]
            gs = lax.dynamic_slice(g, (bi, r0, 0, 0), (1, rows, ow, c))[0]
            taps = jnp.stack([xs[i : i + rows, j : j + ow, :] for i in range(kh) for j in range(kw)])
            return acc + jnp.sum(taps * gs[None], axis=(1, 2))

        start = jnp.where(never(after), 1, 0).astype(g.dtype) * jnp.ones((kh * kw, c), g.dtype)
        return lax.fori_loop(0, b * nb, block, start)

    def geometry(x):
        h, w = x.shape[1], x.shape[2]
        (pbh, pah), (pbw, paw) = _pads(h, w, kh, kw, padding)
        return h, w, pbh, pah, pbw, paw, h + pbh + pah - kh + 1, w + pbw + paw - kw + 1

    def pad(x, ph, pw):
        if ph == (0, 0) and pw == (0, 0):
            return x
        return jnp.pad(x, ((0, 0), ph, pw, (0, 0)))

    def forward(x, w2):
        h, w, pbh, pah, pbw, paw, oh, ow = geometry(x)
        return run_once(
            lambda: shifted_sum(pad(x, (pbh, pah), (pbw, paw)), w2, lambda i: i, lambda j: j, oh, ow),
            (x.shape[0], oh, ow, x.shape[3]),
            x.dtype,
            x,
        )

    @jax.custom_vjp
    def conv(x, w2):
        return forward(x, w2)

    def conv_fwd(x, w2):
        y = forward(x, w2)
        return y, (x, w2, y.reshape(-1)[:1])  # the backward passes wait for the forward

    def conv_bwd(res, g):
        x, w2, y_probe = res
        h, w, pbh, pah, pbw, paw, oh, ow = geometry(x)
        # input gradient: grad_x[p] = sum_i g[p + pb - i] w[i], a shifted sum of the
        # padded cotangent with the flipped kernel.
        ah, aw = kh - 1 - pbh, kw - 1 - pbw
        gp = pad(g, (ah, h + kh - 1 - oh - ah), (aw, w + kw - 1 - ow - aw))
        gx = run_once(
            lambda: shifted_sum(gp, w2, lambda i: i, lambda j: j, h, w, flip=True), x.shape, g.dtype, g, y_probe
        )
        gw = kernel_grad(pad(x, (pbh, pah), (pbw, paw)), g, oh, ow, gx)
        return gx.astype(x.dtype), gw.reshape(kh, kw, w2.shape[-1]).astype(w2.dtype)

    conv.defvjp(conv_fwd, conv_bwd)
    return conv


def _depthwise_shifted_jax(x, kernel, bias, padding):
    import jax.numpy as jnp

    out_dtype = x.dtype
    acc = jnp.float32 if jnp.dtype(out_dtype).itemsize < 4 else out_dtype
    kh, kw = kernel.shape[0], kernel.shape[1]
    y = _jax_shifted_conv(kh, kw, padding)(x.astype(acc), kernel[:, :, :, 0].astype(acc))
    if bias is not None:
        y = y + bias.astype(acc)
    return y.astype(out_dtype)


@functools.lru_cache(maxsize=None)
def _jax_on_cpu():
    import jax

    return jax.devices()[0].platform == "cpu"


@register("depthwise_conv2d", "jax")
def _depthwise_conv2d_jax(x, kernel, bias, strides, padding):
    if strides != (1, 1) or not _jax_on_cpu():
        return NotImplemented  # strided, or on GPU/TPU: XLA's convolution
    if "float" not in str(ops.dtype(x)) or ops.dtype(x) != ops.dtype(kernel):
        return NotImplemented
    return _bu.jax_jit(_depthwise_shifted_jax, x, kernel, bias, padding=padding)


@register("depthwise_conv2d", "torch")
def _depthwise_conv2d_torch(x, kernel, bias, strides, padding):
    import torch
    import torch.nn.functional as F

    x, kernel, bias = _bu.torch_tensors(x, kernel, bias)
    if not _bu.torch_plain(x, kernel, bias) or x.dtype != kernel.dtype or not x.is_floating_point():
        return NotImplemented
    c = x.shape[-1]
    xc = x.permute(0, 3, 1, 2)  # NCHW indexing of the NHWC memory (channels-last), no copy
    wc = kernel.permute(2, 3, 0, 1).contiguous()  # (C, 1, kh, kw); a small copy, dense for oneDNN
    kh, kw = kernel.shape[0], kernel.shape[1]
    if padding == "same":
        (pbh, pah) = same_padding(x.shape[1], kh, strides[0])
        (pbw, paw) = same_padding(x.shape[2], kw, strides[1])
    else:
        pbh = pah = pbw = paw = 0
    if pbh == pah and pbw == paw:
        pad_arg = (pbh, pbw)
    else:
        xc = F.pad(xc, (pbw, paw, pbh, pah))
        pad_arg = (0, 0)
    training = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, kernel, bias))
    # the bias inside the convolution is fused in the forward, but its gradient
    # through oneDNN's convolution backward was slower than a separate add
    # (7.5 vs 6.5 ms at 8x14x14x384 with gradients)
    y = F.conv2d(xc, wc, None if training else bias, stride=strides, padding=pad_arg, groups=c).permute(0, 2, 3, 1)
    return y + bias if training and bias is not None else y
