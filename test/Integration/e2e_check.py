#!/usr/bin/env python3
"""What an end-to-end run is checked against, and how it is launched: shared
by e2e_test.py (the suite, on a machine with the compiler) and
scripts/gpu-check.sh (a GPU machine without MLIR, which runs the cases that
scripts/gpu-bundle.sh wrote through moert-run). Needs NumPy only.

Error: max |y - ref| / max |ref|. Tolerances:
- CPU backend vs the NumPy reference: 1e-5 f32, 2e-2 bf16.
- CUDA backend vs the NumPy reference and vs the CPU backend's output of the
  same case: 1e-4 f32, 2e-2 bf16. f32: cuBLAS chooses its own GEMM reduction
  order (split-K included) and device expf/erff/tanhf differ from the host's
  in the last bits; reordering these cases' dot products (at most 256 terms)
  moves a result by about sqrt(256) * 6e-8 = 1e-6 per GEMM, a few GEMMs per
  layer over at most 3 layers. 1e-4 keeps a wide margin over that and stays
  below what real defects give: TF32 tensor-core math (10-bit mantissa,
  about 5e-4), an f32 value rounded through bf16 (about 2e-3), a wrong
  expert or a lost bias (1e-2 and more). bf16: 2e-2 as on the CPU (the CUDA
  FFN also stores its GEMM outputs and act(gate) * up in bf16:
  runtime/cuda/README.md).
The dropped choices (the runner's table) must equal the reference's.

Bundle check (scripts/gpu-check.sh):
  e2e_check.py --bundle DIR --moert-run PATH --backend cpu|cuda --workdir W
builds every case's model .so with runtime/tools/moert-build-model.sh, runs
`moert-run MODEL.so --weights W --backend B --input x.npy --output y.npy`
(one process per rank on CUDA), prints one table and exits 0 when every case
is within tolerance, 1 otherwise, 2 when a model does not build, 77 when no
case could run. DIR/manifest.json
(written by e2e_test.py --bundle) lists the cases: name, dtype ("float32" |
"bfloat16"), ranks, tokens, fuse, dropped (the reference's) and the paths,
relative to DIR, of model_cpp, weights, x, y_ref (NumPy, float64) and y_cpu
(the CPU backend where the bundle was made).
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD_MODEL = os.path.join(ROOT, "runtime", "tools", "moert-build-model.sh")

TOL = {"float32": 1e-5, "bfloat16": 2e-2}
CUDA_TOL = {"float32": 1e-4, "bfloat16": 2e-2}


def tolerance(backend, dtype):
    return (CUDA_TOL if backend == "cuda" else TOL)[dtype]


def rel_error(y, ref):
    """max |y - ref| / max |ref|; inf when y is not finite."""
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    if y.shape != ref.shape or not np.all(np.isfinite(y)):
        return float("inf")
    return float(np.max(np.abs(y - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def dropped_choices(report):
    """The sum of the "layer time dropped" rows of the runner's table."""
    return sum(int(f[2]) for f in (line.split() for line in report.splitlines())
               if len(f) == 3 and f[0].isdigit())


def visible_gpus():
    """(count, why): the GPUs a process started here may use (nvidia-smi -L,
    limited by CUDA_VISIBLE_DEVICES)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0, "nvidia-smi not found (no NVIDIA driver on this machine)"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 0, f"nvidia-smi -L failed: {e}"
    if out.returncode != 0:
        return 0, f"nvidia-smi -L exited {out.returncode}: {(out.stdout + out.stderr).strip()}"
    present = sum(line.startswith("GPU ") for line in out.stdout.splitlines())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        # CUDA enumerates the entries up to the first that names no device.
        count = 0
        for entry in visible.split(","):
            entry = entry.strip()
            if not entry or (entry.lstrip("-").isdigit() and not 0 <= int(entry) < present):
                break
            count += 1
        if count < present:
            return count, f"{count} of {present} GPU(s) visible (CUDA_VISIBLE_DEVICES={visible!r})"
    return present, f"{present} GPU(s)" if present else "nvidia-smi -L lists no GPU"


# Variables by which runtime/launch finds a launcher; a stale one in this
# environment would make a plain run look like part of another launch.
LAUNCH_VARIABLES = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Launch:
    """Exit codes per process (None: killed), rank 0's stdout, every
    process's stderr."""

    def __init__(self, codes, stdout, stderr, timed_out):
        self.codes, self.stdout, self.stderr, self.timed_out = codes, stdout, stderr, timed_out

    @property
    def ok(self):
        return all(c == 0 for c in self.codes)

    def why(self):
        return ("timed out: " if self.timed_out else "") + ", ".join(f"rank {r} {'killed' if c is None else f'exited {c}'}"
                         for r, c in enumerate(self.codes) if c != 0)


