#!/usr/bin/env python3
"""The moe-run side of the end-to-end generation benchmark (issue 14 item 6):
moe-run's prefill and decode on the checkpoints torch_generate.py saved, with
the same prompt length, new tokens, batches, dtypes and thread count.

  python3 bench/generate/moe_generate.py --moe-run build/bin/moe-run \\
      --checkpoints /tmp/gen-ckpt --threads 16 --output moe-generate.jsonl \\
      [--torch torch-generate.jsonl]   # also print the side-by-side table

Per family x dtype x batch B: B random prompts of --prompt-tokens ids (one
--prompt-ids each), --new-tokens greedy tokens, one rank (--mesh 1x1) with
--threads compute threads; the median of --repeats runs after a warm-up
(which also builds and caches the model). moe-run times the prefill step
(every prompt in one forward) and the decode steps (one token per sequence
each); decode tokens/s = B / decode step. bf16 runs the f32 checkpoint under
a config that says bfloat16 (the weights are converted when loaded). Rows are
JSON lines (`kind: moe_generate`). The families are those moe-run generates
with.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import report  # noqa: E402  (bench/report.py)

FAMILIES = ["mixtral", "olmoe", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "granitemoe"]


def checkpoint(args, family, dtype, scratch):
    """The checkpoint directory of `family` in `dtype`: torch_generate.py's
    (f32), or a copy of its config saying bfloat16 beside links to its
    weights."""
    src = os.path.join(args.checkpoints, family + ("-tiny" if args.dry_run else ""))
    if not os.path.isfile(os.path.join(src, "config.json")):
        sys.exit(f"moe_generate.py: no checkpoint {src} (make it with torch_generate.py "
                 f"--checkpoints {args.checkpoints}{' --dry-run' if args.dry_run else ''})")
    if dtype == "f32":
        return src
    dst = os.path.join(scratch, f"{family}-{dtype}")
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    config["dtype"] = config["torch_dtype"] = "bfloat16"
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f)
    for name in os.listdir(src):
        if name.endswith(".safetensors") or name.endswith(".index.json"):
            link = os.path.join(dst, name)
            if not os.path.exists(link):
                os.symlink(os.path.join(src, name), link)
    return dst


def run(args, ckpt, prompts):
    cmd = [args.moe_run, ckpt, "--mesh", "1x1", "--threads", str(args.threads),
           "--max-new-tokens", str(args.new_tokens), "--quiet"]
    for p in prompts:
        cmd += ["--prompt-ids", ",".join(map(str, p))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"moe_generate.py: {' '.join(cmd[:3])} ... failed:\n{out.stderr[-2000:]}")
    prefill = float(re.search(r"^prefill\s+([0-9.]+) ms", out.stdout, re.M).group(1))
    decode = float(re.search(r"^decode per token\s+([0-9.]+) ms", out.stdout, re.M).group(1))
    return prefill, decode


def plot(pairs, path):
    """Prefill ms and decode ms/token, moe-run beside transformers, per row."""
    plt = report.pyplot()
    if not plt:
        return
    labels = [f"{r['family']}\n{r['dtype']} b{r['batch']}" for r, _ in pairs]
    x = np.arange(len(pairs))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(pairs) + 4), 4.5))
    for ax, key, title in ((axes[0], "prefill_ms", "prefill (ms)"),
                           (axes[1], "decode_ms_per_token", "decode (ms / token)")):
        ax.bar(x - 0.2, [r[key] for r, _ in pairs], 0.4, label="moe-run")
        ax.bar(x + 0.2, [t[key] if t else 0 for _, t in pairs], 0.4, label="transformers")
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_title(title + ", lower is better")
        ax.legend()
    report.save(fig, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moe-run", required=True)
    ap.add_argument("--checkpoints", required=True, help="torch_generate.py --checkpoints DIR")
    ap.add_argument("--families", nargs="*", default=FAMILIES, choices=FAMILIES)
    ap.add_argument("--dtypes", nargs="*", default=["f32", "bf16"], choices=["f32", "bf16"])
    ap.add_argument("--batch", nargs="*", type=int, default=[1, 16])
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--output", help="append JSON lines here")
    ap.add_argument("--torch", help="torch_generate.py's JSON lines: print both side by side")
    ap.add_argument("--save", action="store_true",
                    help="with --torch: write the table (.md) and a plot (.png) under bench/results/")
    ap.add_argument("--out-dir", help="with --save: instead of bench/results/")
    ap.add_argument("--dry-run", action="store_true", help="the -tiny checkpoints and sizes")
    args = ap.parse_args()
    if args.dry_run:
        args.batch, args.prompt_tokens, args.new_tokens, args.repeats = [1, 2], 8, 4, 1
    if args.save and not args.torch:
        ap.error("--save writes the side-by-side table: give --torch too")
    if args.new_tokens < 2:
        ap.error("--new-tokens must be >= 2 (decode is timed between steps)")
    meta = {"threads": args.threads, "cpu": platform.processor() or platform.machine(),
            "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
            "repeats": args.repeats, "dry_run": args.dry_run}
    out = open(args.output, "a") if args.output else None
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for family in args.families:
            for dtype in args.dtypes:
                ckpt = checkpoint(args, family, dtype, scratch)
                with open(os.path.join(ckpt, "config.json")) as f:
                    vocab = json.load(f)["vocab_size"]
                for batch in args.batch:
                    rng = np.random.default_rng(batch)
                    prompts = rng.integers(0, vocab, (batch, args.prompt_tokens)).tolist()
                    run(args, ckpt, prompts[:1])  # warm-up; builds the model
                    runs = [run(args, ckpt, prompts) for _ in range(args.repeats)]
                    prefill = statistics.median(r[0] for r in runs)
                    step = statistics.median(r[1] for r in runs)
                    row = dict(meta, kind="moe_generate", family=family, dtype=dtype, batch=batch,
                               prefill_ms=prefill, decode_ms_per_token=step,
                               decode_tokens_per_s=batch * 1e3 / step if step else 0.0)
                    rows.append(row)
                    if out:
                        out.write(json.dumps(row) + "\n")
                        out.flush()
                    print(f"{family:10s} {dtype:5s} batch {batch:3d}: prefill {prefill:9.2f} ms, "
                          f"decode {step:8.3f} ms/token, {row['decode_tokens_per_s']:9.1f} tokens/s",
                          flush=True)
    if args.torch:
        torch_rows = {}
        with open(args.torch) as f:
            for line in f:
                r = json.loads(line)
                if r.get("kind") == "torch_generate":
                    torch_rows[(r["family"], r["dtype"], r["batch"])] = r
        table = report.Table()
        table.print(f"moe-run vs transformers generate: {args.prompt_tokens} prompt tokens, "
                    f"{args.new_tokens} new tokens, {args.threads} threads, median of {args.repeats}")
        table.print()
        table.print("| family | dtype | batch | prefill ms moe-run / torch | decode ms/token moe-run / torch "
                    "| tokens/s moe-run / torch |")
        table.print("|---|---|---|---|---|---|")
        pairs = []
        for r in rows:
            t = torch_rows.get((r["family"], r["dtype"], r["batch"]))
            pairs.append((r, t))
            def pair(key, fmt):
                return f"{r[key]:{fmt}} / " + (f"{t[key]:{fmt}}" if t else "-")
            table.print(f"| {r['family']} | {r['dtype']} | {r['batch']} | {pair('prefill_ms', '.2f')} | "
                        f"{pair('decode_ms_per_token', '.3f')} | {pair('decode_tokens_per_s', '.1f')} |")
        if args.save:
            base = report.result_base("generate", args.out_dir)
            table.write(base + ".md")
            plot(pairs, base + ".png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
