"""The backend-specific train steps of :class:`hadamard_zoo.training.gan.ConditionalGAN`.

A GAN step needs gradients of two losses with respect to two variable sets,
which ``keras.ops`` cannot take; each backend does it its own way:

* :func:`tensorflow_train_step`: ``tf.GradientTape``;
* :func:`torch_train_step`: ``loss.backward()`` and ``.grad`` (updates under ``torch.no_grad``);
* :func:`jax_train_step`: stateless (``stateless_call`` + ``jax.value_and_grad`` +
  ``optimizer.stateless_apply``), as Keras' JAX trainer wants.

As everywhere in :mod:`hadamard_zoo.ops`, the backend library is imported inside
the function bodies only.  The recipe itself (the hinge losses, how a batch is
split into ``n_dis`` discriminator batches, the noise, the generator's moving
average, the logs) stays in :mod:`hadamard_zoo.training.gan`: the steps receive
the ``ConditionalGAN`` (``gan``) and the two losses, and use these members of
``gan``: ``generator``, ``discriminator``, ``d_optimizer``, ``g_optimizer``,
``optimizer`` (the ``MultiOptimizer``), ``d_loss_tracker``, ``g_loss_tracker``,
``metrics``, ``seed_generator`` and the helpers ``_unpack``, ``_chunks``,
``_samples``, ``_update_ema``, ``_ema_values``, ``_index_maps``, ``_logs``
(``ConditionalGAN``'s step protocol, documented there).

One call is one generator iteration: ``n_dis`` discriminator steps, and after
the first of them one generator step (then the moving-average update).
"""

from __future__ import annotations

import keras
from keras import ops


# --------------------------------------------------------------- TensorFlow
def tensorflow_train_step(gan, data, d_loss_fn, g_loss_fn):
    """One GAN iteration with ``tf.GradientTape``; returns the logs dict."""
    import tensorflow as tf

    G, D = gan.generator, gan.discriminator
    x, y = gan._unpack(data)
    chunks, b = gan._chunks(x, y)
    d_noise, (zg, cg) = gan._samples(b)
    for i, ((xb, yb), (z, c)) in enumerate(zip(chunks, d_noise)):
        fake = ops.stop_gradient(G([z, c], training=True))
        with tf.GradientTape() as tape:
            logits = D([ops.concatenate([xb, ops.cast(fake, xb.dtype)], 0), ops.concatenate([yb, c], 0)], training=True)
            real_l, fake_l = logits[:b], logits[b:]
            d_loss = d_loss_fn(real_l, fake_l)
        grads = tape.gradient(d_loss, D.trainable_variables)
        gan.d_optimizer.apply(grads, D.trainable_variables)
        gan.d_loss_tracker.update_state(d_loss)
        if i == 0:
            with tf.GradientTape() as tape:
                g_loss = g_loss_fn(D([G([zg, cg], training=True), cg], training=True))
            grads = tape.gradient(g_loss, G.trainable_variables)
            gan.g_optimizer.apply(grads, G.trainable_variables)
            gan._update_ema()
            gan.g_loss_tracker.update_state(g_loss)
    gan.optimizer.iterations.assign_add(1)
    return gan._logs(ops.mean(real_l), ops.mean(fake_l))


# -------------------------------------------------------------------- torch
def torch_train_step(gan, data, d_loss_fn, g_loss_fn):
    """One GAN iteration with ``backward()``; returns the logs dict."""
    import torch

    G, D = gan.generator, gan.discriminator
    x, y = gan._unpack(data)
    chunks, b = gan._chunks(x, y)
    d_noise, (zg, cg) = gan._samples(b)

    def step(loss, variables, optimizer):
        gan.zero_grad()
        loss.backward()
        grads = [v.value.grad for v in variables]
        with torch.no_grad():
            optimizer.apply(grads, variables)

    for i, ((xb, yb), (z, c)) in enumerate(zip(chunks, d_noise)):
        with torch.no_grad():
            fake = G([z, c], training=True)
        logits = D([ops.concatenate([xb, ops.cast(fake, xb.dtype)], 0), ops.concatenate([yb, c], 0)], training=True)
        real_l, fake_l = logits[:b], logits[b:]
        d_loss = d_loss_fn(real_l, fake_l)
        step(d_loss, D.trainable_variables, gan.d_optimizer)
        gan.d_loss_tracker.update_state(d_loss.detach())
        if i == 0:
            g_loss = g_loss_fn(D([G([zg, cg], training=True), cg], training=True))
            step(g_loss, G.trainable_variables, gan.g_optimizer)
            with torch.no_grad():
                gan._update_ema()
            gan.g_loss_tracker.update_state(g_loss.detach())
    gan.zero_grad()
    with torch.no_grad():
        gan.optimizer.iterations.assign_add(1)
    return gan._logs(ops.mean(real_l.detach()), ops.mean(fake_l.detach()))


