"""Stateless gated-product layers: the star operation and GLU."""

from __future__ import annotations

import keras

from hadamard_zoo import ops as hops


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class Star(keras.layers.Layer):
    """StarNet's star operation on two inputs: ``act(a) * b`` (ReLU6 by default).

    Call on ``[a, b]`` of equal shape; returns that shape.
    """

    def __init__(self, activation="relu6", **kwargs):
        super().__init__(**kwargs)
        self.activation = hops.canonical_activation(activation)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError("Star expects a list of two tensors [a, b] of the same shape.")
        return hops.star(inputs[0], inputs[1], activation=self.activation)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class GLU(keras.layers.Layer):
    """Gated linear unit ``a * sigma(b)`` with the halves split along ``axis``.

    Input ``(..., 2C)``, output ``(..., C)``.  ``activation``: ``sigmoid`` (GLU),
    ``swish`` (SwiGLU), ``gelu`` (GeGLU), ``identity`` (bilinear).
    """

    def __init__(self, activation="sigmoid", axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.activation = hops.canonical_activation(activation)
        self.axis = axis

    def call(self, inputs):
        return hops.glu(inputs, activation=self.activation, axis=self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if shape[self.axis] is not None:
            shape[self.axis] //= 2
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation, "axis": self.axis}
