#!/usr/bin/env python3
"""A PyTorch eager MoE block of the GPU layer benchmark's shapes, timed the
same way: the median of --iters forwards after --warmup, each between CUDA
events with a device synchronisation before the stop event. Writes
{"gpu", "date", "results": [{"model", "tokens", "median_us"}]} for
`moe-bench-gpu-layer --torch-json`, which shows ours / PyTorch.

The shapes come from the benchmark itself (one definition):
  build/bench/gpu_layer/moe-bench-gpu-layer --shapes-json > shapes.json
  python3 bench/gpu_layer/torch_moe.py --shapes shapes.json --out torch.json
  build/bench/gpu_layer/moe-bench-gpu-layer --torch-json torch.json

The block is Hugging Face's eager style: router, softmax/sigmoid scores and
top-k (DeepSeek-V3: group-limited with the correction bias), then a loop over
the experts that received tokens (index, FFN, scale, index_add), shared
experts and the PR-MoE residual MLP on every token, plus the residual add.
It computes what the benchmark's layer computes: the same routing math per
family (router logits in fp32 from the bf16 values, as moert_router), the
same weight scales, dropless (the benchmark's default; a shapes file written
with --capacity-factor X > 0 is flagged: that layer drops choices).
--dry-run checks the shapes file and prints what would run, without torch.
"""
import argparse
import datetime
import json
import math
import statistics
import sys


def load_shapes(path):
    with (sys.stdin if path == "-" else open(path)) as f:
        spec = json.load(f)
    for s in spec["shapes"]:
        for key in ("name", "experts", "hidden", "ffn", "top_k", "gated", "groups",
                    "kept_groups", "correction_bias", "shared_experts", "shared_ffn",
                    "residual_ffn"):
            if key not in s:
                raise SystemExit(f"torch_moe.py: shape {s.get('name', '?')} lacks {key}")
        if s["experts"] % s["groups"]:
            raise SystemExit(f"torch_moe.py: {s['name']}: {s['experts']} experts "
                             f"do not split into {s['groups']} groups")
    return spec


def weight_bytes(s):
    """Bytes of the tensors build_block allocates: for the dry run."""
    e, h, f = s["experts"], s["hidden"], s["ffn"]
    bf16 = e * (3 if s["gated"] else 2) * h * f
    if not s["gated"]:
        bf16 += e * (f + h)
    bf16 += s["shared_experts"] * 3 * h * s["shared_ffn"]
    f32 = e * h + (e if s["correction_bias"] else 0)  # router, bias
    if s["residual_ffn"]:
        r = s["residual_ffn"]
        bf16 += 2 * h * r + r + h
        f32 += 2 * h + 2  # wc, bc
    return 2 * bf16 + 4 * f32


def build_block(torch, s, device, dtype):
    e, h, f = s["experts"], s["hidden"], s["ffn"]
    gen = torch.Generator(device=device).manual_seed(0)

    def rand(*shape, scale):
        return ((torch.rand(*shape, generator=gen, device=device) * 2 - 1) * scale).to(dtype)

    # fp32 copies of bf16 values: the logits are fp32 GEMMs, as moert_router.
    w = {"router": rand(e, h, scale=1 / math.sqrt(h)).float()}
    if s["gated"]:
        w["gate"] = rand(e, f, h, scale=1 / math.sqrt(h))
        w["up"] = rand(e, f, h, scale=1 / math.sqrt(h))
    else:
        w["w1"] = rand(e, f, h, scale=1 / math.sqrt(h))
        w["b1"] = rand(e, f, scale=0.01)
        w["b2"] = rand(e, h, scale=0.01)
    w["down"] = rand(e, h, f, scale=1 / math.sqrt(f))
    if s["correction_bias"]:
        w["bias"] = torch.zeros(e, device=device)
    if s["shared_experts"]:
        fs = s["shared_experts"] * s["shared_ffn"]
        w["s_gate"] = rand(fs, h, scale=1 / math.sqrt(h))
        w["s_up"] = rand(fs, h, scale=1 / math.sqrt(h))
        w["s_down"] = rand(h, fs, scale=1 / math.sqrt(fs))
    if s["residual_ffn"]:
        r = s["residual_ffn"]
        w["r_w1"], w["r_b1"] = rand(r, h, scale=1 / math.sqrt(h)), rand(r, scale=0.01)
        w["r_w2"], w["r_b2"] = rand(h, r, scale=1 / math.sqrt(r)), rand(h, scale=0.01)
        w["wc"] = rand(2, h, scale=1 / math.sqrt(h)).float()
        w["bc"] = rand(2, scale=0.01).float()
    return w


