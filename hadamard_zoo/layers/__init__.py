"""Keras layers built on :mod:`hadamard_zoo.ops` (all serializable as ``hadamard_zoo>Name``)."""

from hadamard_zoo.layers.gating import GLU, Star
from hadamard_zoo.layers.polynomial import CCPPolynomial, NCPPolynomial
