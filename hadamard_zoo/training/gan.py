"""Hinge-loss training of class-conditional GANs (CoPE / SNGAN recipe) with ``model.fit``.

:class:`ConditionalGAN` wraps a generator ``G([z, label]) -> image`` and a
discriminator ``D([image, label]) -> logit``; ``compile(d_optimizer, g_optimizer)``
then ``fit(images, labels, batch_size=n_dis * b)``.  One ``train_step`` is one
generator iteration of the reference updater (SNGAN / CoPE ``Updater``): the
real batch is split into ``n_dis`` discriminator batches of ``b`` images; for
each, a discriminator step, and after the first one a generator step::

    D: mean(relu(1 - D(x, y))) + mean(relu(1 + D(G(z, c), c)))
    G: -mean(D(G(z, c), c))

``z ~ U(-1, 1)`` and ``c`` uniform over the classes, drawn inside the step from
the model's ``SeedGenerator``; the generator step uses ``g_batch_size`` samples
(the release: 512; default ``b``).  Both networks run in training mode in both
steps, as in the reference (BatchNorm batch statistics, spectral-norm power
iterations).

Gradients need the backend: the JAX step is stateless (``stateless_call`` +
``optimizer.stateless_apply``), TensorFlow uses ``GradientTape``, torch
``backward()``; those three steps live in :mod:`hadamard_zoo.ops.gan_steps`
(the only package that imports a backend library is :mod:`hadamard_zoo.ops`)
and use the shared pieces below (``_unpack``, ``_chunks``, ``_samples``,
``_update_ema``, ``_ema_values``, ``_index_maps``, ``_logs``).
The two optimizers are combined in a ``keras.optimizers.MultiOptimizer`` (so
that ``fit`` carries both optimizers' state on JAX); each is applied to its own
network's variables only.

Note on spectral normalization: ``keras.layers.SpectralNormalization`` in
training mode assigns ``W / sigma(W)`` to the kernel.  On TensorFlow and torch the
assignment persists (projection, then a gradient step on the normalized kernel);
in a stateless JAX step trainable-variable assignments are discarded, so the
kernel stays unnormalized and the gradient flows through ``W / sigma(W)`` (the
reparametrization of Miyato et al. and of the Chainer reference).  The forward
function is the same; the update rule differs slightly between backends.

Generator moving average (``g_ema_momentum``, as BigGAN / StyleGAN sample from):
after every generator step ``ema <- m * ema + (1 - m) * w`` for each trainable
generator weight ``w``.  The averages are non-trainable variables of the wrapper
(so ``fit`` carries them on JAX too), not Keras' optimizer ``use_ema``, whose
``finalize_variable_values`` would overwrite the live generator at the end of
every ``fit`` call.  :meth:`ConditionalGAN.ema_generator` returns a copy of the
generator holding the averages, with its BatchNorm statistics recomputed for
those weights (:func:`standing_batchnorm_statistics`).

Not covered: loss scaling (train in float32 or ``mixed_bfloat16``, not
``mixed_float16``), saving the wrapper (save ``generator`` and
``discriminator``; they are ordinary ``.keras`` models).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from hadamard_zoo.checks import check_positive_int
from hadamard_zoo.ops import gan_steps

#: The released CoPE CIFAR-10 recipe (jobs/cope_neurips21/cifar10_cnn_2var_prodpoly_linear_conditional.yml).
#: ``n_dis_schedule``: ``(until_iteration, n_dis)``: n_dis for iterations < until_iteration.
RELEASED_RECIPE = {
    "loss": "hinge",
    "batch_size": 64,
    "g_batch_size": 512,
    "iterations": 50000,
    "learning_rate": 2e-4,
    "beta_1": 0.0,
    "beta_2": 0.9,
    "n_dis_schedule": ((1500, 1), (3000, 3), (6000, 6), (10000, 8), (20000, 10), (30000, 12), (100000, 9)),
    "noise": "uniform(-1, 1)",
}


def hinge_d_loss(real_logits, fake_logits):
    """``mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))`` (float32)."""
    real_logits = ops.cast(real_logits, "float32")
    fake_logits = ops.cast(fake_logits, "float32")
    return ops.add(ops.mean(ops.relu(1.0 - real_logits)), ops.mean(ops.relu(1.0 + fake_logits)))


def hinge_g_loss(fake_logits):
    """``-mean(D(G(z)))`` (float32)."""
    return ops.negative(ops.mean(ops.cast(fake_logits, "float32")))


def n_dis_at(iteration, schedule=RELEASED_RECIPE["n_dis_schedule"]):
    """Discriminator steps per generator step at ``iteration`` under a ``(until, n_dis)`` schedule."""
    for until, n in schedule:
        if iteration < until:
            return n
    return schedule[-1][1]


def sngan_adam(learning_rate=2e-4, beta_1=0.0, beta_2=0.9):
    """Adam as in SNGAN / CoPE (``beta_1 = 0``, ``beta_2 = 0.9``)."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2)


