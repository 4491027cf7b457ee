#!/usr/bin/env python3
"""Checkpoints as transformers writes them -> moe-run DIR -> transformers' own
output.

generate OUT: for every family, a tiny random model made with transformers
(needs torch and transformers; CPU wheels are enough), saved by
save_pretrained(OUT/<family>, max_shard_size=...) into several shards plus
model.safetensors.index.json, exactly as a user would get it; x.npy is a
random input and y.npy the transformers modules' output on it: for every
decoder layer in order, y = y + layer.mlp(y) (the FFN stack moe-run runs:
DESIGN.md §4; Jamba's feed_forward, DBRX's ffn, Granite's block_sparse_moe
plus shared_mlp times residual_multiplier, gpt-oss's mlp (router with bias,
experts with biases and the clamped SwiGLU), Llama 4's feed_forward (the
text decoder of Llama4ForConditionalGeneration for model_type llama4):
ffn_output). The committed goldens in test/Integration/hf-checkpoints/ are
this command's output:

  python3 test/Integration/hf_checkpoints.py generate \\
      test/Integration/hf-checkpoints

check: runs `moe-run DIR --input x.npy --output y.npy` on meshes 1x1 and
1x4 for every checkpoint under --goldens (no edits, no merging) and compares
with y.npy: max |y - ref| / max |ref| <= 1e-5 (f32), also on y - x (the FFN
contributions alone). Where torch and transformers are installed it first
generates fresh checkpoints (another seed) into --workdir and checks those
too. Exit 77 (ctest: skipped) without NumPy.
"""

import argparse
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("numpy is not installed: skipping the checkpoint test")
    sys.exit(77)

TOL = 1e-5
MESHES = [("1x1", 32), ("1x4", 8)]  # (mesh, tokens per rank): 32 rows each
ROWS = 32

# Small but with every feature the family's importer reads: several shards
# (max_shard_size), dense and MoE layers where the family has both, shared
# experts, grouped routing.
COMMON = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
              num_key_value_heads=1, vocab_size=32, max_position_embeddings=64,
              tie_word_embeddings=False)
