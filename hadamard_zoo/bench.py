"""Benchmarks: reference vs dispatched ops (time and peak memory), per backend.

    python -m hadamard_zoo.bench ops [--backend-all] [--quick] [--only a,b] [--no-memory]
    python -m hadamard_zoo.bench models ...      (see hadamard_zoo.bench_models)

``ops``: every public op ``foo`` of :mod:`hadamard_zoo.ops` that has a
``foo_reference`` and an input builder below (ops without a builder are listed
as skipped, so the table works while ops are being added) is timed twice at a
memory-bound size: with fusion off (the ``keras.ops`` reference) and on (the
dispatched accelerated path), forward and forward+backward (gradient of
``sum(output)`` wrt every floating input).

Modes (the ``mode`` column):

* ``eager``: the op called directly.  The reference is then a chain of separate
  ``keras.ops`` calls (op-by-op on JAX, eager TF, eager torch); the dispatched
  path is whatever the op registered (jitted on JAX, XLA/plain on TF, ATen on torch).
* ``jit`` (JAX only): both wrapped in ``jax.jit`` (the reference compiled by XLA
  as a whole), as inside Keras' jitted train step.

Timing: one warm-up call (compilation), then the median of ``--repeats`` calls
(3 when a call takes over a second), reference and dispatched interleaved so
background load hits both alike.  ``speedup = reference / dispatched``.  Both
wall-clock time and process CPU time (all threads, ``time.process_time``) are
reported: on a shared machine the CPU time is the steadier measure of work
(but it also counts a second thread's time, so a well-parallelized path can
show a smaller CPU speedup than wall speedup on an idle machine).  The CPU
time is a mean (the clock of this VM ticks in ~8 ms steps), the wall time a median.

Peak memory: measured in a separate worker process per backend, started with
``MALLOC_MMAP_THRESHOLD_=65536`` so that every large buffer is ``mmap``-ed and
returned to the OS when freed; for each measurement the kernel's high-water
mark is reset (``/proc/self/clear_refs``), the call runs once (after its
warm-up), and ``peak = VmHWM - VmRSS before the call`` (output included,
inputs excluded).  TensorFlow keeps freed memory in its own allocator, so its
worker runs with ``TF_CPU_ALLOCATOR_USE_BFC=true`` and reports the allocator's
peak (``tf.config.experimental.get_memory_info("CPU:0")``) instead.

Each backend runs in its own process (``KERAS_BACKEND`` must be set before
Keras is imported); ``--backend-all`` spawns one per backend and prints all tables.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

BACKENDS = ("jax", "tensorflow", "torch")


from hadamard_zoo.bench_cases import BUILDERS, discover_ops  # noqa: E402  (the ops' inputs)


# ------------------------------------------------------------------ backend glue
def _backend():
    import keras

    return keras.config.backend()


def _to_backend(arrays):
    from keras import ops

    return [ops.convert_to_tensor(a) for a in arrays]


def _block(x):
    if _backend() == "jax":
        import jax

        jax.block_until_ready(x)
    return x


def _cotangent(fn, tensors):
    """A fixed random cotangent shaped like the op's output (so no pass sees a constant)."""
    import numpy as np
    from keras import ops

    import hadamard_zoo.ops as hops

    with hops.fusion(True):
        shape = tuple(fn(*tensors).shape)
    return ops.convert_to_tensor(np.random.default_rng(1).standard_normal(shape, dtype="float32"))


def _make_callable(fn, tensors, fused, grad, jit, cot=None, compiled=False):
    """A no-argument callable running the op (and its gradient) with fusion on/off.

    The backward pass is the gradient of ``sum(op(...) * cot)`` wrt every
    floating input, ``cot`` a fixed random tensor (a vector-Jacobian product).
    """
    import hadamard_zoo.ops as hops

    backend = _backend()
    diff = [i for i, t in enumerate(tensors) if "float" in str(t.dtype)]
    if grad and cot is None:
        cot = _cotangent(fn, tensors)

    if backend == "jax":
        import jax
        import jax.numpy as jnp

        if grad:

            def run(c, *ts):
                def loss(*d):
                    full = list(ts)
                    for i, v in zip(diff, d):
                        full[i] = v
                    return jnp.sum(fn(*full).astype(jnp.float32) * c)

                with hops.fusion(fused):
                    return jax.value_and_grad(loss, argnums=tuple(range(len(diff))))(*[ts[i] for i in diff])

        else:

            def run(*ts):
                with hops.fusion(fused):
                    return fn(*ts)

        args = ([cot] if grad else []) + list(tensors)
        if jit:
            jitted = jax.jit(run)
            return lambda: jitted(*args)
        return lambda: run(*args)

    if backend == "tensorflow":
        import tensorflow as tf

        def call():
            with hops.fusion(fused):
                if not grad:
                    return fn(*tensors)
                with tf.GradientTape() as tape:
                    for i in diff:
                        tape.watch(tensors[i])
                    y = tf.reduce_sum(tf.cast(fn(*tensors), tf.float32) * cot)
                return y, tape.gradient(y, [tensors[i] for i in diff])

        return call

    import torch

    def call():
        with hops.fusion(fused), hops.torch_compile(compiled and fused):
            if not grad:
                with torch.no_grad():
                    return fn(*tensors)
            leaves = list(tensors)
            for i in diff:
                leaves[i] = tensors[i].detach().requires_grad_(True)
            y = (fn(*leaves).float() * cot).sum()
            return y, torch.autograd.grad(y, [leaves[i] for i in diff])

    return call