def standing_batchnorm_statistics(generator, num_classes, num_samples=2048, seed=0):
    """Set every ``BatchNormalization`` layer's moving statistics of ``generator`` to
    the batch statistics of one training-mode pass over ``num_samples`` samples
    (noise ``U(-1, 1)``, labels cycling over the ``num_classes`` classes).

    In inference mode the generator then normalizes that batch exactly as training
    mode does; this is what weights that were never run in training mode (an
    exponential moving average) need before sampling.  Returns ``generator``.
    """
    from hadamard_zoo.models.architectures.cope import sample_noise

    check_positive_int("num_samples", num_samples)
    layers = [l for l in generator._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    momenta = [l.momentum for l in layers]
    z = sample_noise(num_samples, generator.inputs[0].shape[-1], seed)
    c = (np.arange(num_samples) % int(num_classes)).astype("int32")
    try:
        for l in layers:
            l.momentum = 0.0  # moving <- batch statistics
        generator([z, c], training=True)
    finally:
        for l, m in zip(layers, momenta):
            l.momentum = m
    return generator


class ConditionalGAN(keras.Model):
    """Class-conditional GAN trained with the hinge loss; see the module docstring.

    Args:
        generator: model ``[noise (B, latent_dim), label (B,) int] -> image``.
        discriminator: model ``[image, label (B,) int] -> (B, 1)`` logits.
        latent_dim: noise size (default: the generator's first input).
        num_classes: number of classes the fake labels are drawn from.
        n_dis: discriminator steps per generator step (the batch given to
            ``train_step`` is split into ``n_dis`` parts).
        g_batch_size: fake samples per generator step (default: the discriminator batch).
        seed: seed of the noise/label ``SeedGenerator``.
        g_ema_momentum: ``m`` of the generator's moving average (``None``: no
            average; BigGAN uses 0.9999 over 100k+ iterations, a few thousand
            iterations want about 0.995).  It starts from the generator's weights
            at construction; call :meth:`reset_ema` after loading other weights.

    ``fit`` logs ``d_loss`` and ``g_loss`` (means over the epoch) and ``d_real``,
    ``d_fake`` (mean logits of the last discriminator step).
    """

    def __init__(self, generator, discriminator, latent_dim=None, num_classes=10, n_dis=1, g_batch_size=None, seed=None,
                 g_ema_momentum=None, **kwargs):
        super().__init__(**kwargs)
        if latent_dim is None:
            latent_dim = generator.inputs[0].shape[-1]
        check_positive_int("latent_dim", latent_dim)
        check_positive_int("num_classes", num_classes)
        check_positive_int("n_dis", n_dis)
        if g_batch_size is not None:
            check_positive_int("g_batch_size", g_batch_size)
        if g_ema_momentum is not None and not (isinstance(g_ema_momentum, (int, float)) and 0.0 <= g_ema_momentum < 1.0):
            raise ValueError(f"g_ema_momentum must be a number in [0, 1) or None, got {g_ema_momentum!r}.")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.n_dis = n_dis
        self.g_batch_size = g_batch_size
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.g_ema_momentum = None if g_ema_momentum is None else float(g_ema_momentum)
        self.g_ema_variables = []
        if g_ema_momentum is not None:
            self.g_ema_variables = [
                self.add_weight(shape=v.shape, dtype=v.dtype, initializer="zeros", trainable=False, name=f"g_ema_{i}")
                for i, v in enumerate(generator.trainable_variables)
            ]
            self.reset_ema()
        self.built = True

    # ---------------------------------------------------------- moving average
    def reset_ema(self):
        """Set the generator's moving average to its current weights."""
        for average, variable in zip(self.g_ema_variables, self.generator.trainable_variables):
            average.assign(ops.copy(variable.value))  # a copy: JAX must not see one buffer in two variables

    def _ema_values(self, averages, weights):
        m = self.g_ema_momentum
        return [ops.add(ops.multiply(a, m), ops.multiply(ops.cast(w, a.dtype), 1.0 - m)) for a, w in zip(averages, weights)]

    def _update_ema(self):
        if self.g_ema_variables:
            new = self._ema_values([a.value for a in self.g_ema_variables], [v.value for v in self.generator.trainable_variables])
            for average, value in zip(self.g_ema_variables, new):
                average.assign(value)

    def ema_generator(self, standing_samples=2048, seed=0):
        """A copy of the generator holding the moving average of its weights, with its
        BatchNorm statistics recomputed over ``standing_samples`` samples
        (:func:`standing_batchnorm_statistics`).  The live generator is untouched."""
        if not self.g_ema_variables:
            raise ValueError("This ConditionalGAN keeps no moving average; construct it with g_ema_momentum=....")
        copy = keras.models.clone_model(self.generator)
        copy.set_weights(self.generator.get_weights())
        for variable, average in zip(copy.trainable_variables, self.g_ema_variables):
            variable.assign(ops.copy(average.value))
        return standing_batchnorm_statistics(copy, self.num_classes, standing_samples, seed)

    def load_ema(self, generator_weights_path):
        """Set the moving average from a saved generator ``.weights.h5`` (e.g. one written from :meth:`ema_generator`)."""
        if not self.g_ema_variables:
            raise ValueError("This ConditionalGAN keeps no moving average; construct it with g_ema_momentum=....")
        copy = keras.models.clone_model(self.generator)
        copy.load_weights(generator_weights_path)
        for average, variable in zip(self.g_ema_variables, copy.trainable_variables):
            average.assign(ops.copy(variable.value))

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, inputs, training=False):
        """``G([noise, label])``."""
        return self.generator(inputs, training=training)

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """``d_optimizer`` / ``g_optimizer`` default to :func:`sngan_adam`."""
        self.d_optimizer = d_optimizer if d_optimizer is not None else sngan_adam()
        self.g_optimizer = g_optimizer if g_optimizer is not None else sngan_adam()
        if self.d_optimizer is self.g_optimizer:
            raise ValueError("d_optimizer and g_optimizer must be two different optimizer instances.")
        g_ids = {id(v) for v in self.generator.trainable_variables}
        d_opt, g_opt = self.d_optimizer, self.g_optimizer

        def select(variable):
            return g_opt if id(variable) in g_ids else d_opt

        super().compile(optimizer=keras.optimizers.MultiOptimizer(select), **kwargs)
        self.optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------ shared pieces
    def _unpack(self, data):
        if isinstance(data, (list, tuple)) and len(data) == 1:
            data = data[0]
        if isinstance(data, (list, tuple)) and len(data) >= 2 and data[1] is not None:
            x, y = data[0], data[1]
        elif isinstance(data, (list, tuple)) and isinstance(data[0], (list, tuple)):
            x, y = data[0]
        else:
            raise ValueError(
                "ConditionalGAN.fit expects (images, labels): fit(images, labels, batch_size=n_dis * b)."
            )
        x = ops.cast(x, self.discriminator.compute_dtype if hasattr(self.discriminator, "compute_dtype") else "float32")
        y = ops.cast(ops.reshape(y, (-1,)), "int32")
        return x, y

    def _chunks(self, x, y):
        n = self.n_dis
        b = ops.shape(x)[0] // n
        return [(x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]) for i in range(n)], b

    def _sample(self, batch):
        z = keras.random.uniform((batch, self.latent_dim), -1.0, 1.0, seed=self.seed_generator)
        c = keras.random.randint((batch,), 0, self.num_classes, seed=self.seed_generator, dtype="int32")
        return z, c

    def _samples(self, b):
        gb = self.g_batch_size or b
        d = [self._sample(b) for _ in range(self.n_dis)]
        return d, self._sample(gb)

    def train_step(self, *args):
        """One generator iteration; the gradient code is the backend's, in :mod:`hadamard_zoo.ops.gan_steps`."""
        backend = keras.config.backend()
        if backend == "jax":
            return gan_steps.jax_train_step(self, *args, hinge_d_loss, hinge_g_loss)
        if backend == "tensorflow":
            return gan_steps.tensorflow_train_step(self, *args, hinge_d_loss, hinge_g_loss)
        if backend == "torch":
            return gan_steps.torch_train_step(self, *args, hinge_d_loss, hinge_g_loss)
        raise NotImplementedError(f"ConditionalGAN has no train step for the {backend} backend.")

    def _logs(self, d_real, d_fake):
        logs = {m.name: m.result() for m in self.metrics}
        logs.update(d_real=d_real, d_fake=d_fake)
        return logs

    # ------------------------------------------------------- JAX step's state
    def _index_maps(self):
        """Positions of G's / D's variables in the model state lists (computed at trace time;
        used by :func:`hadamard_zoo.ops.gan_steps.jax_train_step`)."""

        def positions(all_vars, sub):
            where = {id(v): i for i, v in enumerate(all_vars)}
            return [where[id(v)] for v in sub]

        G, D = self.generator, self.discriminator
        tv, ntv, ov = self.trainable_variables, self.non_trainable_variables, self.optimizer.variables
        return dict(
            g_t=positions(tv, G.trainable_variables),
            d_t=positions(tv, D.trainable_variables),
            g_nt=positions(ntv, G.non_trainable_variables),
            d_nt=positions(ntv, D.non_trainable_variables),
            seed=positions(ntv, [self.seed_generator.state])[0],
            g_o=positions(ov, self.g_optimizer.variables),
            d_o=positions(ov, self.d_optimizer.variables),
            it=positions(ov, [self.optimizer.iterations])[0],
            ema=positions(ntv, self.g_ema_variables),
        )