FAMILIES = {
    "mixtral": dict(intermediate_size=24, num_local_experts=6,
                    num_experts_per_tok=2),
    "olmoe": dict(intermediate_size=24, num_experts=6, num_experts_per_tok=2,
                  norm_topk_prob=False),
    "qwen2_moe": dict(intermediate_size=40, moe_intermediate_size=24,
                      shared_expert_intermediate_size=20, num_experts=6,
                      num_experts_per_tok=2, norm_topk_prob=False,
                      decoder_sparse_step=1, mlp_only_layers=[1]),
    "qwen3_moe": dict(intermediate_size=40, moe_intermediate_size=24,
                      num_experts=6, num_experts_per_tok=2,
                      norm_topk_prob=True, decoder_sparse_step=1,
                      mlp_only_layers=[], head_dim=16),
    "deepseek_v2": dict(intermediate_size=40, moe_intermediate_size=24,
                        n_routed_experts=8, num_experts_per_tok=3,
                        n_shared_experts=1, first_k_dense_replace=1,
                        topk_method="group_limited_greedy", n_group=4,
                        topk_group=2, norm_topk_prob=False,
                        routed_scaling_factor=1.5, kv_lora_rank=16,
                        q_lora_rank=None, qk_rope_head_dim=8,
                        qk_nope_head_dim=8, v_head_dim=16),
    # norm_topk_prob = true: DeepSeek's own code (normalise, do not scale),
    # which transformers 5 does not follow (docs/Dialects/MoeRationale.md).
    "deepseek_v2_norm": dict(intermediate_size=40, moe_intermediate_size=24,
                             n_routed_experts=8, num_experts_per_tok=3,
                             n_shared_experts=1, first_k_dense_replace=1,
                             topk_method="greedy", norm_topk_prob=True,
                             routed_scaling_factor=1.5, kv_lora_rank=16,
                             q_lora_rank=None, qk_rope_head_dim=8,
                             qk_nope_head_dim=8, v_head_dim=16),
    "deepseek_v3": dict(intermediate_size=40, moe_intermediate_size=24,
                        n_routed_experts=8, num_experts_per_tok=3,
                        n_shared_experts=1, first_k_dense_replace=1,
                        n_group=4, topk_group=2, norm_topk_prob=True,
                        routed_scaling_factor=2.5, kv_lora_rank=16,
                        q_lora_rank=None, qk_rope_head_dim=8,
                        qk_nope_head_dim=8, v_head_dim=16),
    "glm4_moe": dict(intermediate_size=40, moe_intermediate_size=24,
                     n_routed_experts=8, num_experts_per_tok=3,
                     n_shared_experts=1, first_k_dense_replace=1, n_group=4,
                     topk_group=2, norm_topk_prob=True,
                     routed_scaling_factor=1.5, head_dim=16),
    "dots1": dict(intermediate_size=40, moe_intermediate_size=24,
                  n_routed_experts=8, num_experts_per_tok=3,
                  n_shared_experts=2, first_k_dense_replace=1, n_group=2,
                  topk_group=1, norm_topk_prob=False,
                  routed_scaling_factor=2.5, head_dim=16),
    "qwen3_next": dict(intermediate_size=40, moe_intermediate_size=24,
                       shared_expert_intermediate_size=20, num_experts=6,
                       num_experts_per_tok=2, norm_topk_prob=True,
                       decoder_sparse_step=1, mlp_only_layers=[1],
                       head_dim=16, linear_key_head_dim=8,
                       linear_value_head_dim=8, linear_num_key_heads=2,
                       linear_num_value_heads=2),
    # Layers 1 and 3 of 4 are MoE (expert_layer_period/offset).
    "jamba": dict(intermediate_size=24, num_experts=6, num_experts_per_tok=2,
                  num_hidden_layers=4, expert_layer_period=2,
                  expert_layer_offset=1, attn_layer_period=2,
                  attn_layer_offset=0,
                  mamba_d_state=4, mamba_dt_rank=4),
    "hunyuan_v1_moe": dict(intermediate_size=24, num_experts=6, moe_topk=2,
                           head_dim=16),
    # Layer 0 dense (moe_layer_start_index); selection biased by
    # moe_statics.e_score_correction_bias.
    "ernie4_5_moe": dict(intermediate_size=40, moe_intermediate_size=24,
                         moe_num_experts=6, moe_k=2, moe_num_shared_experts=1,
                         moe_layer_start_index=1, moe_layer_interval=1),
    # moe_norm_min above every top-2 sum of 6 softmax probabilities' share:
    # the weights are divided by the floor (normalize = selected_clamped).
    "ernie4_5_moe_clamp": dict(intermediate_size=40, moe_intermediate_size=24,
                               moe_num_experts=6, moe_k=2,
                               moe_num_shared_experts=1,
                               moe_layer_start_index=1, moe_layer_interval=1,
                               moe_norm_min=0.9),
    # input_linear [E, 2F, H] / output_linear [E, H, F], fused in the file;
    # residual_multiplier scales the layer's FFN output.
    "granitemoe": dict(intermediate_size=24, num_local_experts=6,
                       num_experts_per_tok=2, residual_multiplier=0.5),
    # With the shared MLP (shared_mlp.input_linear [2F, H]); the multiplier
    # scales its output too.
    "granitemoeshared": dict(intermediate_size=24, shared_intermediate_size=20,
                             num_local_experts=6, num_experts_per_tok=2,
                             residual_multiplier=0.5),
    # transformer.blocks.{i}.ffn.experts.mlp.{w1, v1, w2}, each [E*F, H];
    # top-k weights divided by their 1-norm.
    "dbrx": dict(d_model=32, n_layers=3, n_heads=2, max_seq_len=64,
                 ffn_config=dict(hidden_size=32, ffn_hidden_size=24,
                                 moe_num_experts=6,
                                 moe_top_k=2,
                                 moe_normalize_expert_weights=1.0),
                 attn_config=dict(kv_n_heads=1, rope_theta=10000.0)),
    # moe_normalize_expert_weights = 2: the top-3 weights divided by their
    # 2-norm (normalize = pnorm).
    "dbrx_pnorm": dict(d_model=32, n_layers=3, n_heads=2, max_seq_len=64,
                       ffn_config=dict(hidden_size=32, ffn_hidden_size=24,
                                       moe_num_experts=6, moe_top_k=3,
                                       moe_normalize_expert_weights=2.0),
                       attn_config=dict(kv_n_heads=1, rope_theta=10000.0)),
    # experts.gate_up_proj [E, H, 2F] (gate even, up odd columns) with its
    # bias, down_proj [E, F, H] with its bias, a router bias; swiglu_limit
    # 1.0 so that both clamps bite on these unit-scale weights.
    "gpt_oss": dict(intermediate_size=24, num_local_experts=8,
                    num_experts_per_tok=2, swiglu_limit=1.0, head_dim=16),
    # Mixtral's keys; the sparsemixer router (top-2, each weight a softmax
    # over the logits within 2 * router_jitter_noise of the choice): the
    # default 0.01 and a wide 0.4 under which most tokens share a softmax.
    "phimoe": dict(intermediate_size=24, num_local_experts=6,
                   num_experts_per_tok=2, router_jitter_noise=0.01),
    "phimoe_wide": dict(intermediate_size=24, num_local_experts=6,
                        num_experts_per_tok=2, router_jitter_noise=0.4),
    # Llama4ForCausalLM: top-2 (the router's sigmoid scores scale the
    # experts' input), layers 1 and 3 of 4 MoE (interleave_moe_layer_step 2),
    # 0 and 2 MLPs of intermediate_size_mlp; experts.gate_up_proj [E, H, 2F]
    # (gate the first F columns) and down_proj [E, F, H], a shared expert.
    "llama4_text": dict(intermediate_size=24, intermediate_size_mlp=40,
                        num_local_experts=6, num_experts_per_tok=2,
                        num_hidden_layers=4, interleave_moe_layer_step=2,
                        head_dim=16),
    # Llama4ForConditionalGeneration (model_type llama4): the text model
    # under text_config and language_model.; top-1, moe_layers [0, 2].
    "llama4": dict(text_config=dict(intermediate_size=24,
                                    intermediate_size_mlp=40,
                                    num_local_experts=6,
                                    num_experts_per_tok=1, moe_layers=[0, 2],
                                    head_dim=16),
                   vision_config=dict(hidden_size=16, intermediate_size=16,
                                      num_hidden_layers=1,
                                      num_attention_heads=2, image_size=28,
                                      patch_size=14, vision_output_dim=16,
                                      projector_input_dim=16,
                                      projector_output_dim=32)),
}


