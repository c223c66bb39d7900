import os
import sys

import keras
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets"))
BACKENDS = ("jax", "tensorflow", "torch")
EVERY_BACKEND_ENV = "HADAMARD_ZOO_EVERY_BACKEND"  # =1: run @pytest.mark.backends(...) tests on every backend too


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


def one_backend_targets(names, running=None):
    """The backends a ``@pytest.mark.backends(*names)`` test runs under in this run.

    ``running``: the backends ``tasks.py test`` runs this time (``$HADAMARD_ZOO_BACKENDS``; all
    when unset). If it leaves out every backend the test names, the test moves to the first
    backend that does run, so a restricted ``tasks.py test`` still runs each such test once.
    """
    running = os.environ.get("HADAMARD_ZOO_BACKENDS", "") if running is None else running
    running = [b.strip() for b in running.split(",") if b.strip()] if isinstance(running, str) else list(running)
    if running and not set(names) & set(running):
        return (running[0],)
    return tuple(names)


def pytest_runtest_setup(item):
    """``@pytest.mark.backends("torch")``: a costly test whose backend makes no difference to what
    it proves runs on one backend per CI run (``tasks.py test`` runs the suite once per backend)
    and is skipped on the others with a reason naming where it runs. One mechanism for the
    whole suite; ``HADAMARD_ZOO_EVERY_BACKEND=1`` runs such tests on every backend."""
    marker = item.get_closest_marker("backends")
    if marker is None or os.environ.get(EVERY_BACKEND_ENV, "") not in ("", "0"):
        return
    names = marker.args
    unknown = set(names) - set(BACKENDS)
    if not names or unknown:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.backends needs backend names from {BACKENDS}, got {names}")
    targets = one_backend_targets(names)
    if keras.config.backend() not in targets:
        why = marker.kwargs.get("reason", "one backend per CI run")
        pytest.skip(f"runs under {'/'.join(targets)} only ({why}; {EVERY_BACKEND_ENV}=1 runs it on every backend)")


def pytest_configure(config):
    # Persistent XLA compilation cache: repeat runs (CI on the same machine) skip most JAX compiles.
    if keras.config.backend() == "jax":
        import jax

        cache = os.environ.get("HADAMARD_ZOO_JAX_CACHE", os.path.expanduser("~/.cache/hadamard_zoo/jax"))
        os.makedirs(cache, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
