#!/usr/bin/env python3
"""Whole-model goldens: tiny random checkpoints -> greedy generation, the
token ids and logits a compiled model must reproduce (issue 14 item 5).

generate OUT: for every family a tiny random f32 model (hidden 64, 2-3
layers, vocab 128, GQA where the family has it, MLA shrunk) made with
transformers, its weights re-initialised at unit scale (HF's std 0.02 would
make routing and the argmax degenerate), saved by save_pretrained(OUT/<family>,
max_shard_size=...) (several shards + index, as a user gets them), plus
prompts.txt (3 prompts of different lengths, ids space-separated, one per
line), expected-ids.txt (K = 16 greedy new ids per prompt, one line each,
from model.generate(do_sample=False) run per prompt without padding) and
expected-logits-<i>.npy (f32 [K, vocab]: the raw logits that chose each
token, generate's output_logits). A model is re-seeded until every step's
top-2 logit gap is >= MIN_GAP, every router choice is >= MIN_ROUTER_MARGIN
from a tie (ties and near-ties would make the goldens depend on summation
order), every prompt yields >= MIN_DISTINCT distinct tokens, and the NumPy
reference (model_reference.py) reproduces it. The committed goldens in
test/Integration/hf-models/ are this command's output:

  python3 test/Integration/hf_models.py generate test/Integration/hf-models

Families: mixtral (rope default), qwen2_moe (qkv bias, shared expert with
sigmoid gate, a dense layer, rope linear), qwen3_moe (per-head q/k norm,
head_dim != hidden/heads, tied embeddings, rope llama3), olmoe (q/k norm
over the whole projection), deepseek_v2 (MLA without q_lora,
group-limited greedy routing, first layer dense), deepseek_v3 (MLA with
q_lora, YaRN with mscale != mscale_all_dim, sigmoid + correction-bias
grouped routing, first layer dense), gpt_oss (attention sinks, sliding
windows on the layers layer_types names, smaller than the prompts, q/k/v/o
biases, YaRN without truncation; router bias, softmax over the top-k
logits, expert biases, SwiGLU clamped at swiglu_limit 1.0), gpt_oss_mxfp4
(the same with F 32 and its experts stored MXFP4 as gpt-oss-20b stores
them; generate runs on the decoded weights), phimoe (LayerNorms with bias,
q/k/v/o and LM head biases, a window of 8, longrope in its long regime,
sparsemixer), and prmoe_gpt (LayerNorm, learned
positions, fused QKV with biases, tied embeddings, a dense layer then
residual-MoE layers of 4 and 8 experts, top-2 dropless) and prmoe_gpt_rope
(rotary positions, standard MoE every second layer, top-1, untied output
layer), dbrx (fused Wqkv rows [q; k; v], clip_qkv 1.0 biting, LayerNorm
without bias, nested attn_config / ffn_config), and granitemoe (Granite's
four scalars, none 1: embedding_multiplier, attention_multiplier as the
softmax scale, residual_multiplier on both sublayer outputs, logits
divided by logits_scaling; fused input_linear / output_linear experts,
softmax over the top-k router logits, tied embeddings) with granitemoeshared
(the same with a shared MLP, which residual_multiplier scales too). transformers has
no module for a Megatron-DeepSpeed PR-MoE GPT (and
DeepSpeed is not installed here), so the PR-MoE checkpoints are written
with NumPy (model_reference.py documents the keys and the proposed schema)
and their goldens come from PrmoeGptTorch below, a small torch
implementation written apart from the NumPy reference (a second reading of
the same description, not DeepSpeed's code).

check --moe-run PATH: for every family directory (--goldens, default the
committed ones; --families restricts) and every mesh (--mesh, repeatable,
default 1x1), runs

  moe-run DIR --mesh M --prompt-ids 1,2,3 [--prompt-ids ...] \\
      --max-new-tokens K --output-ids ids.txt --output-logits logits.npy \\
      [--moe-run-arg values]

with all prompts as one batch (prompts of different lengths) and with the
first prompt alone (--batch), and compares: ids identical, logits max
|l - ref| / max |ref| <= 1e-4 per prompt (logits [K, vocab] for one prompt,
[B, K, vocab] for B). Prints the parity table (family x mesh x batch -> ids
equal, max error). Where torch and transformers are installed it first generates
fresh checkpoints (another seed) into --workdir and checks those too. Exit
0 when all agree, 1 otherwise, 77 (ctest: skipped) without NumPy.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("numpy is not installed: skipping the whole-model goldens")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import hf_checkpoints  # noqa: E402  (its tiny per-family MoE configs)
from e2e_check import rel_error  # noqa: E402
import model_reference  # noqa: E402

TOL = 1e-4
NEW_TOKENS = 16
PROMPT_LENGTHS = (5, 11, 23)
MIN_GAP = 1e-3          # top-2 logit gap per generated token
MIN_ROUTER_MARGIN = 1e-5  # selection score gap at every router decision
MIN_DISTINCT = 4        # distinct new tokens per prompt
SEED_TRIES = 20

# The whole decoder around hf_checkpoints.FAMILIES' MoE settings: attention
# sizes, vocabulary, rope variants, tied embeddings.
COMMON = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=128, max_position_embeddings=128, tie_word_embeddings=False, rms_norm_eps=1e-6,
              bos_token_id=None, eos_token_id=None, pad_token_id=None)
MLA = dict(num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=3, kv_lora_rank=16,
           qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16)
FAMILIES = {
    "mixtral": dict(sliding_window=None, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
    "qwen2_moe": dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
                      use_sliding_window=False, mlp_only_layers=[1]),
    "qwen3_moe": dict(head_dim=24, tie_word_embeddings=True,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 32}),
    "olmoe": dict(clip_qkv=None, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    "deepseek_v2": dict(MLA, q_lora_rank=None,
                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    "deepseek_v3": dict(MLA, q_lora_rank=24, rope_interleave=True,
                        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                         "original_max_position_embeddings": 32, "beta_fast": 32,
                                         "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.8}),
    # Attention sinks, q/k/v/o biases, head_dim apart from hidden / heads,
    # YaRN without truncation, and a window of 8 on the sliding layers:
    # smaller than every prompt + generation (5..23 + 16 positions).
    "gpt_oss": dict(num_hidden_layers=3, head_dim=24, attention_bias=True, sliding_window=8,
                    layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                    rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                     "original_max_position_embeddings": 32, "beta_fast": 32.0,
                                     "beta_slow": 1.0, "truncate": False}),
}
# glm4_moe (GLM-4.5): partial rotary (the first 8 of 16 head dims rotate,
# the rest pass), q/k/v biases without an o bias, the per-head q/k norm
# (use_qk_norm; off in the published GLM-4.5), a dense first layer, then
# DeepSeek-V3's grouped sigmoid routing with a shared expert.
FAMILIES["glm4_moe"] = dict(num_hidden_layers=3, head_dim=16, attention_bias=True, use_qk_norm=True,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                             "partial_rotary_factor": 0.5})
# dots1 (dots.llm1): Qwen3's per-head q/k norm, q/k/v and o biases
# (attention_bias), a window of 8 on its sliding layer (the published
# config slides on none), DeepSeek-V3's routing with two shared experts.
FAMILIES["dots1"] = dict(num_hidden_layers=3, head_dim=16, attention_bias=True, sliding_window=8,
                         layer_types=["full_attention", "sliding_attention", "full_attention"],
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
# ernie4_5_moe (ERNIE-4.5): rotary embedding over interleaved pairs (2i,
# 2i + 1), tied embeddings, GQA, a dense first layer (moe_layer_start_index
# 1), softmax routing with a correction bias and a shared expert.
FAMILIES["ernie4_5_moe"] = dict(num_hidden_layers=3, head_dim=16, tie_word_embeddings=True,
                                rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
# hunyuan_v1_moe (Hunyuan-A13B): q/k RMSNorm per head after the rope
# (query_layernorm, key_layernorm), q/k/v and o biases, the "dynamic" rope
# with an alpha that HunYuanMoEV1 reads as a fixed NTK stretch of the base
# (theta * alpha^(D / (D - 2))), tied embeddings, a shared MLP.
FAMILIES["hunyuan_v1_moe"] = dict(head_dim=16, attention_bias=True, tie_word_embeddings=True,
                                  rope_parameters={"rope_type": "dynamic", "alpha": 4.0, "factor": 1.0,
                                                   "rope_theta": 10000.0})
# DBRX (its own key names: d_model, n_layers, n_heads, attn_config): fused
# Wqkv, LayerNorm without bias, GQA 4/2, and clip_qkv 1.0 that clamps a
# share of q, k and v (checked: it changes the logits).
FAMILIES["dbrx"] = dict(d_model=64, n_layers=2, n_heads=4, max_seq_len=128,
                        ffn_config=dict(hidden_size=64, ffn_hidden_size=24, moe_num_experts=6, moe_top_k=2,
                                        moe_normalize_expert_weights=1.0),
                        attn_config=dict(kv_n_heads=2, rope_theta=10000.0, clip_qkv=1.0),
                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
# phimoe (Phi-3.5-MoE): LayerNorms with bias, q/k/v/o biases, the LM
# head's bias, a window of 8 on every layer, longrope. transformers 5.25
# picks the regime per forward by max(position_ids) + 1 >
# original_max_position_embeddings and, when generation first crosses it,
# drops the cache and prefills everything again (prepare_inputs_for_generation);
# its inv_freq is short_factor's in both regimes, only the mscale switches.
# original_max_position_embeddings 4 < every prompt: the whole run is in
# the long regime (the crossing's re-prefill is not moe-run's; the short
# regime and the switch are the gtest's).
FAMILIES["phimoe"] = dict(attention_bias=True, lm_head_bias=True, sliding_window=8,
                          rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                           "short_factor": [1.0, 1.05, 1.1, 1.2, 1.4, 1.7, 2.0, 2.5],
                                           "long_factor": [1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0],
                                           "short_mscale": 1.05, "long_mscale": 1.2,
                                           "original_max_position_embeddings": 4})
# granitemoe (Granite 3.0 MoE): Mixtral's decoder with four scalars, all
# != 1 here: inputs_embeds * embedding_multiplier, attention scale
# attention_multiplier (not head_dim^-0.5), attention and MoE outputs *
# residual_multiplier before their residual adds, logits / logits_scaling;
# experts fused input_linear [E, 2F, H] (gate rows, then up rows) /
# output_linear [E, H, F], router.layer; softmax over the top-k router
# logits; tied embeddings as the published models. Their values
# (1B-A400M: 12.0, 0.015625 = 1/head_dim, 0.22, 6.0) are muP's for hidden
# 1024 and std-0.02 weights, not for this unit-scale hidden-64 model
# (0.015625 is 16x below its head_dim^-0.5 = 0.25: nearly uniform
# attention). The decoder is pre-norm, so what mostly matters is
# embedding_multiplier / residual_multiplier (both x c scale every residual
# state by c, which each RMSNorm cancels up to eps); above ~1 the token's
# own (tied) embedding dominates its logits and greedy repeats it (2.0 /
# 0.5: none of 20 seeds passes MIN_DISTINCT), so 0.5 / 2.0. The tied
# N(0, 0.05^2) LM head gives logits of std ~0.4 and logits_scaling > 1
# shrinks them into top-2 gaps < MIN_GAP (2.0: half the seeds fail), so
# 0.5 (std ~0.8). attention_multiplier 0.2: O(1) scores as head_dim^-0.5 =
# 0.25 gives, yet apart from it and from 1 (transformers' default). 11 of
# the first 12 seeds pass; model_reference_test checks that each of the
# four, set back to its default, moves the logits past 1e-2.
FAMILIES["granitemoe"] = dict(tie_word_embeddings=True, embedding_multiplier=0.5, attention_multiplier=0.2,
                              residual_multiplier=2.0, logits_scaling=0.5,
                              rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
# granitemoeshared: the same decoder with a shared MLP (shared_mlp.input_linear
# [2F, H], output_linear [H, F]) added plainly to the routed experts, the
# sum times residual_multiplier (2.0, as granitemoe's).
FAMILIES["granitemoeshared"] = dict(FAMILIES["granitemoe"])
PRMOE_GPT = {
    "model_type": "prmoe", "num_layers": 3, "hidden_size": 64, "ffn_hidden_size": 32,
    "activation": "gelu", "torch_dtype": "float32", "num_experts": [1, 4, 8], "expert_interval": 1,
    "mlp_type": "residual", "top_k": 2, "drop_tokens": False,
    "weight_prefix": "language_model.encoder.layers", "num_attention_heads": 4, "vocab_size": 128,
    "max_position_embeddings": 128, "layernorm_epsilon": 1e-5,
    "position_embedding_type": "learned_absolute", "tie_word_embeddings": True,
}
# The other PR-MoE GPT paths: rotary positions, the standard (non-residual)
# MoE, top-1, MoE every second layer, an untied output layer.
PRMOE_GPT_ROPE = dict(PRMOE_GPT, num_layers=2, hidden_size=32, ffn_hidden_size=32, num_experts=[4],
                      expert_interval=2, mlp_type="standard", top_k=1, num_attention_heads=2,
                      position_embedding_type="rope", rope_theta=10000.0, tie_word_embeddings=False)
PRMOE = {"prmoe_gpt": PRMOE_GPT, "prmoe_gpt_rope": PRMOE_GPT_ROPE}
# gpt_oss with its experts stored as gpt-oss-20b stores them (MXFP4 blocks
# and scales, quantization_config mxfp4; F 32: whole 32-value blocks);
# everything else f32. The goldens are generate on the decoded weights.
MXFP4 = {"gpt_oss_mxfp4": ("gpt_oss", dict(intermediate_size=32))}
ALL = sorted(FAMILIES) + sorted(MXFP4) + sorted(PRMOE)


# --- generation ----------------------------------------------------------------


def hf_config(family):
    import transformers
    model_type, overrides = MXFP4.get(family, (family, {}))
    kw = dict(hf_checkpoints.COMMON, **hf_checkpoints.FAMILIES[model_type])
    kw.update(COMMON)
    kw.update(FAMILIES[model_type])
    kw.update(overrides)
    return transformers.AutoConfig.for_model(model_type, **kw)


def mxfp4_experts(model):
    """Rounds every gpt-oss expert matrix to MXFP4 in place; {key: (blocks,
    scales)} of the stored form (fp8_checkpoints' quantizer, its layout
    checked there against transformers' convert_moe_packed_tensors)."""
    import torch
    from fp8_checkpoints import mxfp4_quantize_experts
    stored = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")):
                blocks, scales, decoded = mxfp4_quantize_experts(p.detach().numpy())
                p.copy_(torch.from_numpy(decoded))
                stored[name] = (blocks, scales)
    return stored


def store_mxfp4(target, stored):
    """Replaces the saved f32 expert tensors with their _blocks / _scales
    and marks the config quantization_config mxfp4."""
    from safetensors.numpy import load_file, save_file
    index_path = os.path.join(target, "model.safetensors.index.json")
    with open(index_path) as f:
        index = json.load(f)
    for name, (blocks, scales) in stored.items():
        shard = index["weight_map"].pop(name)
        tensors = load_file(os.path.join(target, shard))
        del tensors[name]
        tensors[name + "_blocks"] = np.ascontiguousarray(blocks)
        tensors[name + "_scales"] = np.ascontiguousarray(scales)
        save_file(tensors, os.path.join(target, shard), metadata={"format": "pt"})
        index["weight_map"][name + "_blocks"] = index["weight_map"][name + "_scales"] = shard
    index["weight_map"] = dict(sorted(index["weight_map"].items()))
    with open(index_path, "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    config_path = os.path.join(target, "config.json")
    with open(config_path) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = {"quant_method": "mxfp4"}
    with open(config_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def init_weights(model, gen):
    """Unit-scale random weights: linear [out, in] ~ N(0, 1/in), norm
    weights ~ N(1, 0.25), biases and correction biases ~ N(0, 0.1),
    embeddings ~ N(0, 1), or N(0, 0.05^2) when tied (else a token's own
    embedding dominates its logits and the model repeats it forever). Every
    tensor non-trivial, outputs O(1)."""
    import torch
    embed_std = 0.05 if model.config.tie_word_embeddings else 1.0
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if not p.is_floating_point() or "inv_freq" in name:
                continue
            if name.endswith("sinks"):  # gpt-oss: one logit per head, O(1)
                p.copy_(torch.randn(p.shape, generator=gen))
            elif "norm" in name.replace("norm_attn_norm.", ""):  # dbrx's attention sits under it
                p.copy_(1.0 + 0.25 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name or name == "transformer.wte.weight":
                p.copy_(embed_std * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[-1]))


def greedy_torch(model, prompt):
    """(ids [K], raw logits [K, vocab]) of generate(do_sample=False): no
    EOS stop, no padding."""
    import torch
    # An explicit mask: without one generate masks every prompt token equal
    # to pad_token_id as padding.
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=NEW_TOKENS,
                         min_new_tokens=None, eos_token_id=None, pad_token_id=0,
                         output_logits=True, return_dict_in_generate=True)
    ids = out.sequences[0, len(prompt):].numpy()
    logits = torch.stack(out.logits, 1)[0].float().numpy()
    assert len(ids) == NEW_TOKENS, ids
    return ids.astype(np.int64), logits.astype(np.float32)


def top2_gap(logits):
    s = np.sort(logits, axis=-1)
    return float((s[..., -1] - s[..., -2]).min())


def write_goldens(target, prompts, results):
    with open(os.path.join(target, "prompts.txt"), "w") as f:
        f.writelines(" ".join(map(str, p)) + "\n" for p in prompts)
    with open(os.path.join(target, "expected-ids.txt"), "w") as f:
        f.writelines(" ".join(map(str, ids)) + "\n" for ids, _ in results)
    for i, (_, logits) in enumerate(results):
        np.save(os.path.join(target, f"expected-logits-{i}.npy"), logits.astype(np.float32))


def acceptable(target, prompts, results):
    """Why these goldens are not usable, or None: near-ties, a degenerate
    output, or the NumPy reference disagreeing."""
    for i, (ids, logits) in enumerate(results):
        if top2_gap(logits) < MIN_GAP:
            return f"prompt {i}: top-2 logit gap {top2_gap(logits):.1e} < {MIN_GAP}"
        if len(set(ids.tolist())) < MIN_DISTINCT:
            return f"prompt {i}: only {len(set(ids.tolist()))} distinct new tokens"
    ref = model_reference.Model(target)
    for i, (pr, (ids, logits)) in enumerate(zip(prompts, results)):
        rids, rlogits = ref.generate(pr, NEW_TOKENS)
        if not np.array_equal(rids, ids) or rel_error(rlogits, logits) > TOL:
            return (f"prompt {i}: the NumPy reference disagrees (ids {rids.tolist()} vs {ids.tolist()}, "
                    f"logits error {rel_error(rlogits, logits):.1e})")
    if ref.type == "gpt_oss" and ref.clamped == 0:
        return "no SwiGLU input reached swiglu_limit: the clamps are untested"
    if ref.type == "dbrx":
        if ref.clipped == 0:
            return "no q/k/v value reached clip_qkv: the clamp is untested"
        unclipped = model_reference.Model(target)
        unclipped.clip_qkv = None
        _, free = unclipped.generate(prompts[0], NEW_TOKENS)
        if rel_error(free, results[0][1]) < 1e-2:
            return f"clip_qkv changes the logits by only {rel_error(free, results[0][1]):.1e}"
    if ref.min_router_margin < MIN_ROUTER_MARGIN:
        return f"router margin {ref.min_router_margin:.1e} < {MIN_ROUTER_MARGIN}"
    return None


def generate_hf(target, family, seed):
    import torch
    import transformers
    transformers.utils.logging.disable_progress_bar()
    for attempt in range(SEED_TRIES):
        s = seed + 1000 * attempt
        torch.manual_seed(s)
        config = hf_config(family)
        config.dtype = torch.float32
        config._attn_implementation = "eager"
        model = transformers.AutoModelForCausalLM.from_config(config).eval()
        init_weights(model, torch.Generator().manual_seed(s))
        stored = mxfp4_experts(model) if family in MXFP4 else {}
        rng = np.random.default_rng(s)
        prompts = [rng.integers(0, config.vocab_size, n).tolist() for n in PROMPT_LENGTHS]
        with torch.no_grad():
            results = [greedy_torch(model, p) for p in prompts]
        shutil.rmtree(target, ignore_errors=True)
        model.save_pretrained(target, max_shard_size="100KB")
        gc = os.path.join(target, "generation_config.json")
        if os.path.exists(gc):
            os.remove(gc)
        if stored:
            store_mxfp4(target, stored)
        write_goldens(target, prompts, results)
        why = acceptable(target, prompts, results)
        if why is None:
            return s, transformers.__version__, torch.__version__
        print(f"{family}: seed {s} rejected: {why}")
    raise SystemExit(f"{family}: no acceptable seed in {SEED_TRIES} tries")


def write_sharded(target, tensors, shard_bytes=100_000):
    """tensors -> model-0000i-of-0000n.safetensors + index, greedy by size
    (the layout save_pretrained writes)."""
    from safetensors_file import write_safetensors
    shards, cur, size = [], {}, 0
    for name, a in tensors.items():
        if cur and size + a.nbytes > shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[name] = a
        size += a.nbytes
    shards.append(cur)
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(os.path.join(target, fname), {k: (v, "F32") for k, v in shard.items()})
        weight_map.update({k: fname for k in shard})
    with open(os.path.join(target, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(a.nbytes for a in tensors.values())},
                   "weight_map": weight_map}, f, indent=2, sort_keys=True)


def prmoe_tensors(cfg, rng):
    H, F, V = cfg["hidden_size"], cfg["ffn_hidden_size"], cfg["vocab_size"]
    w = lambda *shape: (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
    b = lambda n: (0.1 * rng.standard_normal(n)).astype(np.float32)
    ln = lambda n: (1 + 0.25 * rng.standard_normal(n)).astype(np.float32)
    # Tied embeddings: small, as in init_weights.
    tied = cfg["tie_word_embeddings"]
    t = {"language_model.embedding.word_embeddings.weight":
         ((0.05 if tied else 1.0) * rng.standard_normal((V, H))).astype(np.float32)}
    if cfg["position_embedding_type"] == "learned_absolute":
        t["language_model.embedding.position_embeddings.weight"] = \
            (0.05 * rng.standard_normal((cfg["max_position_embeddings"], H))).astype(np.float32)
    if not tied:
        t["language_model.output_layer.weight"] = w(V, H)
    P = cfg["weight_prefix"]
    counts = iter(cfg["num_experts"])
    for i in range(cfg["num_layers"]):
        p = f"{P}.{i}."
        t.update({p + "input_layernorm.weight": ln(H), p + "input_layernorm.bias": b(H),
                  p + "self_attention.query_key_value.weight": w(3 * H, H),
                  p + "self_attention.query_key_value.bias": b(3 * H),
                  p + "self_attention.dense.weight": w(H, H), p + "self_attention.dense.bias": b(H),
                  p + "post_attention_layernorm.weight": ln(H), p + "post_attention_layernorm.bias": b(H)})

        def fc(pre):
            t.update({pre + "dense_h_to_4h.weight": w(F, H), pre + "dense_h_to_4h.bias": b(F),
                      pre + "dense_4h_to_h.weight": w(H, F), pre + "dense_4h_to_h.bias": b(H)})
        E = next(counts) if (i + 1) % cfg["expert_interval"] == 0 else 1
        if E == 1:
            fc(p + "mlp.")
            continue
        t[p + "mlp.deepspeed_moe.gate.wg.weight"] = w(E, H)
        for e in range(E):
            fc(f"{p}mlp.deepspeed_moe.experts.deepspeed_experts.{e}.")
        if cfg["mlp_type"] == "residual":
            fc(p + "mlp.mlp.")
            t[p + "mlp.coefficient.weight"], t[p + "mlp.coefficient.bias"] = w(2, H), b(2)
    t["language_model.encoder.final_layernorm.weight"] = ln(H)
    t["language_model.encoder.final_layernorm.bias"] = b(H)
    return t


class PrmoeGptTorch:
    """A second implementation of the PR-MoE GPT, in torch, written the way
    Megatron-DeepSpeed computes it rather than the way model_reference.py
    does: the fused QKV output viewed [s, heads, 3 * head_dim] and split,
    F.layer_norm, exact F.gelu, F.scaled_dot_product_attention(is_causal),
    DeepSpeed's gate (softmax, torch.topk, the kept weights divided by their
    sum, dropless), an expert loop, the residual coefficient softmax; no KV
    cache: every step recomputes the whole sequence. Not DeepSpeed itself
    (not installed here): a cross-check of the reference's reading of the
    same description, so that the prmoe_gpt goldens are not the reference's
    own output."""

    def __init__(self, directory):
        import torch
        from safetensors.torch import load_file
        with open(os.path.join(directory, "config.json")) as f:
            self.c = json.load(f)
        with open(os.path.join(directory, "model.safetensors.index.json")) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        self.w = {}
        for name in files:
            self.w.update(load_file(os.path.join(directory, name)))
        assert not self.c.get("drop_tokens", True), "capacity: see model_reference.py"
        self.torch = torch

    def mlp(self, x, pre):
        F = self.torch.nn.functional
        h = F.gelu(F.linear(x, self.w[pre + "dense_h_to_4h.weight"], self.w[pre + "dense_h_to_4h.bias"]))
        return F.linear(h, self.w[pre + "dense_4h_to_h.weight"], self.w[pre + "dense_4h_to_h.bias"])

    def moe(self, x, p):
        torch, F = self.torch, self.torch.nn.functional
        gates = F.softmax(F.linear(x.float(), self.w[p + "deepspeed_moe.gate.wg.weight"].float()), dim=-1)
        weights, experts = torch.topk(gates, self.c["top_k"], dim=-1)
        if self.c["top_k"] > 1:  # top-1 keeps the raw probability
            weights = weights / weights.sum(-1, keepdim=True).clamp(min=torch.finfo(weights.dtype).eps)
        out = torch.zeros_like(x)
        for e in range(gates.shape[-1]):
            tok, slot = torch.where(experts == e)
            if len(tok):
                y = self.mlp(x[tok], f"{p}deepspeed_moe.experts.deepspeed_experts.{e}.")
                out.index_add_(0, tok, y * weights[tok, slot, None])
        if self.c.get("mlp_type", "standard") != "residual":
            return out
        coef = F.softmax(F.linear(x, self.w[p + "coefficient.weight"], self.w[p + "coefficient.bias"]), dim=-1)
        return out * coef[:, 0:1] + self.mlp(x, p + "mlp.") * coef[:, 1:2]

    def logits(self, ids):
        torch, F = self.torch, self.torch.nn.functional
        c, w = self.c, self.w
        H, heads, eps = c["hidden_size"], c["num_attention_heads"], c.get("layernorm_epsilon", 1e-5)
        hd, S, P = H // heads, len(ids), c["weight_prefix"]
        x = w["language_model.embedding.word_embeddings.weight"][torch.tensor(ids)]
        rope = c.get("position_embedding_type", "learned_absolute") == "rope"
        if rope:  # Megatron's RotaryEmbedding: freqs = outer(t, inv_freq), emb = cat(freqs, freqs)
            inv_freq = 1.0 / c.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
            emb = torch.outer(torch.arange(S, dtype=torch.float64), inv_freq).repeat(1, 2)
            cos, sin = emb.cos().float(), emb.sin().float()

            def rotate(t):  # [heads, S, hd]
                t1, t2 = t[..., :hd // 2], t[..., hd // 2:]
                return t * cos + torch.cat((-t2, t1), dim=-1) * sin
        else:
            x = x + w["language_model.embedding.position_embeddings.weight"][:S]
        counts, m = c["num_experts"], 0
        for i in range(c["num_layers"]):
            p = f"{P}.{i}."
            ln = lambda t, n: F.layer_norm(t, (H,), w[p + n + ".weight"], w[p + n + ".bias"], eps)
            qkv = F.linear(ln(x, "input_layernorm"), w[p + "self_attention.query_key_value.weight"],
                           w[p + "self_attention.query_key_value.bias"])
            q, k, v = qkv.view(S, heads, 3 * hd).transpose(0, 1).split(hd, dim=-1)
            if rope:
                q, k = rotate(q), rotate(k)
            a = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]
            x = x + F.linear(a.transpose(0, 1).reshape(S, H), w[p + "self_attention.dense.weight"],
                             w[p + "self_attention.dense.bias"])
            h = ln(x, "post_attention_layernorm")
            E = counts[min(m, len(counts) - 1)] if (i + 1) % c["expert_interval"] == 0 else 1
            m += (i + 1) % c["expert_interval"] == 0
            x = x + (self.mlp(h, p + "mlp.") if E == 1 else self.moe(h, p + "mlp."))
        f = "language_model.encoder.final_layernorm."
        x = F.layer_norm(x, (H,), w[f + "weight"], w[f + "bias"], eps)
        return F.linear(x, w["language_model.embedding.word_embeddings.weight"] if c.get("tie_word_embeddings", True)
                        else w["language_model.output_layer.weight"])

    def generate(self, prompt):
        seq, ids, out = list(prompt), [], []
        with self.torch.no_grad():
            for _ in range(NEW_TOKENS):
                last = self.logits(seq)[-1]
                ids.append(int(self.torch.argmax(last)))
                out.append(last.numpy())
                seq.append(ids[-1])
        return np.array(ids, np.int64), np.stack(out).astype(np.float32)


def generate_prmoe(target, family, seed):
    """The PR-MoE GPT: weights from NumPy (no transformers module exists),
    goldens from PrmoeGptTorch, checked against the NumPy reference."""
    for attempt in range(SEED_TRIES):
        s = seed + 1000 * attempt
        rng = np.random.default_rng(s)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        with open(os.path.join(target, "config.json"), "w") as f:
            json.dump(PRMOE[family], f, indent=2)
        write_sharded(target, prmoe_tensors(PRMOE[family], rng))
        prompts = [rng.integers(0, PRMOE[family]["vocab_size"], n).tolist() for n in PROMPT_LENGTHS]
        model = PrmoeGptTorch(target)
        results = [model.generate(p) for p in prompts]
        write_goldens(target, prompts, results)
        why = acceptable(target, prompts, results)
        if why is None:
            return s
        print(f"{family}: seed {s} rejected: {why}")
    raise SystemExit(f"{family}: no acceptable seed in {SEED_TRIES} tries")


def generate(out, families, seed):
    os.makedirs(out, exist_ok=True)
    for family in families:
        target = os.path.join(out, family)
        if family in PRMOE:
            import torch
            s = generate_prmoe(target, family, seed)
            what = f"PrmoeGptTorch, torch {torch.__version__}"
        else:
            s, tv, pv = generate_hf(target, family, seed)
            what = f"transformers {tv}, torch {pv}"
        shards = len([f for f in os.listdir(target) if f.endswith(".safetensors")])
        with open(os.path.join(target, "expected-ids.txt")) as f:
            ids = f.read().split("\n")[0]
        print(f"{target}: seed {s}, {shards} shards ({what}); prompt 0 -> {ids}")


# --- check ---------------------------------------------------------------------


def parse_ids(path, batch):
    with open(path) as f:
        lines = [line.split() for line in f if line.strip()]
    if len(lines) != batch:
        raise ValueError(f"{path}: {len(lines)} lines for {batch} prompts")
    return [np.array([int(t) for t in line], np.int64) for line in lines]


def run_moe_run(moe_run, ckpt, mesh, prompts, workdir, timeout, extra=()):
    """Runs moe-run on the prompts as one batch; (ids per prompt, logits per
    prompt) or raises RuntimeError / ValueError with the reason."""
    os.makedirs(workdir, exist_ok=True)
    ids_path, logits_path = os.path.join(workdir, "ids.txt"), os.path.join(workdir, "logits.npy")
    for p in (ids_path, logits_path):
        if os.path.exists(p):
            os.remove(p)
    cmd = [moe_run, ckpt, "--mesh", mesh]
    for pr in prompts:
        cmd += ["--prompt-ids", ",".join(map(str, pr))]
    cmd += ["--max-new-tokens", str(NEW_TOKENS), "--output-ids", ids_path, "--output-logits", logits_path]
    cmd += list(extra)
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout} s: {' '.join(cmd)}")
    with open(os.path.join(workdir, "log"), "w") as f:
        f.write(" ".join(cmd) + "\n" + run.stdout + run.stderr)
    if run.returncode != 0:
        raise RuntimeError(f"exited {run.returncode}: {' '.join(cmd)}\n{run.stderr.strip()[-2000:]}")
    ids = parse_ids(ids_path, len(prompts))
    logits = np.load(logits_path)
    if logits.ndim == 2 and len(prompts) == 1:
        logits = logits[None]
    if logits.ndim != 3 or logits.shape[0] != len(prompts):
        raise ValueError(f"{logits_path}: shape {logits.shape} for {len(prompts)} prompts")
    return ids, list(logits)


def compare(ids, logits, exp_ids, exp_logits):
    """(ids equal, max error, failure text or None)."""
    same = all(np.array_equal(a, np.asarray(b)) for a, b in zip(ids, exp_ids))
    err = max(rel_error(l, r) for l, r in zip(logits, exp_logits))
    why = None
    if not same:
        why = "ids differ: " + "; ".join(f"prompt {i}: {a.tolist()} vs {b}"
                                        for i, (a, b) in enumerate(zip(ids, exp_ids))
                                        if not np.array_equal(a, np.asarray(b)))
    elif not err <= TOL:
        why = f"logits max rel error {err:.2e} > {TOL}"
    return same, err, why


def check_family(moe_run, ckpt, mesh, batch, workdir, timeout, extra=()):
    """(ids equal, max error, failure text or None) of one checkpoint on one
    mesh; batch "all": every prompt in one run, "single": the first alone."""
    prompts, exp_ids, exp_logits = model_reference.read_goldens(ckpt)
    n = len(prompts) if batch == "all" else 1
    try:
        ids, logits = run_moe_run(moe_run, ckpt, mesh, prompts[:n], workdir, timeout, extra)
    except (RuntimeError, ValueError, OSError) as e:
        return False, float("inf"), str(e)
    return compare(ids, logits, exp_ids[:n], exp_logits[:n])


def check(args):
    workdir = args.workdir or tempfile.mkdtemp(prefix="hf-models-")
    os.makedirs(workdir, exist_ok=True)
    families = args.families or sorted(d for d in os.listdir(args.goldens)
                                       if os.path.isdir(os.path.join(args.goldens, d)))
    dirs = [(f, os.path.join(args.goldens, f)) for f in families]
    if not args.no_fresh:
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
            fresh = os.path.join(workdir, "fresh")
            generate(fresh, families, seed=1234)
            dirs += [(f + " (fresh)", os.path.join(fresh, f)) for f in families]
        except ImportError:
            print("torch/transformers not installed: checking the committed goldens only")
    batches = ["all", "single"] if args.batch == "both" else [args.batch]
    rows, failures = [], []
    for name, ckpt in dirs:
        for mesh in args.mesh:
            for batch in batches:
                w = os.path.join(workdir, "runs", f"{name.replace(' (fresh)', '-fresh')}-{mesh}-{batch}")
                same, err, why = check_family(args.moe_run, ckpt, mesh, batch, w, args.timeout, args.moe_run_arg)
                label = "all prompts" if batch == "all" else "prompt 0"
                rows.append((name, mesh, label, "yes" if same else "NO", f"{err:.2e}",
                             "ok" if why is None else "FAIL"))
                if why:
                    failures.append(f"{name} mesh {mesh} ({label}): {why}")
    header = ("family", "mesh", "batch", "ids equal", "max logits err", "result")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    if args.moe_run_arg:
        print("moe-run arguments added:", " ".join(args.moe_run_arg))
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"tolerance {TOL:.0e} (max |l - ref| / max |ref| per prompt); logs under {workdir}", flush=True)
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("out")
    gen.add_argument("--families", nargs="*", default=ALL, choices=ALL)
    gen.add_argument("--seed", type=int, default=0)
    chk = sub.add_parser("check")
    chk.add_argument("--moe-run", required=True)
    chk.add_argument("--goldens", default=os.path.join(HERE, "hf-models"))
    chk.add_argument("--mesh", action="append", help="repeatable; default 1x1")
    chk.add_argument("--families", nargs="*", choices=ALL)
    chk.add_argument("--workdir", help="default: a new temporary directory")
    chk.add_argument("--timeout", type=float, default=600, help="seconds per moe-run")
    chk.add_argument("--batch", choices=("all", "single", "both"), default="both",
                     help="all prompts as one batch, the first prompt alone, or both (default)")
    chk.add_argument("--moe-run-arg", action="append", default=[],
                     help="repeatable: appended to every moe-run command, e.g. "
                          "--moe-run-arg=--attention-plan=tp (with '=' when it starts with '-')")
    chk.add_argument("--no-fresh", action="store_true",
                     help="check the goldens only, even where transformers is installed")
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.out, args.families, args.seed)
        return 0
    args.mesh = args.mesh or ["1x1"]
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
