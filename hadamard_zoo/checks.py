"""Argument checks shared by every part of the package (ops, layers, models, training).

Import them from here, not from the private :mod:`hadamard_zoo.ops._checks`
where they are defined (the ops, the bottom of the package, use that module
directly; everything above imports this public one)::

    from hadamard_zoo.checks import check_positive_int

    self.units = check_positive_int("units", units, owner="MyLayer")

* :func:`check_positive_int`: an integer >= 1 (``bool``, floats and strings
  refused; NumPy integers accepted), returned as ``int``; optionally ``None``.
* :func:`check_degree`: a polynomial degree (the same check, named ``degree``).
* :func:`check_positive_int_pair`: a positive integer ``a`` (as ``(a, a)``) or a
  pair of them (kernel sizes, strides).
* :func:`check_padding`: ``"same"`` or ``"valid"``, lower-cased.
* :func:`check_rate`: a dropout / drop-path rate in ``[0, 1)``, returned as ``float``.
"""

from hadamard_zoo.ops._checks import (
    check_degree,
    check_padding,
    check_positive_int,
    check_positive_int_list,
    check_positive_int_pair,
    check_rate,
)

__all__ = ["check_degree", "check_padding", "check_positive_int", "check_positive_int_list", "check_positive_int_pair", "check_rate"]
