"""CoPE layers (Chrysos et al., "Conditional Generation Using Polynomial Expansions", NeurIPS'21).

CoPE expands a generator as a polynomial of two input variables, the noise
``z`` and the condition ``c`` (survey Eq. 4).  The released CIFAR-10 generator
is assembled from three Hadamard-product pieces, one layer each here:

* :class:`CoPEPolynomial`: the fully-connected polynomial
  ``y_1 = L x + A_II c``, ``y_n = y_{n-1} + (S_n y_{n-1} + b_n) * (x + A_II c)``
  (survey Eq. 4 with ``A_[n,I] = I`` and one ``A_II`` shared by every step, skip form;
  without ``c`` it is the single-variable polynomial the release applies to the label).
* :class:`PolynomialInjection`: ``h <- h * (A_I z + A_II c)``, the projections
  broadcast over the spatial axes of a feature map (one per upsampling stage).
* :class:`ConvPolynomial`: ``h <- h_0 * Conv(h)``, repeated (the "output polynomials").

and the class-projection head of the SNGAN discriminator used to train it,
:class:`ProjectionDiscriminatorHead` (``psi(phi) + <embed(y), phi>``).
"""

from __future__ import annotations

import keras
from keras import ops

from hadamard_zoo import ops as hops
from hadamard_zoo.checks import check_degree, check_positive_int


