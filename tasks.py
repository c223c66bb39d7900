#!/usr/bin/env python3
"""hadamard_zoo's two commands, for a fresh machine with nothing but Python 3.10+.

    python3 tasks.py demo     # install what is needed, build zoo models and run them on every backend
    python3 tasks.py test     # install what is needed, run the test suite once per backend

Both install into the Python that runs this script (use a virtual environment
if you prefer: ``python3 -m venv .venv && .venv/bin/python tasks.py test``).
Set ``HADAMARD_ZOO_BACKENDS=jax,torch`` to restrict the backends, and
``HADAMARD_ZOO_SKIP_INSTALL=1`` to skip the installation step. Tests marked
``@pytest.mark.backends(...)`` (full-split checkpoint evaluations, notebooks...) run on
one backend per run, skipped elsewhere with a reason naming it; ``HADAMARD_ZOO_EVERY_BACKEND=1``
runs them on every backend. Each backend's run ends with its 15 slowest tests, and a
backend whose run collected no test (pytest exit 5) counts as failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BACKENDS = ("jax", "tensorflow", "torch")
DURATIONS = 15  # pytest --durations: the slowest tests, printed at the end of each backend's run


def run(cmd, env=None, check=True):
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, cwd=ROOT, env=env)
    if check and result.returncode != 0:
        sys.exit(result.returncode)
    return result.returncode


def setup():
    if os.environ.get("HADAMARD_ZOO_SKIP_INSTALL"):
        return
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run(pip + ["-r", str(ROOT / "requirements-cpu.txt")])
    run(pip + ["--no-deps", "-e", str(ROOT)])
    # Real Fashion-MNIST for the data tests and recipes (Debian package; optional).
    if not Path("/usr/share/datasets/fashion-mnist").is_dir() and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], cwd=ROOT)
        subprocess.run(["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"], cwd=ROOT)


def backends():
    chosen = os.environ.get("HADAMARD_ZOO_BACKENDS")
    names = [b.strip() for b in chosen.split(",")] if chosen else list(BACKENDS)
    unknown = [b for b in names if b not in BACKENDS]
    if unknown:
        sys.exit(f"Unknown backend(s) {unknown} in HADAMARD_ZOO_BACKENDS; choose from {BACKENDS}.")
    return names


def backend_env(backend):
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def demo(args):
    setup()
    failed = []
    for backend in backends():
        print(f"\n===== demo on KERAS_BACKEND={backend} =====", flush=True)
        if run([sys.executable, "-m", "hadamard_zoo.demo", *args], env=backend_env(backend), check=False):
            failed.append(backend)
    if failed:
        sys.exit(f"demo failed on: {', '.join(failed)}")


def test(args):
    setup()
    results = {}
    for backend in backends():
        print(f"\n===== tests on KERAS_BACKEND={backend} =====", flush=True)
        start = time.time()
        # --durations: each backend's run ends with its slowest tests (docs: CONTRIBUTING.md, "Test budget")
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--durations={DURATIONS}", *args]
        code = run(pytest, env=backend_env(backend), check=False)
        results[backend] = (code, time.time() - start)
    print("\n===== summary =====")
    for backend, (code, seconds) in results.items():
        print(f"{backend:>10}: {status_of(code)} in {seconds:.0f}s")
    print(f"{'total':>10}: {sum(seconds for _, seconds in results.values()):.0f}s")
    if any(code != 0 for code, _ in results.values()):
        sys.exit(1)


def status_of(code):
    """pytest's exit code in words. Exit 5 (no test collected) is a failure: a backend whose run
    collected nothing proved nothing, and CI must not pass on it."""
    if code == 0:
        return "passed"
    if code == 5:
        return "FAILED (no tests collected, pytest exit 5)"
    return f"FAILED (exit {code})"


def main(argv):
    if not argv or argv[0] not in ("demo", "test", "setup"):
        sys.exit(__doc__)
    command, rest = argv[0], argv[1:]
    if command == "setup":
        setup()
    elif command == "demo":
        demo(rest)
    else:
        test(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
