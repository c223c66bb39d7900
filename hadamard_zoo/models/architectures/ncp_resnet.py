"""Pi-Net product-polynomial ResNets (Chrysos et al., Pi-nets, CVPR'20 / T-PAMI'21).

A ResNet whose basic blocks are second-degree polynomials of their input,
``y = F(x) + s(x) + BN3(F(x) * s(x))`` (:class:`~hadamard_zoo.layers.ProductPolynomialBlock`);
the network is a product of polynomials.  The ImageNet layout is the
mmcls PiNet-18/34 of the polynomial_nets repository
(``classification-NO-activation-function``): 7x7/2 conv + BN (+ReLU) + 3x3/2
max-pool stem, four stages of widths 64-512, global average pool, Linear.  The
CIFAR layout replaces the stem by a 3x3/1 conv + BN (+ReLU) and drops the pool.

Variants differ only in data (``zoo_configs/ncp_resnet.yaml``): depth,
widths, ``use_relu`` (False = the activation-free "no-ReLU" PiNet) and
``product_conv1x1`` (the "1x1" PiNet).
"""

from __future__ import annotations


import keras

from hadamard_zoo.checks import check_positive_int_list
from hadamard_zoo.layers import ProductPolynomialBlock, SymmetricMaxPooling2D
from hadamard_zoo.layers.common import conv_initializer
from hadamard_zoo.models import _common

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
_STEMS = ("imagenet", "cifar")


def _int_list(name, values):
    return check_positive_int_list(name, values)


def build_ncp_resnet(
    depths=(2, 2, 2, 2),
    widths=(64, 128, 256, 512),
    stem="imagenet",
    stem_width=None,
    use_relu=True,
    product_conv1x1=False,
    zero_init_last_bn=True,
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    num_classes=1000,
    classifier_activation=None,
    include_preprocessing=True,
    mean=None,
    std=None,
    input_shape=None,
    include_top=True,
    pooling=None,
    features_only=False,
    dropout=0.0,
    name="ncp_resnet",
):
    """Build a Pi-Net product-polynomial ResNet.

    Args:
        depths: blocks per stage (``[2, 2, 2, 2]`` = PiNet-18, ``[3, 4, 6, 3]`` = PiNet-34).
        widths: channels per stage; the first block of every stage after the
            first has stride 2.
        stem: ``"imagenet"`` (7x7/2 conv, BN, [ReLU], 3x3/2 max-pool) or
            ``"cifar"`` (3x3/1 conv, BN, [ReLU], no pool).
        stem_width: channels of the stem conv (default ``widths[0]``).
        use_relu: keep ResNet's ReLUs (stem, inside and after every block);
            False removes all of them (the "no-ReLU" PiNet).
        product_conv1x1: a 1x1 conv on every block's product term (the "1x1" PiNet).
        zero_init_last_bn: every block starts as its shortcut (BN2 gamma = 0).
        bn_momentum, bn_epsilon: BatchNorm's (PyTorch defaults, Keras convention).
        num_classes, classifier_activation: the head (None gives logits).
        include_preprocessing: the model takes pixels in [0, 255] and maps them to
            ``(x / 255 - mean) / std``.
        mean, std: per-channel normalisation (default: ImageNet's for the
            ImageNet stem, CIFAR-10's for the CIFAR stem).
        input_shape: ``(H, W, C)``; default ``(224, 224, 3)`` / ``(32, 32, 3)`` by stem.
        include_top: global average pool + Linear head; False returns the last
            feature map (or its ``pooling``).
        pooling: with ``include_top=False``: None, ``"avg"`` or ``"max"``.
        features_only: return a model whose outputs are the list of the
            per-stage feature maps (stage 1 ... stage N, for dense tasks); the
            head and ``pooling`` are ignored.
        dropout: before the head (0 in the reference).
    Returns:
        a ``keras.Model``.
    """
    depths = _int_list("depths", depths)
    widths = _int_list("widths", widths)
    if len(depths) != len(widths):
        raise ValueError(f"depths and widths must have the same length, got {depths} and {widths}.")
    if stem not in _STEMS:
        raise ValueError(f"stem must be one of {_STEMS}, got {stem!r}.")
    stem_width = widths[0] if stem_width is None else _int_list("stem_width", [stem_width])[0]
    if input_shape is None:
        input_shape = (224, 224, 3) if stem == "imagenet" else (32, 32, 3)
    _common.validate_classifier_args(include_top, pooling, num_classes, classifier_activation, input_shape)
    if mean is None:
        mean = IMAGENET_MEAN if stem == "imagenet" else CIFAR_MEAN
    if std is None:
        std = IMAGENET_STD if stem == "imagenet" else CIFAR_STD

    inputs, x = _common.image_input(input_shape, include_preprocessing, mean, std)
    bn = dict(momentum=bn_momentum, epsilon=bn_epsilon)
    if stem == "imagenet":
        x = keras.layers.ZeroPadding2D(3, name="stem_pad")(x)
        x = keras.layers.Conv2D(
            stem_width, 7, strides=2, use_bias=False, kernel_initializer=conv_initializer(), name="stem_conv"
        )(x)
    else:
        x = keras.layers.Conv2D(
            stem_width, 3, padding="same", use_bias=False, kernel_initializer=conv_initializer(), name="stem_conv"
        )(x)
    x = keras.layers.BatchNormalization(name="stem_bn", **bn)(x)
    if use_relu:
        x = keras.layers.ReLU(name="stem_relu")(x)
    if stem == "imagenet":
        x = SymmetricMaxPooling2D(3, 2, 1, name="stem_pool")(x)

    features = []
    for i, (depth, width) in enumerate(zip(depths, widths)):
        for j in range(depth):
            x = ProductPolynomialBlock(
                width,
                strides=2 if (i > 0 and j == 0) else 1,
                use_relu=use_relu,
                product_conv1x1=product_conv1x1,
                zero_init_last_bn=zero_init_last_bn,
                bn_momentum=bn_momentum,
                bn_epsilon=bn_epsilon,
                name=f"stage{i + 1}_block{j + 1}",
            )(x)
        features.append(x)

    if features_only:
        return keras.Model(inputs, features, name=name)
    x = _common.classifier_head(x, include_top, pooling, num_classes, classifier_activation, dropout=dropout)
    return keras.Model(inputs, x, name=name)
