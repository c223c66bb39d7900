import math

import numpy as np
import pytest
from helpers import assert_close, assert_paths_agree, rand, to_np

import hadamard_zoo.ops as hops


def _numpy_distance(h, phase, t, mode="tail"):
    """The reference code's formulas with numpy complex numbers."""
    k = phase.shape[-1]
    hc = h[..., :k] + 1j * h[..., k:]
    tc = t[..., :k] + 1j * t[..., k:]
    r = np.exp(1j * phase)
    diff = (np.conj(r) * tc - hc) if mode == "head" else (hc * r - tc)
    return np.abs(diff).sum(-1)


def test_hand_computed_triples():
    # k = 2.  h = (1 + 0i, 0 + 2i), rotation by (pi/2, pi): h o r = (i, -2i).
    head = np.array([[1.0, 0.0, 0.0, 2.0]], "float32")
    phase = np.array([[math.pi / 2, math.pi]], "float32")
    tail = np.array([[0.0, 0.0, 1.0, -2.0]], "float32")  # exactly h o r
    tail2 = np.array([[3.0, 0.0, 0.0, 2.0]], "float32")  # t = (3, 2i): |i - 3| + |-2i - 2i| = sqrt(10) + 4
    for fused in (True, False):
        with hops.fusion(fused):
            d = to_np(hops.rotate_distance(head, phase, tail))
            d2 = to_np(hops.rotate_distance(head, phase, tail2))
            d2h = to_np(hops.rotate_distance(head, phase, tail2, mode="head"))
        assert_close(d, [0.0], 1e-6, 1e-6)
        assert_close(d2, [math.sqrt(10) + 4], 1e-5, 1e-5)
        assert_close(d2h, [math.sqrt(10) + 4], 1e-5, 1e-5)  # |r| = 1: both modes agree


@pytest.mark.parametrize("mode", ["tail", "head"])
def test_distance_by_numpy_formula_with_broadcasting(mode):
    h, t = rand((3, 1, 10), 0), rand((3, 4, 10), 1)  # heads against 4 negative tails each
    phase = rand((3, 1, 5), 2, 3.0)
    expected = _numpy_distance(h.astype("float64"), phase.astype("float64"), t.astype("float64"), mode)
    assert_close(to_np(hops.rotate_distance(h, phase, t, mode=mode)), expected, 1e-5, 1e-5)


@pytest.mark.parametrize("mode", ["tail", "head"])
@pytest.mark.parametrize("broadcast", [False, True])
def test_distance_fast_equals_reference(mode, broadcast):
    if broadcast:  # heads and phases (B, 1, .) against negatives (B, n, .): gradients sum over n
        h, phase, t = rand((4, 1, 12), 0), rand((4, 1, 6), 1, 3.0), rand((4, 5, 12), 2)
    else:
        h, phase, t = rand((4, 3, 12), 0), rand((4, 3, 6), 1, 3.0), rand((4, 3, 12), 2)
    if mode == "head":
        h, t = t, h  # candidate heads vary, the tail is shared
    assert_paths_agree(lambda a, b, c: hops.rotate_distance(a, b, c, mode=mode), [h, phase, t])


@pytest.mark.parametrize("mode", ["tail", "head"])
@pytest.mark.parametrize("chunk_size", [4, 7, None])  # exact multiple, remainder, auto (one chunk)
def test_score_all_chunked_equals_reference(mode, chunk_size):
    q, phase, table = rand((3, 8), 0), rand((3, 4), 1, 3.0), rand((12, 8), 2)
    assert_paths_agree(
        lambda a, b, c: hops.rotate_score_all(a, b, c, mode=mode, chunk_size=chunk_size),
        [q, phase, table],
        require_accelerated="rotate_score_all",
    )


@pytest.mark.parametrize("mode", ["tail", "head"])
def test_score_all_matches_pairwise(mode):
    q, phase, table = rand((2, 6), 0), rand((2, 3), 1, 3.0), rand((5, 6), 2)
    out = to_np(hops.rotate_score_all(q, phase, table, mode=mode, chunk_size=2))
    if mode == "tail":
        expected = _numpy_distance(q[:, None], phase[:, None], table[None], "tail")
    else:
        expected = _numpy_distance(table[None], phase[:, None], q[:, None], "head")
    assert_close(out, expected, 1e-5, 1e-5)


def test_zero_distance_has_finite_gradient():
    # candidate == rotated query (identity rotation): |.| = 0, gradient 0 as torch.norm's
    q = rand((2, 6), 0)
    phase = np.zeros((2, 3), "float32")
    table = np.concatenate([q, rand((3, 6), 1)], 0)
    out = assert_paths_agree(
        lambda a, b, c: hops.rotate_score_all(a, b, c, chunk_size=2), [q, phase, table]
    )
    assert_close(np.diag(out[:, :2]), [0.0, 0.0], 1e-6, 1e-6)


def test_bad_inputs_raise_clear_errors():
    h, p = rand((2, 6)), rand((2, 3))
    with pytest.raises(ValueError, match="mode"):
        hops.rotate_distance(h, p, h, mode="relation")
    with pytest.raises(ValueError, match="even last dimension"):
        hops.rotate_distance(rand((2, 5)), p, rand((2, 5)))
    with pytest.raises(ValueError, match="3 phases"):
        hops.rotate_distance(rand((2, 8)), p, rand((2, 8)))
    with pytest.raises(ValueError, match="rank 2"):
        hops.rotate_score_all(h[None], p[None], rand((4, 6)))
    with pytest.raises(ValueError, match="entity_table has last dimension 8"):
        hops.rotate_score_all(h, p, rand((4, 8)))
    with pytest.raises(ValueError, match="same batch size"):
        hops.rotate_score_all(h, rand((3, 3)), rand((4, 6)))
    with pytest.raises(ValueError, match="chunk_size"):
        hops.rotate_score_all(h, p, rand((4, 6)), chunk_size=0)
