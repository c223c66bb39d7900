"""Polynomial recursions of Pi-Nets (Chrysos et al., CVPR'20 / T-PAMI'21).

Survey Eq. 2 (CCP, coupled CP decomposition)::

    x_1 = U_1 z,   x_n = (U_n z) * x_{n-1} + x_{n-1},   n = 2..N

Survey Eq. NCP (nested coupled CP decomposition; appendix S.2.2 form)::

    x_1 = A_1 z,   x_n = (A_n z) * (S_n x_{n-1} + b_n),   n = 2..N

``*`` is the Hadamard product; the output ``x_N`` is a polynomial of degree N in
``z``.  The NCP-Skip variant (T-PAMI Eq. 10) adds ``V_n x_{n-1}`` to each step.

Shapes: ``z`` is ``(..., d)``; the hidden terms ``x_n`` are ``(..., k)``.
Stacked weights: ``U``/``A`` are ``(N, d, k)`` with biases ``(N, k)`` (or None),
``S`` and ``V`` are ``(N-1, k, k)`` with ``S`` biases ``(N-1, k)``.
"""

from __future__ import annotations

from keras import ops

from hadamard_zoo.ops import _checks
from hadamard_zoo.ops._dispatch import dispatch


# --------------------------------------------------------------------- steps
def ccp_step_reference(u, x):
    return ops.add(ops.multiply(u, x), x)


def ccp_step(u, x):
    """One CCP step ``u * x + x`` (survey Eq. 2), ``u = U_n z``; shapes ``(..., k)``."""
    _checks.check_same_shape("ccp_step: u and x", u, x)
    return dispatch("ccp_step", ccp_step_reference, u, x)


def ncp_step_reference(a, x, kernel, bias=None):
    s = ops.matmul(x, kernel)
    if bias is not None:
        s = ops.add(s, bias)
    return ops.multiply(a, s)


def ncp_step(a, x, kernel, bias=None):
    """One NCP step ``a * (x @ S + b)`` (survey Eq. NCP), ``a = A_n z``.

    Args:
        a: ``(..., k)``, the projected input ``A_n z``.
        x: ``(..., k_in)``, the previous term ``x_{n-1}``.
        kernel: ``(k_in, k)``, ``S_n``.
        bias: ``(k,)`` or None, ``b_n``.
    Returns:
        ``(..., k)``.
    """
    _checks.check_rank("ncp_step: kernel", kernel, rank=2)
    _checks.check_last_dim("ncp_step: x", x, _checks.shape_of(kernel)[0], "kernel (k_in, k)")
    _checks.check_last_dim("ncp_step: a", a, _checks.shape_of(kernel)[1], "kernel (k_in, k)")
    return dispatch("ncp_step", ncp_step_reference, a, x, kernel, bias)


# ---------------------------------------------------------- full recursions
def _project(z, kernels, biases, n):
    y = ops.matmul(z, kernels[n])
    if biases is not None:
        y = ops.add(y, biases[n])
    return y


def ccp_reference(z, kernels, biases=None):
    degree = _checks.shape_of(kernels)[0]
    x = _project(z, kernels, biases, 0)
    for n in range(1, degree):
        x = ccp_step_reference(_project(z, kernels, biases, n), x)
    return x


def ccp(z, kernels, biases=None):
    """The whole CCP recursion (survey Eq. 2), returning ``x_N``.

    Args:
        z: ``(..., d)`` input.
        kernels: ``(N, d, k)`` stacked ``U_n``; N is the degree.
        biases: ``(N, k)`` or None.
    Returns:
        ``(..., k)``.
    """
    _checks.check_rank("ccp: kernels", kernels, rank=3)
    _checks.check_degree(_checks.shape_of(kernels)[0])
    _checks.check_last_dim("ccp: z", z, _checks.shape_of(kernels)[1], "kernels (N, d, k)")
    return dispatch("ccp", ccp_reference, z, kernels, biases)


def ncp_reference(z, a_kernels, a_biases, s_kernels, s_biases, skip_kernels=None):
    degree = _checks.shape_of(a_kernels)[0]
    x = _project(z, a_kernels, a_biases, 0)
    for n in range(1, degree):
        a = _project(z, a_kernels, a_biases, n)
        s_bias = None if s_biases is None else s_biases[n - 1]
        new = ncp_step_reference(a, x, s_kernels[n - 1], s_bias)
        if skip_kernels is not None:
            new = ops.add(new, ops.matmul(x, skip_kernels[n - 1]))
        x = new
    return x


def ncp(z, a_kernels, a_biases, s_kernels, s_biases, skip_kernels=None):
    """The whole NCP recursion (survey Eq. NCP), returning ``x_N``.

    Args:
        z: ``(..., d)`` input.
        a_kernels: ``(N, d, k)`` stacked ``A_n``; N is the degree.
        a_biases: ``(N, k)`` or None.
        s_kernels: ``(N-1, k, k)`` stacked ``S_n``.
        s_biases: ``(N-1, k)`` or None.
        skip_kernels: ``(N-1, k, k)`` stacked ``V_n`` (NCP-Skip) or None.
    Returns:
        ``(..., k)``.
    """
    _checks.check_rank("ncp: a_kernels", a_kernels, rank=3)
    degree = _checks.shape_of(a_kernels)[0]
    _checks.check_degree(degree)
    _checks.check_last_dim("ncp: z", z, _checks.shape_of(a_kernels)[1], "a_kernels (N, d, k)")
    if degree > 1:
        _checks.check_rank("ncp: s_kernels", s_kernels, rank=3)
        if _checks.shape_of(s_kernels)[0] != degree - 1:
            raise ValueError(
                f"ncp: s_kernels must hold N-1={degree - 1} matrices for degree {degree}, "
                f"got shape {_checks.shape_of(s_kernels)}."
            )
    return dispatch("ncp", ncp_reference, z, a_kernels, a_biases, s_kernels, s_biases, skip_kernels)