#: ops with a ``torch.compile`` form (HADAMARD_ZOO_TORCH_COMPILE): torch rows get a "compiled" mode too,
#: the dispatched path compiled against the same eager reference (compilation excluded from the timing).
TORCH_COMPILED_OPS = ("star", "glu", "ccp_step", "ncp_step")


def _modes(name=None):
    if _backend() == "jax":
        return ("jit", "eager")
    if _backend() == "torch" and name in TORCH_COMPILED_OPS:
        return ("eager", "compiled")
    return ("eager",)


# ------------------------------------------------------------------ measurement
def _time_pair(ref, disp, repeats):
    """Median wall ms and mean CPU ms of ``ref`` and ``disp`` (``ref`` may be None)."""
    first = 0.0
    for f in (ref, disp):
        if f is not None:
            t0 = time.perf_counter()
            _block(f())
            first = max(first, time.perf_counter() - t0)
    n = repeats if first < 1.0 else min(repeats, 3)
    wall = {"ref": [], "disp": []}
    cpu = {"ref": [], "disp": []}
    for _ in range(n):
        for key, f in (("ref", ref), ("disp", disp)):
            if f is None:
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            _block(f())
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    med = {k: statistics.median(v) * 1e3 if v else None for k, v in wall.items()}
    # the mean, not the median: this VM's process CPU clock ticks in ~8 ms steps
    med_cpu = {k: statistics.fmean(v) * 1e3 if v else None for k, v in cpu.items()}
    return med["ref"], med["disp"], med_cpu["ref"], med_cpu["disp"]


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _peak_mb(call):
    """Peak memory increase of one call (after a warm-up), in MB.

    TensorFlow: its CPU allocator keeps freed memory, so the RSS does not move;
    the worker runs it with ``TF_CPU_ALLOCATOR_USE_BFC=true`` and reads the
    allocator's own peak (``tf.config.experimental.get_memory_info``).
    """
    _block(call())  # warm-up: compilation, caches
    gc.collect()
    if _backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        out = call()
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
        del out
        gc.collect()
        return max(0, peak - before) / 2**20
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _status_kb("VmRSS")
    out = _block(call())
    peak = _status_kb("VmHWM")
    del out
    gc.collect()
    return max(0, peak - before) / 1024.0  # kB -> MB (MiB)


def _cases(names, quick):
    import numpy as np

    import hadamard_zoo.ops as hops

    for name in names:
        for case_index, case in enumerate(BUILDERS[name](hops, quick, np.random.default_rng(0))):
            yield name, case_index, case


