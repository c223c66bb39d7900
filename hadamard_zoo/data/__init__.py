"""Offline readers of real datasets (nothing is downloaded; see ../shared/datasets/README.md)."""

from hadamard_zoo.data import kg  # noqa: F401