def _as_shape_list(input_shape):
    """Keras passes a list of shapes for list inputs, a tuple of ints for one tensor."""
    if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
        return [tuple(s) for s in input_shape]
    return [tuple(input_shape)]


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class PolynomialInjection(keras.layers.Layer):
    """CoPE's multivariate polynomial injection ``h <- h * (sum_i A_i z_i + b_i)``.

    Call on ``[h, z_1, ..., z_m]`` (``m >= 1``; CoPE: ``[h, z, c]``): ``h`` is a
    feature map ``(B, H, W, C)`` (or any ``(B, ..., C)``), each ``z_i`` a vector
    ``(B, d_i)`` (noise, one-hot or embedded label).  Every ``z_i`` gets its own
    dense map ``A_i: d_i -> C`` (with bias ``b_i`` when ``use_bias``, as the release's
    ``Linear`` layers); the summed projection is broadcast over the middle axes
    of ``h`` and multiplied in (:func:`hadamard_zoo.ops.cope_fusion`).
    With ``skip=True`` the output is ``h + h * (...)``.

    Args:
        use_bias: a bias per variable.
        skip: add ``h`` to the product.
        kernel_initializer: one initializer for every ``A_i`` or a list, one per variable.
        bias_initializer: initializer of the ``b_i``.

    Weights: ``kernel_{i}`` ``(d_i, C)`` and ``bias_{i}`` ``(C,)``.  Output: the shape of ``h``.
    """

    def __init__(self, use_bias=True, skip=False, kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.use_bias = bool(use_bias)
        self.skip = bool(skip)
        if isinstance(kernel_initializer, (list, tuple)):
            if not kernel_initializer:
                raise ValueError("kernel_initializer must be an initializer or a non-empty list of them, got [].")
            self.kernel_initializer = [keras.initializers.get(i) for i in kernel_initializer]
        else:
            self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        shapes = _as_shape_list(input_shape)
        if len(shapes) < 2:
            raise ValueError(
                "PolynomialInjection expects a list [h, z_1, ..., z_m] (m >= 1): the feature map "
                f"and the variables to inject; got input shape {input_shape}."
            )
        h_shape, z_shapes = shapes[0], shapes[1:]
        if len(h_shape) < 2 or h_shape[-1] is None:
            raise ValueError(
                f"PolynomialInjection: h must be (batch, ..., channels) with known channels, got {h_shape}."
            )
        for i, s in enumerate(z_shapes):
            if len(s) != 2 or s[-1] is None:
                raise ValueError(
                    f"PolynomialInjection: variable {i + 1} must be a vector (batch, d) with known d, got {s}."
                )
        inits = self.kernel_initializer
        if isinstance(inits, list):
            if len(inits) != len(z_shapes):
                raise ValueError(
                    f"PolynomialInjection: got {len(inits)} kernel initializers for {len(z_shapes)} variables."
                )
        else:
            inits = [inits] * len(z_shapes)
        channels = h_shape[-1]
        self.kernels, self.biases = [], []
        for i, (s, init) in enumerate(zip(z_shapes, inits)):
            self.kernels.append(self.add_weight(name=f"kernel_{i}", shape=(s[-1], channels), initializer=init))
            self.biases.append(
                self.add_weight(name=f"bias_{i}", shape=(channels,), initializer=self.bias_initializer)
                if self.use_bias
                else None
            )

    def call(self, inputs):
        h, *variables = inputs
        if len(variables) != len(self.kernels):
            raise ValueError(
                f"PolynomialInjection was built for {len(self.kernels)} variables, called with {len(variables)}."
            )
        projections = []
        for z, kernel, bias in zip(variables, self.kernels, self.biases):
            p = ops.matmul(z, kernel)
            projections.append(p if bias is None else ops.add(p, bias))
        return hops.cope_fusion(projections, h, skip=self.skip)

    def compute_output_shape(self, input_shape):
        return tuple(_as_shape_list(input_shape)[0])

    def get_config(self):
        inits = self.kernel_initializer
        config = super().get_config()
        config.update(
            use_bias=self.use_bias,
            skip=self.skip,
            kernel_initializer=[keras.initializers.serialize(i) for i in inits]
            if isinstance(inits, list)
            else keras.initializers.serialize(inits),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class CoPEPolynomial(keras.layers.Layer):
    """The fully-connected polynomial of the released CoPE generator, degree N.

    Call on ``x`` ``(B, d)`` or on ``[x, c]`` (``c`` ``(B, d_c)``, e.g. a one-hot label)::

        x <- R x + r                       (only when d != units: the release's "resize")
        p   = x + A_II c + a               (p = x without c)
        y_1 = L x + l + A_II c + a
        y_n = y_{n-1} + (S_n y_{n-1} + b_n) * p        n = 2..N   (skip=True, the release)
        y_n =           (S_n y_{n-1} + b_n) * p        n = 2..N   (skip=False)

    i.e. survey Eq. 4 with ``A_[n,I] = I`` and ``A_[n,II] = A_II`` shared over n
    (``derivfc=1`` in the release).  ``y_N`` is a polynomial of degree N in ``x``
    (and in ``c``).

    Weights: ``resize_kernel (d, units)`` + ``resize_bias`` (if ``d != units``),
    ``first_kernel (units, units)`` + ``first_bias``, ``cond_kernel (d_c, units)`` +
    ``cond_bias`` (with ``c``), ``s_kernels (N-1, units, units)``, ``s_biases (N-1, units)``
    (none for N = 1).  Biases exist when ``use_bias``.
    """

    def __init__(
        self,
        units,
        degree=3,
        skip=True,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        units = check_positive_int("units", units)
        degree = check_degree(degree)
        self.units = units
        self.degree = degree
        self.skip = bool(skip)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _dense(self, name, shape):
        kernel = self.add_weight(name=f"{name}_kernel", shape=shape, initializer=self.kernel_initializer)
        bias = (
            self.add_weight(name=f"{name}_bias", shape=shape[-1:], initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        return kernel, bias

    def build(self, input_shape):
        shapes = _as_shape_list(input_shape)
        if len(shapes) not in (1, 2):
            raise ValueError(
                f"CoPEPolynomial expects x or [x, c], got {len(shapes)} inputs (shapes {shapes})."
            )
        for name, s in zip(("x", "c"), shapes):
            if len(s) != 2 or s[-1] is None:
                raise ValueError(f"CoPEPolynomial: {name} must be (batch, features) with known features, got {s}.")
        k = self.units
        d = shapes[0][-1]
        self.has_condition = len(shapes) == 2
        if d != k:
            self.resize_kernel, self.resize_bias = self._dense("resize", (d, k))
        else:
            self.resize_kernel = self.resize_bias = None
        self.first_kernel, self.first_bias = self._dense("first", (k, k))
        if self.has_condition:
            self.cond_kernel, self.cond_bias = self._dense("cond", (shapes[1][-1], k))
        else:
            self.cond_kernel = self.cond_bias = None
        m = self.degree - 1
        self.s_kernels = self.s_biases = None
        if m:
            self.s_kernels = self.add_weight(name="s_kernels", shape=(m, k, k), initializer=self.kernel_initializer)
            if self.use_bias:
                self.s_biases = self.add_weight(name="s_biases", shape=(m, k), initializer=self.bias_initializer)

    @staticmethod
    def _affine(x, kernel, bias):
        y = ops.matmul(x, kernel)
        return y if bias is None else ops.add(y, bias)

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            x, *rest = inputs
        else:
            x, rest = inputs, []
        if bool(rest) != self.has_condition:
            raise ValueError(
                f"CoPEPolynomial was built {'with' if self.has_condition else 'without'} a condition c; "
                f"called with {1 + len(rest)} input(s)."
            )
        if self.resize_kernel is not None:
            x = self._affine(x, self.resize_kernel, self.resize_bias)
        y = self._affine(x, self.first_kernel, self.first_bias)
        projections = [x]
        if self.has_condition:
            c = self._affine(rest[0], self.cond_kernel, self.cond_bias)
            y = ops.add(y, c)
            projections.append(c)
        for n in range(self.degree - 1):
            bias = None if self.s_biases is None else self.s_biases[n]
            y = hops.cope_fusion(projections, y, self.s_kernels[n], bias, skip=self.skip)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(_as_shape_list(input_shape)[0][:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            degree=self.degree,
            skip=self.skip,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class ConvPolynomial(keras.layers.Layer):
    """Convolutional single-variable polynomial of degree N: ``h <- h_0 * Conv_n(h)``, n = 2..N.

    The released CoPE generator applies two of these (degree 3 each) before its
    output convolution.  Input and output ``(B, H, W, C)``; each ``Conv_n`` is a
    ``kernel_size`` x ``kernel_size`` convolution ``C -> C`` ("same" padding).
    """

    def __init__(self, degree=3, kernel_size=3, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        degree = check_degree(degree)
        kernel_size = check_positive_int("kernel_size", kernel_size)
        self.degree = degree
        self.kernel_size = kernel_size
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.convs = []

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"ConvPolynomial expects feature maps (batch, height, width, channels) with known channels, got {tuple(input_shape)}."
            )
        channels = input_shape[-1]
        self.convs = []
        for n in range(self.degree - 1):
            conv = keras.layers.Conv2D(
                channels,
                self.kernel_size,
                padding="same",
                use_bias=self.use_bias,
                kernel_initializer=self.kernel_initializer,
                bias_initializer=self.bias_initializer,
                dtype=self.dtype_policy,
                name=f"conv_{n + 2}",
            )
            conv.build(tuple(input_shape))
            self.convs.append(conv)

    def call(self, inputs):
        h = inputs
        for conv in self.convs:
            h = hops.cope_fusion([inputs], conv(h))
        return h

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            degree=self.degree,
            kernel_size=self.kernel_size,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class ProjectionDiscriminatorHead(keras.layers.Layer):
    """Class-projection head of the SNGAN projection discriminator (Miyato & Koyama, 2018).

    Call on ``[phi, labels]``: ``phi`` ``(B, H, W, C)`` (sum-pooled over H, W, as
    SNGAN's "global pooling" ``F.sum``) or ``(B, C)``; ``labels`` ``(B,)`` integers.
    Returns ``psi(phi) + <embed(labels), phi>``, shape ``(B, 1)``, where ``psi`` is a
    linear map ``C -> 1`` without bias and ``embed`` a class embedding ``(num_classes, C)``
    (a bias-free dense map on the one-hot label, the same matrix).  With
    ``spectral_norm`` both are wrapped in ``keras.layers.SpectralNormalization``.
    """

    def __init__(self, num_classes, spectral_norm=True, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        num_classes = check_positive_int("num_classes", num_classes)
        self.num_classes = num_classes
        self.spectral_norm = bool(spectral_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _wrap(self, layer):
        if self.spectral_norm:
            return keras.layers.SpectralNormalization(layer, dtype=self.dtype_policy, name=f"sn_{layer.name}")
        return layer

    def build(self, input_shape):
        shapes = _as_shape_list(input_shape)
        if len(shapes) != 2:
            raise ValueError(f"ProjectionDiscriminatorHead expects [features, labels], got input shape {input_shape}.")
        phi, labels = shapes
        if len(phi) not in (2, 4) or phi[-1] is None:
            raise ValueError(
                f"ProjectionDiscriminatorHead: features must be (B, C) or (B, H, W, C) with known C, got {phi}."
            )
        if len(labels) not in (1, 2) or (len(labels) == 2 and labels[-1] not in (1, None)):
            raise ValueError(f"ProjectionDiscriminatorHead: labels must be integers of shape (B,), got {labels}.")
        channels = phi[-1]
        init = self.kernel_initializer
        self.psi = self._wrap(
            keras.layers.Dense(1, use_bias=False, kernel_initializer=init, dtype=self.dtype_policy, name="psi")
        )
        self.embed = self._wrap(
            keras.layers.Dense(channels, use_bias=False, kernel_initializer=init, dtype=self.dtype_policy, name="embed")
        )
        self.psi.build((None, channels))
        self.embed.build((None, self.num_classes))

    def call(self, inputs, training=None):
        phi, labels = inputs
        if len(phi.shape) == 4:
            phi = ops.sum(phi, axis=(1, 2))
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        onehot = ops.one_hot(labels, self.num_classes, dtype=phi.dtype)
        out = self.psi(phi, training=training)
        proj = ops.sum(ops.multiply(self.embed(onehot, training=training), phi), axis=-1, keepdims=True)
        return ops.add(out, proj)

    def compute_output_shape(self, input_shape):
        return (_as_shape_list(input_shape)[0][0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            spectral_norm=self.spectral_norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
