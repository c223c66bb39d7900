"""The inputs of ``python -m hadamard_zoo.bench ops``: one builder per op, at a memory-bound size.

``BUILDERS[name](hops, quick, rng)`` returns a list of cases ``(label, fn(*tensors) -> tensor,
[numpy arrays], options or None, passes)``; :func:`discover_ops` lists the public ops that have a
``keras.ops`` reference. The harness that times them is :mod:`hadamard_zoo.bench`.
"""

from __future__ import annotations

# ------------------------------------------------------------------ input builders
# Each builder(hops, quick, rng) returns a list of cases:
#   (label, fn(*tensors) -> tensor, [numpy arrays], options or None, passes)
# ``passes``: ("fwd", "fwd+bwd") or ("fwd",); options: {"no_ref": passes whose
# reference is not run (too much memory)}.  Every floating input is differentiated.
BOTH = ("fwd", "fwd+bwd")
FWD = ("fwd",)


def _normal(rng, shape, scale=1.0):
    return (rng.standard_normal(shape, dtype="float32") * scale).astype("float32")


def _star(h, quick, rng):
    shape = (2, 1024, 1024) if quick else (8, 1024, 1024)
    return [(f"{_fmt(shape)}", lambda a, b: h.star(a, b), [_normal(rng, shape, 3), _normal(rng, shape)], None, BOTH)]


def _glu(h, quick, rng):
    shape = (2, 1024, 1024) if quick else (8, 1024, 1024)
    return [
        (f"{_fmt(shape)} sigmoid", lambda a, b: h.glu(a, b), [_normal(rng, shape), _normal(rng, shape)], None, BOTH),
        (f"{_fmt(shape)} swish", lambda a, b: h.glu(a, b, "swish"), [_normal(rng, shape), _normal(rng, shape)], None, BOTH),
    ]


def _ccp_step(h, quick, rng):
    shape = (2048, 1024) if quick else (8192, 1024)
    return [(_fmt(shape), lambda u, x: h.ccp_step(u, x), [_normal(rng, shape), _normal(rng, shape)], None, BOTH)]


def _ncp_step(h, quick, rng):
    b, k = (2048, 512) if quick else (8192, 512)
    arrays = [_normal(rng, (b, k)), _normal(rng, (b, k)), _normal(rng, (k, k), 0.05), _normal(rng, (k,))]
    return [(f"batch {b} x width {k}", lambda a, x, w, c: h.ncp_step(a, x, w, c), arrays, None, BOTH)]


def _ccp(h, quick, rng):
    b, d, k, n = (2048, 256, 512, 3) if quick else (8192, 256, 512, 3)
    arrays = [_normal(rng, (b, d)), _normal(rng, (n, d, k), 0.05), _normal(rng, (n, k))]
    return [(f"z {b}x{d}, degree {n}, width {k}", lambda z, w, c: h.ccp(z, w, c), arrays, None, BOTH)]


def _ncp(h, quick, rng):
    b, d, k, n = (2048, 256, 512, 3) if quick else (8192, 256, 512, 3)
    arrays = [
        _normal(rng, (b, d)),
        _normal(rng, (n, d, k), 0.05),
        _normal(rng, (n, k)),
        _normal(rng, (n - 1, k, k), 0.05),
        _normal(rng, (n - 1, k)),
    ]
    return [(f"z {b}x{d}, degree {n}, width {k}", lambda z, a, ab, s, sb: h.ncp(z, a, ab, s, sb), arrays, None, BOTH)]


def _mu_product(h, quick, rng):
    shape = (2, 56, 56, 320) if quick else (8, 56, 56, 320)
    c = shape[-1]
    arrays = [_normal(rng, shape), _normal(rng, shape), _normal(rng, (c,)), _normal(rng, (c,)), _normal(rng, (c,)), _normal(rng, (c,))]
    return [
        (
            f"{_fmt(shape)} + LN affine",
            lambda u, v, gu, bu, gv, bv: h.mu_product(u, v, 1.0, gu, bu, gv, bv),
            arrays,
            None,
            BOTH,
        )
    ]


def _spatial_shift(h, quick, rng):
    shape = (2, 56, 56, 320) if quick else (8, 56, 56, 320)
    return [(_fmt(shape), lambda x: h.spatial_shift(x), [_normal(rng, shape)], None, BOTH)]


