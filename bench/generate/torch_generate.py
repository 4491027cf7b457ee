#!/usr/bin/env python3
"""The PyTorch side of the end-to-end generation benchmark (issue 14 item 6,
DESIGN.md §9): transformers' generate on a small model of each family, on
the CPU, f32 and bf16, so that moe-run's prefill and decode on the same
checkpoint, threads and dtype have something to be compared with.

Per family x dtype x batch B (default 1 and 16): B random prompts of
--prompt-tokens (128) ids each (no padding), greedy generate of
--new-tokens (32, no EOS stop). A LogitsProcessor timestamps every step:
  prefill     start of generate -> first logits (one forward over B x 128
              tokens, with generate's own set-up);
  decode      (last - first timestamp) / (new tokens - 1): ms per step of
              B tokens, and tokens/s = B / that.
Median of --repeats runs after a warm-up. Prints a table and appends one
JSON object per row to --output (JSON lines).

Models: hidden 768, 4 layers, GQA (12 query / 4 kv heads), vocab 32000,
MoE sizes per family below (mixtral 8 experts top-2; qwen2_moe 16 top-4 with
a gated shared expert; qwen3_moe and olmoe 32 top-4; deepseek_v2/v3 32
top-4 with MLA, shared experts, grouped routing, first layer dense,
V3 with YaRN), random unit-scale weights (test/Integration/hf_models.py's
init, so routing spreads over the experts as a trained model's does, not
into one expert as with std 0.02). Made on the fly and not committed;
--checkpoints DIR saves each (f32, save_pretrained) to DIR/<family> the
first time and loads it afterwards (DIR/<family>-tiny with --dry-run), so
that moe-run can be timed on the very same checkpoint. PR-MoE GPT has no transformers module and is not
timed here. Attention: transformers' default (sdpa).

--dry-run: tiny models, 8 prompt tokens, 4 new tokens, batch 1 and 2, one
repeat: a smoke test of the whole script in seconds.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "Integration"))
import hf_models  # noqa: E402  (init_weights: unit-scale random weights)

COMMON = dict(hidden_size=768, num_hidden_layers=4, num_attention_heads=12, num_key_value_heads=4,
              vocab_size=32000, max_position_embeddings=4096, tie_word_embeddings=False, rms_norm_eps=1e-6,
              bos_token_id=None, eos_token_id=None, pad_token_id=None)
MLA = dict(num_key_value_heads=12, intermediate_size=2048, moe_intermediate_size=384, n_routed_experts=32,
           num_experts_per_tok=4, n_shared_experts=2, first_k_dense_replace=1, n_group=4, topk_group=2,
           kv_lora_rank=256, qk_rope_head_dim=32, qk_nope_head_dim=64, v_head_dim=64)
SMALL = {
    "mixtral": dict(intermediate_size=1536, num_local_experts=8, num_experts_per_tok=2, sliding_window=None,
                    rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
    "qwen2_moe": dict(intermediate_size=2048, moe_intermediate_size=512, shared_expert_intermediate_size=1536,
                      num_experts=16, num_experts_per_tok=4, norm_topk_prob=False, decoder_sparse_step=1,
                      mlp_only_layers=[], use_sliding_window=False),
    "qwen3_moe": dict(intermediate_size=2048, moe_intermediate_size=384, num_experts=32, num_experts_per_tok=4,
                      norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[], head_dim=64),
    "olmoe": dict(intermediate_size=512, num_experts=32, num_experts_per_tok=4, norm_topk_prob=False,
                  clip_qkv=None),
    "deepseek_v2": dict(MLA, q_lora_rank=None, topk_method="group_limited_greedy", norm_topk_prob=False,
                        routed_scaling_factor=1.0),
    # Granite-3.0-1B-A400M's experts (F 512, 32, top-8) and multipliers.
    "granitemoe": dict(intermediate_size=512, num_local_experts=32, num_experts_per_tok=8, embedding_multiplier=12.0,
                       attention_multiplier=0.015625, residual_multiplier=0.22, logits_scaling=6.0),
    "deepseek_v3": dict(MLA, q_lora_rank=384, norm_topk_prob=True, routed_scaling_factor=2.5,
                        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                         "original_max_position_embeddings": 1024, "mscale": 1.0,
                                         "mscale_all_dim": 1.0}),
}
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=256, intermediate_size=128,
            moe_intermediate_size=32, shared_expert_intermediate_size=64, kv_lora_rank=16, q_lora_rank=None,
            qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, head_dim=16)


def config_for(family, dry_run):
    kw = dict(COMMON, **SMALL[family])
    if dry_run:
        kw.update({k: v for k, v in TINY.items() if k in kw})
        if family.startswith("deepseek"):
            kw["num_key_value_heads"] = kw["num_attention_heads"]
        else:
            kw["num_key_value_heads"] = 2
        if family == "deepseek_v3":
            kw["q_lora_rank"] = 24
    config = transformers.AutoConfig.for_model(family, **kw)
    config.dtype = torch.float32
    return config


def load_model(family, args):
    name = family + ("-tiny" if args.dry_run else "")  # a dry run never leaves a tiny model for a real one
    path = os.path.join(args.checkpoints, name) if args.checkpoints else None
    if path and os.path.exists(os.path.join(path, "config.json")):
        return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), path
    torch.manual_seed(args.seed)
    model = transformers.AutoModelForCausalLM.from_config(config_for(family, args.dry_run)).eval()
    hf_models.init_weights(model, torch.Generator().manual_seed(args.seed))
    if path:
        model.save_pretrained(path)
    return model, path or "(in memory)"


class Clock(transformers.LogitsProcessor):
    """Records when each step's logits reach the sampler."""

    def __init__(self):
        self.times = []

    def __call__(self, input_ids, scores):
        self.times.append(time.perf_counter())
        return scores


