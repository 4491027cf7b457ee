#!/usr/bin/env python3
"""Compile time of the moe-mlir pipeline versus layer count.

Generates DeepSeek-V3-shaped HF configs (256 experts, 8 groups, a shared
expert) with more and more layers, then times import (moe-translate
--import-hf) and planning (moe-opt --canonicalize --moe-assign-parallelism)
separately, median of several runs, and prints a table. The time per layer
should stay flat: the IR grows with layers, not layers x experts. Writes the
table and a plot (time vs layers) to bench/results/compile_time-*.{md,png}.

usage: bench/compile_time.py [--build build] [--runs 5] [--mesh 4x8]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_CONFIG = os.path.join(ROOT, "examples", "hf", "deepseek-v3", "config.json")


def timed(cmd, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mesh", default="4x8")
    parser.add_argument("--layers", default="4,16,61,256,1024")
    parser.add_argument("--out-dir", default=report.RESULTS)
    args = parser.parse_args()
    translate = os.path.join(args.build, "bin", "moe-translate")
    opt = os.path.join(args.build, "bin", "moe-opt")

    with open(BASE_CONFIG) as f:
        base = json.load(f)
    table = report.Table()
    title = (f"moe-mlir compile time, DeepSeek-V3 layers (256 experts), mesh "
             f"{args.mesh}, median of {args.runs}")
    table.print(title)
    table.print(f"{'layers':>7} {'import ms':>10} {'plan ms':>9} {'total ms':>9} "
                f"{'us/layer':>9}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layers in [int(n) for n in args.layers.split(",")]:
            config = dict(base, num_hidden_layers=layers)
            config_path = os.path.join(tmp, f"config-{layers}.json")
            module_path = os.path.join(tmp, f"model-{layers}.mlir")
            with open(config_path, "w") as f:
                json.dump(config, f)
            import_s = timed([translate, "--import-hf", config_path, "-o",
                              module_path], args.runs)
            plan_s = timed([opt, module_path, "--canonicalize",
                            # Compile time only: lift the memory limit so
                            # that any layer count plans.
                            f"--moe-assign-parallelism=mesh={args.mesh} "
                            "memory-gib=1000000",
                            "-o", os.devnull], args.runs)
            total = import_s + plan_s
            rows.append((layers, import_s * 1e3, plan_s * 1e3, total * 1e3))
            table.print(f"{layers:>7} {import_s * 1e3:>10.1f} {plan_s * 1e3:>9.1f} "
                        f"{total * 1e3:>9.1f} {total / layers * 1e6:>9.0f}")
    base = report.result_base("compile_time", args.out_dir)
    table.write(base + ".md")
    plt = report.pyplot()
    if plt:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        layers = [r[0] for r in rows]
        for column, label in ((1, "import (moe-translate)"), (2, "plan (moe-opt)"),
                              (3, "total")):
            ax.plot(layers, [r[column] for r in rows], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("layers (DeepSeek-V3 shape, 256 experts)")
        ax.set_ylabel("ms (median)")
        ax.set_title(f"compile time vs layers, mesh {args.mesh}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        report.save(fig, base + ".png")


if __name__ == "__main__":
    main()
