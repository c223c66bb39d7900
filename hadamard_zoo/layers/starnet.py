"""StarNet's building blocks ("Rewrite the Stars", Ma et al., CVPR 2024).

* :class:`StarConvBN`: a convolution (dense or depthwise) that keeps its bias,
  optionally followed by BatchNorm, as the reference's ``ConvBN``; padding is
  PyTorch's symmetric ``(k - 1) // 2`` so stride-2 convolutions sample the
  same pixels as the reference (Keras' ``"same"`` pads only on the bottom/right
  for even inputs and stride 2).
* :class:`StarBlock`: the StarNet block, whose core is the star operation
  ``ReLU6(f1(u)) * f2(u)`` (a gated Hadamard product, survey Sec. 4).

BatchNorm defaults are PyTorch's (``epsilon=1e-5``; ``momentum=0.9`` in Keras'
convention = PyTorch's 0.1), so converted checkpoints compute the same function.
"""

from __future__ import annotations

import keras
from keras import ops

from hadamard_zoo import ops as hops
from hadamard_zoo.checks import check_positive_int, check_rate
from hadamard_zoo.layers.common import DropPath
from hadamard_zoo.layers.depthwise import HadamardDepthwiseConv2D


def _default_kernel_init():
    # timm's StarNet initialisation: truncated normal, std 0.02, for convs and the head.
    return keras.initializers.TruncatedNormal(stddev=0.02)