def launch(cmd, processes, timeout):
    """Runs cmd once per rank, torchrun style (RANK, WORLD_SIZE, LOCAL_RANK,
    LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT: a free port); one
    process gets no launch variables. The first process that fails, or the
    timeout, ends the others (their whole process groups)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}
    if processes > 1:
        env.update(WORLD_SIZE=str(processes), LOCAL_WORLD_SIZE=str(processes),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for r in range(processes):
            rank_env = dict(env, RANK=str(r), LOCAL_RANK=str(r)) if processes > 1 else env
            out = open(os.path.join(tmp, f"{r}.out"), "w+")
            err = open(os.path.join(tmp, f"{r}.err"), "w+")
            procs.append((subprocess.Popen(cmd, env=rank_env, stdout=out, stderr=err,
                                           start_new_session=True), out, err))
        deadline = time.monotonic() + timeout
        codes = [None] * processes
        timed_out = False
        while any(c is None for c in codes):
            codes = [p.poll() for p, _, _ in procs]
            timed_out = time.monotonic() > deadline
            if timed_out or any(c not in (None, 0) for c in codes):
                for i, (p, _, _) in enumerate(procs):
                    codes[i] = p.poll()
                    if codes[i] is None:
                        try:
                            os.killpg(p.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        p.wait()
                break
            time.sleep(0.05)
        texts = []
        for _, out, err in procs:
            out.seek(0), err.seek(0)
            texts.append((out.read(), err.read()))
            out.close(), err.close()
    stderr = "".join(e if processes == 1 else "".join(f"[rank {r}] {line}\n" for line in e.splitlines())
                     for r, (_, e) in enumerate(texts))
    return Launch(codes, texts[0][0], stderr, timed_out)


def check_bundle(args):
    bundle = os.path.abspath(args.bundle)
    with open(os.path.join(bundle, "manifest.json")) as f:
        cases = json.load(f)["cases"]
    gpus = None
    if args.backend == "cuda":
        gpus, why = visible_gpus()
        print(f"GPUs: {why}")
    os.makedirs(args.workdir, exist_ok=True)

    # Every model first (in parallel): a model that does not build here is a
    # problem of this machine, not of the backend under test.
    def build(case):
        so = os.path.join(args.workdir, case["name"], "model.so")
        os.makedirs(os.path.dirname(so), exist_ok=True)
        out = subprocess.run([BUILD_MODEL, os.path.join(bundle, case["model_cpp"]), so],
                             capture_output=True, text=True)
        return so, out
    with concurrent.futures.ThreadPoolExecutor(args.jobs or os.cpu_count()) as pool:
        built = list(pool.map(build, cases))
    for case, (_, out) in zip(cases, built):
        if out.returncode != 0:
            print(f"error: building {case['model_cpp']} failed:\n{out.stdout}{out.stderr}", file=sys.stderr)
            return 2

    rows, failures, ran = [], 0, 0
    crashed = []  # (case, stderr) of the runs that failed
    for case, (so, _) in zip(cases, built):
        dtype, ranks, work = case["dtype"], case["ranks"], os.path.dirname(so)
        row = [case["name"], {"float32": "f32", "bfloat16": "bf16"}[dtype], "yes" if case["fuse"] else "no",
               str(ranks)]
        if gpus is not None and ranks > gpus:
            rows.append(row + ["", "", "", "", f"skipped: needs {ranks} GPUs, {gpus} visible"])
            continue
        y_path = os.path.join(work, "y.npy")
        if os.path.exists(y_path):
            os.remove(y_path)
        cmd = [args.moert_run, so, "--weights", os.path.join(bundle, case["weights"]),
               "--backend", args.backend, "--tokens", str(case["tokens"]),
               "--input", os.path.join(bundle, case["x"]), "--output", y_path]
        run = launch(cmd, ranks if args.backend == "cuda" else 1, args.timeout)
        ran += 1
        for name, text in (("stdout", run.stdout), ("stderr", run.stderr)):
            with open(os.path.join(work, name), "w") as f:
                f.write(text)
        tol = tolerance(args.backend, dtype)
        if not run.ok:
            failures += 1
            rows.append(row + ["", "", f"{tol:.0e}", "", f"FAIL: {run.why()} ({work}/stderr)"])
            crashed.append((case["name"], run.stderr))
            continue
        y = np.load(y_path)
        errs = [rel_error(y, np.load(os.path.join(bundle, case[ref]))) for ref in ("y_ref", "y_cpu")]
        dropped = dropped_choices(run.stdout)
        ok = all(e <= tol for e in errs) and dropped == case["dropped"]
        failures += not ok
        rows.append(row + [f"{errs[0]:.2e}", f"{errs[1]:.2e}", f"{tol:.0e}", f"{dropped}/{case['dropped']}",
                           "ok" if ok else "FAIL"])

    header = ["case", "dtype", "fused", "ranks", "vs NumPy", "vs CPU", "tol", "dropped", "result"]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header) - 1)]
    print(f"backend {args.backend}, bundle {bundle}")
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    print(f"{ran - failures} ok, {failures} failed, {len(cases) - ran} skipped "
          f"(dropped: the run's / the reference's; logs under {os.path.abspath(args.workdir)})")
    # Where the logs may not come back (a lent GPU), the reason has to be here.
    for name, stderr in crashed:
        tail = stderr.strip().splitlines()[-20:]
        print(f"--- {name}: last {len(tail)} lines of stderr")
        print("\n".join(tail))
    if failures:
        return 1
    return 0 if ran else 77


def main():
    ap = argparse.ArgumentParser(description="Run and check the cases of a GPU bundle (scripts/gpu-bundle.sh).")
    ap.add_argument("--bundle", required=True, help="the bundle directory (holds manifest.json)")
    ap.add_argument("--moert-run", required=True)
    ap.add_argument("--backend", choices=("cpu", "cuda"), required=True)
    ap.add_argument("--workdir", required=True, help="model .so files, outputs and logs")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run")
    ap.add_argument("--jobs", type=int, default=0, help="parallel model builds (default: CPU count)")
    return check_bundle(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
