#!/usr/bin/env python3
"""Two moe-run builds (A: before, B: after a change) on moe_generate.py's
rows, their runs interleaved, with transformers beside them.

  python3 bench/generate/ab_generate.py --a OLD/moe-run --b NEW/moe-run \\
      --labels before after --checkpoints /tmp/gen-ckpt --torch torch.jsonl \\
      --families deepseek_v2 --out BASE   # BASE.md, BASE.png, BASE.jsonl

On a machine shared with other work the load changes within minutes, so
whole sweeps of A and then B compare different loads. Here every row
(family, dtype, batch; the prompts moe_generate.py uses) warms both builds
up, then runs A and B alternately (A B, B A, A B, ...) --repeats times each;
the table gives each side's median, B/A, and B beside transformers' row.
BASE.jsonl holds every run (side, repeat, 1-minute load average) and the
medians (kind: moe_generate, side a or b).
"""

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import moe_generate  # noqa: E402  (checkpoint(), run())
import report  # noqa: E402  (bench/report.py)


def plot(rows, labels, path):
    """Prefill and decode per row: A, B and transformers."""
    plt = report.pyplot()
    if not plt:
        return
    names = [f"{r['a']['family']}\n{r['a']['dtype']} b{r['a']['batch']}" for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.2 * len(rows) + 4), 4.5))
    for ax, key, title in ((axes[0], "prefill_ms", "prefill (ms)"),
                           (axes[1], "decode_ms_per_token", "decode (ms / token)")):
        for i, (side, label) in enumerate(zip(("a", "b", "torch"), labels + ["transformers"])):
            ax.bar(x + (i - 1) * 0.27, [r[side][key] if r[side] else 0 for r in rows], 0.27,
                   label=label)
        ax.set_xticks(x, names, fontsize=7)
        ax.set_title(title + ", lower is better")
        ax.legend(fontsize=7)
    report.save(fig, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="moe-run before")
    ap.add_argument("--b", required=True, help="moe-run after")
    ap.add_argument("--labels", nargs=2, default=["A", "B"])
    ap.add_argument("--checkpoints", required=True, help="torch_generate.py --checkpoints DIR")
    ap.add_argument("--torch", required=True, help="torch_generate.py's JSON lines")
    ap.add_argument("--families", nargs="*", default=["deepseek_v2", "deepseek_v3"],
                    choices=moe_generate.FAMILIES)
    ap.add_argument("--dtypes", nargs="*", default=["f32", "bf16"], choices=["f32", "bf16"])
    ap.add_argument("--batch", nargs="*", type=int, default=[1, 16])
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", required=True, help="output path without extension")
    args = ap.parse_args()
    args.dry_run = False
    if args.new_tokens < 2:
        ap.error("--new-tokens must be >= 2 (decode is timed between steps)")
    sides = {}
    for side in ("a", "b"):
        sides[side] = copy.copy(args)
        sides[side].moe_run = getattr(args, side)
    torch = {}
    with open(args.torch) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "torch_generate":
                torch[(r["family"], r["dtype"], r["batch"])] = r
    meta = {"threads": args.threads, "prompt_tokens": args.prompt_tokens,
            "new_tokens": args.new_tokens, "repeats": args.repeats}
    log = open(args.out + ".jsonl", "w")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for family in args.families:
            for dtype in args.dtypes:
                ckpt = moe_generate.checkpoint(args, family, dtype, scratch)
                with open(os.path.join(ckpt, "config.json")) as f:
                    vocab = json.load(f)["vocab_size"]
                for batch in args.batch:
                    rng = np.random.default_rng(batch)
                    prompts = rng.integers(0, vocab, (batch, args.prompt_tokens)).tolist()
                    key = dict(family=family, dtype=dtype, batch=batch)
                    for side in ("a", "b"):  # warm-up; builds the model
                        moe_generate.run(sides[side], ckpt, prompts[:1])
                    runs = {"a": [], "b": []}
                    for repeat in range(args.repeats):
                        for side in ("a", "b") if repeat % 2 == 0 else ("b", "a"):
                            prefill, step = moe_generate.run(sides[side], ckpt, prompts)
                            runs[side].append((prefill, step))
                            log.write(json.dumps(dict(meta, **key, kind="moe_generate_run",
                                                      side=side, label=args.labels[side == "b"],
                                                      repeat=repeat, prefill_ms=prefill,
                                                      decode_ms_per_token=step,
                                                      load1=os.getloadavg()[0])) + "\n")
                    row = {"torch": torch.get((family, dtype, batch))}
                    for side in ("a", "b"):
                        prefill = statistics.median(r[0] for r in runs[side])
                        step = statistics.median(r[1] for r in runs[side])
                        row[side] = dict(meta, **key, kind="moe_generate", side=side,
                                         label=args.labels[side == "b"], prefill_ms=prefill,
                                         decode_ms_per_token=step,
                                         decode_tokens_per_s=batch * 1e3 / step if step else 0.0)
                        log.write(json.dumps(row[side]) + "\n")
                    log.flush()
                    rows.append(row)
                    print(f"{family} {dtype} batch {batch}: prefill {row['a']['prefill_ms']:.2f} / "
                          f"{row['b']['prefill_ms']:.2f} ms", flush=True)
    la, lb = args.labels
    table = report.Table()
    table.print(f"| family | dtype | batch | prefill ms {la} / {lb} / torch | {lb} / {la} | "
                f"{lb} / torch | decode ms/token {la} / {lb} / torch |")
    table.print("|---|---|---|---|---|---|---|")
    for r in rows:
        a, b, t = r["a"], r["b"], r["torch"]
        table.print(f"| {a['family']} | {a['dtype']} | {a['batch']} | {a['prefill_ms']:.2f} / "
                    f"{b['prefill_ms']:.2f} / {t['prefill_ms'] if t else float('nan'):.2f} | "
                    f"{b['prefill_ms'] / a['prefill_ms']:.2f} | "
                    f"{b['prefill_ms'] / t['prefill_ms'] if t else float('nan'):.2f} | "
                    f"{a['decode_ms_per_token']:.3f} / {b['decode_ms_per_token']:.3f} / "
                    f"{t['decode_ms_per_token'] if t else float('nan'):.3f} |")
    table.write(args.out + ".md")
    plot(rows, [la, lb], args.out + ".png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
