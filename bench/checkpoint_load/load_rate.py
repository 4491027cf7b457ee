#!/usr/bin/env python3
"""load_rate.py WORKDIR [--gb N]: the load rate of a multi-GB sharded
checkpoint against `cat` of the same files.

Writes a bf16 Mixtral-shaped checkpoint (hidden 2048, 8 experts of 4096,
enough layers for about N GB, 1 GB shards + model.safetensors.index.json) and
times, in order, with the page cache dropped before each when that is
allowed (root): `cat shards > /dev/null`, then `moe-run DIR --quiet` (the
runner's "weights loaded in T s: B bytes read ..." line). Prints both rates
and writes them, as a table and a bar plot, to
bench/results/checkpoint_load-*.{md,png}.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import report  # noqa: E402  (bench/report.py)

H, F, E = 2048, 4096, 8


def write(dir, layers):
    os.makedirs(dir, exist_ok=True)
    config = {"model_type": "mixtral", "torch_dtype": "bfloat16",
              "hidden_size": H, "intermediate_size": F, "num_local_experts": E,
              "num_experts_per_tok": 2, "num_hidden_layers": layers}
    with open(os.path.join(dir, "config.json"), "w") as f:
        json.dump(config, f)
    rng = np.random.default_rng(0)
    names = []
    for i in range(layers):
        p = f"model.layers.{i}.block_sparse_moe."
        names.append((p + "gate.weight", (E, H)))
        for e in range(E):
            for w, shape in (("w1", (F, H)), ("w3", (F, H)), ("w2", (H, F))):
                names.append((f"{p}experts.{e}.{w}.weight", shape))
    shards, current, size = [], [], 0
    for name, shape in names:
        nbytes = shape[0] * shape[1] * 2
        if current and size + nbytes > (1 << 30):
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += nbytes
    shards.append(current)
    weight_map = {}
    for s, tensors in enumerate(shards):
        fname = f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {}, 0
        for name, shape in tensors:
            n = shape[0] * shape[1] * 2
            header[name] = {"dtype": "BF16", "shape": list(shape),
                            "data_offsets": [offset, offset + n]}
            offset += n
            weight_map[name] = fname
        text = json.dumps(header).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        with open(os.path.join(dir, fname), "wb") as f:
            f.write(len(text).to_bytes(8, "little") + text)
            for name, shape in tensors:
                x = (rng.standard_normal(shape, dtype=np.float32) * 0.02)
                f.write((x.view(np.uint32) >> 16).astype("<u2").tobytes())
    with open(os.path.join(dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    return [os.path.join(dir, f) for f in sorted(set(weight_map.values()))]


def drop_caches():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--gb", type=float, default=4.0)
    parser.add_argument("--moe-run", default="moe-run")
    parser.add_argument("--out-dir", default=report.RESULTS)
    args = parser.parse_args()
    table, rates = report.Table(), []
    ckpt = os.path.join(args.workdir, "ckpt")
    layers = max(1, int(args.gb * 1e9 / (3 * E * H * F * 2)))
    files = write(ckpt, layers)
    total = sum(os.path.getsize(f) for f in files)
    for state in ("cold", "warm"):
        cold = state == "cold" and drop_caches()
        if state == "cold" and not cold:
            table.print("cannot drop the page cache (not root): warm numbers only")
            continue
        start = time.perf_counter()
        subprocess.run(["cat"] + files, stdout=subprocess.DEVNULL, check=True)
        seconds = time.perf_counter() - start
        table.print(f"{state}: cat {len(files)} files, {report.human_bytes(total)}: "
                    f"{seconds:.2f} s, {total / 1e9 / seconds:.2f} GB/s")
        rates.append((f"cat, {state}", total / 1e9 / seconds))
        if cold:
            drop_caches()
        run = subprocess.run(
            [args.moe_run, ckpt, "--tokens", "8", "--quiet",
             "--cache-dir", os.path.join(args.workdir, "cache")],
            capture_output=True, text=True, check=True)
        line = next(l for l in run.stdout.splitlines()
                    if l.startswith("weights loaded"))
        table.print(f"{state}: moe-run {line}")
        rates.append((f"moe-run, {state}",
                      float(re.search(r"([0-9.]+) GB/s", line).group(1))))
    base = report.result_base("checkpoint_load", args.out_dir)
    table.write(base + ".md")
    plt = report.pyplot()
    if plt:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.barh([r[0] for r in rates], [r[1] for r in rates])
        ax.set_xlabel("GB/s")
        ax.set_title(f"loading a {report.human_bytes(total)} sharded bf16 checkpoint")
        report.save(fig, base + ".png")


if __name__ == "__main__":
    main()
