"""Offline readers of real datasets (nothing is downloaded; see ../shared/datasets/README.md).

>>> from hadamard_zoo import data
>>> x, y = data.load_cifar10(split="test")                     # uint8 (10000, 32, 32, 3), int64 (10000,)
>>> x, y = data.load_fashion_mnist(split="train")              # uint8 (60000, 28, 28, 1)
>>> train_text, val_text = data.load_tiny_shakespeare()
>>> (x_tr, y_tr), (x_te, y_te) = data.from_arrays(keras.datasets.cifar10.load_data())   # the online route

Locations: ``data_dir`` argument, else ``$HADAMARD_ZOO_DATA``, else ``<repo>/../shared/datasets``;
decoded arrays are cached under ``$HADAMARD_ZOO_CACHE`` (default ``~/.cache/hadamard_zoo``).
"""

from hadamard_zoo.data import kg  # noqa: F401
from hadamard_zoo.data._common import (  # noqa: F401
    DATASETS,
    DatasetError,
    DatasetInfo,
    DatasetNotFoundError,
    dataset_info,
)
from hadamard_zoo.data.images import (  # noqa: F401
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    from_arrays,
    load_cifar10,
    load_fashion_mnist,
    load_mnist_5k,
)
from hadamard_zoo.data.text import char_windows, load_tiny_shakespeare  # noqa: F401
