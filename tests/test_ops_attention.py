import numpy as np
import pytest
from helpers import assert_close, assert_paths_agree, rand, to_np

import hadamard_zoo.ops as hops


def _qkv(shape, m=5, positive=False):
    q, k = rand(shape, 0), rand(shape, 1)
    if positive:  # as after phi = elu + 1, so the normalizer stays away from 0
        q, k = np.abs(q) + 0.1, np.abs(k) + 0.1
    v = rand(shape[:-1] + (m,), 2)
    return q, k, v


def _numpy_masked(q, k, v, normalize=False, eps=1e-6):
    scores = q @ np.swapaxes(k, -1, -2)
    scores = scores * np.tril(np.ones(scores.shape[-2:]))
    y = scores @ v
    if normalize:
        y = y / (scores.sum(-1, keepdims=True) + eps)
    return y


@pytest.mark.parametrize(
    "shape,chunk,normalize",
    [
        ((2, 37, 8), 8, False),  # T not a multiple of the chunk
        ((2, 37, 8), 8, True),
        ((2, 32, 8), 8, True),  # exact multiple
        ((2, 3, 21, 4), 4, False),  # heads axis
        ((2, 3, 21, 4), 4, True),
        ((1, 5, 4), 64, True),  # one chunk, shorter than chunk_size
    ],
)
def test_chunked_equals_masked(shape, chunk, normalize):
    q, k, v = _qkv(shape, positive=normalize)
    # chunked sums reorder the additions: relative float32 tolerance
    assert_paths_agree(
        lambda a, b, c: hops.causal_linear_attention(a, b, c, normalize=normalize, chunk_size=chunk),
        [q, k, v],
        rtol=2e-5,
        atol=2e-5,
        require_accelerated="causal_linear_attention",
    )


@pytest.mark.parametrize("normalize", [False, True])
def test_values_by_numpy_formula(normalize):
    q, k, v = _qkv((2, 2, 19, 6), m=3, positive=True)
    expected = _numpy_masked(q.astype("float64"), k.astype("float64"), v.astype("float64"), normalize)
    for fused in (True, False):
        with hops.fusion(fused):
            out = hops.causal_linear_attention(q, k, v, normalize=normalize, chunk_size=8)
        assert_close(to_np(out), expected, 1e-5, 1e-5, f"fusion={fused}")


def test_causality():
    q, k, v = _qkv((1, 12, 4))
    base = to_np(hops.causal_linear_attention(q, k, v, chunk_size=4))
    k2, v2 = k.copy(), v.copy()
    k2[:, 7:] += 5.0
    v2[:, 7:] -= 3.0
    changed = to_np(hops.causal_linear_attention(q, k2, v2, chunk_size=4))
    assert_close(changed[:, :7], base[:, :7], 1e-6, 1e-6, "rows before the change")
    assert np.abs(changed[:, 7:] - base[:, 7:]).max() > 1e-3


@pytest.mark.parametrize("normalize", [False, True])
def test_recurrent_step_matches_parallel_form(normalize):
    q, k, v = _qkv((2, 9, 4), m=3, positive=True)
    expected = to_np(hops.causal_linear_attention(q, k, v, normalize=normalize, chunk_size=4))
    state = np.zeros((2, 4, 3), "float32")
    z = np.zeros((2, 4), "float32") if normalize else None
    rows = []
    for t in range(9):
        y, state, z = hops.linear_attention_step(q[:, t], k[:, t], v[:, t], state, z)
        rows.append(to_np(y))
    assert (z is None) == (not normalize)
    assert_close(np.stack(rows, 1), expected, 2e-5, 2e-5)


def test_bad_inputs_raise_clear_errors():
    q, k, v = _qkv((2, 8, 4))
    with pytest.raises(ValueError, match="rank >= 3"):
        hops.causal_linear_attention(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="same shape"):
        hops.causal_linear_attention(q, k[:, :, :3], v)
    with pytest.raises(ValueError, match="every axis but the last"):
        hops.causal_linear_attention(q, k, v[:, :5])
    with pytest.raises(ValueError, match="chunk_size"):
        hops.causal_linear_attention(q, k, v, chunk_size=0)
    with pytest.raises(ValueError, match="eps"):
        hops.causal_linear_attention(q, k, v, eps=-1.0)
    with pytest.raises(ValueError, match=r"\(batch, heads, time, dim\)"):
        hops.causal_linear_attention(q[None, None], k[None, None], v[None, None])
    with pytest.raises(ValueError, match="last dimension"):
        hops.linear_attention_step(q[:, 0], k[:, 0], v[:, 0], np.zeros((2, 3, 5), "float32"))
