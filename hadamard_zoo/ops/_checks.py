"""Input validation shared by the ops: clear ValueErrors, no silent reshaping.

The argument checks (``check_positive_int``, ``check_rate``, ...) are public as
:mod:`hadamard_zoo.checks`; code outside :mod:`hadamard_zoo.ops` imports them from there.
"""

from __future__ import annotations

import numbers

from keras import ops


def check_positive_int(name: str, value, owner: str | None = None, allow_none: bool = False, what: str | None = None):
    """``int(value)`` if ``value`` is an integer >= 1, else a ``ValueError``.

    ``bool``, floats (``1.5`` and also ``2.0``), strings and values below 1 are
    refused; Python and NumPy integers are accepted.  With ``allow_none``,
    ``None`` is returned as ``None``.  The message reads
    ``"{owner}: {name} must be a positive integer ({what}) [or None], got {value!r}."``
    (the ``owner: `` prefix and the ``(what)`` only when given), e.g.
    ``check_positive_int("chunk_size", 0, what="time steps per chunk")``::

        ValueError: chunk_size must be a positive integer (time steps per chunk), got 0.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        prefix = f"{owner}: " if owner else ""
        detail = f" ({what})" if what else ""
        alternative = " or None" if allow_none else ""
        raise ValueError(f"{prefix}{name} must be a positive integer{detail}{alternative}, got {value!r}.")
    return int(value)


def check_positive_int_list(name: str, values):
    """``[int, ...]`` from a non-empty sequence of integers >= 1 (stage depths, widths), else a ``ValueError``."""
    values = list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in values):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {values!r}.")
    return [int(v) for v in values]


def check_rate(name: str, rate, owner: str | None = None):
    """``float(rate)`` for a probability in ``[0, 1)`` (a dropout or drop-path rate), else a ``ValueError``."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) < 1.0:
        prefix = f"{owner}: " if owner else ""
        raise ValueError(f"{prefix}{name} must be a number in [0, 1), got {rate!r}.")
    return float(rate)


def check_positive_int_pair(name: str, value):
    """``(a, b)`` from a positive integer ``a`` (``(a, a)``) or a pair of them, else a ``ValueError``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}.")
    return tuple(value)


PADDINGS = ("same", "valid")


def check_padding(padding):
    """``"same"`` or ``"valid"`` (any case), lower-cased, else a ``ValueError``."""
    p = padding.lower() if isinstance(padding, str) else padding
    if p not in PADDINGS:
        raise ValueError(f"padding must be one of {list(PADDINGS)}, got {padding!r}.")
    return p


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
    """``int(degree)`` for a polynomial degree (an integer >= 1), else a ``ValueError``."""
    return check_positive_int("degree", degree, what="the order of the polynomial")


def is_floating(x) -> bool:
    return "float" in str(ops.dtype(x))
