"""Pi-Net polynomial layers: CCP (survey Eq. 2) and NCP (survey Eq. NCP)."""

from __future__ import annotations

import keras
from keras import ops

from hadamard_zoo import ops as hops
from hadamard_zoo.checks import check_degree, check_positive_int


_NORMALIZATIONS = {None, "batch", "layer"}


def _check_normalization(normalization):
    if normalization not in _NORMALIZATIONS:
        raise ValueError(
            f"Unknown normalization {normalization!r}; expected one of "
            f"{sorted(n for n in _NORMALIZATIONS if n)} or None."
        )


class _PolynomialBase(keras.layers.Layer):
    """Shared configuration of the CCP and NCP layers.

    ``activation`` and ``normalization`` (``"batch"`` / ``"layer"`` / None) are
    applied to every intermediate term x_n (n < N) when given; with both None
    the layer is exactly the polynomial of the survey and runs the fused
    whole-recursion op.
    """

    def __init__(
        self,
        units,
        degree=2,
        use_bias=True,
        activation=None,
        normalization=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        units = check_positive_int("units", units)
        degree = check_degree(degree)
        _check_normalization(normalization)
        self.units = units
        self.degree = degree
        self.use_bias = use_bias
        self.activation_name = (
            None if activation is None else hops.canonical_activation(activation)
        )
        self.normalization = normalization
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self._norms = []

    def _build_norms(self):
        self._norms = []
        for n in range(self.degree - 1):
            if self.normalization == "batch":
                norm = keras.layers.BatchNormalization(name=f"norm_{n + 1}", dtype=self.dtype_policy)
            elif self.normalization == "layer":
                norm = keras.layers.LayerNormalization(name=f"norm_{n + 1}", dtype=self.dtype_policy)
            else:
                continue
            norm.build((None, self.units))
            self._norms.append(norm)

    def _between_terms(self, x, n, training):
        if self.normalization is not None:
            x = self._norms[n](x, training=training)
        if self.activation_name is not None:
            x = hops.get_activation(self.activation_name)(x)
        return x

    @property
    def plain_polynomial(self) -> bool:
        return self.activation_name is None and self.normalization is None

    def _check_input(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, ..., features), "
                f"got {tuple(input_shape)}."
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} needs a known last (feature) dimension, got {tuple(input_shape)}."
            )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            degree=self.degree,
            use_bias=self.use_bias,
            activation=self.activation_name,
            normalization=self.normalization,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class CCPPolynomial(_PolynomialBase):
    """Coupled CP polynomial of degree N (survey Eq. 2; Pi-Nets' CCP model).

    ``x_1 = U_1 z``, ``x_n = (U_n z) * x_{n-1} + x_{n-1}``; returns ``x_N``.

    Input ``(batch, ..., d)``; output ``(batch, ..., units)``.  Weights:
    ``kernels (N, d, units)`` and ``biases (N, units)``.
    """

    def build(self, input_shape):
        self._check_input(input_shape)
        d = input_shape[-1]
        self.kernels = self.add_weight(
            name="kernels", shape=(self.degree, d, self.units), initializer=self.kernel_initializer
        )
        self.biases = (
            self.add_weight(name="biases", shape=(self.degree, self.units), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        self._build_norms()

    def call(self, inputs, training=None):
        if self.plain_polynomial:
            return hops.ccp(inputs, self.kernels, self.biases)
        x = None
        for n in range(self.degree):
            u = ops.matmul(inputs, self.kernels[n])
            if self.biases is not None:
                u = ops.add(u, self.biases[n])
            x = u if x is None else hops.ccp_step(u, x)
            if n < self.degree - 1:
                x = self._between_terms(x, n, training)
        return x


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class NCPPolynomial(_PolynomialBase):
    """Nested coupled CP polynomial of degree N (survey Eq. NCP; Pi-Nets' NCP model).

    ``x_1 = A_1 z``, ``x_n = (A_n z) * (S_n x_{n-1} + b_n)`` [``+ V_n x_{n-1}`` with
    ``skip=True``, NCP-Skip]; returns ``x_N``.

    Input ``(batch, ..., d)``; output ``(batch, ..., units)``.  Weights:
    ``a_kernels (N, d, units)``, ``a_biases (N, units)``, ``s_kernels (N-1, units, units)``,
    ``s_biases (N-1, units)`` (always on, as in the survey's appendix S.2.2), and
    ``skip_kernels (N-1, units, units)`` when ``skip``.
    """

    def __init__(self, units, degree=2, skip=False, **kwargs):
        super().__init__(units, degree=degree, **kwargs)
        self.skip = bool(skip)

    def build(self, input_shape):
        self._check_input(input_shape)
        d = input_shape[-1]
        k = self.units
        self.a_kernels = self.add_weight(
            name="a_kernels", shape=(self.degree, d, k), initializer=self.kernel_initializer
        )
        self.a_biases = (
            self.add_weight(name="a_biases", shape=(self.degree, k), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        m = max(self.degree - 1, 0)
        self.s_kernels = self.add_weight(name="s_kernels", shape=(m, k, k), initializer=self.kernel_initializer)
        self.s_biases = self.add_weight(name="s_biases", shape=(m, k), initializer=self.bias_initializer)
        self.skip_kernels = (
            self.add_weight(name="skip_kernels", shape=(m, k, k), initializer=self.kernel_initializer)
            if self.skip
            else None
        )
        self._build_norms()

    def call(self, inputs, training=None):
        if self.plain_polynomial:
            return hops.ncp(inputs, self.a_kernels, self.a_biases, self.s_kernels, self.s_biases, self.skip_kernels)
        x = None
        for n in range(self.degree):
            a = ops.matmul(inputs, self.a_kernels[n])
            if self.a_biases is not None:
                a = ops.add(a, self.a_biases[n])
            if x is None:
                x = a
            else:
                new = hops.ncp_step(a, x, self.s_kernels[n - 1], self.s_biases[n - 1])
                if self.skip_kernels is not None:
                    new = ops.add(new, ops.matmul(x, self.skip_kernels[n - 1]))
                x = new
            if n < self.degree - 1:
                x = self._between_terms(x, n, training)
        return x

    def get_config(self):
        config = super().get_config()
        config["skip"] = self.skip
        return config
