"""CoPE class-conditional generators and SNGAN projection discriminators.

CoPE (Chrysos, Georgopoulos, Panagakis, "Conditional Generation Using Polynomial
Expansions", NeurIPS'21) writes the generator as a polynomial of the noise ``z``
and the label ``c`` (survey Eq. 4).  :func:`build_cope_generator` follows the
released CIFAR-10 configuration (``gen_models/cnn_gen_custom_2var_prod.py`` with
``jobs/cope_neurips21/cifar10_cnn_2var_prodpoly_linear_conditional.yml``):

1. ``c`` = one-hot label -> ``label_degrees`` single-variable FC polynomials of
   width ``label_units`` (release: two of degree 3, width 100) — :class:`CoPEPolynomial`;
2. ``z ~ U(-1, 1)^latent_dim`` -> ``fc_degrees`` two-variable FC polynomials of
   width ``fc_units`` (release: degrees 1, 3, 3, width 128), each
   ``y <- y + (S y + b) * (x + A_II c)``; call the result ``w``;
3. ``w`` reshaped to ``bottom_width x bottom_width`` (release: 1 x 1; a dense map
   first when ``bottom_width > 1``), then per stage: BatchNorm (scale only) ->
   transposed conv -> injection ``h <- h * (A_I w + A_II c)`` broadcast over space
   (:class:`PolynomialInjection`).  **No activation function anywhere**;
4. ``pre_output_degrees`` convolutional polynomials ``h <- h_0 * Conv3x3(h)``
   (release: two of degree 3), a 3x3 (transposed) conv to ``channels``, then ``tanh``
   (the release's ``use_out_act: True``): images in [-1, 1].

The noise fed to the injections is ``w`` (the FC polynomials' output), as in
the release, not the raw ``z``.  With ``normalization=None`` and
``output_activation=None`` the output is a polynomial in ``z`` of degree
``prod(fc_degrees) * (len(stage_channels) + 1) * prod(pre_output_degrees)``
(see :func:`polynomial_degree`); in inference mode BatchNorm is affine, so the
pre-tanh output of the released model is still a polynomial (of degree 567).

:func:`build_cope_discriminator` is the SNGAN ResNet projection discriminator
(pfnet-research/sngan_projection ``dis_models/snresnet_32.py``; release: ``ch=256``).
"""

from __future__ import annotations

import inspect
import math

import keras
import numpy as np

from hadamard_zoo.layers.cope import ConvPolynomial, CoPEPolynomial, PolynomialInjection, ProjectionDiscriminatorHead


def _glorot(scale):
    """Chainer ``GlorotUniform(scale)``: limit ``scale * sqrt(6 / (fan_in + fan_out))``."""
    return keras.initializers.VarianceScaling(scale=float(scale) ** 2, mode="fan_avg", distribution="uniform")


def _lecun_normal():
    """Chainer's default ``LeCunNormal`` (not truncated)."""
    return keras.initializers.VarianceScaling(scale=1.0, mode="fan_in", distribution="untruncated_normal")


def _as_list(name, value, n=None):
    values = [value] * n if isinstance(value, int) and n is not None else list(value)
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must hold positive integers, got {value!r}.")
    if n is not None and len(values) != n:
        raise ValueError(f"{name} must have {n} entries (one per stage), got {value!r}.")
    return values


def polynomial_degree(fc_degrees=(1, 3, 3), num_stages=6, pre_output_degrees=(3, 3)):
    """Degree in the noise ``z`` of a CoPE generator without normalization and output activation.

    ``w`` has degree ``prod(fc_degrees)``; every stage multiplies by a degree-1 term
    in ``w`` (``+deg w``); every convolutional polynomial of degree N multiplies the
    degree by N.
    """
    d_w = math.prod(fc_degrees) if fc_degrees else 1
    return d_w * (num_stages + 1) * (math.prod(pre_output_degrees) if pre_output_degrees else 1)


