"""hadamard_zoo: a Keras 3 multi-backend model zoo for Hadamard-product architectures.

Pick the backend as in Keras, before the first import::

    KERAS_BACKEND=jax python ...      # or tensorflow, torch
"""

__version__ = "0.1.0"

from hadamard_zoo import layers, ops  # noqa: E402,F401
