#!/usr/bin/env python3
"""Tiny random checkpoints saved by transformers, with greedy goldens.

  make_goldens.py OUT_DIR [--families mixtral,qwen3_moe] [--new-tokens 16]

For each family: OUT_DIR/<family>/ holds config.json, model.safetensors,
prompts.txt (one prompt per line, ids space-separated), expected-ids.txt
(the new ids of model.generate(do_sample=False), one line per prompt) and
expected-logits-<i>.npy (f32 [K, vocab]: the logits that chose each new id).
The layout is the one of test/Integration/hf-models (the goldens branch).
"""
import argparse
import os
import sys

import numpy as np
import torch
import transformers

VOCAB = 96
PROMPTS = [[1, 5, 9, 17, 33, 2, 64, 7], [3, 44, 12], [90, 8, 8, 8, 8, 21]]


def configs():
    common = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=256, tie_word_embeddings=False)
    return {
        "mixtral": transformers.MixtralConfig(
            intermediate_size=96, num_local_experts=4, num_experts_per_tok=2,
            rope_theta=10000.0, **common),
        "qwen2_moe": transformers.Qwen2MoeConfig(
            intermediate_size=96, moe_intermediate_size=48, num_experts=4,
            num_experts_per_tok=2, shared_expert_intermediate_size=80,
            norm_topk_prob=False, qkv_bias=True, **common),
        "qwen3_moe": transformers.Qwen3MoeConfig(
            intermediate_size=96, moe_intermediate_size=48, num_experts=4,
            num_experts_per_tok=2, norm_topk_prob=True, head_dim=16,
            **common),
        "olmoe": transformers.OlmoeConfig(
            intermediate_size=48, num_experts=4, num_experts_per_tok=2,
            **common),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--families", default="mixtral,qwen2_moe,qwen3_moe,olmoe")
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    all_configs = configs()
    for family in args.families.split(","):
        config = all_configs[family]
        config.torch_dtype = torch.float32
        model = transformers.AutoModelForCausalLM.from_config(config).eval()
        # Larger random weights than the init: logits with clear winners, so
        # greedy ids are a meaningful check (not ties broken by rounding).
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                elif p.dim() >= 2:
                    p.normal_(0.0, 0.08 if "embed" not in name else 1.0)
                else:
                    p.normal_(0.0, 0.05)
        out = os.path.join(args.out, family)
        os.makedirs(out, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        ids_lines = []
        for i, prompt in enumerate(PROMPTS):
            with torch.no_grad():
                gen = model.generate(
                    torch.tensor([prompt]), do_sample=False,
                    max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens, output_logits=True,
                    return_dict_in_generate=True, pad_token_id=0,
                    eos_token_id=None)
            new = gen.sequences[0, len(prompt):].tolist()
            ids_lines.append(" ".join(map(str, new)))
            logits = torch.stack([l[0] for l in gen.logits]).float().numpy()
            np.save(os.path.join(out, f"expected-logits-{i}.npy"), logits)
        with open(os.path.join(out, "prompts.txt"), "w") as f:
            f.write("".join(" ".join(map(str, p)) + "\n" for p in PROMPTS))
        with open(os.path.join(out, "expected-ids.txt"), "w") as f:
            f.write("".join(line + "\n" for line in ids_lines))
        print(f"{family}: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