def build_cope_generator(
    image_size=32,
    channels=3,
    num_classes=10,
    latent_dim=128,
    fc_degrees=(1, 3, 3),
    fc_units=128,
    label_degrees=(3, 3),
    label_units=100,
    bottom_width=1,
    stage_channels=(128, 256, 256, 256, 128, 64),
    stage_kernels=(4, 4, 4, 4, 4, 3),
    stage_strides=(2, 2, 2, 2, 2, 1),
    normalization="batch",
    pre_output_degrees=(3, 3),
    output_activation="tanh",
    init_scale=0.5,
    bn_epsilon=2e-5,
    bn_momentum=0.9,
    name="cope_generator",
):
    """Build a CoPE class-conditional generator (defaults: the released CIFAR-10 one).

    Args:
        image_size, channels: output images ``(image_size, image_size, channels)``;
            ``bottom_width * prod(stage_strides)`` must equal ``image_size``.
        num_classes: number of labels (one-hot encoded inside the model).
        latent_dim: size of the noise ``z`` (sampled from U(-1, 1), see :func:`sample_noise`).
        fc_degrees: degrees of the noise FC polynomials (empty: ``w = z``).
        fc_units: their width (int or one per polynomial); the last one is the
            number of channels of the first feature map.
        label_degrees, label_units: the single-variable polynomials on the one-hot
            label (empty: ``c`` is the one-hot vector itself).
        bottom_width: spatial size the FC output is reshaped to.
        stage_channels, stage_kernels, stage_strides: the upsampling stages
            (transposed convolutions, "same" padding), each followed by an injection.
        normalization: ``"batch"`` (BatchNorm with scale and no offset before every
            stage, as released) or None (the generator is then a polynomial in ``z``).
        pre_output_degrees: degrees of the convolutional polynomials before the output conv.
        output_activation: ``"tanh"`` (released) or None.
        init_scale: the release's ``glorot_scale`` (Chainer ``GlorotUniform(scale)``).
        bn_epsilon, bn_momentum: Chainer's BatchNormalization defaults.
    Returns:
        a ``keras.Model`` with inputs ``[noise (B, latent_dim) float, label (B,) int]``
        and output ``(B, image_size, image_size, channels)``.
    """
    for arg, value in (("image_size", image_size), ("channels", channels), ("num_classes", num_classes),
                       ("latent_dim", latent_dim), ("bottom_width", bottom_width), ("label_units", label_units)):
        _as_list(arg, [value])
    fc_degrees = _as_list("fc_degrees", fc_degrees)
    fc_units = _as_list("fc_units", fc_units, len(fc_degrees)) if fc_degrees else []
    label_degrees = _as_list("label_degrees", label_degrees)
    pre_output_degrees = _as_list("pre_output_degrees", pre_output_degrees)
    stage_channels = _as_list("stage_channels", stage_channels)
    n = len(stage_channels)
    if n < 1:
        raise ValueError("stage_channels must list at least one upsampling stage.")
    stage_kernels = _as_list("stage_kernels", stage_kernels, n)
    stage_strides = _as_list("stage_strides", stage_strides, n)
    if bottom_width * math.prod(stage_strides) != image_size:
        raise ValueError(
            f"bottom_width * prod(stage_strides) = {bottom_width} * {math.prod(stage_strides)} must equal "
            f"image_size={image_size}."
        )
    if normalization not in ("batch", None):
        raise ValueError(f"normalization must be 'batch' or None, got {normalization!r}.")
    if output_activation not in ("tanh", None):
        raise ValueError(f"output_activation must be 'tanh' or None, got {output_activation!r}.")

    w_init = _glorot(init_scale)
    noise = keras.Input((latent_dim,), name="noise")
    label = keras.Input((), dtype="int32", name="label")

    c = keras.layers.CategoryEncoding(num_classes, output_mode="one_hot", name="one_hot")(label)
    for i, degree in enumerate(label_degrees):
        c = CoPEPolynomial(label_units, degree, skip=True, kernel_initializer=w_init, name=f"label_poly_{i}")(c)

    w = noise
    for i, (degree, units) in enumerate(zip(fc_degrees, fc_units)):
        w = CoPEPolynomial(units, degree, skip=True, kernel_initializer=w_init, name=f"noise_poly_{i}")([w, c])

    width = w.shape[-1]
    h = w
    if bottom_width > 1:
        h = keras.layers.Dense(width * bottom_width**2, kernel_initializer=w_init, name="to_spatial")(h)
    h = keras.layers.Reshape((bottom_width, bottom_width, width), name="reshape")(h)

    for s, (filters, kernel, stride) in enumerate(zip(stage_channels, stage_kernels, stage_strides), start=1):
        if normalization == "batch":
            h = keras.layers.BatchNormalization(
                center=False, scale=True, epsilon=bn_epsilon, momentum=bn_momentum, name=f"bn_{s}"
            )(h)
        h = keras.layers.Conv2DTranspose(
            filters, kernel, strides=stride, padding="same", kernel_initializer=w_init, name=f"deconv_{s}"
        )(h)
        h = PolynomialInjection(kernel_initializer=[_lecun_normal(), w_init], name=f"inject_{s}")([h, w, c])

    for i, degree in enumerate(pre_output_degrees):
        h = ConvPolynomial(degree, 3, kernel_initializer=w_init, name=f"out_poly_{i}")(h)
    h = keras.layers.Conv2DTranspose(channels, 3, padding="same", kernel_initializer=w_init, name="to_image")(h)
    if output_activation == "tanh":
        h = keras.layers.Activation("tanh", name="tanh")(h)
    return keras.Model([noise, label], h, name=name)


