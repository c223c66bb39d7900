"""StarNet image classifiers ("Rewrite the Stars", Ma et al., CVPR 2024).

Architecture (authors' ``imagenet/starnet.py``; timm ``starnet``):

* stem: 3x3 conv, stride 2, 3 -> 32 channels (+ bias) + BN + ReLU6;
* 4 stages; stage i has width ``base_dim * 2**i`` and starts with a 3x3
  stride-2 conv (+ bias) + BN (no activation), then ``depths[i]``
  :class:`~hadamard_zoo.layers.StarBlock` s (the star op ``ReLU6(f1 u) * f2 u``);
* head: BN, global average pool, dropout, Linear.

Layer names follow the PyTorch module paths so that a state dict maps onto the
model by name: ``stem`` = ``stem.0``, ``stages_{i}_{j}`` = ``stages.{i}.{j}``
(``j = 0`` the downsampling conv, ``j >= 1`` the blocks), ``norm``, ``head``
(see :mod:`hadamard_zoo.models.convert_starnet`).

``starnet_cifar`` (zoo_configs/starnet.yaml) is the same network with a
stride-1 stem and a stride-1 first stage, for 32x32 inputs.
"""

from __future__ import annotations


import keras

from hadamard_zoo.layers.starnet import StarBlock, StarConvBN
from hadamard_zoo.models import _common

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _int_list(name, values, length=None):
    values = list(values)
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must have {length} entries, got {values}.")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must hold non-negative integers, got {values}.")
    return values


def build_starnet(
    base_dim=24,
    depths=(2, 2, 8, 3),
    mlp_ratio=4,
    stem_dim=32,
    stem_stride=2,
    stage_strides=(2, 2, 2, 2),
    activation="relu6",
    drop_path_rate=0.0,
    dropout=0.0,
    num_classes=1000,
    classifier_activation=None,
    include_top=True,
    pooling=None,
    features_only=False,
    input_shape=None,
    include_preprocessing=True,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    name="starnet",
):
    """Build a StarNet classifier (or backbone).

    Args:
        base_dim: width of the first stage; stage i has ``base_dim * 2**i`` channels.
        depths: number of StarBlocks per stage (a list of stage depths; its length
            is the number of stages, 4 in every published variant).
        mlp_ratio: star-branch expansion (f1, f2: ``dim -> mlp_ratio * dim``).
        stem_dim: stem channels (32 in every published variant).
        stem_stride: stride of the stem conv (2 for ImageNet; 1 for CIFAR-sized inputs).
        stage_strides: stride of each stage's downsampling conv (2 everywhere as published).
        activation: the star's activation (``"relu6"``); the stem uses ReLU6 as published.
        drop_path_rate: stochastic depth, increasing linearly from 0 over the blocks
            (as ``torch.linspace(0, rate, sum(depths))``).
        dropout: dropout before the classifier (timm's ``drop_rate``).
        num_classes, classifier_activation, include_top, pooling, input_shape: as in
            ``keras.applications`` (``classes`` is accepted by ``create_model``).
            ``include_top=False`` returns the normalized last feature map ``(H/32, W/32, C)``
            (or its global ``"avg"``/``"max"`` pool).
        features_only: return the list of the stage outputs (before the final norm),
            strides ``stem_stride * prod(stage_strides[:i+1])``; ignores ``include_top``.
        include_preprocessing: the model takes pixels in [0, 255] and maps them to
            ``(x / 255 - mean) / std`` (ImageNet mean/std by default, as timm's weights expect).
        name: model name.

    Returns:
        a ``keras.Model`` from ``(H, W, 3)`` images to logits ``(num_classes,)`` (by default).
    """
    depths = _int_list("depths", depths)
    if not depths:
        raise ValueError("depths must list at least one stage.")
    stage_strides = _int_list("stage_strides", stage_strides, len(depths))
    if any(s < 1 for s in stage_strides) or stem_stride not in (1, 2):
        raise ValueError(f"strides must be >= 1 (stem_stride 1 or 2), got stem_stride={stem_stride}, "
                         f"stage_strides={stage_strides}.")
    if not 0.0 <= float(drop_path_rate) < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}.")
    if features_only and pooling is not None:
        raise ValueError("features_only=True returns un-pooled stage maps; leave pooling=None.")
    if input_shape is None:
        input_shape = (224, 224, 3)
    include_top = bool(include_top) and not features_only
    _common.validate_classifier_args(include_top, pooling, num_classes, classifier_activation, input_shape, min_size=1)
    channels = input_shape[-1]
    mean = list(mean) * channels if len(mean) == 1 else list(mean)
    std = list(std) * channels if len(std) == 1 else list(std)

    inputs, x = _common.image_input(input_shape, include_preprocessing, mean, std)
    x = StarConvBN(stem_dim, 3, strides=stem_stride, name="stem")(x)
    x = keras.layers.ReLU(max_value=6.0, name="stem_act")(x)

    total = sum(depths)
    rates = [float(drop_path_rate) * i / max(total - 1, 1) for i in range(total)]
    features = []
    k = 0
    for i, (depth, stride) in enumerate(zip(depths, stage_strides)):
        dim = base_dim * 2**i
        x = StarConvBN(dim, 3, strides=stride, name=f"stages_{i}_0")(x)
        for j in range(1, depth + 1):
            x = StarBlock(dim, mlp_ratio, drop_path=rates[k], activation=activation, name=f"stages_{i}_{j}")(x)
            k += 1
        features.append(x)

    if features_only:
        return keras.Model(inputs, features, name=name)
    x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="norm")(x)
    x = _common.classifier_head(x, include_top, pooling, num_classes, classifier_activation, dropout=dropout)
    return keras.Model(inputs, x, name=name)
