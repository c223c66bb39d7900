#!/usr/bin/env python3
"""hadamard_zoo's two commands, for a fresh machine with nothing but Python 3.10+.

    python3 tasks.py demo     # install what is needed, build zoo models and run them on every backend
    python3 tasks.py test     # install what is needed, run the test suite once per backend

Both install into the Python that runs this script (use a virtual environment
if you prefer: ``python3 -m venv .venv && .venv/bin/python tasks.py test``).
Set ``HADAMARD_ZOO_BACKENDS=jax,torch`` to restrict the backends, and
``HADAMARD_ZOO_SKIP_INSTALL=1`` to skip the installation step.
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
        code = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], env=backend_env(backend), check=False)
        results[backend] = (code, time.time() - start)
    print("\n===== summary =====")
    for backend, (code, seconds) in results.items():
        status = "passed" if code == 0 else ("no tests collected" if code == 5 else f"FAILED (exit {code})")
        print(f"{backend:>10}: {status} in {seconds:.0f}s")
    if any(code != 0 for code, _ in results.values()):
        sys.exit(1)


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
