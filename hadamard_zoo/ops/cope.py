"""Two-variable (multivariate) polynomial fusion of CoPE (Chrysos et al., NeurIPS'21).

Survey Eq. 4 (CoPE's recursion for two input variables ``z_I`` and ``z_II``)::

    y_n = (A_[n,I]^T z_I + A_[n,II]^T z_II) * (S_[n]^T y_{n-1} + b_[n]),   n = 2..N

``*`` is the Hadamard product.  The op computes one such step from the
*already projected* terms ``p_i = A_[n,i]^T z_i`` (any number of variables):

    cope_fusion(projections, y, kernel, bias) = (sum_i p_i) * (y @ S + b)      [+ y with skip=True]

Why projected terms and not raw ``z_i`` with kernels: the projections of a
variable are shared between steps in CoPE (the released generator computes
``A_II c`` once and reuses it in every step), and the injections of the
convolutional part use the same op with ``S`` applied outside (a transposed
convolution), so the caller owns the projections.

Broadcasting: each projection is either ``(B, k)`` and is broadcast over the
middle axes of ``y`` (``(B, H, W, k)``: the "injection broadcast over space" of
the CoPE generator), or has ``y``'s rank and broadcasts with the usual rules.
"""

from __future__ import annotations

from keras import ops

from hadamard_zoo.ops import _checks
from hadamard_zoo.ops._dispatch import dispatch


def _expand_to_rank(p, rank):
    """``(B, k)`` -> ``(B, 1, ..., 1, k)`` with ``rank`` axes (unchanged if already that rank)."""
    while len(_checks.shape_of(p)) < rank:
        p = ops.expand_dims(p, 1)
    return p


def cope_fusion_reference(projections, y, kernel=None, bias=None, skip=False):
    p = projections[0]
    for q in projections[1:]:
        p = ops.add(p, q)
    s = y if kernel is None else ops.matmul(y, kernel)
    if bias is not None:
        s = ops.add(s, bias)
    out = ops.multiply(_expand_to_rank(p, len(_checks.shape_of(y))), s)
    if skip:
        out = ops.add(out, y)
    return out


def _check_projections(projections, y, k):
    if not isinstance(projections, (list, tuple)) or not projections:
        raise ValueError(
            "cope_fusion: projections must be a non-empty list of the projected terms "
            f"A_i z_i, got {type(projections).__name__}."
        )
    y_shape = _checks.shape_of(y)
    first = _checks.shape_of(projections[0])
    for i, p in enumerate(projections):
        shape = _checks.shape_of(p)
        if len(shape) != 2 and len(shape) != len(y_shape):
            raise ValueError(
                f"cope_fusion: projections[{i}] must be (batch, k) or have the rank of y "
                f"{y_shape}, got shape {shape}."
            )
        _checks.check_same_shape("cope_fusion: all projections", projections[0], p)
        _checks.check_last_dim(f"cope_fusion: projections[{i}]", p, k, "y @ kernel (..., k)")
    if len(first) == 2 and len(y_shape) > 2:
        b_p, b_y = first[0], y_shape[0]
        if b_p is not None and b_y is not None and b_p not in (1, b_y):
            raise ValueError(
                f"cope_fusion: projections have batch size {b_p} but y has batch size {b_y} "
                f"(shapes {first} and {y_shape})."
            )


