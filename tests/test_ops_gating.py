import numpy as np
import pytest
from helpers import assert_close, assert_paths_agree, rand, to_np

import hadamard_zoo.ops as hops

ACTS = ["relu6", "relu", "sigmoid", "swish", "gelu", "gelu_tanh", "tanh", "identity"]


@pytest.mark.parametrize("activation", ACTS)
def test_star_fast_equals_reference(activation):
    a = rand((4, 9, 16), 0, 4.0)  # scale 4 exercises both ReLU6 clips
    b = rand((4, 9, 16), 1)
    assert_paths_agree(lambda x, y: hops.star(x, y, activation), [a, b], require_accelerated="star")


@pytest.mark.parametrize("activation", ACTS)
def test_glu_two_tensor_fast_equals_reference(activation):
    a, b = rand((3, 5, 8), 0), rand((3, 5, 8), 1, 3.0)
    assert_paths_agree(lambda x, y: hops.glu(x, y, activation), [a, b], require_accelerated="glu")


@pytest.mark.parametrize("activation", ["sigmoid", "swish", "gelu", "identity"])
def test_glu_split_fast_equals_reference(activation):
    x = rand((3, 5, 8), 0, 2.0)
    assert_paths_agree(lambda t: hops.glu(t, activation=activation), [x])


def test_star_values_by_formula():
    a, b = rand((2, 7), 0, 5.0), rand((2, 7), 1)
    assert_close(to_np(hops.star(a, b)), np.clip(a, 0, 6) * b, 1e-6, 1e-6)


def test_glu_matches_keras_glu_definition():
    x = rand((2, 6), 0)
    a, b = x[:, :3], x[:, 3:]
    assert_close(to_np(hops.glu(x)), a / (1 + np.exp(-b)), 1e-6, 1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        hops.star(rand((2, 3)), rand((3, 3)))
    with pytest.raises(ValueError, match="Unknown activation"):
        hops.star(rand((2, 3)), rand((2, 3)), activation="relu7")
    with pytest.raises(ValueError, match="even"):
        hops.glu(rand((2, 3)))