# ------------------------------------------------------------ accelerated paths
from hadamard_zoo.ops import _backend_utils as _bu  # noqa: E402
from hadamard_zoo.ops._dispatch import register, torch_compile_enabled  # noqa: E402


def _ncp_reference_positional(z, a_kernels, a_biases, s_kernels, s_biases, skip_kernels):
    return ncp_reference(z, a_kernels, a_biases, s_kernels, s_biases, skip_kernels)


for _name, _ref in (
    ("ccp_step", ccp_step_reference),
    ("ncp_step", ncp_step_reference),
    ("ccp", ccp_reference),
    ("ncp", _ncp_reference_positional),
):
    register(_name, "jax")(lambda *args, _ref=_ref: _bu.jax_jit(_ref, *args))
    register(_name, "tensorflow")(
        lambda *args, _ref=_ref: NotImplemented
        if any(a is None for a in args)
        else _bu.tf_xla(_ref, *args)
    )


# torch: ATen's fused kernels: addcmul (x + u*x in one pass), addmm (bias fused
# into the GEMM), and one GEMM for all N input projections of a recursion.
def _flatten_leading(x):
    return x.reshape(-1, x.shape[-1])


@register("ccp_step", "torch")
def _ccp_step_torch(u, x):
    import torch

    u, x = _bu.torch_tensors(u, x)
    if not _bu.torch_plain(u, x) or u.dtype != x.dtype or u.shape != x.shape:
        return NotImplemented
    if torch_compile_enabled():
        return _bu.torch_compiled(_ccp_step_expression)(u, x)
    return torch.addcmul(x, u, x)


def _ccp_step_expression(u, x):
    return u * x + x


def _torch_linear(x, kernel, bias):
    import torch

    lead = x.shape[:-1]
    x2 = _flatten_leading(x)
    y = torch.mm(x2, kernel) if bias is None else torch.addmm(bias, x2, kernel)
    return y.reshape(*lead, kernel.shape[-1])


@register("ncp_step", "torch")
def _ncp_step_torch(a, x, kernel, bias):
    import torch

    a, x, kernel, bias = _bu.torch_tensors(a, x, kernel, bias)
    if not _bu.torch_plain(a, x, kernel, bias) or len({t.dtype for t in (a, x, kernel) }) != 1:
        return NotImplemented
    if torch_compile_enabled():
        return _bu.torch_compiled(_ncp_step_expression)(a, x, kernel, bias)
    s = _torch_linear(x, kernel, bias)
    if torch.is_grad_enabled() and (a.requires_grad or s.requires_grad):
        return s.mul(a)
    return s.mul_(a)


def _ncp_step_expression(a, x, kernel, bias):
    s = x @ kernel
    return a * (s if bias is None else s + bias)


def _torch_all_projections(z, kernels, biases):
    """All N projections ``z @ W_n + b_n`` with one GEMM; returns a list of N views."""
    n, d, k = kernels.shape
    w = kernels.permute(1, 0, 2).reshape(d, n * k)
    b = None if biases is None else biases.reshape(n * k)
    y = _torch_linear(z, w, b)
    return list(y.reshape(*y.shape[:-1], n, k).unbind(-2))


@register("ccp", "torch")
def _ccp_torch(z, kernels, biases):
    import torch

    z, kernels, biases = _bu.torch_tensors(z, kernels, biases)
    if not _bu.torch_plain(z, kernels, biases) or z.dtype != kernels.dtype:
        return NotImplemented
    proj = _torch_all_projections(z, kernels, biases)
    x = proj[0]
    for u in proj[1:]:
        x = torch.addcmul(x, u, x)
    return x


@register("ncp", "torch")
def _ncp_torch(z, a_kernels, a_biases, s_kernels, s_biases, skip_kernels):
    z, a_kernels, a_biases, s_kernels, s_biases, skip_kernels = _bu.torch_tensors(
        z, a_kernels, a_biases, s_kernels, s_biases, skip_kernels
    )
    if not _bu.torch_plain(z, a_kernels, a_biases, s_kernels, s_biases, skip_kernels):
        return NotImplemented
    if z.dtype != a_kernels.dtype:
        return NotImplemented
    proj = _torch_all_projections(z, a_kernels, a_biases)
    x = proj[0]
    for n, a in enumerate(proj[1:]):
        s = _torch_linear(x, s_kernels[n], None if s_biases is None else s_biases[n])
        new = s.mul(a)
        if skip_kernels is not None:
            new = new + _torch_linear(x, skip_kernels[n], None)
        x = new
    return x
