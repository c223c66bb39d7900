"""hadamard_zoo: a Keras 3 multi-backend model zoo for Hadamard-product architectures.

Pick the backend as in Keras, before the first import::

    KERAS_BACKEND=jax python ...      # or tensorflow, torch
"""

__version__ = "0.1.0"

from hadamard_zoo import layers, ops  # noqa: E402,F401

# Register every serializable class, so that ``keras.saving.load_model`` finds the zoo's models
# (a saved language model is a ``CausalLM``, a KG model a ``RotatE``) after ``import hadamard_zoo``.
from hadamard_zoo import models  # noqa: E402,F401
from hadamard_zoo.models import _generation  # noqa: E402,F401
from hadamard_zoo.models.architectures import rotate  # noqa: E402,F401
