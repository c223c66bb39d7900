"""Pi-Net polynomial MLP classifiers (survey appendix S.2.2: the CCP and NCP "Pinet").

``pinet_ccp``: flatten the image ``z``; ``x_N`` = CCP polynomial of degree N
(survey Eq. 2); logits = ``C x_N + beta``.
``pinet_ncp``: the same with the NCP recursion (survey Eq. NCP).
No activation functions: the logits are a polynomial of degree N in the pixels.
"""

from __future__ import annotations

import keras

from hadamard_zoo.layers import CCPPolynomial, NCPPolynomial
from hadamard_zoo.models import _common

_KINDS = {"ccp": CCPPolynomial, "ncp": NCPPolynomial}


def build_pinet_mlp(
    polynomial="ccp",
    hidden_size=16,
    degree=4,
    image_size=28,
    channels=1,
    use_bias=True,
    num_classes=10,
    classifier_activation=None,
    include_preprocessing=True,
    mean=(0.5,),
    std=(0.5,),
    input_shape=None,
    include_top=True,
    pooling=None,
    name="pinet",
):
    """Build a CCP or NCP Pi-Net MLP classifier.

    Args:
        polynomial: ``"ccp"`` or ``"ncp"``.
        hidden_size: width k of the hidden terms x_n.
        degree: N, the degree of the polynomial (>= 1).
        image_size, channels: input images are ``(image_size, image_size, channels)``
            unless ``input_shape`` is given.
        use_bias: biases on the input projections (as the appendix's ``bias=True``).
        num_classes: logits size; ``classifier_activation`` None gives logits.
        include_preprocessing: the model takes pixels in [0, 255] and maps them to
            ``(x/255 - mean)/std``.
        include_top: False returns the features ``x_N`` (shape ``(hidden_size,)``).
    Returns:
        a ``keras.Model`` from images ``(H, W, C)`` to ``(num_classes,)``.
    """
    if polynomial not in _KINDS:
        raise ValueError(f"polynomial must be one of {sorted(_KINDS)}, got {polynomial!r}.")
    if input_shape is None:
        input_shape = (image_size, image_size, channels)
    _common.validate_classifier_args(include_top, pooling, num_classes, classifier_activation, input_shape, min_size=1)
    c = input_shape[-1]
    mean = list(mean) * c if len(mean) == 1 else list(mean)
    std = list(std) * c if len(std) == 1 else list(std)
    inputs, x = _common.image_input(input_shape, include_preprocessing, mean, std)
    x = keras.layers.Flatten(name="flatten")(x)
    x = _KINDS[polynomial](hidden_size, degree=degree, use_bias=use_bias, name=f"{polynomial}_polynomial")(x)
    if include_top:
        x = keras.layers.Dense(num_classes, activation=classifier_activation, name="fc_out")(x)
    return keras.Model(inputs, x, name=name)
