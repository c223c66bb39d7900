"""A `.keras` file saved on one backend loads on the other two with the same outputs."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from helpers import BACKEND, rand, to_np

from hadamard_zoo import models

OTHER_BACKENDS = [b for b in ("jax", "tensorflow", "torch") if b != BACKEND]

LOADER = textwrap.dedent(
    """
    import sys, numpy as np, keras
    import hadamard_zoo  # registers the custom layers
    model = keras.saving.load_model(sys.argv[1])
    data = np.load(sys.argv[2])
    out = keras.ops.convert_to_numpy(model(data["x"]))
    err = float(np.max(np.abs(out - data["y"])) / max(1.0, np.max(np.abs(data["y"]))))
    print("ERR", err)
    """
)


def _check_on_other_backends(model, x, tmp_path, tol=1e-5):
    model_path, data_path = str(tmp_path / "m.keras"), str(tmp_path / "io.npz")
    model.save(model_path)
    np.savez(data_path, x=x, y=to_np(model(x)))
    for backend in OTHER_BACKENDS:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run(
            [sys.executable, "-c", LOADER, model_path, data_path], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"loading on {backend} failed:\n{proc.stderr[-3000:]}"
        err = float(proc.stdout.split("ERR")[-1])
        assert err < tol, f"{backend}: relative output difference {err}"


def test_zoo_model_loads_on_other_backends(tmp_path):
    model = models.create_model("pinet_ncp")
    _check_on_other_backends(model, rand((2, 28, 28, 1), scale=60.0) + 120, tmp_path)
