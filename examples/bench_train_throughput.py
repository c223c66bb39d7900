"""Train-step throughput of zoo image classifiers under ``model.fit`` on the current backend.

    for b in jax tensorflow torch; do
        KERAS_BACKEND=$b python examples/bench_train_throughput.py ncp_resnet_cifar_small
    done

Prints one table row per model: backend, model, trainable+BN parameters, images/s of
SGD + Nesterov train steps on random 32x32 (or the model's input size) images, after
one warm-up fit (compilation excluded).  Options: ``--batch-size``, ``--batches``,
``--jit-compile {auto,true,false}`` (default: XLA on jax/tensorflow, eager torch),
``--dtype-policy float32,mixed_bfloat16`` (one row per Keras dtype policy the model is built
under, as ``hadamard-zoo train --set dtype_policy=...`` builds it; default float32).
"""

import argparse
import time

import keras
import numpy as np

from hadamard_zoo.models import create_model
from hadamard_zoo.training.recipes import global_dtype_policy


def throughput(name, batch_size=128, batches=12, jit_compile=None, dtype_policy="float32"):
    with global_dtype_policy(dtype_policy):
        model = create_model(name)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=keras.config.backend() != "torch" if jit_compile is None else jit_compile,
    )
    shape = tuple(model.input_shape[1:])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size * batches, *shape)).astype("float32")
    y = rng.integers(0, model.output_shape[-1], (batch_size * batches,))
    model.fit(x[: 2 * batch_size], y[: 2 * batch_size], batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return model.count_params(), len(x) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--jit-compile", choices=["auto", "true", "false"], default=None)
    parser.add_argument("--dtype-policy", default="float32", help="comma-separated, e.g. float32,mixed_bfloat16")
    args = parser.parse_args()
    jit = {"auto": "auto", "true": True, "false": False, None: None}[args.jit_compile]
    print("| backend | model | jit_compile | dtype policy | params | train img/s |")
    print("|---|---|---|---|---:|---:|")
    for name in args.models:
        for policy in [p for p in args.dtype_policy.split(",") if p]:
            params, rate = throughput(name, args.batch_size, args.batches, jit, policy)
            print(f"| {keras.config.backend()} | {name} | {jit if jit is not None else 'default'} | {policy} | "
                  f"{params:,} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