def _cope_fusion(h, quick, rng):
    b, k = (2048, 512) if quick else (8192, 512)
    arrays = [_normal(rng, (b, k)), _normal(rng, (b, k)), _normal(rng, (b, k)), _normal(rng, (k, k), 0.05), _normal(rng, (k,))]
    return [
        (
            f"2 vars, batch {b} x width {k}",
            lambda p1, p2, y, w, c: h.cope_fusion([p1, p2], y, w, c),
            arrays,
            None,
            BOTH,
        )
    ]


def _poly_sa(h, quick, rng):
    b, n, c = (2, 1024, 256) if quick else (8, 1024, 256)
    arrays = [_normal(rng, (b, n, c)), *(_normal(rng, (c, c), 0.05) for _ in range(3)), _normal(rng, (1,)), _normal(rng, (1,))]
    return [(f"{b}x{n} tokens, C {c}", lambda z, w1, w2, w3, a, be: h.poly_sa(z, w1, w2, w3, a, be), arrays, None, BOTH)]


def _causal_linear_attention(h, quick, rng):
    b, d = 4, 64
    cases = []
    main_t = 2048 if quick else 4096
    sweep = (1024,) if quick else (1024, 2048, 8192)
    for t in sorted((main_t,) + sweep):
        arrays = [_normal(rng, (b, t, d), 0.125), _normal(rng, (b, t, d), 0.125), _normal(rng, (b, t, d))]
        cases.append(
            (
                f"B {b}, T {t}, D {d}",
                lambda q, k, v: h.causal_linear_attention(q, k, v),
                arrays,
                None,
                BOTH if t == main_t else FWD,
            )
        )
    return cases


def _depthwise_conv2d(h, quick, rng):
    cases = []
    for shape in ((8, 56, 56, 96), (8, 14, 14, 384)):
        if quick:
            shape = (2,) + shape[1:]
        c = shape[-1]
        arrays = [_normal(rng, shape), _normal(rng, (7, 7, c, 1), 0.1), _normal(rng, (c,))]
        cases.append((f"{_fmt(shape)}, 7x7", lambda x, w, bb: h.depthwise_conv2d(x, w, bb), arrays, None, BOTH))
    return cases


def _rotate_distance(h, quick, rng):
    b, n, k = (128, 64, 250) if quick else (512, 64, 250)
    arrays = [_normal(rng, (b, 1, 2 * k), 0.05), _normal(rng, (b, 1, k), 2.0), _normal(rng, (b, n, 2 * k), 0.05)]
    return [(f"{b} x {n} negatives, dim {2 * k}", lambda x, p, t: h.rotate_distance(x, p, t), arrays, None, BOTH)]


def _rotate_score_all(h, quick, rng):
    # WN18RR size.  The reference's backward at this size needs ~5-10 GB (several
    # (B, E, k) temporaries), too much for a shared 23 GB machine: its gradient is
    # timed at E = 8192 and only the chunked path's gradient runs at full size.
    cases = []
    b, k = 16, 250
    for e, passes, opts in (
        (8192, BOTH, None),
        (40943, BOTH, {"no_ref": ("fwd+bwd",)}),
    ):
        if quick and e > 8192:
            continue
        arrays = [_normal(rng, (b, 2 * k), 0.05), _normal(rng, (b, k), 2.0), _normal(rng, (e, 2 * k), 0.05)]
        cases.append((f"B {b} vs {e} entities, dim {2 * k}", lambda x, p, t: h.rotate_score_all(x, p, t), arrays, opts, passes))
    return cases


BUILDERS = {
    "star": _star,
    "glu": _glu,
    "ccp_step": _ccp_step,
    "ncp_step": _ncp_step,
    "ccp": _ccp,
    "ncp": _ncp,
    "mu_product": _mu_product,
    "spatial_shift": _spatial_shift,
    "cope_fusion": _cope_fusion,
    "poly_sa": _poly_sa,
    "causal_linear_attention": _causal_linear_attention,
    "depthwise_conv2d": _depthwise_conv2d,
    "rotate_distance": _rotate_distance,
    "rotate_score_all": _rotate_score_all,
}


def _fmt(shape):
    return "x".join(str(s) for s in shape)


def discover_ops():
    """Public ops of hadamard_zoo.ops: every ``foo`` with a ``foo_reference``."""
    import hadamard_zoo.ops as hops

    names = []
    for name in sorted(dir(hops)):
        if name.startswith("_") or name.endswith("_reference"):
            continue
        if callable(getattr(hops, name)) and callable(getattr(hops, name + "_reference", None)):
            names.append(name)
    return names
