"""cope_fusion (survey Eq. 4, CoPE's two-variable polynomial step)."""

import numpy as np
import pytest
from helpers import assert_close, assert_paths_agree, rand, to_np

import hadamard_zoo.ops as hops


def _fusion(n_proj, with_kernel, with_bias, skip):
    def fn(*args):
        projections = list(args[:n_proj])
        y, kernel, bias = args[n_proj:]
        return hops.cope_fusion(projections, y, kernel, bias, skip=skip)

    return fn


@pytest.mark.parametrize(
    "y_shape, n_proj, with_kernel, with_bias, skip",
    [
        ((6, 5), 2, True, True, False),  # survey Eq. 4 on vectors
        ((6, 8), 2, True, True, True),  # skip form of the released FC polynomial
        ((6, 8), 1, True, False, False),
        ((2, 3, 3, 8), 2, False, False, False),  # injection broadcast over H x W
        ((2, 3, 3, 8), 3, True, True, False),
        ((2, 4, 8), 2, False, True, True),
    ],
)
def test_fast_equals_reference(y_shape, n_proj, with_kernel, with_bias, skip):
    k_in = y_shape[-1]
    k = 8 if (with_kernel and not skip) else k_in
    b = y_shape[0]
    inputs = [rand((b, k), i) for i in range(n_proj)]
    inputs += [
        rand(y_shape, 10),
        rand((k_in, k), 11, 0.3) if with_kernel else None,
        rand((k,), 12) if with_bias else None,
    ]
    assert_paths_agree(_fusion(n_proj, with_kernel, with_bias, skip), inputs, require_accelerated="cope_fusion")


def test_projection_with_y_rank_broadcasts():
    p, y = rand((2, 4, 4, 3), 0), rand((2, 4, 4, 3), 1)
    assert_paths_agree(lambda p, y: hops.cope_fusion([p], y), [p, y], require_accelerated="cope_fusion")
    assert_close(to_np(hops.cope_fusion([p], y)), p * y)


def test_matches_numpy_formula():
    zi, zii, y = rand((4, 6), 0), rand((4, 3), 1), rand((4, 5), 2)
    a_i, a_ii, s, b = rand((6, 7), 3), rand((3, 7), 4), rand((5, 7), 5), rand((7,), 6)
    expected = (zi @ a_i + zii @ a_ii) * (y @ s + b)
    for enabled in (True, False):
        with hops.fusion(enabled):
            out = hops.cope_fusion([zi @ a_i, zii @ a_ii], y, s, b)
        assert_close(to_np(out), expected, 1e-5, 1e-5)
    h = rand((2, 3, 3, 4), 7)
    p = rand((2, 4), 8)
    assert_close(to_np(hops.cope_fusion([p], h, skip=True)), p[:, None, None, :] * h + h, 1e-5, 1e-5)


def test_no_grad_inference_path_does_not_touch_inputs():
    # torch multiplies in place when no gradient is needed: inputs must be untouched
    y, s, b = rand((3, 4), 0), rand((4, 4), 1), rand((4,), 2)
    p0, p1 = rand((3, 4), 3), rand((3, 4), 4)
    copies = [a.copy() for a in (p0, p1, y, s, b)]
    out = hops.cope_fusion([p0, p1], y, s, b)
    assert_close(to_np(out), (p0 + p1) * (y @ s + b), 1e-5, 1e-5)
    for a, c in zip((p0, p1, y, s, b), copies):
        np.testing.assert_array_equal(a, c)


def test_bad_inputs_raise_clear_errors():
    y = rand((2, 5))
    with pytest.raises(ValueError, match="non-empty list"):
        hops.cope_fusion([], y)
    with pytest.raises(ValueError, match="last dimension"):
        hops.cope_fusion([rand((2, 4))], y, rand((6, 4)))
    with pytest.raises(ValueError, match="same shape"):
        hops.cope_fusion([rand((2, 4)), rand((2, 3))], y, rand((5, 4)))
    with pytest.raises(ValueError, match="last dimension"):
        hops.cope_fusion([rand((2, 3))], y, rand((5, 4)))
    with pytest.raises(ValueError, match="skip=True"):
        hops.cope_fusion([rand((2, 4))], y, rand((5, 4)), skip=True)
    with pytest.raises(ValueError, match="batch size"):
        hops.cope_fusion([rand((3, 5))], rand((2, 4, 4, 5)))
    with pytest.raises(ValueError, match="rank 1"):
        hops.cope_fusion([rand((2, 4))], y, rand((5, 4)), rand((1, 4)))
    with pytest.raises(ValueError, match="rank of y"):
        hops.cope_fusion([rand((2, 1, 5))], rand((2, 3, 3, 5)))
