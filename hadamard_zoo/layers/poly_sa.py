"""The Poly-SA layer (survey Eq. 9; appendix S.2.2 ``PolySA``)."""

from __future__ import annotations

import keras

from hadamard_zoo import ops as hops
from hadamard_zoo.checks import check_positive_int


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class PolySA(keras.layers.Layer):
    """Poly-SA: ``alpha * Z + beta * {Psi((Z W1) * (Z W2)) * Z} W3`` (survey Eq. 9).

    ``Psi`` is the mean over the N tokens replicated back over them, so the cost
    is linear in N.  Input ``(batch, N, channels)``; output of the same shape.

    Weights: ``w1``, ``w2``, ``w3`` of shape ``(C, C)`` and the scalars ``alpha``,
    ``beta`` (shape ``(1,)``), as in the appendix module.  The appendix leaves
    them uninitialized (``torch.Tensor``); here ``W`` default to Glorot-uniform,
    ``alpha`` to 1 and ``beta`` to 1, so the layer starts as the identity plus the
    full polynomial term (pass ``beta_initializer="zeros"`` to start as the
    identity, ReZero-style: then only ``beta`` gets a gradient on the first step).

    Args:
        channels: C, the number of input channels (checked against the input);
            None infers it from the input.
    """

    def __init__(
        self,
        channels=None,
        kernel_initializer="glorot_uniform",
        alpha_initializer="ones",
        beta_initializer="ones",
        **kwargs,
    ):
        super().__init__(**kwargs)
        channels = check_positive_int("channels", channels, owner="PolySA", allow_none=True)
        self.channels = channels
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.alpha_initializer = keras.initializers.get(alpha_initializer)
        self.beta_initializer = keras.initializers.get(beta_initializer)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"PolySA expects inputs of shape (batch, tokens, channels), got {tuple(input_shape)} "
                f"(rank {len(input_shape)})."
            )
        c = input_shape[-1]
        if c is None:
            raise ValueError(f"PolySA needs a known channel dimension, got {tuple(input_shape)}.")
        if self.channels is not None and c != self.channels:
            raise ValueError(f"PolySA was created with channels={self.channels} but the input has {c} channels.")
        self.channels = c
        self.w1 = self.add_weight(name="w1", shape=(c, c), initializer=self.kernel_initializer)
        self.w2 = self.add_weight(name="w2", shape=(c, c), initializer=self.kernel_initializer)
        self.w3 = self.add_weight(name="w3", shape=(c, c), initializer=self.kernel_initializer)
        self.alpha = self.add_weight(name="alpha", shape=(1,), initializer=self.alpha_initializer)
        self.beta = self.add_weight(name="beta", shape=(1,), initializer=self.beta_initializer)

    def call(self, inputs):
        return hops.poly_sa(inputs, self.w1, self.w2, self.w3, self.alpha, self.beta)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "alpha_initializer": keras.initializers.serialize(self.alpha_initializer),
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
        }
