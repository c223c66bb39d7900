"""Chunk-size sweep of the chunked causal linear attention against the masked form (one backend).

    KERAS_BACKEND=jax python examples/bench_attention_chunk_size.py [--t 4096] [--repeats 10]

Prints a table: chunk size, median wall time (ms) of the jitted chunked form, and its speedup over the
jitted masked reference (B 4, D 64, forward). JAX only (the case the ops table found sensitive).
"""

import argparse
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--chunks", default="32,64,128,256,512")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from hadamard_zoo.ops import attention as A

    rng = np.random.default_rng(0)
    b, d = 4, 64
    q, k = (jnp.asarray(rng.normal(size=(b, args.t, d)).astype("float32") * 0.125) for _ in range(2))
    v = jnp.asarray(rng.normal(size=(b, args.t, d)).astype("float32"))

    def median_ms(fn):
        fn().block_until_ready()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn().block_until_ready()
            times.append(time.perf_counter() - t0)
        return float(np.median(times)) * 1e3

    ref = jax.jit(A.causal_linear_attention_reference)
    ref_ms = median_ms(lambda: ref(q, k, v))
    print(f"B {b}, T {args.t}, D {d}, jax.jit, forward; masked reference {ref_ms:.1f} ms\n")
    print("| chunk | chunked ms | speedup |\n|---:|---:|---:|")
    for c in (int(x) for x in args.chunks.split(",")):
        f = jax.jit(lambda q, k, v, c=c: A.causal_linear_attention_chunked(q, k, v, chunk_size=c))
        ms = median_ms(lambda: f(q, k, v))
        print(f"| {c} | {ms:.1f} | {ref_ms / ms:.1f}x |")


if __name__ == "__main__":
    main()