class RandomBatches(keras.utils.PyDataset):
    """``steps`` batches of ``batch_size`` (image, label) pairs drawn with replacement (numpy RNG).

    Images are returned as float32 in [-1, 1]: uint8 inputs are mapped with
    ``x / 127.5 - 1``; float inputs are passed through.
    """

    def __init__(self, images, labels, batch_size, steps, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.images, self.labels = images, np.asarray(labels).reshape(-1)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels.")
        self.batch_size, self.steps = int(batch_size), int(steps)
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        idx = self.rng.integers(0, len(self.labels), size=self.batch_size)
        x = self.images[idx]
        x = x.astype("float32") / 127.5 - 1.0 if x.dtype == np.uint8 else x.astype("float32")
        return x, self.labels[idx].astype("int32")


def fit_with_schedule(gan, images, labels, iterations, batch_size=64, n_dis_schedule=((10**9, 1),), seed=0, callbacks=None, verbose=0):
    """Train ``iterations`` generator iterations, changing ``n_dis`` as ``n_dis_schedule`` says.

    Each phase of constant ``n_dis`` is one ``fit`` call on :class:`RandomBatches`
    of ``n_dis * batch_size`` images (the train function is retraced per phase).
    Returns the list of ``History`` objects.
    """
    histories, start, phase = [], 0, 0
    while start < iterations:
        n = n_dis_at(start, n_dis_schedule)
        end = min(iterations, next((u for u, _ in n_dis_schedule if u > start), iterations))
        if end <= start:
            end = iterations
        if gan.n_dis != n or gan.train_function is None:
            gan.n_dis = n
            gan.train_function = None
            gan.make_train_function(force=True)
        data = RandomBatches(images, labels, n * batch_size, end - start, seed=seed + phase)
        histories.append(gan.fit(data, epochs=1, callbacks=callbacks, verbose=verbose))
        start, phase = end, phase + 1
    return histories