def cope_fusion(projections, y, kernel=None, bias=None, skip=False):
    """One step of CoPE's two-variable polynomial (survey Eq. 4).

    ``out = (sum_i projections[i]) * (y @ kernel + bias)``, plus ``y`` when ``skip``.

    Args:
        projections: non-empty list of the projected inputs ``A_[n,i]^T z_i``, all of
            the same shape: ``(B, k)`` (broadcast over the middle axes of ``y``) or
            the rank of ``y``.
        y: ``(B, ..., k_in)``, the previous term ``y_{n-1}`` (or, with
            ``kernel=None``, the already transformed ``S y_{n-1} + b``, e.g. the
            output of a convolution ``(B, H, W, k)``).
        kernel: ``(k_in, k)``, ``S_[n]``; None means the identity (``k_in == k``).
        bias: ``(k,)`` or None, ``b_[n]``.
        skip: add ``y`` to the product (the skip form ``y_n = ... + y_{n-1}`` used
            by the released CoPE generator; needs ``k_in == k``).

    Returns:
        ``(B, ..., k)``.
    """
    _checks.check_rank("cope_fusion: y", y, min_rank=2)
    k_in = _checks.shape_of(y)[-1]
    if kernel is not None:
        _checks.check_rank("cope_fusion: kernel", kernel, rank=2)
        _checks.check_last_dim("cope_fusion: y", y, _checks.shape_of(kernel)[0], "kernel (k_in, k)")
        k = _checks.shape_of(kernel)[1]
    else:
        k = k_in
    if bias is not None:
        _checks.check_rank("cope_fusion: bias", bias, rank=1)
        _checks.check_last_dim("cope_fusion: bias", bias, k, "the output (..., k)")
    _check_projections(projections, y, k)
    if skip and k_in is not None and k is not None and k_in != k:
        raise ValueError(
            f"cope_fusion: skip=True adds y to the output, so y's last dimension ({k_in}) "
            f"must equal the output's ({k}); got kernel of shape {_checks.shape_of(kernel)}."
        )
    return dispatch("cope_fusion", cope_fusion_reference, list(projections), y, kernel, bias, skip=bool(skip))


# ------------------------------------------------------------ accelerated paths
from hadamard_zoo.ops import _backend_utils as _bu  # noqa: E402
from hadamard_zoo.ops._dispatch import register  # noqa: E402


def _cope_fusion_positional(projections, y, kernel, bias, skip):
    return cope_fusion_reference(list(projections), y, kernel, bias, skip=skip)


@register("cope_fusion", "jax")
def _cope_fusion_jax(projections, y, kernel, bias, skip):
    return _bu.jax_jit(_cope_fusion_positional, tuple(projections), y, kernel, bias, skip=skip)


@register("cope_fusion", "tensorflow")
def _cope_fusion_tf(projections, y, kernel, bias, skip):
    return _bu.tf_xla(_cope_fusion_positional, tuple(projections), y, kernel, bias, skip=skip)


# torch: ATen's fused kernels.  ``S y + b`` is one addmm (bias fused into the
# GEMM) on the flattened leading axes; the projections are summed into one new
# buffer in place; the product is an in-place mul_ on the fresh GEMM output
# when autograd does not need it, and the skip form is a single addcmul.
# Plain autograd gives the reference's gradients (no custom backward needed:
# every saved tensor is one the reference would save too).
@register("cope_fusion", "torch")
def _cope_fusion_torch(projections, y, kernel, bias, skip):
    import torch

    tensors = _bu.torch_tensors(*projections, y, kernel, bias)
    if not _bu.torch_plain(*tensors):
        return NotImplemented
    *projections, y, kernel, bias = tensors
    if len({t.dtype for t in tensors if t is not None}) != 1:
        return NotImplemented

    p = projections[0] if len(projections) == 1 else torch.add(projections[0], projections[1])
    for q in projections[2:]:
        p.add_(q)
    while p.dim() < y.dim():
        p = p.unsqueeze(1)

    fresh = True  # whether ``s`` is a buffer created here (safe to overwrite)
    if kernel is not None:
        lead = y.shape[:-1]
        y2 = y.reshape(-1, y.shape[-1])
        s = torch.mm(y2, kernel) if bias is None else torch.addmm(bias, y2, kernel)
        s = s.reshape(*lead, kernel.shape[-1])
    elif bias is not None:
        s = y + bias
    else:
        s, fresh = y, False

    if skip:
        return torch.addcmul(y, p, s)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    if fresh and not needs_grad and s.shape == torch.broadcast_shapes(s.shape, p.shape):
        return s.mul_(p)
    return torch.mul(s, p)