def _conv_out(size, kernel, stride, pad):
    return None if size is None else (size + 2 * pad - kernel) // stride + 1


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class StarConvBN(keras.layers.Layer):
    """Convolution with bias (+ BatchNorm): StarNet's ``ConvBN``.

    Input ``(batch, H, W, C)``; output ``(batch, H', W', filters)`` with
    ``H' = (H + 2 p - k) // strides + 1`` and ``p = (k - 1) // 2`` on both sides
    (PyTorch's ``padding=(k-1)//2``).

    Args:
        filters: output channels (for ``depthwise=True`` it must equal the input channels).
        kernel_size: odd positive integer.
        strides: positive integer.
        depthwise: a depthwise convolution (``HadamardDepthwiseConv2D``) instead of a dense one.
        use_bn: follow the convolution by BatchNorm (the convolution keeps its bias regardless,
            as in the reference, so that checkpoints load parameter for parameter).
        epsilon, momentum: BatchNorm's (PyTorch defaults in Keras' convention).
        kernel_initializer, bias_initializer: of the convolution.

    Weights: ``conv`` (``kernel`` ``(k, k, C, filters)``, or ``(k, k, C, 1)`` when depthwise,
    and ``bias``); ``bn`` (``gamma``, ``beta``, ``moving_mean``, ``moving_variance``).
    """

    def __init__(
        self,
        filters,
        kernel_size=1,
        strides=1,
        depthwise=False,
        use_bn=True,
        epsilon=1e-5,
        momentum=0.9,
        kernel_initializer=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        filters = check_positive_int("filters", filters)
        kernel_size = check_positive_int("kernel_size", kernel_size)
        strides = check_positive_int("strides", strides)
        if kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd (symmetric PyTorch-style padding (k - 1) // 2), got {kernel_size}."
            )
        if not 0.0 < float(epsilon):
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"momentum must be in [0, 1) (Keras convention), got {momentum!r}.")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.depthwise = bool(depthwise)
        self.use_bn = bool(use_bn)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or _default_kernel_init())
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.padding = (kernel_size - 1) // 2
        # Stride 1 with an odd kernel: "same" is already symmetric. Otherwise pad explicitly.
        self._explicit_pad = self.padding if strides > 1 else 0
        conv_padding = "same" if strides == 1 else "valid"
        if self.depthwise:
            self.conv = HadamardDepthwiseConv2D(
                kernel_size,
                strides=strides,
                padding=conv_padding,
                use_bias=True,
                depthwise_initializer=self.kernel_initializer,
                bias_initializer=self.bias_initializer,
                name="conv",
                dtype=self.dtype_policy,
            )
        else:
            self.conv = keras.layers.Conv2D(
                filters,
                kernel_size,
                strides=strides,
                padding=conv_padding,
                use_bias=True,
                kernel_initializer=self.kernel_initializer,
                bias_initializer=self.bias_initializer,
                name="conv",
                dtype=self.dtype_policy,
            )
        self.bn = (
            keras.layers.BatchNormalization(
                epsilon=self.epsilon, momentum=self.momentum, name="bn", dtype=self.dtype_policy
            )
            if self.use_bn
            else None
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"StarConvBN expects (batch, height, width, channels), got {tuple(input_shape)}.")
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"StarConvBN needs a known channel dimension, got {tuple(input_shape)}.")
        if self.depthwise and channels != self.filters:
            raise ValueError(
                f"A depthwise StarConvBN keeps the channels: filters={self.filters} but the input has "
                f"{channels} channels (shape {tuple(input_shape)})."
            )
        p = self._explicit_pad
        padded = (input_shape[0], None if input_shape[1] is None else input_shape[1] + 2 * p,
                  None if input_shape[2] is None else input_shape[2] + 2 * p, channels)
        self.conv.build(padded)
        if self.bn is not None:
            self.bn.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = inputs
        if self._explicit_pad:
            p = self._explicit_pad
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        k, s, p = self.kernel_size, self.strides, self.padding
        return (input_shape[0], _conv_out(input_shape[1], k, s, p), _conv_out(input_shape[2], k, s, p), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            depthwise=self.depthwise,
            use_bn=self.use_bn,
            epsilon=self.epsilon,
            momentum=self.momentum,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class StarBlock(keras.layers.Layer):
    """The StarNet block (paper Sec. 4.1; survey Sec. 4, gating).

    ``u = BN(DW7x7(x))``; ``v = act(f1(u)) * f2(u)`` (the star operation,
    :func:`hadamard_zoo.ops.star`; f1, f2 are 1x1 convs ``dim -> mlp_ratio*dim``
    with bias, no BN); ``w = DW7x7'(BN(g(v)))`` (g: 1x1 conv ``mlp_ratio*dim -> dim``
    with bias and BN; the second depthwise conv has a bias and no BN);
    ``y = x + DropPath(w)``.

    Input and output ``(batch, H, W, dim)``.

    Args:
        dim: channels of the input and output.
        mlp_ratio: expansion of the star branch (3 or 4 in the published variants).
        drop_path: stochastic-depth rate (whole residual branch dropped per sample while training).
        activation: the star's activation on the f1 branch (``"relu6"`` as published).
        kernel_size: of the two depthwise convolutions (7 as published).
        epsilon, momentum, kernel_initializer: as in :class:`StarConvBN`.

    Sub-layers (names match the reference's modules): ``dwconv``, ``g`` and
    ``dwconv2`` (:class:`StarConvBN`; the depthwise ones run
    ``HadamardDepthwiseConv2D``, ``dwconv2`` without BN), ``f1``, ``f2``
    (``Conv2D`` 1x1), ``drop_path`` (:class:`~hadamard_zoo.layers.DropPath`).
    """

    def __init__(
        self,
        dim,
        mlp_ratio=3,
        drop_path=0.0,
        activation="relu6",
        kernel_size=7,
        epsilon=1e-5,
        momentum=0.9,
        kernel_initializer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        dim = check_positive_int("dim", dim)
        mlp_ratio = check_positive_int("mlp_ratio", mlp_ratio)
        drop_path = check_rate("drop_path", drop_path)
        self.dim = dim
        self.mlp_ratio = mlp_ratio
        self.drop_path = float(drop_path)
        self.activation = hops.canonical_activation(activation)
        self.kernel_size = kernel_size
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or _default_kernel_init())
        self.seed = seed
        hidden = mlp_ratio * dim
        common = dict(epsilon=epsilon, momentum=momentum, dtype=self.dtype_policy)
        init = keras.initializers.serialize(self.kernel_initializer)
        self.dwconv = StarConvBN(
            dim, kernel_size, depthwise=True, use_bn=True, kernel_initializer=init, name="dwconv", **common
        )
        self.f1 = keras.layers.Conv2D(
            hidden, 1, kernel_initializer=keras.initializers.get(init), name="f1", dtype=self.dtype_policy
        )
        self.f2 = keras.layers.Conv2D(
            hidden, 1, kernel_initializer=keras.initializers.get(init), name="f2", dtype=self.dtype_policy
        )
        self.g = StarConvBN(dim, 1, use_bn=True, kernel_initializer=init, name="g", **common)
        self.dwconv2 = StarConvBN(
            dim, kernel_size, depthwise=True, use_bn=False, kernel_initializer=init, name="dwconv2", **common
        )
        self.drop = DropPath(self.drop_path, seed=seed, name="drop_path", dtype=self.dtype_policy)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"StarBlock expects (batch, height, width, channels), got {tuple(input_shape)}.")
        if input_shape[-1] != self.dim:
            raise ValueError(
                f"StarBlock(dim={self.dim}) got an input with {input_shape[-1]} channels "
                f"(shape {tuple(input_shape)}); the residual needs dim == channels."
            )
        hidden_shape = tuple(input_shape[:-1]) + (self.mlp_ratio * self.dim,)
        self.dwconv.build(input_shape)
        self.f1.build(input_shape)
        self.f2.build(input_shape)
        self.g.build(hidden_shape)
        self.dwconv2.build(input_shape)
        self.drop.build(input_shape)

    def call(self, inputs, training=None):
        u = self.dwconv(inputs, training=training)
        v = hops.star(self.f1(u), self.f2(u), activation=self.activation)
        w = self.dwconv2(self.g(v, training=training))
        return ops.add(inputs, self.drop(w, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim,
            mlp_ratio=self.mlp_ratio,
            drop_path=self.drop_path,
            activation=self.activation,
            kernel_size=self.kernel_size,
            epsilon=self.epsilon,
            momentum=self.momentum,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            seed=self.seed,
        )
        return config
