"""Named element-wise activations used by the gated products.

The names are the ones users pass to layers (``activation="relu6"``); the same
table is used by the reference implementation and by every accelerated path,
so an unknown name fails the same way everywhere.
"""

from __future__ import annotations

from keras import ops


def _identity(x):
    return x


def _gelu(x):
    # exact (erf) GELU, as PyTorch's nn.GELU() default and GeGLU's reference.
    return ops.gelu(x, approximate=False)


def _gelu_tanh(x):
    return ops.gelu(x, approximate=True)


ACTIVATIONS = {
    "relu6": ops.relu6,
    "relu": ops.relu,
    "sigmoid": ops.sigmoid,
    "swish": ops.silu,
    "silu": ops.silu,
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "tanh": ops.tanh,
    "identity": _identity,
    "linear": _identity,
    None: _identity,
}


def canonical_activation(name):
    """Validate an activation name and return its canonical spelling."""
    if isinstance(name, str):
        key = name.lower()
    else:
        key = name
    if key not in ACTIVATIONS:
        known = sorted(k for k in ACTIVATIONS if k is not None)
        raise ValueError(f"Unknown activation {name!r}; expected one of {known} or None.")
    if key == "silu":
        return "swish"
    if key in ("linear", None):
        return "identity"
    return key


def get_activation(name):
    return ACTIVATIONS[canonical_activation(name)]
