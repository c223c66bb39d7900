import os
import sys

import keras
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets"))


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.config.backend()}"


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def shared_datasets():
    """Path to ../shared/datasets; tests that need it are skipped (with reason) if absent."""
    if not os.path.isdir(SHARED):
        pytest.skip(f"real datasets not found at {SHARED}")
    return SHARED


def pytest_configure(config):
    # Persistent XLA compilation cache: repeat runs (CI on the same machine) skip most JAX compiles.
    if keras.config.backend() == "jax":
        import jax

        cache = os.environ.get("HADAMARD_ZOO_JAX_CACHE", os.path.expanduser("~/.cache/hadamard_zoo/jax"))
        os.makedirs(cache, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
