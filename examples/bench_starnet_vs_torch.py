"""StarNet s1 on every Keras backend vs a PyTorch StarNet, forward and one training step.

    python examples/bench_starnet_vs_torch.py                    # batch 8, 224x224, 2 threads
    python examples/bench_starnet_vs_torch.py --variant starnet_s050 --size 128 --backends jax,torch

Each implementation runs in its own subprocess (one backend per process, run one
after the other), with the same weights layout, batch and thread count:

* ``pytorch``: ``tests/torch_refs/starnet_torch.py`` (our transcription of the
  published StarNet, timm's state-dict layout; timm itself cannot be imported
  beside the pinned torch here), eager, NCHW, ``torch.set_num_threads``;
* ``keras/<backend>``: ``hadamard_zoo.models.create_model(variant,
  include_preprocessing=False)`` (NHWC); inference = ``predict_on_batch``,
  training = ``train_on_batch`` (``jit_compile``: JAX True, TensorFlow False
  (XLA was slower on CPU, docs/benchmarks.md), torch False = eager).

Both train with SGD (momentum 0.9) on softmax cross-entropy.  Reported: the
median over the timed iterations after warm-up (compilation excluded), as
images/s, and the ratio to PyTorch (> 1: faster than PyTorch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _timeit(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_pytorch(args):
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "tests"))
    from torch_refs.starnet_torch import count_parameters, starnet

    torch.manual_seed(0)
    model = starnet(args.variant, num_classes=1000)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(args.batch, 3, args.size, args.size)).astype("float32"))
    y = torch.from_numpy(np.random.default_rng(1).integers(0, 1000, size=args.batch))
    model.eval()

    def infer():
        with torch.no_grad():
            model(x)

    t_inf = _timeit(infer, args.warmup, args.iters)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    t_train = _timeit(step, args.warmup, args.train_iters)
    return {"impl": "pytorch (eager)", "params": count_parameters(model), "infer_s": t_inf, "train_s": t_train}


def run_keras(args):
    import numpy as np

    backend = os.environ["KERAS_BACKEND"]
    if backend == "torch":
        import torch

        torch.set_num_threads(args.threads)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    sys.path.insert(0, str(ROOT))
    import keras

    from hadamard_zoo import models

    keras.utils.set_random_seed(0)
    model = models.create_model(
        args.variant, input_shape=(args.size, args.size, 3), include_preprocessing=False, num_classes=1000
    )
    jit = {"jax": True, "tensorflow": False, "torch": False}[backend]
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    x = np.random.default_rng(0).normal(size=(args.batch, args.size, args.size, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 1000, size=args.batch)
    t0 = time.perf_counter()
    model.predict_on_batch(x)
    first_infer = time.perf_counter() - t0
    t_inf = _timeit(lambda: model.predict_on_batch(x), args.warmup, args.iters)
    t0 = time.perf_counter()
    model.train_on_batch(x, y)
    first_train = time.perf_counter() - t0
    t_train = _timeit(lambda: model.train_on_batch(x, y), args.warmup, args.train_iters)
    params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return {
        "impl": f"keras/{backend} (jit_compile={jit})",
        "params": params,
        "infer_s": t_inf,
        "train_s": t_train,
        "first_infer_s": first_infer,
        "first_train_s": first_train,
    }


def child(args):
    result = run_pytorch(args) if args.child == "pytorch" else run_keras(args)
    print("RESULT " + json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="starnet_s1")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10, help="timed inference iterations")
    parser.add_argument("--train-iters", type=int, default=5, help="timed training steps")
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument(
        "--omp-wait-policy",
        default="PASSIVE",
        help="OMP_WAIT_POLICY of every run ('' leaves it unset). PASSIVE keeps PyTorch's OpenMP threads from "
        "spinning, which on a shared, oversubscribed CPU made a 7x7 depthwise conv 5x slower (93 vs 17 ms)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    runs = ["pytorch"] + [b.strip() for b in args.backends.split(",") if b.strip()]
    results = []
    for name in runs:
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        if args.omp_wait_policy:
            env["OMP_WAIT_POLICY"] = args.omp_wait_policy
        if name != "pytorch":
            env["KERAS_BACKEND"] = name
        cmd = [sys.executable, __file__, "--child", name] + [
            f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("child", "backends", "omp_wait_policy")
        ]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        results.append(json.loads(lines[-1][len("RESULT "):]))

    ref = next((r for r in results if r["impl"].startswith("pytorch")), None)
    b = args.batch
    print(f"\n{args.variant}, batch {b}, {args.size}x{args.size}, {args.threads} threads, "
          f"OMP_WAIT_POLICY={args.omp_wait_policy or 'unset'}; images/s (median); ratio = this / PyTorch; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| implementation | trainable params | inference img/s | ratio | train step img/s | ratio | first predict / first train step (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        inf, tr = b / r["infer_s"], b / r["train_s"]
        ri = f"{inf / (b / ref['infer_s']):.2f}" if ref else "-"
        rt = f"{tr / (b / ref['train_s']):.2f}" if ref else "-"
        first = f"{r['first_infer_s']:.1f} / {r['first_train_s']:.1f}" if "first_infer_s" in r else "-"
        print(f"| {r['impl']} | {r['params']:,} | {inf:.1f} | {ri} | {tr:.1f} | {rt} | {first} |")


if __name__ == "__main__":
    main()
