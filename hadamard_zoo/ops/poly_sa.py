"""Poly-SA: self-attention of linear cost built from Hadamard products.

Survey Eq. 9 (Babiloni et al., T-PAMI 2023; the survey's appendix S.2.2 ``PolySA``)::

    Y = { Psi( (Z W1) * (Z W2) ) * Z } W3,      out = alpha * Z + beta * Y

``Z`` is ``(B, N, C)`` (N tokens, C channels); ``*`` is the Hadamard product;
``Psi`` averages over the N tokens and replicates the ``(B, 1, C)`` mean back
over them (the appendix's ``phi``); ``alpha`` and ``beta`` are learnable
scalars (the appendix's skip connection).  The cost is linear in N.

Accelerated paths never materialize the replicated ``(B, N, C)`` mean: ``Z`` is
multiplied by the ``(B, 1, C)`` mean directly.  When ``N >= C`` the mean itself
is computed without the two ``(B, N, C)`` projections ``Z W1`` and ``Z W2``,
through the per-batch Gram matrix ``G = Z^T Z`` (``(B, C, C)``)::

    mean_n[(Z W1) * (Z W2)]_c = (1/N) sum_i (G W2)_{ic} (W1)_{ic}

which costs ``B (N C^2 + C^3)`` instead of ``2 B N C^2`` multiply-adds and
keeps no ``(B, N, C)`` intermediate for the backward pass (used from ``N >= C``,
where it was measured faster on a 2-core CPU; the direct form below that).
"""

from __future__ import annotations

from keras import ops

from hadamard_zoo.ops import _checks
from hadamard_zoo.ops._dispatch import dispatch


def poly_sa_reference(z, w1, w2, w3, alpha, beta):
    a = ops.matmul(z, w1)
    b = ops.matmul(z, w2)
    psi = ops.mean(ops.multiply(a, b), axis=1, keepdims=True)  # (B, 1, C), replicated by broadcasting
    y = ops.matmul(ops.multiply(psi, z), w3)
    return ops.add(ops.multiply(alpha, z), ops.multiply(beta, y))


def _check_scalar(name, x):
    shape = _checks.shape_of(x)
    size = 1
    for s in shape:
        size *= 1 if s is None else s
    if len(shape) > 1 or size != 1:
        raise ValueError(f"poly_sa: {name} must be a scalar (shape () or (1,)), got shape {shape}.")


def poly_sa(z, w1, w2, w3, alpha, beta):
    """Poly-SA (survey Eq. 9, appendix S.2.2): ``alpha*Z + beta*{Psi((Z W1)*(Z W2))*Z} W3``.

    Args:
        z: ``(B, N, C)`` tokens.
        w1, w2: ``(C, C)``.
        w3: ``(C, C)`` (the output is added to ``alpha * Z``, so it keeps C channels).
        alpha, beta: scalars, shape ``()`` or ``(1,)``.

    Returns:
        ``(B, N, C)``.
    """
    _checks.check_rank("poly_sa: z (batch, tokens, channels)", z, rank=3)
    c = _checks.shape_of(z)[-1]
    for name, w in (("w1", w1), ("w2", w2), ("w3", w3)):
        _checks.check_rank(f"poly_sa: {name}", w, rank=2)
        shape = _checks.shape_of(w)
        if c is not None and tuple(shape) != (c, c):
            raise ValueError(
                f"poly_sa: {name} must have shape (C, C) = ({c}, {c}) for z of shape "
                f"{_checks.shape_of(z)}, got {shape}."
            )
    _check_scalar("alpha", alpha)
    _check_scalar("beta", beta)
    return dispatch("poly_sa", poly_sa_reference, z, w1, w2, w3, alpha, beta)


# ------------------------------------------------------------ accelerated paths
from hadamard_zoo.ops import _backend_utils as _bu  # noqa: E402
from hadamard_zoo.ops._dispatch import register  # noqa: E402


def _use_gram(n, c, dtype) -> bool:
    """The Gram form pays from N about C upwards (measured), in float32/64 only.

    In float16/bfloat16 the Gram matrix sums N squared activations, so the
    direct form is kept there.
    """
    import keras

    return n is not None and c is not None and n >= c and keras.backend.standardize_dtype(dtype) in (
        "float32",
        "float64",
    )


def _poly_sa_fused(z, w1, w2, w3, alpha, beta):
    """``keras.ops`` form compiled by XLA: Gram mean when it pays, no replicated mean."""
    n, c = _checks.shape_of(z)[1], _checks.shape_of(z)[2]
    if _use_gram(n, c, z.dtype):
        g = ops.einsum("bni,bnj->bij", z, z)
        psi = ops.sum(ops.multiply(ops.matmul(g, w2), w1), axis=1, keepdims=True) / n
    else:
        psi = ops.mean(ops.multiply(ops.matmul(z, w1), ops.matmul(z, w2)), axis=1, keepdims=True)
    y = ops.matmul(ops.multiply(psi, z), w3)
    return ops.add(ops.multiply(alpha, z), ops.multiply(beta, y))


