"""MONet: Multilinear Operator Networks (Cheng, Chrysos et al., ICLR 2024).

A polynomial network without activation functions: a patchifying stem, then
stages of :class:`~hadamard_zoo.layers.PolyBlock` (two Mu-layers, survey
appendix S.2.2) on channels-last tokens, with a 3x3/2 convolution between
stages, global mean pooling and a (zero-initialised) Linear head.

Layout of the authors' ``timm/models/monet.py`` (MONet_T / MONet_S):
stem Conv2x2/2 (3 -> d0) then Conv2x2/2 (d0 -> d0) (overall stride 4);
``Downsample`` = Conv3x3, stride 2, padding 1 (with bias) between every pair of
stages, also when the width does not change; convolutions LeCun-normal with
zero bias; inputs normalised with mean = std = 0.5.

``stem_strides`` generalises the stem for small images: every entry is one
patchifying conv (kernel = stride); ``[2, 2]`` is the published stem, ``[2]``
a stride-2 stem for 32x32 CIFAR images.
"""

from __future__ import annotations


import keras

from hadamard_zoo.checks import check_positive_int_list
from hadamard_zoo.layers import PolyBlock
from hadamard_zoo.models import _common


def _int_list(name, values):
    return check_positive_int_list(name, values)


def build_monet(
    depths=(4, 8, 12, 10),
    widths=(64, 128, 192, 192),
    expansion_factor=3,
    stem_strides=(2, 2),
    drop_path_rate=0.0,
    num_classes=1000,
    classifier_activation=None,
    include_preprocessing=True,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    input_shape=(224, 224, 3),
    include_top=True,
    pooling=None,
    features_only=False,
    name="monet",
):
    """Build a MONet classifier.

    Args:
        depths: Poly-Blocks per stage (MONet-T ``[4, 8, 12, 10]``, MONet-S ``[4, 6, 12, 14]``).
        widths: channels per stage (MONet-T ``[64, 128, 192, 192]``, MONet-S ``[128, 192, 256, 384]``).
        expansion_factor: hidden width of every block's second Mu-layer, in units of the stage width (3).
        stem_strides: one patchifying conv (kernel = stride) per entry; the first maps
            3 -> ``widths[0]`` channels, the others keep ``widths[0]``.
        drop_path_rate: stochastic depth of every residual branch (the reference uses
            one rate for all blocks).
        num_classes, classifier_activation: the head (None gives logits).
        include_preprocessing: the model takes pixels in [0, 255] and maps them to
            ``(x / 255 - mean) / std`` (MONet: mean = std = 0.5).
        input_shape: ``(H, W, C)``; 224x224x3 for the published models.
        include_top: global mean + Linear head; False returns the last feature map
            (or its ``pooling``).
        pooling: with ``include_top=False``: None, ``"avg"`` or ``"max"``.
        features_only: return the list of per-stage feature maps instead (dense tasks).
    Returns:
        a ``keras.Model``.
    """
    depths = _int_list("depths", depths)
    widths = _int_list("widths", widths)
    stem_strides = _int_list("stem_strides", stem_strides)
    if len(depths) != len(widths):
        raise ValueError(f"depths and widths must have the same length, got {depths} and {widths}.")
    if any(w < 8 for w in widths):
        raise ValueError(f"widths must be >= 8 (the Mu-layers' low rank is width // 8), got {widths}.")
    _common.validate_classifier_args(include_top, pooling, num_classes, classifier_activation, input_shape, min_size=2)

    conv_init = keras.initializers.LecunNormal()
    inputs, x = _common.image_input(input_shape, include_preprocessing, mean, std)
    for k, stride in enumerate(stem_strides):
        x = keras.layers.Conv2D(
            widths[0], stride, strides=stride, kernel_initializer=conv_init, name=f"stem_conv{k + 1}"
        )(x)
    features = []
    for i, (depth, width) in enumerate(zip(depths, widths)):
        if i > 0:
            x = keras.layers.ZeroPadding2D(1, name=f"downsample{i}_pad")(x)
            x = keras.layers.Conv2D(width, 3, strides=2, kernel_initializer=conv_init, name=f"downsample{i}")(x)
        for j in range(depth):
            x = PolyBlock(
                width, expansion_factor=expansion_factor, drop_path=drop_path_rate, name=f"stage{i + 1}_block{j + 1}"
            )(x)
        features.append(x)

    if features_only:
        return keras.Model(inputs, features, name=name)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(
            num_classes, activation=classifier_activation, kernel_initializer="zeros", name="head"
        )(x)
    else:
        x = _common.classifier_head(x, False, pooling, num_classes, classifier_activation)
    return keras.Model(inputs, x, name=name)
