import numpy as np
import pytest
from helpers import BACKEND, assert_close, assert_paths_agree, rand, to_np

import hadamard_zoo.ops as hops


@pytest.mark.parametrize("shape", [(4, 16), (2, 3, 16), (1, 16)])
def test_ccp_step_fast_equals_reference(shape):
    assert_paths_agree(hops.ccp_step, [rand(shape, 0), rand(shape, 1)], require_accelerated="ccp_step")


@pytest.mark.parametrize("with_bias", [True, False])
def test_ncp_step_fast_equals_reference(with_bias):
    inputs = [rand((6, 8), 0), rand((6, 5), 1), rand((5, 8), 2), rand((8,), 3) if with_bias else None]
    assert_paths_agree(hops.ncp_step, inputs, require_accelerated="ncp_step")


def test_ncp_step_broadcasts_over_leading_axes():
    a, x, k, b = rand((2, 3, 8), 0), rand((2, 3, 8), 1), rand((8, 8), 2), rand((8,), 3)
    expected = a * (x @ k + b)
    assert_close(to_np(hops.ncp_step(a, x, k, b)), expected, 1e-5, 1e-5)


@pytest.mark.parametrize("degree", [1, 2, 4])
@pytest.mark.parametrize("with_bias", [True, False])
def test_ccp_fast_equals_reference(degree, with_bias):
    inputs = [rand((5, 12), 0), rand((degree, 12, 7), 1, 0.3), rand((degree, 7), 2) if with_bias else None]
    assert_paths_agree(hops.ccp, inputs, require_accelerated="ccp")


@pytest.mark.parametrize("degree", [1, 2, 3])
@pytest.mark.parametrize("skip", [False, True])
def test_ncp_fast_equals_reference(degree, skip):
    m = degree - 1
    inputs = [
        rand((5, 12), 0),
        rand((degree, 12, 7), 1, 0.3),
        rand((degree, 7), 2),
        rand((m, 7, 7), 3, 0.3),
        rand((m, 7), 4),
        rand((m, 7, 7), 5, 0.3) if skip else None,
    ]
    assert_paths_agree(hops.ncp, inputs, require_accelerated="ncp")


def test_ccp_matches_numpy_formula():
    z, U, b = rand((3, 4), 0), rand((3, 4, 5), 1), rand((3, 5), 2)
    x = z @ U[0] + b[0]
    for n in (1, 2):
        x = (z @ U[n] + b[n]) * x + x
    assert_close(to_np(hops.ccp(z, U, b)), x, 1e-5, 1e-5)


def test_ncp_matches_numpy_formula():
    z, A, ab, S, sb = rand((3, 4), 0), rand((3, 4, 5), 1), rand((3, 5), 2), rand((2, 5, 5), 3), rand((2, 5), 4)
    x = z @ A[0] + ab[0]
    for n in (1, 2):
        x = (z @ A[n] + ab[n]) * (x @ S[n - 1] + sb[n - 1])
    assert_close(to_np(hops.ncp(z, A, ab, S, sb)), x, 1e-5, 1e-5)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        hops.ccp_step(rand((2, 3)), rand((2, 4)))
    with pytest.raises(ValueError, match="last dimension"):
        hops.ncp_step(rand((2, 4)), rand((2, 3)), rand((5, 4)))
    with pytest.raises(ValueError, match="degree"):
        hops.ccp(rand((2, 3)), rand((0, 3, 4)))
    with pytest.raises(ValueError, match="rank 3"):
        hops.ccp(rand((2, 3)), rand((3, 4)))
    with pytest.raises(ValueError, match="N-1"):
        hops.ncp(rand((2, 3)), rand((3, 3, 4)), None, rand((1, 4, 4)), None)