@register("poly_sa", "jax")
def _poly_sa_jax(z, w1, w2, w3, alpha, beta):
    return _bu.jax_jit(_poly_sa_fused, z, w1, w2, w3, alpha, beta)


@register("poly_sa", "tensorflow")
def _poly_sa_tf(z, w1, w2, w3, alpha, beta):
    return _bu.tf_xla(_poly_sa_fused, z, w1, w2, w3, alpha, beta)


# torch: one autograd.Function.  Forward keeps only the (B, C) mean (and, in the
# Gram form, the (B, C, C) matrices G and G W2); the backward recomputes
# u = Z * mean and never forms Z W1, Z W2 in the Gram form: their gradient
# contributions are (B, C, C) matrices applied to Z with one batched GEMM.
_TORCH_FNS = {}


def _torch_function():
    if _TORCH_FNS:
        return _TORCH_FNS["poly_sa"]
    import torch

    def mm(x, w):  # (B, N, C) @ (C, D) as one 2-D GEMM
        return torch.mm(x.reshape(-1, x.shape[-1]), w).reshape(*x.shape[:-1], w.shape[-1])

    def reduce_to(grad, like):
        return grad.sum().reshape(like.shape)

    class PolySAFn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, w1, w2, w3, alpha, beta, gram):
            n = z.shape[1]
            if gram:
                g = torch.bmm(z.transpose(1, 2), z)  # (B, C, C)
                h = torch.matmul(g, w2)  # (B, C, C)
                psi = (h * w1).sum(1).div_(n)  # (B, C)
            else:
                g = h = None
                psi = mm(z, w1).mul_(mm(z, w2)).mean(1)
            u = z * psi.unsqueeze(1)
            out = mm(u, w3).mul_(beta)
            out.add_(z * alpha)
            ctx.gram = gram
            ctx.save_for_backward(z, w1, w2, w3, alpha, beta, psi, g, h)
            return out

        @staticmethod
        def backward(ctx, grad):
            z, w1, w2, w3, alpha, beta, psi, g, h = ctx.saved_tensors
            need = ctx.needs_input_grad
            n = z.shape[1]
            d_z = d_w1 = d_w2 = d_w3 = d_alpha = d_beta = None
            psi3 = psi.unsqueeze(1)
            u = z * psi3  # recomputed (B, N, C)
            gw3 = mm(grad, w3.t())  # d(out)/d(y) pulled through W3, before beta
            if need[5]:
                d_beta = reduce_to((gw3 * u).sum(), beta)
            if need[4]:
                d_alpha = reduce_to((grad * z).sum(), alpha)
            if need[3]:
                d_w3 = torch.mm(u.reshape(-1, u.shape[-1]).t(), grad.reshape(-1, grad.shape[-1])).mul_(beta)
            if not (need[0] or need[1] or need[2]):
                return d_z, d_w1, d_w2, d_w3, d_alpha, d_beta, None
            du = gw3.mul_(beta)  # (B, N, C)
            d_psi = (du * z).sum(1).div_(n)  # (B, C), already divided by N
            if need[0]:
                d_z = du.mul_(psi3)
                d_z.add_(grad * alpha)
            if ctx.gram:
                if need[0]:
                    p = torch.matmul(w2 * d_psi.unsqueeze(1), w1.t())  # (B, C, C): W2 D W1^T
                    d_z.add_(torch.bmm(z, p + p.transpose(1, 2)))
                if need[1]:
                    d_w1 = (h * d_psi.unsqueeze(1)).sum(0)
                if need[2]:
                    d_w2 = (torch.matmul(g, w1) * d_psi.unsqueeze(1)).sum(0)
            else:
                a, b = mm(z, w1), mm(z, w2)
                d_a = b.mul_(d_psi.unsqueeze(1))
                d_b = a.mul_(d_psi.unsqueeze(1))
                zf = z.reshape(-1, z.shape[-1])
                if need[0]:
                    d_z.add_(mm(d_a, w1.t())).add_(mm(d_b, w2.t()))
                if need[1]:
                    d_w1 = torch.mm(zf.t(), d_a.reshape(-1, d_a.shape[-1]))
                if need[2]:
                    d_w2 = torch.mm(zf.t(), d_b.reshape(-1, d_b.shape[-1]))
            return d_z, d_w1, d_w2, d_w3, d_alpha, d_beta, None

    _TORCH_FNS["poly_sa"] = PolySAFn
    return PolySAFn


@register("poly_sa", "torch")
def _poly_sa_torch(z, w1, w2, w3, alpha, beta):
    z, w1, w2, w3, alpha, beta = _bu.torch_tensors(z, w1, w2, w3, alpha, beta)
    if not _bu.torch_plain(z, w1, w2, w3, alpha, beta):
        return NotImplemented
    if len({t.dtype for t in (z, w1, w2, w3, alpha, beta)}) != 1 or not z.dtype.is_floating_point:
        return NotImplemented
    gram = _use_gram(z.shape[1], z.shape[2], z.dtype)
    return _torch_function().apply(z, w1, w2, w3, alpha, beta, gram)
