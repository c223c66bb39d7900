"""Train CIFAR-10 checkpoints on a lent GPU machine within one device call (the `device` tool).

Used on 2026-11-29 to train ``ncp_resnet18_cifar.cifar10`` on one H200. Not part of the
package or the tests: the GPU machine lacks Keras and the datasets, so they travel with
the call.  Preparation here (the call's working tree must stay under 64 MiB, and
``weights/`` alone is ~80 MB, so move the ``*.weights.h5`` files out for the call and
back afterwards)::

    echo /.gpu/ >> .git/info/exclude; echo /.whl/ >> .git/info/exclude
    mkdir -p .gpu && cp ../shared/datasets/cifar10-jpeg.zip tools/device_train.py .gpu/
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl keras==3.15.1 namex optree
    mkdir -p /tmp/w && mv weights/*.weights.h5 /tmp/w/

then ``run`` with ``carry=[".gpu", ".whl"]`` and the command::

    T0=$(date +%s); export T0; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site:$PWD HADAMARD_ZOO_DATA=$PWD/.gpu HADAMARD_ZOO_CACHE=/tmp/hzc BUDGET=510 PACK_BY=540 &&
    python3 .gpu/device_train.py

and afterwards ``mv /tmp/w/* weights/``; ``cat bundle.part* > b.tar`` from the call's files.

What it does, for each job at once (they share the GPU): a 2-epoch probe on a 60-batch
subset (JAX first, PyTorch if JAX fails) times an epoch and the fixed costs (start-up,
compilation, test evaluation); then ``python -m hadamard_zoo train <model> --epochs E``
with E the most epochs that end before ``BUDGET`` seconds after ``T0`` (capped; a job
whose E is under its floor is skipped; ``FIXED_EPOCHS`` skips the probe).  Finished runs
are published (float16) and the float16 file evaluated; the published files, run logs
and histories are tarred and split into 15 MB parts in ``$OUT`` (a call returns at most
8 files of 16 MB).  Measured on one H200: the three probes at once gave ~40 ms a step
each; ncp_resnet18_cifar alone ran at 25-26 ms a step (5 s an epoch) with JAX.
"""

import json
import math
import os
import re
import subprocess
import sys
import tarfile
import threading
import time

T0 = float(os.environ.get("T0", time.time()))
BUDGET = float(os.environ.get("BUDGET", 520))  # seconds from T0 by which training must end
PACK_BY = float(os.environ.get("PACK_BY", 545))
OUT = os.environ.get("OUT", "/tmp/out")
SMALL = os.environ.get("SMALL") == "1"  # a CPU dry run of this script
RUNS = "/tmp/gpu_runs"
LOGS = "/tmp/gpu_logs"  # bundled at the end: $OUT takes at most 8 files
PUB = "/tmp/pub"
PY = sys.executable

# model, epoch cap, fewest epochs worth running
JOBS = [
    ("ncp_resnet18_cifar", 60, 15),
    ("starnet_cifar", 100, 30),
    ("monet_cifar", 100, 30),
]
if os.environ.get("JOBS"):
    JOBS = [j for j in JOBS if j[0] in os.environ["JOBS"].split(",")]

LOG_LOCK = threading.Lock()


def now():
    return time.time() - T0


def log(msg):
    with LOG_LOCK:
        print(f"[{now():6.1f}s] {msg}", flush=True)
        with open(os.path.join(OUT, "orchestrate.log"), "a") as f:
            f.write(f"[{now():6.1f}s] {msg}\n")


