"""Pi-Net product-polynomial ResNet blocks (Chrysos et al., Pi-nets, CVPR'20 / T-PAMI'21).

* :class:`ProductPolynomialBlock`: the second-degree ResNet basic block of the
  ImageNet PiNet-18 (polynomial_nets ``classification-NO-activation-function``,
  mmcls backbones ``pinet_norelu.py`` / ``pinet_1x1_relu.py``)::

      F(x) = BN2(Conv3x3(act(BN1(Conv3x3_s(x)))))
      s(x) = x                      (same shape)
           = BN(Conv1x1_s(x))       (stride != 1 or width changes)
      y    = F(x) + s(x) + BN3([Conv1x1](F(x) * s(x)))
      out  = ReLU(y) if use_relu else y

  Stacking N blocks gives a product of polynomials (degree 2^N without the
  activations; survey Sec. 3, "product of polynomials").
* :class:`SymmetricMaxPooling2D`: max pooling with PyTorch's symmetric
  ``padding`` (padded with -inf), so the ResNet stem's 3x3/2 pool samples the
  same windows as ``nn.MaxPool2d(3, 2, padding=1)`` (Keras' ``"same"`` pads only
  bottom/right for even inputs).

Convolutions are bias-free with PyTorch's symmetric padding (explicit
``ZeroPadding2D`` for strided 3x3 convolutions); BatchNorm uses PyTorch's
defaults (``epsilon=1e-5``, ``momentum=0.9`` in Keras' convention = 0.1 in
PyTorch's) so converted checkpoints compute the same function.  Initialisation
is mmcls': Kaiming-normal (fan_out, ReLU gain) convolutions, BN gamma 1 and,
with ``zero_init_last_bn``, BN2's gamma 0 (each block starts as its shortcut).
"""

from __future__ import annotations

import keras
from keras import ops

from hadamard_zoo import ops as hops
from hadamard_zoo.checks import check_positive_int
from hadamard_zoo.layers.common import conv_initializer