def run_backend(names, quick, repeats, memory):
    backend = _backend()
    rows = []
    for name, ci, (label, fn, arrays, opts, passes) in _cases(names, quick):
        tensors = _to_backend(arrays)
        cot = _cotangent(fn, tensors) if "fwd+bwd" in passes else None
        no_ref = (opts or {}).get("no_ref", ())
        for mode in _modes(name):
            for p in passes:
                grad = p == "fwd+bwd"
                row = dict(backend=backend, op=name, case=label, case_index=ci, mode=mode, pass_=p)
                ref = disp = None
                try:
                    disp = _make_callable(fn, tensors, True, grad, mode == "jit", cot, mode == "compiled")
                    ref = None if p in no_ref else _make_callable(fn, tensors, False, grad, mode == "jit", cot)
                    row["ref_ms"], row["disp_ms"], row["ref_cpu_ms"], row["disp_cpu_ms"] = _time_pair(ref, disp, repeats)
                except Exception as exc:  # report, keep going
                    row["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
                rows.append(row)
                print("ROW " + json.dumps(row), file=sys.stderr, flush=True)
                del ref, disp
                gc.collect()
        del tensors, cot
        gc.collect()
    if memory:
        mem = _memory_subprocess(names, quick)
        for row in rows:
            key = (row["op"], row["case_index"], row["mode"], row["pass_"])
            if key in mem:
                row.update(mem[key])
    return rows


def _memory_subprocess(names, quick):
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "65536",
        "TF_CPU_ALLOCATOR_USE_BFC": "true",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    cmd = [sys.executable, "-m", "hadamard_zoo.bench", "ops", "--memory-worker", "--only", ",".join(names)]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    result = {}
    for line in proc.stdout.splitlines():
        if line.startswith("MEM "):
            r = json.loads(line[4:])
            result[(r["op"], r["case_index"], r["mode"], r["pass_"])] = {
                k: r[k] for k in ("ref_mb", "disp_mb", "mem_error") if k in r
            }
    if proc.returncode != 0:
        print(f"memory worker exited with {proc.returncode}:\n{proc.stderr[-1500:]}", file=sys.stderr)
    return result


def memory_worker(names, quick):
    for name, ci, (label, fn, arrays, opts, passes) in _cases(names, quick):
        tensors = _to_backend(arrays)
        cot = _cotangent(fn, tensors) if "fwd+bwd" in passes else None
        no_ref = (opts or {}).get("no_ref", ())
        for mode in _modes(name):
            for p in passes:
                r = dict(op=name, case_index=ci, mode=mode, pass_=p)
                try:
                    for key, fused in (("ref_mb", False), ("disp_mb", True)):
                        if not fused and p in no_ref:
                            continue
                        call = _make_callable(fn, tensors, fused, p == "fwd+bwd", mode == "jit", cot, mode == "compiled")
                        r[key] = _peak_mb(call)
                        del call
                        gc.collect()
                except Exception as exc:
                    r["mem_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
                print("MEM " + json.dumps(r), flush=True)
        del tensors, cot
        gc.collect()


# ------------------------------------------------------------------ output
def _fmt_ms(v):
    return "" if v is None else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def _fmt_mb(v):
    return "" if v is None else f"{v:.0f}"


def print_table(rows, skipped=(), out=sys.stdout):
    print(
        "| backend | op | case | mode | pass | ref ms | disp ms | speedup | ref CPU ms | disp CPU ms "
        "| CPU speedup | ref peak MB | disp peak MB |",
        file=out,
    )
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|", file=out)
    for r in rows:
        if "error" in r:
            print(
                f"| {r['backend']} | {r['op']} | {r['case']} | {r['mode']} | {r['pass_']} | error: {r['error']} "
                "| | | | | | | |",
                file=out,
            )
            continue
        ref_ms = r["ref_ms"] if r.get("ref_ms") is not None else None
        speed = f"{r['ref_ms'] / r['disp_ms']:.2f}x" if ref_ms and r["disp_ms"] else "n/a"
        cpu_speed = f"{r['ref_cpu_ms'] / r['disp_cpu_ms']:.2f}x" if ref_ms and r.get("disp_cpu_ms") else "n/a"
        ref_cell = _fmt_ms(ref_ms) if ref_ms is not None else "not run"
        print(
            f"| {r['backend']} | {r['op']} | {r['case']} | {r['mode']} | {r['pass_']} | {ref_cell} | "
            f"{_fmt_ms(r['disp_ms'])} | {speed} | {_fmt_ms(r.get('ref_cpu_ms'))} | {_fmt_ms(r.get('disp_cpu_ms'))} | "
            f"{cpu_speed} | {_fmt_mb(r.get('ref_mb'))} | {_fmt_mb(r.get('disp_mb'))} |",
            file=out,
        )
    if skipped:
        print(f"\nOps without an input builder (not benchmarked): {', '.join(skipped)}", file=out)


def _machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}"


def _select(only):
    available = discover_ops()
    names = [n for n in available if n in BUILDERS]
    skipped = [n for n in available if n not in BUILDERS]
    if only:
        wanted = [n for n in only.split(",") if n]
        unknown = [n for n in wanted if n not in BUILDERS]
        if unknown:
            raise SystemExit(f"no input builder for {unknown}; known: {sorted(BUILDERS)}")
        names = [n for n in names if n in wanted]
        skipped = []
    return names, skipped


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "models":
        from hadamard_zoo import bench_models

        return bench_models.main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m hadamard_zoo.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("suite", choices=["ops", "models"])
    parser.add_argument("--backend-all", action="store_true", help="one subprocess per backend, all tables")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer cases")
    parser.add_argument("--only", default="", help="comma-separated op names")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory worker")
    parser.add_argument("--json", default="", help="also write the rows to this JSON file")
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.backend_all:
        rows, skipped = [], set()
        for backend in BACKENDS:
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            cmd = [sys.executable, "-m", "hadamard_zoo.bench", "ops", "--repeats", str(args.repeats), "--json", "-"]
            cmd += ["--quick"] * args.quick + ["--no-memory"] * args.no_memory
            if args.only:
                cmd += ["--only", args.only]
            print(f"# running {backend} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            got = [json.loads(line[5:]) for line in proc.stdout.splitlines() if line.startswith("JSON ")]
            for g in got:
                rows.extend(g["rows"])
                skipped.update(g["skipped"])
            if proc.returncode != 0:
                print(f"{backend} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
        print(f"Machine: {_machine()}; command: python -m hadamard_zoo.bench {' '.join(argv)}\n")
        print_table(rows, sorted(skipped))
        if args.json and args.json != "-":
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return 0

    names, skipped = _select(args.only)
    if args.memory_worker:
        memory_worker(names, args.quick)
        return 0
    rows = run_backend(names, args.quick, args.repeats, not args.no_memory)
    if args.json == "-":
        print("JSON " + json.dumps({"rows": rows, "skipped": skipped}))
        return 0
    print(f"Machine: {_machine()}; backend {_backend()}; command: python -m hadamard_zoo.bench {' '.join(argv)}\n")
    print_table(rows, skipped)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
