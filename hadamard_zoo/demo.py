"""The demo: build zoo models on the active backend and run them.

    KERAS_BACKEND=jax python -m hadamard_zoo.demo      # or: python3 tasks.py demo (every backend)

For each family it builds the default small variant (with its pretrained
weights when a checkpoint ships in ``weights/``), runs a forward pass on a
fixed, seeded input, and prints parameters, output shape, time, and which
Hadamard ops ran an accelerated path on this backend.
"""

from __future__ import annotations

import sys
import time

import keras
import numpy as np

import hadamard_zoo
from hadamard_zoo import models, ops, pretrained

# One small, CPU-friendly variant per family (the family defaults of the big
# ImageNet models are exercised by the tests and the benchmarks instead).
DEMO_MODELS = (
    "pinet_ccp",
    "pinet_ncp",
    "ncp_resnet_cifar_small",
    "starnet_cifar",
    "monet_cifar",
    "gcnn_char_small",
    "linear_attention_lm_char",
    "rotate_small",
    "cope_generator_fmnist",
)


def _example_input(spec, rng, batch=2):
    shape = (batch,) + tuple(8 if s is None else s for s in spec.shape[1:])
    dtype = keras.backend.standardize_dtype(spec.dtype)
    if "int" in dtype:
        return rng.integers(0, 2, size=shape).astype(dtype)  # ids valid for every vocabulary
    if len(shape) == 4:  # images: raw pixels in [0, 255], the models preprocess themselves
        return rng.uniform(0, 255, size=shape).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


def run_one(name, rng):
    has_weights = bool(pretrained.entries_for(name))
    model = models.create_model(name, pretrained=has_weights)
    try:
        specs = model.inputs
    except AttributeError:  # subclassed models (RotatE) score (head, relation, tail) triples
        specs = [keras.KerasTensor((None, 3), dtype="int32")]
    inputs = [_example_input(spec, rng) for spec in specs]
    feed = inputs[0] if len(inputs) == 1 else inputs
    model(feed)  # warm-up (tracing / compilation)
    start = time.perf_counter()
    out = model(feed)
    ms = (time.perf_counter() - start) * 1e3
    outs = out if isinstance(out, (list, tuple)) else [out]
    finite = all(np.all(np.isfinite(keras.ops.convert_to_numpy(o))) for o in outs)
    shapes = ", ".join(str(tuple(o.shape)) for o in outs)
    return model.count_params(), shapes, ms, has_weights, finite


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    names = argv or list(DEMO_MODELS)
    backend = keras.config.backend()
    print(f"hadamard_zoo {hadamard_zoo.__version__} on Keras {keras.__version__}, backend {backend}")
    print(f"accelerated Hadamard ops on {backend}: {', '.join(ops.registered_ops()) or 'none'}"
          f" (fusion {'on' if ops.fusion_enabled() else 'off'})")
    print(f"{len(models.list_models())} models in the zoo: {', '.join(models.list_families())}\n")
    rng = np.random.default_rng(0)
    header = f"{'model':28} {'params':>12} {'weights':>10} {'output shape':>24} {'forward ms':>11}"
    print(header)
    print("-" * len(header))
    failures = 0
    for name in names:
        try:
            params, shapes, ms, has_weights, finite = run_one(name, rng)
        except Exception as exc:  # report and continue: the demo shows every family
            failures += 1
            print(f"{name:28} FAILED: {type(exc).__name__}: {exc}")
            continue
        if not finite:
            failures += 1
        weights = "pretrained" if has_weights else "random"
        print(f"{name:28} {params:12,} {weights:>10} {shapes:>24} {ms:11.1f}" + ("" if finite else "  NON-FINITE"))
    print("\nForward passes ran on a fixed random input (seed 0).")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