def build_cope_discriminator(
    image_size=32,
    channels=3,
    num_classes=10,
    width=256,
    downsample=(True, True, False, False),
    spectral_norm=True,
    name="cope_discriminator",
):
    """SNGAN ResNet projection discriminator (the one the released CoPE generator trains against).

    ``block_1`` is SNGAN's "optimized" first block (conv-ReLU-conv-avgpool plus a
    pooled 1x1 shortcut); ``block_2..`` are pre-activation residual blocks
    (ReLU-conv-ReLU-conv[-avgpool], 1x1 shortcut when downsampling), then ReLU,
    sum pooling and :class:`ProjectionDiscriminatorHead`.  Every conv/dense map is
    wrapped in ``keras.layers.SpectralNormalization`` (``spectral_norm=True``).

    Args:
        image_size, channels: input images ``(image_size, image_size, channels)`` in [-1, 1].
        num_classes: number of labels.
        width: channels of every block (release: 256).
        downsample: one flag per block (the first must be True: the optimized block).
    Returns:
        a ``keras.Model`` with inputs ``[image (B, H, W, C), label (B,) int]`` and
        output ``(B, 1)`` (unbounded logits for the hinge loss).
    """
    for arg, value in (("image_size", image_size), ("channels", channels), ("num_classes", num_classes), ("width", width)):
        _as_list(arg, [value])
    downsample = [bool(d) for d in downsample]
    if not downsample or not downsample[0]:
        raise ValueError(f"downsample must be a non-empty list whose first entry is True (optimized block), got {downsample}.")
    if image_size % (2 ** sum(downsample)):
        raise ValueError(f"image_size={image_size} must be divisible by 2**{sum(downsample)} (the downsampling blocks).")

    def sn(layer):
        return keras.layers.SpectralNormalization(layer, name=f"sn_{layer.name}") if spectral_norm else layer

    def conv(filters, k, lname, init):
        return sn(keras.layers.Conv2D(filters, k, padding="same", kernel_initializer=init, name=lname))

    res_init, sc_init = _glorot(math.sqrt(2.0)), _glorot(1.0)
    image = keras.Input((image_size, image_size, channels), name="image")
    label = keras.Input((), dtype="int32", name="label")

    x = image
    for b, down in enumerate(downsample, start=1):
        p = f"block_{b}"
        if b == 1:
            r = conv(width, 3, f"{p}_conv1", res_init)(x)
            r = keras.layers.ReLU(name=f"{p}_relu1")(r)
            r = conv(width, 3, f"{p}_conv2", res_init)(r)
            r = keras.layers.AveragePooling2D(2, name=f"{p}_pool")(r)
            s = keras.layers.AveragePooling2D(2, name=f"{p}_sc_pool")(x)
            s = conv(width, 1, f"{p}_sc", sc_init)(s)
        else:
            r = keras.layers.ReLU(name=f"{p}_relu1")(x)
            r = conv(width, 3, f"{p}_conv1", res_init)(r)
            r = keras.layers.ReLU(name=f"{p}_relu2")(r)
            r = conv(width, 3, f"{p}_conv2", res_init)(r)
            s = x
            if down or x.shape[-1] != width:
                s = conv(width, 1, f"{p}_sc", sc_init)(s)
            if down:
                r = keras.layers.AveragePooling2D(2, name=f"{p}_pool")(r)
                s = keras.layers.AveragePooling2D(2, name=f"{p}_sc_pool")(s)
        x = keras.layers.Add(name=f"{p}_add")([r, s])
    x = keras.layers.ReLU(name="relu")(x)
    out = ProjectionDiscriminatorHead(num_classes, spectral_norm=spectral_norm, name="projection")([x, label])
    return keras.Model([image, label], out, name=name)


