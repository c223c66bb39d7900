"""Input validation shared by the ops: clear ValueErrors, no silent reshaping."""

from __future__ import annotations

from keras import ops


def shape_of(x):
    """Static shape of a tensor (tuple, entries may be None)."""
    return tuple(x.shape)


def check_rank(name: str, x, min_rank: int | None = None, rank: int | None = None):
    r = len(shape_of(x))
    if rank is not None and r != rank:
        raise ValueError(
            f"{name} must have rank {rank}, got shape {shape_of(x)} (rank {r})."
        )
    if min_rank is not None and r < min_rank:
        raise ValueError(
            f"{name} must have rank >= {min_rank}, got shape {shape_of(x)} (rank {r})."
        )


def check_same_shape(names: str, *xs):
    shapes = [shape_of(x) for x in xs]
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(
            a is not None and b is not None and a != b for a, b in zip(s, first)
        ):
            raise ValueError(
                f"{names} must have the same shape for an element-wise product, "
                f"got {', '.join(str(s) for s in shapes)}."
            )


def check_last_dim(name: str, x, expected: int, what: str):
    d = shape_of(x)[-1]
    if d is not None and expected is not None and d != expected:
        raise ValueError(
            f"{name} has last dimension {d} but {what} expects {expected} "
            f"(shape {shape_of(x)})."
        )


def check_degree(degree):
    if not isinstance(degree, int) or isinstance(degree, bool) or degree < 1:
        raise ValueError(
            f"degree must be an integer >= 1 (the order of the polynomial), got {degree!r}."
        )


def is_floating(x) -> bool:
    return "float" in str(ops.dtype(x))