def rel_error(y, ref):
    return float(np.max(np.abs(y - ref)) / max(float(np.max(np.abs(ref))),
                                               1e-30))


def model_type(family):
    """A variant's directory name -> its model_type."""
    return {"deepseek_v2_norm": "deepseek_v2", "dbrx_pnorm": "dbrx",
            "phimoe_wide": "phimoe",
            "ernie4_5_moe_clamp": "ernie4_5_moe"}.get(family, family)


def ffn_modules(layer):
    """A decoder layer's FFN modules (Jamba: feed_forward; Granite:
    block_sparse_moe and, in the shared variant, shared_mlp)."""
    if hasattr(layer, "ffn"):  # DbrxBlock
        return [layer.ffn]
    if hasattr(layer, "block_sparse_moe"):
        shared = getattr(layer, "shared_mlp", None)
        return [layer.block_sparse_moe] + ([shared] if shared else [])
    return [layer.feed_forward if hasattr(layer, "feed_forward")
            else layer.mlp]


def ffn_output(layer, y, config):
    """What the decoder layer adds to y after attention: the sum of its FFN
    modules, times Granite's residual_multiplier."""
    total = 0
    for module in ffn_modules(layer):
        out = module(y.unsqueeze(0))
        out = out[0] if isinstance(out, tuple) else out
        total = total + out.reshape(y.shape)
    return total * getattr(config, "residual_multiplier", 1.0)


def deepseek_original_weights(gate, scaling):
    """transformers 5's DeepSeek-V2 router always scales and never normalises;
    DeepSeek's modeling_deepseek.py normalises (sum + 1e-20) and does not
    scale when norm_topk_prob is set. Undo the one, apply the other."""
    forward = gate.forward

    def patched(hidden_states):
        logits, weights, indices = forward(hidden_states)
        weights = weights / scaling
        return logits, weights / (weights.sum(-1, keepdim=True) + 1e-20), indices
    gate.forward = patched


def make_model(family, torch, transformers):
    """The family's tiny model and its decoder layers."""
    settings = FAMILIES[family]
    if "text_config" in settings:  # multimodal: the text model nests
        config = transformers.AutoConfig.for_model(
            model_type(family),
            text_config={**COMMON, **settings["text_config"]},
            vision_config=settings["vision_config"])
        config.dtype = torch.float32
        model = transformers.Llama4ForConditionalGeneration(config).eval()
        return config.text_config, model, model.language_model.model.layers
    config = transformers.AutoConfig.for_model(model_type(family),
                                               **{**COMMON, **settings})
    config.dtype = torch.float32
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    layers = (model.transformer.blocks if hasattr(model, "transformer")
              else model.model.layers)
    return config, model, layers