_ROLES = {"generator": build_cope_generator, "discriminator": build_cope_discriminator}


def _params(fn):
    return {n: p for n, p in inspect.signature(fn).parameters.items()}


def build_cope(role="generator", **kwargs):
    """Registry builder of the ``cope`` family: a generator or a discriminator.

    ``role="generator"`` -> :func:`build_cope_generator`, ``role="discriminator"`` ->
    :func:`build_cope_discriminator`; the other arguments go to that builder.
    """
    if role not in _ROLES:
        raise ValueError(f"role must be one of {sorted(_ROLES)}, got {role!r}.")
    fn = _ROLES[role]
    unknown = sorted(set(kwargs) - set(_params(fn)))
    if unknown:
        raise ValueError(
            f"build_cope(role={role!r}): unknown argument(s) {unknown}; {fn.__name__} accepts "
            f"{sorted(_params(fn))}."
        )
    return fn(**kwargs)


# The registry validates variant keys against the builder's signature: expose the
# union of both builders' arguments (each role still rejects the other's).
def _union_signature():
    params = {"role": inspect.Parameter("role", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="generator")}
    for fn in (build_cope_generator, build_cope_discriminator):
        for n, p in _params(fn).items():
            params.setdefault(n, p.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    return inspect.Signature(list(params.values()))


build_cope.__signature__ = _union_signature()


def sample_noise(num, latent_dim, seed=0):
    """The release's noise: ``U(-1, 1)^latent_dim``, float32, deterministic in ``seed`` (numpy)."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(int(num), int(latent_dim))).astype("float32")


def generate(generator, labels, seed=0, as_uint8=False, batch_size=256):
    """Sample images of the given classes, deterministically in ``seed``.

    Args:
        generator: a model from :func:`build_cope_generator` (inputs ``[noise, label]``).
        labels: sequence of class indices (one image per entry).
        seed: seed of the noise (numpy ``default_rng``: the same images on every backend
            up to float round-off).
        as_uint8: False returns float32 images in [-1, 1] (the tanh range); True
            maps them to ``uint8`` in [0, 255] (``round((x + 1) * 127.5)``).
        batch_size: images per forward pass.
    Returns:
        numpy array ``(len(labels), H, W, C)``.  BatchNorm runs in inference mode.
    """
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
        raise ValueError(f"labels must be non-negative integers, got {labels[:8]}...")
    labels = labels.astype("int32")
    latent_dim = generator.inputs[0].shape[-1]
    z = sample_noise(len(labels), latent_dim, seed)
    outs = []
    for i in range(0, len(labels), batch_size):
        outs.append(keras.ops.convert_to_numpy(generator([z[i : i + batch_size], labels[i : i + batch_size]], training=False)))
    images = np.concatenate(outs, axis=0) if outs else np.zeros((0,) + tuple(generator.outputs[0].shape[1:]), "float32")
    images = images.astype("float32")
    if as_uint8:
        return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype("uint8")
    return images
