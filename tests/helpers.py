"""Backend-agnostic test helpers: numpy conversion, gradients, path comparison."""

from __future__ import annotations

import keras
import numpy as np

import hadamard_zoo.ops as hops

BACKEND = keras.config.backend()


def to_np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def rand(shape, seed=0, scale=1.0, dtype="float32"):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(dtype)


def value_and_grads(fn, inputs, seed=123):
    """``fn(*inputs)`` and the gradients of ``sum(fn(*inputs) * c)`` wrt each input.

    ``c`` is a fixed random cotangent, so every output element is checked.
    Inputs are numpy arrays; None entries are passed through without gradient.
    Returns ``(out, [grad or None per input])`` as numpy.
    """
    idx = [i for i, x in enumerate(inputs) if x is not None]
    out0 = to_np(fn(*inputs))
    cot = np.random.default_rng(seed).normal(size=out0.shape).astype(out0.dtype)

    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def loss(*diff):
            full = list(inputs)
            for i, d in zip(idx, diff):
                full[i] = d
            return jnp.sum(fn(*full) * cot)

        grads = jax.grad(loss, argnums=tuple(range(len(idx))))(*[jnp.asarray(inputs[i]) for i in idx])
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        diff = [tf.Variable(inputs[i]) for i in idx]
        with tf.GradientTape() as tape:
            full = list(inputs)
            for i, d in zip(idx, diff):
                full[i] = d
            loss = tf.reduce_sum(fn(*full) * cot)
        grads = tape.gradient(loss, diff)
    elif BACKEND == "torch":
        import torch

        diff = [torch.tensor(inputs[i], requires_grad=True) for i in idx]
        full = list(inputs)
        for i, d in zip(idx, diff):
            full[i] = d
        loss = torch.sum(fn(*full) * torch.tensor(cot))
        grads = torch.autograd.grad(loss, diff, allow_unused=True)
    else:  # pragma: no cover
        raise RuntimeError(BACKEND)
    result = [None] * len(inputs)
    for i, g in zip(idx, grads):
        result[i] = None if g is None else to_np(g)
    return out0, result


def assert_close(actual, expected, rtol=1e-5, atol=1e-5, what=""):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def assert_paths_agree(fn, inputs, rtol=1e-5, atol=1e-5, require_accelerated=None):
    """The dispatched path equals the reference in values and gradients.

    ``require_accelerated``: an op name whose accelerated path must be registered
    on this backend (so the comparison is not reference-vs-reference).
    """
    if require_accelerated is not None:
        assert hops.accelerated_impl(require_accelerated) is not None, (
            f"no accelerated path for {require_accelerated} on {BACKEND}"
        )
    with hops.fusion(True):
        out_fast, g_fast = value_and_grads(fn, inputs)
    with hops.fusion(False):
        out_ref, g_ref = value_and_grads(fn, inputs)
    assert_close(out_fast, out_ref, rtol, atol, "values")
    for i, (a, b) in enumerate(zip(g_fast, g_ref)):
        if a is None and b is None:
            continue
        assert a is not None and b is not None, f"gradient {i}: one path gives None"
        assert_close(a, b, rtol, atol, f"gradient wrt input {i}")
    return out_fast


def roundtrip_keras(model, tmp_path, inputs):
    """Save ``model`` to .keras, reload, and check outputs are unchanged."""
    path = str(tmp_path / "model.keras")
    expected = to_np(model(inputs))
    model.save(path)
    restored = keras.saving.load_model(path)
    assert_close(to_np(restored(inputs)), expected, 1e-6, 1e-6, "after .keras round-trip")
    return restored
