"""Model throughput table: params, forward and one-training-step throughput per backend.

    python -m hadamard_zoo.bench models [--models a,b] [--batch 8] [--all-backends]

Each backend runs in its own process (``KERAS_BACKEND`` must be set before
Keras is imported).  Inputs are fixed random tensors shaped like each model's
inputs; classifiers and language models train with sparse cross-entropy on
random labels; models whose training needs a custom loop (RotatE, GANs) report
forward throughput only.  Timings: warm-up calls excluded, median of repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

DEFAULT_MODELS = (
    "pinet_ccp",
    "ncp_resnet_cifar_small",
    "ncp_resnet18_cifar",
    "starnet_cifar",
    "starnet_s1",
    "monet_cifar",
    "gcnn_char_small",
    "linear_attention_lm_char",
    "cope_generator_fmnist",
)


def _inputs(model, batch, rng):
    import keras

    feeds = []
    length = getattr(model, "context_length", None) or 64  # a language model's own window
    for spec in model.inputs:
        shape = (batch,) + tuple(length if s is None else s for s in spec.shape[1:])
        dtype = keras.backend.standardize_dtype(spec.dtype)
        if "int" in dtype:
            feeds.append(rng.integers(0, 10, size=shape).astype(dtype))
        elif len(shape) == 4:
            feeds.append(rng.uniform(0, 255, size=shape).astype(dtype))
        else:
            feeds.append(rng.normal(size=shape).astype(dtype))
    return feeds[0] if len(feeds) == 1 else feeds


def _median_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name, batch, repeats):
    import keras
    import numpy as np

    from hadamard_zoo import models

    rng = np.random.default_rng(0)
    model = models.create_model(name)
    x = _inputs(model, batch, rng)
    out_shape = model.output_shape
    fwd = _median_time(lambda: model.predict_on_batch(x), repeats)
    row = {"model": name, "params": model.count_params(), "batch": batch,
           "input": str(tuple(np.shape(x[0] if isinstance(x, list) else x)[1:])), "forward_per_s": batch / fwd}
    trainable = isinstance(out_shape, tuple) and len(out_shape) in (2, 3) and out_shape[-1] and out_shape[-1] > 1
    if trainable:
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        y = rng.integers(0, out_shape[-1], size=np.shape(model.predict_on_batch(x))[:-1])
        step = _median_time(lambda: model.train_on_batch(x, y), repeats)
        row["train_per_s"] = batch / step
    else:
        row["train_per_s"] = None
    return row


def run_backend(names, batch, repeats):
    import keras

    rows = []
    for name in names:
        try:
            row = measure(name, batch, repeats)
        except Exception as exc:  # report, keep going
            row = {"model": name, "error": f"{type(exc).__name__}: {exc}"[:200]}
        row["backend"] = keras.config.backend()
        rows.append(row)
        print("ROW " + json.dumps(row), flush=True)
    return rows


def print_table(rows):
    header = f"| model | backend | params | input | batch | forward samples/s | train-step samples/s |"
    print(header)
    print("|---|---|---:|---|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['backend']} | error: {r['error']} | | | | |")
            continue
        train = "n/a (custom loop)" if r["train_per_s"] is None else f"{r['train_per_s']:.1f}"
        print(f"| {r['model']} | {r['backend']} | {r['params']:,} | {r['input']} | {r['batch']} | {r['forward_per_s']:.1f} | {train} |")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hadamard_zoo.bench models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all-backends", action="store_true", help="one subprocess per backend")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    if not args.all_backends:
        print_table(run_backend(names, args.batch, args.repeats))
        return 0
    rows = []
    for backend in ("jax", "tensorflow", "torch"):
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        cmd = [sys.executable, "-m", "hadamard_zoo.bench_models", "--models", ",".join(names),
               "--batch", str(args.batch), "--repeats", str(args.repeats)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        got = [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("ROW ")]
        if proc.returncode != 0 and not got:
            print(f"{backend} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        rows.extend(got)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
