"""Depthwise convolution as a sum of shifted Hadamard products (drop-in DepthwiseConv2D)."""

from __future__ import annotations

import keras

from hadamard_zoo import ops as hops
from hadamard_zoo.checks import check_padding, check_positive_int_pair


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class HadamardDepthwiseConv2D(keras.layers.Layer):
    """Drop-in for ``keras.layers.DepthwiseConv2D`` (depth multiplier 1, channels-last).

    ``y = sum_{i,j} shift_{i,j}(x) * kernel[i, j] + bias``, computed by
    :func:`hadamard_zoo.ops.depthwise_conv2d` (on JAX/CPU the shifted-product
    form, several times faster than XLA's grouped convolution).

    Same weights as ``DepthwiseConv2D``: ``kernel`` ``(kh, kw, C, 1)`` and
    ``bias`` ``(C,)``, in that order, so ``set_weights(dw.get_weights())`` works
    both ways.  Input ``(batch, H, W, C)``; output ``(batch, H', W', C)``.
    """

    def __init__(
        self,
        kernel_size,
        strides=1,
        padding="same",
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kernel_size = check_positive_int_pair("kernel_size", kernel_size)
        self.strides = check_positive_int_pair("strides", strides)
        self.padding = check_padding(padding)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = keras.initializers.get(depthwise_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.depthwise_regularizer = keras.regularizers.get(depthwise_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"HadamardDepthwiseConv2D expects inputs of shape (batch, height, width, channels), "
                f"got {tuple(input_shape)} (rank {len(input_shape)})."
            )
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"HadamardDepthwiseConv2D needs a known channel dimension, got {tuple(input_shape)}."
            )
        if self.padding == "valid":
            for size, k in zip(input_shape[1:3], self.kernel_size):
                if size is not None and size < k:
                    raise ValueError(
                        f"HadamardDepthwiseConv2D: with padding='valid' the input {tuple(input_shape)} "
                        f"must be at least as large as kernel_size {self.kernel_size}."
                    )
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (channels, 1),
            initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer,
        )
        self.bias = (
            self.add_weight(
                name="bias", shape=(channels,), initializer=self.bias_initializer, regularizer=self.bias_regularizer
            )
            if self.use_bias
            else None
        )

    def call(self, inputs):
        return hops.depthwise_conv2d(inputs, self.kernel, self.bias, strides=self.strides, padding=self.padding)

    def compute_output_shape(self, input_shape):
        out = [input_shape[0]]
        for size, k, s in zip(input_shape[1:3], self.kernel_size, self.strides):
            if size is None:
                out.append(None)
            elif self.padding == "same":
                out.append(-(-size // s))
            else:
                out.append(-(-(size - k + 1) // s))
        return tuple(out) + (input_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=self.use_bias,
            depthwise_initializer=keras.initializers.serialize(self.depthwise_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            depthwise_regularizer=keras.regularizers.serialize(self.depthwise_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
        )
        return config
