#!/usr/bin/env python3
"""Where a decode step's expert GEMM time goes, by rows per expert (issue 15).

For each dtype, moe-bench-cpu-gemm times one weight matrix (Mixtral's gate and
up projections: n 14336, k 4096) on 1 core (taskset -c 0, 1 thread) twice:
- `DRAM`: copies end to end well past the last-level cache, each call on the
  next copy, with a plain read of a copy timed in turn (`read`);
- `cache`: one copy of a quarter of the last-level cache (at most 8 MB;
  n shortened), which stays there: the kernel's own speed, with no DRAM
  stall, and n long enough that packing X stays a small part.
`peak` is the weights' rate at which the multiply-adds alone would take all
the time at the vector unit's measured peak (VDPBF16PS, VFMADD231PS). A row
count is bound by memory while `cache` and `peak` exceed `read`; where
`cache` falls to `DRAM`, the core is the bound, and a faster memory stream
cannot help. Writes bench/results/cpu_gemm-<cpu>-<date>.{md,png,log}.

usage: cpu_gemm.py [--build build] [--rows 1,2,...] [--dtypes bf16,f32]
                   [--min-seconds 2] [--out-dir DIR]
"""
import argparse
import datetime
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cpu_layer"))
import report  # noqa: E402
from cpu_layer import cpu_name, llc_megabytes  # noqa: E402

N, K = 14336, 4096
ROW = re.compile(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$")


def run(bench, dtype, n, footprint, rows, min_seconds, log):
    cmd = ["taskset", "-c", "0", bench, "--n", str(n), "--k", str(K),
           "--rows", ",".join(map(str, rows)), "--dtype", dtype,
           "--threads", "1", "--footprint-mb", str(footprint),
           "--min-seconds", str(min_seconds)]
    log.write("$ " + " ".join(cmd) + "\n")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    log.write(out)
    log.flush()
    parsed = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            parsed[int(m.group(1))] = {"gbs": float(m.group(3)),
                                       "read": float(m.group(5)),
                                       "peak": float(m.group(6))}
    return parsed


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--rows", default="1,2,3,4,5,6,7,8,10,12,16")
    p.add_argument("--dtypes", default="bf16,f32")
    p.add_argument("--min-seconds", type=float, default=2.0)
    p.add_argument("--out-dir", default=report.RESULTS)
    args = p.parse_args()
    bench = os.path.join(args.build, "bench", "cpu_gemm", "moe-bench-cpu-gemm")
    rows = [int(r) for r in args.rows.split(",")]
    cpu, slug = cpu_name()
    date = datetime.date.today().isoformat()
    os.makedirs(args.out_dir, exist_ok=True)
    base = os.path.join(args.out_dir, f"cpu_gemm-{slug}-{date}")
    cache_bytes = min(8, llc_megabytes() / 4) * 2 ** 20
    results = {}
    with open(base + ".log", "w") as log:
        for dtype in args.dtypes.split(","):
            element = 2 if dtype == "bf16" else 4
            dram = run(bench, dtype, N, 512, rows, args.min_seconds, log)
            cache = run(bench, dtype, int(cache_bytes // (K * element)), 0,
                        rows, args.min_seconds / 2, log)
            results[dtype] = (dram, cache)

    table = report.Table()
    table.print(f"# Expert GEMM by rows per expert, 1 core ({cpu}, {date})")
    table.print()
    table.print("Produced by `python3 bench/cpu_gemm/cpu_gemm.py` (medians; "
                "the commands and raw output are in the .log).")
    table.print(f"One weight matrix n {N} x k {K} (Mixtral's gate and up "
                "projections), X of `rows` rows, 1 thread on core 0.")
    table.print("`DRAM`: each call on the next of several copies past the "
                "last-level cache; `read`: a plain read of a copy, timed in "
                "turn; `cache`: one copy of "
                f"{cache_bytes / 2 ** 20:.0f} MB (n shortened) that stays in "
                "the last-level cache, the kernel's own speed. `peak`: the weights' rate at which the "
                "multiply-adds alone take all the time at the vector unit's "
                "measured peak. `bound`: the lowest of read, cache and peak.")
    table.print()
    table.print("| dtype | rows | DRAM GB/s | read GB/s | %read | cache GB/s "
                "| peak GB/s | bound |")
    table.print("|---|---:|---:|---:|---:|---:|---:|---|")
    for dtype, (dram, cache) in results.items():
        for r in rows:
            d, c = dram[r], cache[r]
            limits = {"memory": d["read"], "kernel": c["gbs"]}
            if d["peak"] > 0:
                limits["vector peak"] = d["peak"]
            bound = min(limits, key=limits.get)
            peak = f"{d['peak']:.1f}" if d["peak"] > 0 else "–"
            table.print(f"| {dtype} | {r} | {d['gbs']:.1f} | {d['read']:.1f} "
                        f"| {100 * d['gbs'] / d['read']:.0f}% "
                        f"| {c['gbs']:.1f} | {peak} | {bound} |")
    table.write(base + ".md")

    plt = report.pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4),
                             squeeze=False)
    for ax, (dtype, (dram, cache)) in zip(axes[0], results.items()):
        ax.plot(rows, [dram[r]["gbs"] for r in rows], "o-", label="DRAM")
        ax.plot(rows, [dram[r]["read"] for r in rows], "k--", label="read")
        ax.plot(rows, [cache[r]["gbs"] for r in rows], "s-", label="cache (kernel)")
        if dram[rows[0]]["peak"] > 0:
            ax.plot(rows, [dram[r]["peak"] for r in rows], ":", label="vector peak")
        top = max(max(d["read"], cache[r]["gbs"]) for r, d in dram.items())
        ax.set_ylim(0, 1.15 * top)
        ax.set_xlabel("rows per expert")
        ax.set_ylabel("weight GB/s")
        ax.set_title(f"{dtype}, n {N} x k {K}, 1 core")
        ax.legend()
    report.save(fig, base + ".png")


if __name__ == "__main__":
    main()
