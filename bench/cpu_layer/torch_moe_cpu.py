#!/usr/bin/env python3
"""PyTorch MoE blocks on the CPU, timed as moe-bench-cpu-layer times the
project's layer (median of runs after a warm-up, the same input each run).
Run by cpu_layer.py under taskset; prints one JSON object per line.

Blocks (the same weights, [E, 2F, H] gate|up and [E, H, F] down, as the
transformers 5 experts store them):
  hf-eager    transformers' MixtralSparseMoeBlock, experts_implementation
              "eager" (its loop over hit experts);
  hf-grouped  the same block with "grouped_mm" (torch._grouped_mm), when this
              torch runs it on the CPU;
  sorted      tokens sorted by expert, one matmul per active expert for
              [gate|up] and one for down, index_add back.
A shared expert (DeepSeek-V3) is a dense SwiGLU MLP added to the output.
--dtype fp8: expert and shared weights float8_e4m3fn with one f32 scale per
128 x 128 block (DeepSeek-V3 / Qwen3-FP8), activations and router bf16, as
moe-bench-cpu-layer --dtype fp8 runs them. Only `sorted` runs: it widens
each touched expert's weights to bf16 per call (bf16(w) * bf16(scale), as
DeepSeek's weight_dequant makes bf16 weights); transformers has no CPU FP8
path (its dequantize option keeps bf16 weights: the bf16 rows).
--ceilings instead measures this core set's read bandwidth (the best of a
sum and f32/bf16 matrix-vector products over 1 GiB) and GEMM peaks
(torch.mm, f32 and bf16).
--evict-mb MB: before each timed run (blocks and read ceilings) read MB of
other memory, as moe-bench-cpu-layer --evict-mb does (cpu_layer.py --cache
cold passes twice the last-level cache to both).
--flush-lib LIB: then flush the block's weights (the read ceiling's data)
from the caches with LIB's moe_bench_flush (CacheFlush.h), as
moe-bench-cpu-layer --flush-weights 1 does.
"""
import argparse
import ctypes
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


COLD_RUNS = 25  # at most, with an eviction before each (moe-bench-cpu-layer's)


class ColdStart:
    """Before each cold run: reads `evict_mb` of other memory, then flushes
    the tensors given to it with `flush_lib`'s moe_bench_flush."""

    def __init__(self, evict_mb, flush_lib):
        self.evict = torch.ones(evict_mb << 18) if evict_mb else None
        self.flush = ctypes.CDLL(flush_lib).moe_bench_flush if flush_lib else None
        if self.flush:
            self.flush.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

    def enabled(self):
        return self.evict is not None or self.flush is not None

    def __call__(self, tensors):
        if self.evict is not None:
            self.evict.sum()
        for t in tensors if self.flush else []:
            assert t.is_contiguous()
            if self.flush(t.data_ptr(), t.numel() * t.element_size()) != 0:
                raise RuntimeError("--flush-lib: no cache flush instruction on this CPU")


FP8_BLOCK = 128


