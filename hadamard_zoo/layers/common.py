"""Family-independent building blocks shared by several model families.

* :class:`DropPath`: per-sample stochastic depth (timm's ``DropPath``), used by
  MONet's ``PolyBlock`` and StarNet's ``StarBlock``.
* :func:`kaiming_normal`: ``torch.nn.init.kaiming_normal_`` (ReLU gain, untruncated normal).
* :func:`conv_initializer`: the ResNet convolution initialisation of mmcv / torchvision
  (``kaiming_normal(mode="fan_out")``), used by the Pi-Net blocks and NCP-ResNet's stem.

``DropPath`` is registered as ``hadamard_zoo>DropPath`` (package + class name,
as when it lived in :mod:`hadamard_zoo.layers.monet`), so saved ``.keras``
files keep loading; ``from hadamard_zoo.layers.monet import DropPath`` still works.
"""

from __future__ import annotations

import keras
from keras import ops

from hadamard_zoo.checks import check_rate


def kaiming_normal(mode="fan_in"):
    """``torch.nn.init.kaiming_normal_`` (gain ``sqrt(2)``, untruncated normal) with fan ``mode``."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}.")
    return keras.initializers.VarianceScaling(scale=2.0, mode=mode, distribution="untruncated_normal")


def conv_initializer():
    """mmcv's Kaiming init for ResNet convolutions: normal, ``fan_out``, gain ``sqrt(2)``."""
    return kaiming_normal(mode="fan_out")


@keras.saving.register_keras_serializable(package="hadamard_zoo")
class DropPath(keras.layers.Layer):
    """Stochastic depth: while training, zero the whole input of a sample with probability ``rate``
    and scale the kept samples by ``1 / (1 - rate)`` (timm's ``DropPath``); identity at inference.

    Input and output: any shape ``(batch, ...)``.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = ops.floor(ops.add(noise, ops.cast(keep, inputs.dtype)))
        return ops.multiply(inputs, ops.divide(mask, ops.cast(keep, inputs.dtype)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