def forward(torch, s, w, x):
    F = torch.nn.functional
    t, k = x.shape[0], s["top_k"]
    logits = x.float() @ w["router"].T
    if s["groups"] > 1:  # DeepSeek-V3: sigmoid, group-limited, bias for selection
        scores = logits.sigmoid()
        sel = scores + w["bias"]
        g = s["groups"]
        group_scores = sel.view(t, g, -1).topk(2, dim=-1).values.sum(-1)
        keep = group_scores.topk(s["kept_groups"], dim=-1).indices
        mask = torch.zeros(t, g, device=x.device, dtype=torch.bool).scatter_(1, keep, True)
        sel = sel.masked_fill(~mask.repeat_interleave(s["experts"] // g, dim=1), float("-inf"))
        ids = sel.topk(k, dim=-1).indices
        weights = scores.gather(1, ids)
        weights = weights / (weights.sum(-1, keepdim=True) + 1e-20) * 2.5
    else:
        weights, ids = F.softmax(logits, dim=-1).topk(k, dim=-1)
        if k > 1:
            weights = weights / weights.sum(-1, keepdim=True)
    out = torch.zeros_like(x)
    for e in range(s["experts"]):
        rows, pos = torch.where(ids == e)
        if rows.numel() == 0:
            continue
        h = x[rows]
        if s["gated"]:
            y = (F.silu(h @ w["gate"][e].T) * (h @ w["up"][e].T)) @ w["down"][e].T
        else:
            y = F.gelu(h @ w["w1"][e].T + w["b1"][e]) @ w["down"][e].T + w["b2"][e]
        out.index_add_(0, rows, (y * weights[rows, pos, None]).to(x.dtype))
    if s["shared_experts"]:
        out += (F.silu(x @ w["s_gate"].T) * (x @ w["s_up"].T)) @ w["s_down"].T
    if s["residual_ffn"]:
        mlp = F.gelu(x @ w["r_w1"].T + w["r_b1"]) @ w["r_w2"].T + w["r_b2"]
        coef = F.softmax(x.float() @ w["wc"].T + w["bc"], dim=-1).to(x.dtype)
        out = out * coef[:, 0:1] + mlp * coef[:, 1:2]
    return x + out


def time_median(torch, fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        fn()
        torch.cuda.synchronize()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) * 1e3)  # ms -> us
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", required=True, help="moe-bench-gpu-layer --shapes-json output ('-': stdin)")
    ap.add_argument("--out", help="JSON results (default: stdout)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--dry-run", action="store_true", help="check the shapes, print the plan; no torch")
    args = ap.parse_args()
    spec = load_shapes(args.shapes)
    cf = spec.get("capacity_factor", 0)
    if cf:
        print(f"torch_moe.py: warning: the benchmark's layer runs at capacity factor {cf} and "
              "drops choices; this block is dropless, so the times are not like for like",
              file=sys.stderr)
    if args.dry_run:
        print("routing: dropless" + (f" (the benchmark's layer: capacity factor {cf})" if cf
                                     else ", as the benchmark's layer"))
        for s in spec["shapes"]:
            print(f"{s['name']:14s} E={s['experts']} H={s['hidden']} F={s['ffn']} k={s['top_k']} "
                  f"weights {weight_bytes(s) / 1e9:.2f} GB, tokens {spec['tokens']}")
        return
    import torch
    if not torch.cuda.is_available():
        raise SystemExit("torch_moe.py: no CUDA device (use --dry-run to check the shapes)")
    device, dtype = "cuda", torch.bfloat16
    results = []
    with torch.inference_mode():
        for s in spec["shapes"]:
            w = build_block(torch, s, device, dtype)
            for t in spec["tokens"]:
                x = torch.rand(t, s["hidden"], device=device).to(dtype) * 2 - 1
                us = time_median(torch, lambda: forward(torch, s, w, x), args.warmup, args.iters)
                results.append({"model": s["name"], "tokens": t, "median_us": us})
                print(f"{s['name']:14s} {t:6d} tokens: {us:10.1f} us", file=sys.stderr)
            del w
            torch.cuda.empty_cache()
    report = {"gpu": torch.cuda.get_device_name(0),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
              "torch": torch.__version__, "results": results}
    text = json.dumps(report, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
