"""Gated Hadamard products: StarNet's star operation and the GLU family.

* ``star(a, b)    = act(a) * b``      (StarNet, Ma et al. 2024; act = ReLU6 by default)
* ``glu(a, b)     = a * sigma(b)``    (GLU / SwiGLU / GeGLU / bilinear, Shazeer 2020;
  the gated linear unit of Dauphin et al. 2017 is ``sigma = sigmoid``)

Both are the "adaptive modulation" use of the Hadamard product in the survey
(Sec. 4, gating; Eq. 8 with the gate computed from the input).
"""

from __future__ import annotations

from keras import ops

from hadamard_zoo.ops import _checks
from hadamard_zoo.ops._dispatch import dispatch
from hadamard_zoo.ops.activations import canonical_activation, get_activation


def star_reference(a, b, activation="relu6"):
    return ops.multiply(get_activation(activation)(a), b)


def star(a, b, activation="relu6"):
    """StarNet's star operation ``act(a) * b``.

    Args:
        a: tensor of any shape ``(..., C)``; the branch passed through ``act``.
        b: tensor of the same shape as ``a``.
        activation: name of ``act`` (``"relu6"`` as in StarNet; any name of
            :mod:`hadamard_zoo.ops.activations`).

    Returns:
        tensor of the shape of ``a``.
    """
    _checks.check_same_shape("star: a and b", a, b)
    activation = canonical_activation(activation)
    return dispatch("star", star_reference, a, b, activation=activation)


def glu_reference(a, b=None, activation="sigmoid", axis=-1):
    if b is None:
        if activation == "sigmoid":
            return ops.glu(a, axis=axis)
        a, b = ops.split(a, 2, axis=axis)
    return ops.multiply(a, get_activation(activation)(b))


def glu(a, b=None, activation="sigmoid", axis=-1):
    """Gated linear unit ``a * sigma(b)``.

    Args:
        a: the value branch, shape ``(..., C)``; if ``b`` is None, ``a`` holds both
            halves along ``axis`` (shape ``(..., 2C)``) as in ``keras.ops.glu``.
        b: the gate branch, same shape as ``a`` (or None).
        activation: ``sigma``: ``"sigmoid"`` (GLU), ``"swish"`` (SwiGLU),
            ``"gelu"`` (GeGLU), ``"identity"`` (bilinear), or any other name of
            :mod:`hadamard_zoo.ops.activations`.
        axis: split axis when ``b`` is None.

    Returns:
        tensor of shape ``(..., C)``.
    """
    activation = canonical_activation(activation)
    if b is None:
        _checks.check_rank("glu: a", a, min_rank=1)
        size = _checks.shape_of(a)[axis]
        if size is not None and size % 2:
            raise ValueError(
                f"glu: with b=None the size of axis {axis} must be even (two halves), "
                f"got shape {_checks.shape_of(a)}."
            )
    else:
        _checks.check_same_shape("glu: a and b", a, b)
    return dispatch("glu", glu_reference, a, b, activation=activation, axis=axis)


# ------------------------------------------------------------ accelerated paths
from hadamard_zoo.ops import _backend_utils as _bu  # noqa: E402
from hadamard_zoo.ops._dispatch import register, torch_compile_enabled  # noqa: E402


@register("star", "jax")
def _star_jax(a, b, activation):
    return _bu.jax_jit(star_reference, a, b, activation=activation)


@register("glu", "jax")
def _glu_jax(a, b, activation, axis):
    if b is None:
        return _bu.jax_jit(glu_reference, a, activation=activation, axis=axis)
    return _bu.jax_jit(glu_reference, a, b, activation=activation, axis=axis)


@register("star", "tensorflow")
def _star_tf(a, b, activation):
    return _bu.tf_xla(star_reference, a, b, activation=activation)


@register("glu", "tensorflow")
def _glu_tf(a, b, activation, axis):
    if b is None:
        return _bu.tf_xla(glu_reference, a, activation=activation, axis=axis)
    return _bu.tf_xla(glu_reference, a, b, activation=activation, axis=axis)