def run_timed(cmd, env, logfile, deadline):
    """Run cmd, timestamp each output line into logfile; kill at deadline (seconds from T0).

    Returns (rc, [(t, line), ...]); rc None when killed."""
    lines = []
    with open(logfile, "w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        killer = threading.Timer(max(1.0, deadline - now()), proc.kill)
        killer.start()
        try:
            for line in proc.stdout:
                t = now()
                lines.append((t, line.rstrip("\n")))
                f.write(f"[{t:6.1f}] {line}")
                f.flush()
            rc = proc.wait()
        finally:
            killer.cancel()
    if rc < 0:
        rc = None
    return rc, lines


def job_env(backend):
    env = dict(os.environ)
    env.update(KERAS_BACKEND=backend, PYTHONUNBUFFERED="1", XLA_PYTHON_CLIENT_PREALLOCATE="false",
               OMP_NUM_THREADS="4", TF_CPP_MIN_LOG_LEVEL="2")
    return env


STEP_LINE = re.compile(r"^\s*\d+/\d+ - ")


def probe(model, backend, batch):
    """Seconds per training step and per-epoch overhead from a 2-epoch run on 60 batches."""
    out = os.path.join(RUNS, f"probe_{model}_{backend}")
    n_batches = 3 if SMALL else 60  # enough steps that the end-of-epoch checkpoint save is a small share
    cmd = [PY, "-m", "hadamard_zoo", "train", model, "--limit", str(n_batches * batch), "--epochs", "2",
           "--no-resume", "--output-dir", out, "--verbose", "2"]
    t_start = now()
    rc, lines = run_timed(cmd, job_env(backend), os.path.join(LOGS, f"probe_{model}_{backend}.log"), now() + 240)
    t_end = now()
    if rc != 0:
        log(f"{model}: {backend} probe failed (rc {rc}); last lines: {[l for _, l in lines[-6:]]}")
        return None
    marks = {}
    for i, (t, line) in enumerate(lines):
        if line.startswith("Epoch 2/2"):
            marks["start2"] = t
            # the epoch-1 summary line is the last step line before this
            prev = [tt for tt, ll in lines[:i] if STEP_LINE.match(ll)]
            marks["end1"] = prev[-1] if prev else None
        elif "start2" in marks and "end2" not in marks and STEP_LINE.match(line):
            marks["end2"] = t
    if not all(marks.get(k) is not None for k in ("start2", "end2", "end1")):
        log(f"{model}: {backend} probe output not understood: {marks}")
        return None
    step = (marks["end2"] - marks["start2"]) / n_batches
    overhead = marks["start2"] - marks["end1"]
    # start-up (imports, data, first-epoch compile) and the end (test evaluation), beyond the steps
    fixed = (marks["end1"] - t_start - n_batches * step) + (t_end - marks["end2"])
    log(f"{model}: {backend} probe ok: {step * 1000:.1f} ms/step, {overhead:.1f} s between epochs, "
        f"{fixed:.0f} s fixed cost (start-up, compile, test evaluation)")
    return step, overhead, fixed


def run_job(model, cap, floor, results):
    batch = {"ncp_resnet18_cifar": 256}.get(model, 128)
    got = None
    if os.environ.get("FIXED_EPOCHS"):  # speed known from an earlier call: no probe
        backend, got = "jax", (0.0, 0.0, 0.0)
    for backend in ([] if got else ["jax", "torch"]):
        got = probe(model, backend, batch)
        if got:
            break
    if not got:
        results[model] = {"status": "probe failed"}
        return
    step, overhead, fixed = got
    steps = math.ceil((500 if SMALL else 50000) / batch)
    epoch_s = steps * step * 1.1 + overhead + 1.0
    cap = min(cap, int(os.environ.get("MAX_EPOCHS", cap)))
    floor = min(floor, cap)
    startup = max(45.0, 1.2 * fixed + 15.0)  # imports, data, compile, final test evaluation, margin
    avail = BUDGET - now() - startup
    epochs = min(cap, int(avail // epoch_s)) if not os.environ.get("FIXED_EPOCHS") else int(os.environ["FIXED_EPOCHS"])
    log(f"{model}: {backend}, est. {epoch_s:.1f} s/epoch, {avail:.0f} s available -> {epochs} epochs")
    if epochs < floor:
        results[model] = {"status": f"skipped: {epochs} epochs < {floor}", "backend": backend, "epoch_s": epoch_s}
        return
    out = os.path.join(RUNS, model)
    cmd = [PY, "-m", "hadamard_zoo", "train", model, "--epochs", str(epochs), "--output-dir", out, "--verbose", "2"]
    if SMALL:
        cmd += ["--limit", "500"]
    t_start = now()
    rc, lines = run_timed(cmd, job_env(backend), os.path.join(LOGS, f"train_{model}.log"), BUDGET + 10)
    info = {"status": "trained" if rc == 0 else f"failed rc {rc}", "backend": backend, "epochs": epochs,
            "est_epoch_s": epoch_s, "probe_step_s": step, "train_wall_s": now() - t_start,
            "command": f"KERAS_BACKEND={backend} hadamard-zoo train {model} --epochs {epochs}"}
    results[model] = info
    log(f"{model}: {info['status']} in {info['train_wall_s']:.0f} s")
    if rc != 0:
        return
    try:
        code = ("import json,sys; from hadamard_zoo import release as P; "
                f"e=P.publish({out!r}, directory={os.path.join(PUB, model)!r}, float16=True); print(json.dumps(e))")
        r = subprocess.run([PY, "-c", code], env=job_env(backend), capture_output=True, text=True,
                           timeout=max(5, PACK_BY - 15 - now()))
        entry = json.loads(r.stdout.strip().splitlines()[-1])
        info["entry"] = entry
        log(f"{model}: published {entry['file']} (float32 test top-1 {entry['value']})")
        if PACK_BY - 20 - now() > 25:
            r = subprocess.run([PY, "-m", "hadamard_zoo", "eval", os.path.join(PUB, model, entry["file"]), "--model", model, "--json"]
                               + (["--limit", "500"] if SMALL else []),
                               env=job_env(backend), capture_output=True, text=True, timeout=max(5, PACK_BY - 15 - now()))
            info["eval16_stdout"] = r.stdout[-2000:]
            log(f"{model}: float16 eval: {r.stdout.strip()[-300:]}")
    except Exception as exc:  # noqa: BLE001
        log(f"{model}: publish/eval failed: {exc!r}")


def pack(results):
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=str)
    bundle = "/tmp/bundle.tar"
    with tarfile.open(bundle, "w") as tar:
        if os.path.isdir(PUB):
            tar.add(PUB, arcname="pub")
        tar.add(LOGS, arcname="logs")
        for model, *_ in JOBS:
            d = os.path.join(RUNS, model)
            if not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                p = os.path.join(d, name)
                if os.path.isfile(p) and not name.endswith(".h5"):
                    tar.add(p, arcname=f"runs/{model}/{name}")
    size = os.path.getsize(bundle)
    part = 15 * 1024 * 1024
    with open(bundle, "rb") as src:
        i = 0
        while True:
            chunk = src.read(part)
            if not chunk:
                break
            with open(os.path.join(OUT, f"bundle.part{i}"), "wb") as dst:
                dst.write(chunk)
            i += 1
    log(f"packed {size / 1e6:.1f} MB in {i} parts")


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(RUNS, exist_ok=True)
    os.makedirs(LOGS, exist_ok=True)
    log(f"jobs {JOBS}, budget {BUDGET} s, pack by {PACK_BY} s")
    t = now()
    r = subprocess.run([PY, "-c", "from hadamard_zoo.data import images as I; I.load_cifar10(split='train'); "
                        "I.load_cifar10(split='test')"], env=job_env("jax"), capture_output=True, text=True)
    log(f"data decoded/cached in {now() - t:.0f} s (rc {r.returncode}) {r.stderr[-500:] if r.returncode else ''}")
    results = {}
    threads = [threading.Thread(target=run_job, args=(m, c, f, results)) for m, c, f in JOBS]
    for th in threads:
        th.start()
        time.sleep(2)
    for th in threads:
        th.join(timeout=max(1, PACK_BY - now()))
    try:
        pack(results)
    except Exception as exc:  # noqa: BLE001
        log(f"pack failed: {exc!r}")
        with open(os.path.join(OUT, "results.json"), "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
