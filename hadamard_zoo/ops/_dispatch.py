"""Per-backend dispatch of the Hadamard-critical ops.

Every public op in :mod:`hadamard_zoo.ops` is defined by a *reference*
implementation written only with ``keras.ops``.  A backend may register an
*accelerated* implementation of the same op with :func:`register`; the
dispatcher calls it when

* fusion is enabled (``HADAMARD_ZOO_FUSION`` is not ``off``/``0``/``false``, and
  no :func:`fusion` context turned it off), and
* an implementation is registered for the active Keras backend, and
* that implementation accepts the call: it may return :data:`NotImplemented`
  for inputs it does not handle (symbolic or meta tensors, unsupported dtypes,
  shapes where the fast path does not pay); the reference runs instead.

Accelerated implementations live next to their reference, in the op's own
module, and import their backend library inside the function body, so
importing :mod:`hadamard_zoo` never imports a backend Keras is not using.
The ``hadamard_zoo.ops`` package is the only place that knows about jax,
tensorflow or torch.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable

import keras

_ENV_VAR = "HADAMARD_ZOO_FUSION"
_OFF_VALUES = {"off", "0", "false", "no", "reference"}

_REGISTRY: dict[tuple[str, str], Callable] = {}
_STATE = threading.local()

def register(op_name: str, backend: str):
    """Decorator registering ``fn`` as the accelerated ``op_name`` on ``backend``."""

    def decorator(fn):
        _REGISTRY[(op_name, backend)] = fn
        return fn

    return decorator


def fusion_enabled() -> bool:
    """Whether accelerated paths are used (env var and :func:`fusion` context)."""
    override = getattr(_STATE, "override", None)
    if override is not None:
        return override
    return os.environ.get(_ENV_VAR, "on").strip().lower() not in _OFF_VALUES


@contextlib.contextmanager
def fusion(enabled: bool = True):
    """Context manager forcing accelerated paths on or off in this thread.

    >>> with hadamard_zoo.ops.fusion(False):
    ...     y_ref = hadamard_zoo.ops.star(a, b)   # always the keras.ops reference
    """
    with _thread_override("override", enabled):
        yield


_COMPILE_ENV_VAR = "HADAMARD_ZOO_TORCH_COMPILE"


def torch_compile_enabled() -> bool:
    """Whether the torch paths that have one use their ``torch.compile`` form (default: off).

    On by ``HADAMARD_ZOO_TORCH_COMPILE=1`` or inside :func:`torch_compile`.  The
    compiled forms fuse an element-wise chain (forward and backward) into one
    generated kernel; each new shape family costs ~10 s of compilation on this
    CPU, which is why eager Keras does not get it by default.
    """
    override = getattr(_STATE, "compile_override", None)
    if override is not None:
        return override
    return os.environ.get(_COMPILE_ENV_VAR, "off").strip().lower() not in _OFF_VALUES | {""}


@contextlib.contextmanager
def torch_compile(enabled: bool = True):
    """Context manager turning the ``torch.compile`` forms of the torch paths on or off in this thread."""
    with _thread_override("compile_override", enabled):
        yield


@contextlib.contextmanager
def _thread_override(attribute, enabled):
    """Set a per-thread switch for the duration of a ``with`` block (restored after)."""
    previous = getattr(_STATE, attribute, None)
    setattr(_STATE, attribute, bool(enabled))
    try:
        yield
    finally:
        setattr(_STATE, attribute, previous)


def accelerated_impl(op_name: str, backend: str | None = None):
    """The registered accelerated implementation of ``op_name`` (or None)."""
    backend = backend or keras.config.backend()
    return _REGISTRY.get((op_name, backend))


def _materialize(x):
    """Keras variables -> their (autocast) value, so backend code sees plain tensors."""
    if isinstance(x, keras.Variable):
        return x.value
    if isinstance(x, (list, tuple)):
        return type(x)(_materialize(v) for v in x)
    return x


def dispatch(op_name: str, reference: Callable, *args, **kwargs):
    """Run the accelerated ``op_name`` if it applies, else ``reference``."""
    if fusion_enabled():
        impl = accelerated_impl(op_name)
        if impl is not None:
            result = impl(*[_materialize(a) for a in args], **{k: _materialize(v) for k, v in kwargs.items()})
            if result is not NotImplemented:
                return result
    return reference(*args, **kwargs)


def registered_ops(backend: str | None = None) -> list[str]:
    """Names of ops with an accelerated path on ``backend`` (default: active)."""
    backend = backend or keras.config.backend()
    return sorted(name for (name, b) in _REGISTRY if b == backend)