def generate(out, families, seed):
    import torch
    import transformers

    os.makedirs(out, exist_ok=True)
    for family in families:
        torch.manual_seed(seed)
        config, model, layers = make_model(family, torch, transformers)
        with torch.no_grad():
            # HF's init (std 0.02) would make the FFNs vanish next to the
            # residual; weights of unit-scale outputs test them.
            for layer in layers:
                for module in ffn_modules(layer):
                    for name, p in module.named_parameters():
                        # ERNIE's correction bias is a parameter.
                        p.normal_(0.0, 0.1 if "correction_bias" in name
                                  else 1.0 / np.sqrt(p.shape[-1]))
                    for name, b in module.named_buffers():
                        if "correction_bias" in name:
                            b.normal_(0.0, 0.1)
            if family == "deepseek_v2_norm":
                for layer in layers:
                    if hasattr(layer.mlp, "gate"):
                        deepseek_original_weights(
                            layer.mlp.gate, config.routed_scaling_factor)
            x = torch.randn(ROWS, config.hidden_size) * 0.5
            y = x.clone()
            for layer in layers:
                y = y + ffn_output(layer, y, config)
        target = os.path.join(out, family)
        shutil.rmtree(target, ignore_errors=True)
        model.save_pretrained(target, max_shard_size="40KB")
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(target, extra)):
                os.remove(os.path.join(target, extra))
        np.save(os.path.join(target, "x.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(target, "y.npy"), y.numpy().astype(np.float32))
        shards = [f for f in os.listdir(target) if f.endswith(".safetensors")]
        print(f"{target}: {len(shards)} shards (transformers "
              f"{transformers.__version__}, torch {torch.__version__})")


def check_dir(moe_run, ckpt, workdir):
    """Runs every mesh on one checkpoint; returns the failures."""
    x = np.load(os.path.join(ckpt, "x.npy"))
    ref = np.load(os.path.join(ckpt, "y.npy"))
    failures = []
    for mesh, tokens in MESHES:
        out = os.path.join(workdir, f"{os.path.basename(ckpt)}-{mesh}.npy")
        cmd = [moe_run, ckpt, "--mesh", mesh, "--tokens", str(tokens),
               "--input", os.path.join(ckpt, "x.npy"), "--output", out,
               "--cache-dir", os.path.join(workdir, "cache"), "--quiet"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        name = f"{ckpt} mesh {mesh}"
        if run.returncode != 0:
            failures.append(f"{name}: moe-run failed:\n{run.stderr}")
            continue
        if "index.json" not in run.stdout:
            failures.append(f"{name}: moe-run did not use the checkpoint's "
                            f"index:\n{run.stdout}")
        y = np.load(out)
        err, err_ffn = rel_error(y, ref), rel_error(y - x, ref - x)
        status = "ok" if max(err, err_ffn) <= TOL else "FAIL"
        print(f"{name}: rel error {err:.2e}, of the FFNs {err_ffn:.2e} {status}")
        if status != "ok":
            failures.append(f"{name}: error {err:.2e} / {err_ffn:.2e} > {TOL}")
    return failures


def golden_dirs(goldens, workdir, make):
    """The committed golden directories, plus the same cases made afresh by
    make(out, names, seed) under workdir/fresh where torch and transformers
    are installed."""
    os.makedirs(workdir, exist_ok=True)
    dirs = [os.path.join(goldens, d) for d in sorted(os.listdir(goldens))
            if os.path.isdir(os.path.join(goldens, d))]
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import safetensors  # noqa: F401
        fresh = os.path.join(workdir, "fresh")
        make(fresh, [os.path.basename(d) for d in dirs], seed=1234)
        dirs += [os.path.join(fresh, os.path.basename(d)) for d in dirs]
    except ImportError:
        print("torch/transformers not installed: checking the committed "
              "goldens only")
    return dirs


def check(args):
    dirs = golden_dirs(args.goldens, args.workdir, generate)
    failures = []
    for d in dirs:
        failures += check_dir(args.moe_run, d, args.workdir)
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("out")
    gen.add_argument("--families", nargs="*", default=sorted(FAMILIES))
    gen.add_argument("--seed", type=int, default=0)
    chk = sub.add_parser("check")
    chk.add_argument("--moe-run", required=True)
    chk.add_argument("--goldens", required=True)
    chk.add_argument("--workdir", required=True)
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.out, args.families, args.seed)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