def run_once(model, prompts, new_tokens):
    clock = Clock()
    start = time.perf_counter()
    out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                         max_new_tokens=new_tokens, min_new_tokens=None, eos_token_id=None, pad_token_id=0,
                         logits_processor=transformers.LogitsProcessorList([clock]))
    assert out.shape[1] == prompts.shape[1] + new_tokens, out.shape
    t = clock.times
    return t[0] - start, (t[-1] - t[0]) / (len(t) - 1)


def measure(model, batch, args, vocab):
    g = torch.Generator().manual_seed(batch)
    prompts = torch.randint(0, vocab, (batch, args.prompt_tokens), generator=g)
    with torch.no_grad():
        run_once(model, prompts, 2)  # warm-up
        runs = [run_once(model, prompts, args.new_tokens) for _ in range(args.repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", nargs="*", default=sorted(SMALL), choices=sorted(SMALL))
    ap.add_argument("--dtypes", nargs="*", default=["f32", "bf16"], choices=["f32", "bf16"])
    ap.add_argument("--batch", nargs="*", type=int, default=[1, 16])
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all)")
    ap.add_argument("--checkpoints", help="save / load each family's model under DIR/<family>")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", help="append JSON lines here")
    ap.add_argument("--dry-run", action="store_true", help="tiny models and sizes: a smoke test")
    args = ap.parse_args()
    if args.dry_run:
        args.batch, args.prompt_tokens, args.new_tokens, args.repeats = [1, 2], 8, 4, 1
    if args.new_tokens < 2:
        ap.error("--new-tokens must be >= 2 (decode is timed between steps)")
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    meta = {"threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
            "cpu": platform.processor() or platform.machine(), "prompt_tokens": args.prompt_tokens,
            "new_tokens": args.new_tokens, "repeats": args.repeats, "dry_run": args.dry_run}
    rows = []
    out = open(args.output, "a") if args.output else None
    for family in args.families:
        model, where = load_model(family, args)
        params = sum(p.numel() for p in model.parameters())
        for dtype in args.dtypes:
            m = model.to(torch.bfloat16 if dtype == "bf16" else torch.float32)
            for batch in args.batch:
                prefill, step = measure(m, batch, args, model.config.vocab_size)
                row = dict(meta, kind="torch_generate", family=family, checkpoint=where, params=params,
                           dtype=dtype, batch=batch, prefill_ms=prefill * 1e3, decode_ms_per_token=step * 1e3,
                           decode_tokens_per_s=batch / step)
                rows.append(row)
                if out:
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                print(f"{family:12s} {dtype:5s} batch {batch:3d}: prefill {prefill * 1e3:9.2f} ms, "
                      f"decode {step * 1e3:8.2f} ms/token, {batch / step:9.1f} tokens/s", flush=True)
        del model
    print(f"\ntransformers {transformers.__version__} generate, torch {torch.__version__}, "
          f"{meta['threads']} threads, prompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens, "
          f"median of {args.repeats}" + (" (dry run: tiny models)" if args.dry_run else ""))
    header = ("family", "params", "dtype", "batch", "prefill ms", "decode ms/token", "tokens/s")
    table = [(r["family"], f"{r['params'] / 1e6:.1f}M", r["dtype"], str(r["batch"]), f"{r['prefill_ms']:.2f}",
              f"{r['decode_ms_per_token']:.2f}", f"{r['decode_tokens_per_s']:.1f}") for r in rows]
    widths = [max(len(x[i]) for x in table + [header]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for x in table:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(x, widths)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