def quantize(w):
    """w [..., n, k] (n, k multiples of FP8_BLOCK) as float8_e4m3fn and one f32
    scale per block: (data, scales [..., n / B, k / B])."""
    *lead, n, k = w.shape
    b = FP8_BLOCK
    blocks = w.float().reshape(*lead, n // b, b, k // b, b)
    scales = blocks.abs().amax(dim=(-3, -1)).clamp(min=1e-12) / 448.0
    data = (blocks / scales[..., :, None, :, None]).to(torch.float8_e4m3fn)
    return data.reshape(*lead, n, k), scales


def dequantize(data, scales):
    """bf16 weights from quantize()'s pair, per call."""
    *lead, n, k = data.shape
    b = FP8_BLOCK
    w = data.reshape(*lead, n // b, b, k // b, b).to(torch.bfloat16)
    w = w * scales.to(torch.bfloat16)[..., :, None, :, None]
    return w.reshape(*lead, n, k)


def timed(fn, min_seconds, min_runs=3, cold=None, tensors=()):
    """Median of runs after a warm-up, until min_seconds of timed runs. With
    an enabled `cold` (a ColdStart, run before each run outside the timing
    on `tensors`) the weights start out of the caches, and at most COLD_RUNS
    runs are timed."""
    fn()  # warm-up
    samples = []
    cold = cold if cold and cold.enabled() else None
    while (len(samples) < min_runs or sum(samples) < min_seconds) and \
            not (cold and len(samples) >= max(min_runs, COLD_RUNS)):
        if cold:
            cold(tensors)
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), len(samples)


def ceilings(args, cold):
    out = {"kind": "ceilings", "threads": torch.get_num_threads()}
    # The best of three reads of 1 GiB: a sum, and matrix-vector products in
    # f32 and bf16 (decode's own access pattern).
    data = torch.empty(256 << 20, dtype=torch.float32).uniform_()
    reads = {
        "sum": lambda: data.sum(),
        "mv_f32": lambda: torch.mv(data.view(-1, 4096), ones_f32),
        "mv_bf16": lambda: torch.mv(data.view(torch.bfloat16).view(-1, 8192), ones_bf16),
    }
    ones_f32, ones_bf16 = torch.ones(4096), torch.ones(8192, dtype=torch.bfloat16)
    for name, fn in reads.items():
        seconds, _ = timed(fn, 1.0, 5, cold, [data])
        out[f"read_{name}_gbs"] = data.numel() * 4 / seconds / 1e9
    out["read_gbs"] = max(out[f"read_{name}_gbs"] for name in reads)
    del data
    for dtype, n in (("f32", 2048), ("bf16", 4096)):
        t = torch.float32 if dtype == "f32" else torch.bfloat16
        a = torch.randn(n, n).to(t)
        b = torch.randn(n, n).to(t)
        seconds, _ = timed(lambda: torch.mm(a, b), 1.0, 3)
        out[f"gemm_{dtype}_gflops"] = 2 * n ** 3 / seconds / 1e9
    print(json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ceilings", action="store_true")
    p.add_argument("--experts", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--ffn", type=int)
    p.add_argument("--top-k", type=int)
    p.add_argument("--shared-ffn", type=int, default=0)
    p.add_argument("--dtype", choices=["f32", "bf16", "fp8"])
    p.add_argument("--tokens", default="1,16,128,1024")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--impls", default="",
                   help="the blocks to time, comma separated (default: all)")
    p.add_argument("--evict-mb", type=int, default=0,
                   help="read this much other memory before each timed run")
    p.add_argument("--flush-lib", default="",
                   help="libmoe-bench-cache-flush.so: flush the weights before each timed run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cold = ColdStart(args.evict_mb, args.flush_lib)
    if args.ceilings:
        return ceilings(args, cold)

    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    dtype = torch.float32 if args.dtype == "f32" else torch.bfloat16
    fp8 = args.dtype == "fp8"
    E, H, Fw, k, Fs = args.experts, args.hidden, args.ffn, args.top_k, args.shared_ffn
    config = MixtralConfig(hidden_size=H, intermediate_size=Fw, num_local_experts=E,
                           num_experts_per_tok=k, hidden_act="silu")
    torch.manual_seed(0)
    with torch.device("meta"):
        block = MixtralSparseMoeBlock(config)
    block = block.to_empty(device="cpu").to(dtype).eval()
    with torch.no_grad():
        # Expert by expert: no full-size temporary.
        for e in range(E):
            block.experts.gate_up_proj[e].uniform_(-H ** -0.5, H ** -0.5)
            block.experts.down_proj[e].uniform_(-Fw ** -0.5, Fw ** -0.5)
        block.gate.weight.uniform_(-H ** -0.5, H ** -0.5)
    shared = None
    if Fs:
        shared = (torch.empty(2 * Fs, H, dtype=dtype).uniform_(-H ** -0.5, H ** -0.5),
                  torch.empty(H, Fs, dtype=dtype).uniform_(-Fs ** -0.5, Fs ** -0.5))
    gate_up, down = block.experts.gate_up_proj, block.experts.down_proj
    expert = lambda e: (gate_up[e], down[e])
    if fp8:
        gate_up, down = [quantize(w) for w in (gate_up, down)]
        shared = tuple(quantize(w) for w in shared) if shared else None
        expert = lambda e: (dequantize(gate_up[0][e], gate_up[1][e]),
                            dequantize(down[0][e], down[1][e]))
        del block.experts
    weights = [t for w in (gate_up, down) for t in (w if fp8 else [w])]
    weights += [block.gate.weight] + [t for w in shared or () for t in (w if fp8 else [w])]

    def shared_out(x):
        up, dn = (dequantize(*w) for w in shared) if fp8 else shared
        g, u = F.linear(x, up).chunk(2, dim=-1)
        return F.linear(F.silu(g) * u, dn)

    def hf(x):
        y = block(x.unsqueeze(0)).squeeze(0)
        return y + shared_out(x) if shared else y

    def sorted_block(x):
        logits = F.linear(x, block.gate.weight)
        probs = torch.softmax(logits.float(), dim=-1)
        top_w, top_i = torch.topk(probs, k, dim=-1)
        top_w = (top_w / top_w.sum(dim=-1, keepdim=True)).to(x.dtype)
        flat = top_i.flatten()
        order = torch.argsort(flat, stable=True)
        token = order // k
        counts = torch.bincount(flat, minlength=E).tolist()
        xs = x[token]
        ys = torch.empty_like(xs)
        start = 0
        for e, c in enumerate(counts):
            if c == 0:
                continue
            rows = xs[start:start + c]
            up, dn = expert(e)
            g, u = F.linear(rows, up).chunk(2, dim=-1)
            ys[start:start + c] = F.linear(F.silu(g) * u, dn)
            start += c
        ys *= top_w.flatten()[order].unsqueeze(-1)
        y = torch.zeros_like(x).index_add_(0, token, ys)
        return y + shared_out(x) if shared else y

    impls = {"hf-eager": ("eager", hf), "hf-grouped": ("grouped_mm", hf),
             "sorted": (None, sorted_block)}
    if fp8:
        impls = {"sorted": impls["sorted"]}
    if args.impls:
        impls = {name: impls[name] for name in args.impls.split(",")}
    for t in [int(v) for v in args.tokens.split(",")]:
        x = torch.empty(t, H, dtype=dtype).uniform_(-1, 1)
        with torch.no_grad():
            logits = F.linear(x, block.gate.weight)
            touched = int(torch.topk(logits.float(), k, dim=-1).indices.unique().numel())
        for name, (experts_impl, fn) in impls.items():
            if experts_impl:
                block.experts.config._experts_implementation = experts_impl
            row = {"kind": "torch", "impl": name, "tokens": t, "touched": touched,
                   "threads": args.threads, "dtype": args.dtype}
            try:
                with torch.inference_mode():
                    if name == "hf-grouped":  # must agree with eager to count
                        block.experts.config._experts_implementation = "eager"
                        want = fn(x)
                        block.experts.config._experts_implementation = experts_impl
                        got = fn(x)
                        tol = 1e-3 if dtype == torch.float32 else 5e-2
                        if not torch.allclose(got.float(), want.float(), atol=tol, rtol=tol):
                            raise RuntimeError("grouped_mm output differs from eager")
                    row["seconds"], row["runs"] = timed(lambda: fn(x), args.min_seconds,
                                                        cold=cold, tensors=weights)
            except Exception as error:  # an implementation this torch lacks
                row["error"] = f"{type(error).__name__}: {str(error)[:200]}"
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