def _strided_size(size, stride):
    """Output size of a 3x3 conv with padding 1 (or a 1x1 conv, no padding) and ``stride``."""
    return None if size is None else (size - 1) // stride + 1


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class SymmetricMaxPooling2D(keras.layers.Layer):
    """Max pooling with symmetric padding by -inf (PyTorch's ``nn.MaxPool2d(k, s, padding=p)``).

    Input ``(batch, H, W, C)``; output ``(batch, (H + 2p - k) // s + 1, (W + 2p - k) // s + 1, C)``.
    """

    def __init__(self, pool_size=3, strides=2, padding=1, **kwargs):
        super().__init__(**kwargs)
        pool_size = check_positive_int("pool_size", pool_size)
        strides = check_positive_int("strides", strides)
        if not isinstance(padding, int) or isinstance(padding, bool) or not 0 <= padding <= pool_size // 2:
            raise ValueError(f"padding must be an integer in [0, pool_size // 2], got {padding!r}.")
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"SymmetricMaxPooling2D expects (batch, height, width, channels), got {tuple(input_shape)}."
            )

    def call(self, inputs):
        x = inputs
        if self.padding:
            p = self.padding
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=float("-inf"))
        return ops.max_pool(x, self.pool_size, self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        def out(n):
            return None if n is None else (n + 2 * self.padding - self.pool_size) // self.strides + 1

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, strides=self.strides, padding=self.padding)
        return config


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class ProductPolynomialBlock(keras.layers.Layer):
    """Pi-Net's second-degree ResNet basic block ``y = F + s + BN3(F * s)`` (see the module docstring).

    Input ``(batch, H, W, C)``; output ``(batch, ceil(H / strides), ceil(W / strides), filters)``.

    Args:
        filters: output channels.
        strides: stride of the first 3x3 convolution (and of the 1x1 projection shortcut).
        use_relu: keep ResNet's ReLUs (after BN1 and after the sum); False is the
            "no-ReLU" PiNet, a pure polynomial of its input.
        product_conv1x1: a bias-free 1x1 convolution ``filters -> filters`` on the
            product before BN3 (the "1x1" PiNet variant).
        zero_init_last_bn: initialise BN2's gamma to 0 (mmcls' ``zero_init_residual``).
        bn_momentum, bn_epsilon: BatchNorm's (PyTorch defaults).
        kernel_initializer: of every convolution (default: Kaiming normal, fan_out).

    Sub-layers (named as mmcls' modules): ``conv1``, ``bn1``, ``conv2``, ``bn2``,
    ``downsample_conv`` and ``downsample_bn`` (only with a projection shortcut),
    ``conv3`` (only with ``product_conv1x1``), ``bn3``.  The Hadamard product is
    :func:`hadamard_zoo.ops.glu` with the identity gate (the bilinear product ``F * s``).
    """

    def __init__(
        self,
        filters,
        strides=1,
        use_relu=True,
        product_conv1x1=False,
        zero_init_last_bn=True,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        filters = check_positive_int("filters", filters)
        strides = check_positive_int("strides", strides)
        if not 0.0 <= float(bn_momentum) < 1.0:
            raise ValueError(f"bn_momentum must be in [0, 1) (Keras convention), got {bn_momentum!r}.")
        if not float(bn_epsilon) > 0.0:
            raise ValueError(f"bn_epsilon must be > 0, got {bn_epsilon!r}.")
        self.filters = filters
        self.strides = strides
        self.use_relu = bool(use_relu)
        self.product_conv1x1 = bool(product_conv1x1)
        self.zero_init_last_bn = bool(zero_init_last_bn)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or conv_initializer())

        self.pad1 = keras.layers.ZeroPadding2D(1, name="pad1", dtype=self.dtype_policy) if strides > 1 else None
        self.conv1 = self._conv(filters, 3, strides, "valid" if strides > 1 else "same", "conv1")
        self.bn1 = self._bn("bn1")
        self.conv2 = self._conv(filters, 3, 1, "same", "conv2")
        self.bn2 = self._bn("bn2", gamma_zero=self.zero_init_last_bn)
        self.conv3 = self._conv(filters, 1, 1, "valid", "conv3") if self.product_conv1x1 else None
        self.bn3 = self._bn("bn3")
        self.downsample_conv = None
        self.downsample_bn = None

    def _conv(self, filters, kernel, strides, padding, name):
        return keras.layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding=padding,
            use_bias=False,
            kernel_initializer=keras.initializers.get(keras.initializers.serialize(self.kernel_initializer)),
            name=name,
            dtype=self.dtype_policy,
        )

    def _bn(self, name, gamma_zero=False):
        return keras.layers.BatchNormalization(
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            gamma_initializer="zeros" if gamma_zero else "ones",
            name=name,
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"ProductPolynomialBlock expects (batch, height, width, channels), got {tuple(input_shape)}."
            )
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"ProductPolynomialBlock needs a known channel dimension, got {tuple(input_shape)}.")
        out_shape = self.compute_output_shape(input_shape)
        x_shape = tuple(input_shape)
        if self.pad1 is not None:
            self.pad1.build(x_shape)
            x_shape = self.pad1.compute_output_shape(x_shape)
        self.conv1.build(x_shape)
        self.bn1.build(out_shape)
        self.conv2.build(out_shape)
        self.bn2.build(out_shape)
        if self.strides != 1 or channels != self.filters:
            self.downsample_conv = self._conv(self.filters, 1, self.strides, "valid", "downsample_conv")
            self.downsample_bn = self._bn("downsample_bn")
            self.downsample_conv.build(tuple(input_shape))
            self.downsample_bn.build(out_shape)
        if self.conv3 is not None:
            self.conv3.build(out_shape)
        self.bn3.build(out_shape)

    @property
    def has_projection(self):
        return self.downsample_conv is not None

    def call(self, inputs, training=None):
        f = inputs if self.pad1 is None else self.pad1(inputs)
        f = self.bn1(self.conv1(f), training=training)
        if self.use_relu:
            f = ops.relu(f)
        f = self.bn2(self.conv2(f), training=training)
        if self.downsample_conv is not None:
            s = self.downsample_bn(self.downsample_conv(inputs), training=training)
        else:
            s = inputs
        p = hops.glu(f, s, activation="identity")  # the Hadamard product F(x) * s(x)
        if self.conv3 is not None:
            p = self.conv3(p)
        p = self.bn3(p, training=training)
        y = ops.add(ops.add(f, s), p)
        return ops.relu(y) if self.use_relu else y

    def compute_output_shape(self, input_shape):
        return (
            input_shape[0],
            _strided_size(input_shape[1], self.strides),
            _strided_size(input_shape[2], self.strides),
            self.filters,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            strides=self.strides,
            use_relu=self.use_relu,
            product_conv1x1=self.product_conv1x1,
            zero_init_last_bn=self.zero_init_last_bn,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
