"""Arguments and heads shared by the image classifiers (keras.applications style)."""

from __future__ import annotations

import keras

from hadamard_zoo.checks import check_positive_int

_POOLINGS = (None, "avg", "max")


def validate_classifier_args(include_top, pooling, num_classes, classifier_activation, input_shape, min_size=8):
    if pooling not in _POOLINGS:
        raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}.")
    if include_top:
        check_positive_int("num_classes", num_classes, what="needed when include_top=True")
    if input_shape is not None:
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape must be (height, width, channels), got {shape}.")
        h, w, _ = shape
        for s in (h, w):
            if s is not None and s < min_size:
                raise ValueError(f"input_shape {shape}: height and width must be >= {min_size} for this model.")
    if classifier_activation is not None:
        keras.activations.get(classifier_activation)


def image_input(input_shape, include_preprocessing=True, mean=None, std=None, name="image"):
    """Input layer + optional in-model preprocessing from pixel values in [0, 255].

    With ``include_preprocessing`` the model maps ``x`` to ``(x / 255 - mean) / std``
    (per channel), so users feed raw pixels as with keras.applications' EfficientNet.
    """
    inputs = keras.Input(shape=tuple(input_shape), name=name)
    x = inputs
    if include_preprocessing:
        x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(x)
        if mean is not None and std is not None:
            variance = [float(s) ** 2 for s in std]
            x = keras.layers.Normalization(mean=list(mean), variance=variance, name="normalize")(x)
    return inputs, x


def classifier_head(x, include_top, pooling, num_classes, classifier_activation, dropout=0.0, head_name="head"):
    """Global pooling and the classification layer, as keras.applications does."""
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="head_drop")(x)
        x = keras.layers.Dense(num_classes, activation=classifier_activation, name=head_name)(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x