# ---------------------------------------------------------------------- JAX
def jax_train_step(gan, state, data, d_loss_fn, g_loss_fn):
    """One stateless GAN iteration; returns ``(logs, new_state)`` as Keras' JAX trainer expects.

    ``state`` is ``(trainable, non_trainable, optimizer, metrics)`` variable values
    of ``gan``; the positions of the generator's / discriminator's values in those
    lists come from ``gan._index_maps()``.
    """
    import jax

    G, D = gan.generator, gan.discriminator
    tv, ntv, ov, mv = (list(s) for s in state)
    idx = gan._index_maps()

    def take(values, positions):
        return [values[i] for i in positions]

    def put(values, positions, new):
        for i, v in zip(positions, new):
            values[i] = v

    g_tv, d_tv = take(tv, idx["g_t"]), take(tv, idx["d_t"])
    g_ntv, d_ntv = take(ntv, idx["g_nt"]), take(ntv, idx["d_nt"])
    g_ov, d_ov = take(ov, idx["g_o"]), take(ov, idx["d_o"])

    x, y = gan._unpack(data)
    chunks, b = gan._chunks(x, y)
    with keras.StatelessScope(state_mapping=[(gan.seed_generator.state, ntv[idx["seed"]])]) as scope:
        d_noise, (zg, cg) = gan._samples(b)
        ntv[idx["seed"]] = scope.get_current_value(gan.seed_generator.state)

    def d_loss(d_tv, d_ntv, g_ntv, xb, yb, z, c):
        fake, g_ntv = G.stateless_call(g_tv, g_ntv, [z, c], training=True)
        fake = jax.lax.stop_gradient(fake)
        images = ops.concatenate([xb, ops.cast(fake, xb.dtype)], 0)
        logits, d_ntv = D.stateless_call(d_tv, d_ntv, [images, ops.concatenate([yb, c], 0)], training=True)
        real_l, fake_l = logits[:b], logits[b:]
        return d_loss_fn(real_l, fake_l), (d_ntv, g_ntv, ops.mean(real_l), ops.mean(fake_l))

    def g_loss(g_tv, g_ntv, d_ntv):
        fake, g_ntv = G.stateless_call(g_tv, g_ntv, [zg, cg], training=True)
        logits, d_ntv = D.stateless_call(d_tv, d_ntv, [fake, cg], training=True)
        return g_loss_fn(logits), (g_ntv, d_ntv)

    d_grad_fn = jax.value_and_grad(d_loss, has_aux=True)
    g_grad_fn = jax.value_and_grad(g_loss, has_aux=True)
    metrics = gan.metrics
    n_d = len(metrics[0].variables)
    d_mv, g_mv = mv[:n_d], mv[n_d:]
    for i, ((xb, yb), (z, c)) in enumerate(zip(chunks, d_noise)):
        (d_loss_value, (d_ntv, g_ntv, d_real, d_fake)), grads = d_grad_fn(d_tv, d_ntv, g_ntv, xb, yb, z, c)
        d_tv, d_ov = gan.d_optimizer.stateless_apply(d_ov, grads, d_tv)
        d_mv = gan.d_loss_tracker.stateless_update_state(d_mv, d_loss_value)
        if i == 0:
            (g_loss_value, (g_ntv, d_ntv)), grads = g_grad_fn(g_tv, g_ntv, d_ntv)
            g_tv, g_ov = gan.g_optimizer.stateless_apply(g_ov, grads, g_tv)
            put(ntv, idx["ema"], gan._ema_values(take(ntv, idx["ema"]), g_tv))
            g_mv = gan.g_loss_tracker.stateless_update_state(g_mv, g_loss_value)

    put(tv, idx["g_t"], g_tv)
    put(tv, idx["d_t"], d_tv)
    put(ntv, idx["g_nt"], g_ntv)
    put(ntv, idx["d_nt"], d_ntv)
    put(ov, idx["g_o"], g_ov)
    put(ov, idx["d_o"], d_ov)
    ov[idx["it"]] = ov[idx["it"]] + 1
    mv = list(d_mv) + list(g_mv)
    logs = {
        "d_loss": gan.d_loss_tracker.stateless_result(d_mv),
        "g_loss": gan.g_loss_tracker.stateless_result(g_mv),
        "d_real": d_real,
        "d_fake": d_fake,
    }
    return logs, (tv, ntv, ov, mv)