# torch: one allocation in the forward (activation, then an in-place product),
# nothing but the inputs saved for the backward, which uses ATen's fused
# activation-backward kernels.
def _torch_act_forward(name, x):
    import torch
    import torch.nn.functional as F

    if name == "relu6":
        return torch.clamp(x, 0.0, 6.0)
    if name == "relu":
        return torch.relu(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "swish":
        return F.silu(x)
    if name == "gelu":
        return F.gelu(x)
    if name == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    if name == "tanh":
        return torch.tanh(x)
    if name == "identity":
        return x.clone()
    raise ValueError(f"Unknown activation {name!r}.")


def _torch_act_backward(name, grad, x):
    """d act(x)/dx * grad, computed by ATen's fused backward kernels."""
    import torch

    aten = torch.ops.aten
    if name == "relu6":
        return aten.hardtanh_backward(grad, x, 0.0, 6.0)
    if name == "relu":
        return aten.threshold_backward(grad, x, 0.0)
    if name == "sigmoid":
        return aten.sigmoid_backward(grad, torch.sigmoid(x))
    if name == "swish":
        return aten.silu_backward(grad, x)
    if name == "gelu":
        return aten.gelu_backward(grad, x, approximate="none")
    if name == "gelu_tanh":
        return aten.gelu_backward(grad, x, approximate="tanh")
    if name == "tanh":
        return aten.tanh_backward(grad, torch.tanh(x))
    if name == "identity":
        return grad
    raise ValueError(f"Unknown activation {name!r}.")


_TORCH_FNS = {}


def _torch_functions():
    if _TORCH_FNS:
        return _TORCH_FNS
    import torch

    class StarFn(torch.autograd.Function):
        """out = act(a) * b, saving only (a, b); GLU is ``StarFn(b, a)``."""

        @staticmethod
        def forward(ctx, a, b, activation):
            ctx.activation = activation
            ctx.save_for_backward(a, b)
            return _torch_act_forward(activation, a).mul_(b)

        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            grad_a = grad_b = None
            if ctx.needs_input_grad[1]:
                grad_b = _torch_act_forward(ctx.activation, a).mul_(grad)
            if ctx.needs_input_grad[0]:
                grad_a = _torch_act_backward(ctx.activation, grad * b, a)
            return grad_a, grad_b, None

    _TORCH_FNS.update(star=StarFn)
    return _TORCH_FNS


def _torch_same_dtype(a, b):
    return a.dtype == b.dtype and a.shape == b.shape


# The torch.compile forms (HADAMARD_ZOO_TORCH_COMPILE=1): plain expressions that
# Inductor fuses into one kernel per pass (forward; backward with both gradients).
def _star_expression(a, b, activation):
    return _torch_act_forward(activation, a) * b


def _glu_expression(a, b, activation):
    return a * _torch_act_forward(activation, b)


@register("star", "torch")
def _star_torch(a, b, activation):
    a, b = _bu.torch_tensors(a, b)
    if not _bu.torch_plain(a, b) or not _torch_same_dtype(a, b):
        return NotImplemented
    if torch_compile_enabled():
        return _bu.torch_compiled(_star_expression)(a, b, activation)
    return _torch_functions()["star"].apply(a, b, activation)


@register("glu", "torch")
def _glu_torch(a, b, activation, axis):
    import torch
    import torch.nn.functional as F

    if b is None:
        (a,) = _bu.torch_tensors(a)
        if not _bu.torch_plain(a):
            return NotImplemented
        if activation == "sigmoid":
            return F.glu(a, dim=axis)  # ATen's fused GLU kernel
        a, b = torch.chunk(a, 2, dim=axis)
    a, b = _bu.torch_tensors(a, b)
    if not _bu.torch_plain(a, b) or not _torch_same_dtype(a, b):
        return NotImplemented
    if torch_compile_enabled():
        return _bu.torch_compiled(_glu_expression)(a, b, activation)
    return _torch_functions()["star"].apply(b, a, activation)  # a * act(b) is the star product of (b, a)
