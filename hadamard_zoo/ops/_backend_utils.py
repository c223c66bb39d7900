"""Helpers for writing accelerated paths (imported only from ops modules).

Each helper imports its backend library lazily.  The conventions:

* JAX: :func:`jax_jit` compiles a ``keras.ops`` function with ``jax.jit`` (XLA
  fuses the element-wise chain into one loop).  Inside an outer ``jax.jit``
  (Keras' train step) the inner jit is inlined, so the path is always safe.
* TensorFlow: :func:`tf_xla` wraps a function in ``tf.function(jit_compile=True)``.
  It is used only when TF executes eagerly: inside Keras' graph (non-XLA on
  CPU) an XLA cluster was measured slower than Grappler/oneDNN, so graph-mode
  calls fall back to the reference.
* torch: paths are hand-fused with ATen kernels (``torch.addcmul``,
  ``torch.addmm``, in-place ops) inside ``torch.autograd.Function`` s whose
  backward recomputes cheap intermediates instead of storing them.  They decline
  (``NotImplemented``) on meta tensors, which Keras uses for shape inference.
  With ``HADAMARD_ZOO_TORCH_COMPILE=1`` (:func:`torch_compiled`) the element-wise
  paths run a ``torch.compile`` form instead: one generated kernel per pass.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def _jitted(fn, static_items):
    import jax

    kwargs = dict(static_items)
    return jax.jit(functools.partial(fn, **kwargs))


def jax_jit(fn, *args, **static_kwargs):
    """Call ``fn(*args, **static_kwargs)`` through a cached ``jax.jit``."""
    return _jitted(fn, tuple(sorted(static_kwargs.items())))(*args)


@functools.lru_cache(maxsize=None)
def _xla_functions(fn, static_items):
    import tensorflow as tf

    kwargs = dict(static_items)
    return tf.function(functools.partial(fn, **kwargs), jit_compile=True)


def tf_executing_eagerly() -> bool:
    import tensorflow as tf

    return tf.executing_eagerly()


def tf_xla(fn, *args, **static_kwargs):
    """``fn`` through a cached ``tf.function(jit_compile=True)``; eager calls only."""
    if not tf_executing_eagerly():
        return NotImplemented
    return _xla_functions(fn, tuple(sorted(static_kwargs.items())))(*args)


def torch_plain(*tensors) -> bool:
    """True if every non-None argument is a real (non-meta) torch tensor."""
    import torch

    for t in tensors:
        if t is None:
            continue
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return False
    return True


def torch_tensors(*xs):
    """Convert Keras variables / arrays to torch tensors (None passes through)."""
    from keras import ops

    return tuple(None if x is None else ops.convert_to_tensor(x) for x in xs)


@functools.lru_cache(maxsize=None)
def torch_compiled(fn):
    """``torch.compile(fn, dynamic=True)``, built once per function (shapes symbolic)."""
    import torch

    return torch.compile(fn, dynamic=True)
