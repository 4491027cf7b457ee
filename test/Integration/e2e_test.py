#!/usr/bin/env python3
"""End to end: small configs of every family -> moe-run (compile, build, run)
-> compared with the NumPy reference, on the CPU backend and, with
--backend cuda, on the CUDA backend too.

The reference reads the config JSON itself (the family conventions below,
from docs/Importers.md) and applies test/reference/moe_reference.py's
per-op functions; it never looks at the compiler's IR. Weights and inputs
are random per seed and written here. Error: max |y - ref| / max |ref|;
tolerance 1e-5 (f32), 2e-2 (bf16). moe-run's dropped choices must equal the
reference's, and the whole run must include capacity drops and experts
without tokens. Every case also runs with --fuse=false (no moe-fuse-kernels)
on the same input, and the fused and unfused outputs must agree: within 1e-6
in f32 (the same fp32 math; the packed gate/up GEMM and a shared expert
folded into it may only sum in another order) and 2e-2 in bf16 (a rounding
step apart on the way). Exit 77 (ctest: skipped) without NumPy.

--backend cuda runs every case (fused and unfused, 1 rank; 4 ranks and
EP 2 x TP 2 where the CPU suite has them) on the CPU backend as above and
then on CUDA, one process per rank (e2e_check.launch: torchrun-style
variables, rank 0 writes the output), and compares the CUDA output with the
NumPy reference and with the CPU output (e2e_check's CUDA tolerances: 1e-4
f32, 2e-2 bf16) and its dropped choices with the reference's. A case that
needs more GPUs than are visible is reported as skipped; no GPU, or no case
that fits, exits 77.

--bundle DIR writes the device bundle of scripts/gpu-bundle.sh: every
family in f32 and bf16, fused and unfused, 1 rank: the emitted C++, the
weights, x, the reference and the CPU output (format: e2e_check.py).
"""

import argparse
import collections
import json
import os
import shutil
import sys

try:
    import numpy as np
except ImportError:
    print("numpy is not installed: skipping the end-to-end test")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import moe_reference as ref  # noqa: E402
from safetensors_file import write_safetensors  # noqa: E402
import e2e_check as check  # noqa: E402

TOL = check.TOL
FUSED_VS_UNFUSED_TOL = {"float32": 1e-6, "bfloat16": 2e-2}
H, F, E = 64, 128, 8

# Every reference gate of the current case: drops and empty experts are
# checked against moe-run's statistics and must each occur in some case.
GATES = []
_moe_layer = ref.moe_layer


def _recording_moe_layer(*a, **kw):
    result = _moe_layer(*a, **kw)
    GATES.append(result["gate"])
    return result


ref.moe_layer = _recording_moe_layer


def write_weights(path, tensors, dtype):
    """BF16 storage except e_score_correction_bias, which DeepSeek-V3
    checkpoints keep in f32."""
    write_safetensors(path, {
        name: (a, "BF16" if dtype == "bfloat16"
               and not name.endswith("e_score_correction_bias") else "F32")
        for name, a in tensors.items()})


def write_npy(path, a):
    a = np.ascontiguousarray(a, dtype="<f4")
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % a.shape
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
        f.write(a.tobytes())


class Weights:
    """Random tensors under their checkpoint keys, rounded to storage."""

    def __init__(self, rng, dtype):
        self.rng, self.dtype, self.tensors = rng, dtype, {}

    def get(self, key, shape, scale=None, f32=False):
        fan_in = shape[-1]
        a = self.rng.uniform(-1, 1, shape).astype(np.float32) * (scale if scale is not None else fan_in ** -0.5)
        if self.dtype == "bfloat16" and not f32:
            a = ref.round_to_bf16(a)
        self.tensors[key] = a
        return a.astype(np.float64)

    def experts(self, pattern, shape, count=E):
        stacked = [self.get(pattern.format(e=e), shape) for e in range(count)]
        return np.stack(stacked)


def family_layer(cfg, i):
    """Layer i of the families added with issue 13 (docs/Importers.md), read
    from config.json: None for a dense layer, else where the MoE module's
    weights live and its routing and shared experts."""
    t, L = cfg["model_type"], cfg["num_hidden_layers"]
    if t in ("glm4_moe", "dots1"):
        glm = t == "glm4_moe"
        if i < cfg.get("first_k_dense_replace", 1 if glm else 0):
            return None
        norm = cfg.get("norm_topk_prob", glm)
        groups = cfg.get("n_group", 1)
        return dict(module="mlp", router="gate", k=cfg.get("num_experts_per_tok", 8),
                    Fe=cfg["moe_intermediate_size"], bias=("gate.e_score_correction_bias", (E,)),
                    shared=("shared_experts", cfg.get("n_shared_experts", 1) * cfg["moe_intermediate_size"], False),
                    routing=dict(score_func="sigmoid", n_group=groups, topk_group=cfg.get("topk_group", 1),
                                 group_score="top2_sum" if groups > 1 else "max",
                                 norm="selected" if norm else "none", norm_epsilon=1e-20 if norm else 0.0,
                                 routed_scaling_factor=cfg.get("routed_scaling_factor", 1.0)))
    if t == "qwen3_next":
        if i in cfg.get("mlp_only_layers", []) or (i + 1) % cfg.get("decoder_sparse_step", 1):
            return None
        return dict(module="mlp", router="gate", k=cfg.get("num_experts_per_tok", 10),
                    Fe=cfg["moe_intermediate_size"], bias=None,
                    shared=("shared_expert", cfg["shared_expert_intermediate_size"], True),
                    routing=dict(norm="selected" if cfg.get("norm_topk_prob", True) else "none"))
    if t == "jamba":
        if cfg["num_experts"] == 1 or i % cfg.get("expert_layer_period", 2) != cfg.get("expert_layer_offset", 1):
            return None
        return dict(module="feed_forward", router="router", k=cfg.get("num_experts_per_tok", 2),
                    Fe=cfg["intermediate_size"], bias=None, shared=None, routing={})
    if t == "hunyuan_v1_moe":
        k = cfg.get("moe_topk", 1)
        return dict(module="mlp", router="gate.wg", k=k[i] if isinstance(k, list) else k, Fe=cfg["intermediate_size"],
                    bias=None, shared=("shared_mlp", cfg["intermediate_size"], False),
                    routing=dict(norm="selected"))
    if t in ("granitemoe", "granitemoeshared"):
        # Fused input_linear / output_linear; residual_multiplier scales the
        # routed output and the shared MLP's.
        Fs = cfg.get("shared_intermediate_size", 0) if t == "granitemoeshared" else 0
        return dict(module="block_sparse_moe", router="router.layer", k=cfg.get("num_experts_per_tok", 2),
                    Fe=cfg["intermediate_size"], bias=None, fused=True,
                    shared=("shared_mlp", Fs, False) if Fs else None,
                    shared_scale=cfg.get("residual_multiplier", 1.0),
                    routing=dict(norm="selected", routed_scaling_factor=cfg.get("residual_multiplier", 1.0)))
    assert t == "ernie4_5_moe", t
    end = cfg.get("moe_layer_end_index", -1)
    end = L - 1 if end == -1 else end
    if (i + 1) % cfg.get("moe_layer_interval", 1) or not cfg.get("moe_layer_start_index", 1) <= i <= end:
        return None
    return dict(module="mlp", router="gate", k=cfg.get("moe_k", 6), Fe=cfg["moe_intermediate_size"],
                bias=("moe_statics.e_score_correction_bias", (1, E)),
                shared=("shared_experts", cfg.get("moe_num_shared_experts", 2) * cfg["moe_intermediate_size"], False),
                routing=dict(norm="selected_clamped", norm_epsilon=cfg.get("moe_norm_min", 1e-12)))


FAMILY_LAYER_TYPES = ("glm4_moe", "dots1", "qwen3_next", "jamba", "hunyuan_v1_moe", "ernie4_5_moe",
                      "granitemoe", "granitemoeshared")


def ffn_params(w, prefix, Fw):
    """A SwiGLU MLP's weights under prefix (gate_proj, up_proj, down_proj)."""
    return {"w1": w.get(prefix + "gate_proj.weight", (Fw, H)),
            "w_up": w.get(prefix + "up_proj.weight", (Fw, H)),
            "w2": w.get(prefix + "down_proj.weight", (H, Fw))}


def family_reference(cfg, x, w, tweak):
    st = "bf16" if cfg["torch_dtype"] == "bfloat16" else "f32"
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        layer = family_layer(cfg, i)
        if layer is None:
            dense = p + ("feed_forward." if cfg["model_type"] == "jamba" else "mlp.")
            params = ffn_params(w, dense, cfg["intermediate_size"])
            x = ref.round_to_storage(x + ref.round_to_storage(ref.ffn(x, params, ref.FfnConfig(), st), st), st)
            continue
        pre = p + layer["module"] + "."
        Fe = layer["Fe"]
        params = {"gate.weight": w.get(pre + layer["router"] + ".weight", (E, H), scale=tweak.get("router_scale"))}
        if layer.get("fused"):
            # Granite: [E, 2F, H] gate rows then up rows; [E, H, F] down.
            gate_up = w.get(pre + "input_linear.weight", (E, 2 * Fe, H))
            params["experts.w1"], params["experts.w_up"] = gate_up[:, :Fe], gate_up[:, Fe:]
            params["experts.w2"] = w.get(pre + "output_linear.weight", (E, H, Fe))
        else:
            for name, proj, shape in (("w1", "gate_proj", (Fe, H)), ("w_up", "up_proj", (Fe, H)),
                                      ("w2", "down_proj", (H, Fe))):
                params["experts." + name] = w.experts(pre + "experts.{e}." + proj + ".weight", shape)
        if layer["bias"]:
            key, shape = layer["bias"]
            params["gate.correction_bias"] = w.get(pre + key, shape, scale=0.1, f32=True).reshape(E)
        shared, gated = None, False
        if layer["shared"]:
            module, Fs, gated = layer["shared"]
            shared = ref.FfnConfig()
            if layer.get("fused"):  # under the decoder layer: [2F, H] + [H, F]
                gate_up = w.get(p + module + ".input_linear.weight", (2 * Fs, H))
                params["shared.w1"], params["shared.w_up"] = gate_up[:Fs], gate_up[Fs:]
                params["shared.w2"] = w.get(p + module + ".output_linear.weight", (H, Fs))
            else:
                for name, value in ffn_params(w, pre + module + ".", Fs).items():
                    params["shared." + name] = value
            if gated:
                params["shared_gate.weight"] = w.get(pre + "shared_expert_gate.weight", (1, H))
        routing = ref.RoutingConfig(num_experts=E, top_k=layer["k"], **layer["routing"])
        lc = ref.LayerConfig(routing=routing, storage=st, shared=shared, shared_gated=gated,
                             shared_scale=layer.get("shared_scale", 1.0))
        x = ref.moe_layer(x, params, lc)["out"]
    return x


def dbrx_reference(cfg, x, w, tweak):
    """DBRX: every block MoE; w1, v1, w2 each [E*F, H] (expert e's rows
    [eF, eF + F); w2 is read transposed); softmax, top-k, the k weights
    divided by their 1-norm (or kept when moe_normalize_expert_weights is
    null)."""
    st = "bf16" if cfg["torch_dtype"] == "bfloat16" else "f32"
    ffn = cfg["ffn_config"]
    Fe, k = ffn["ffn_hidden_size"], ffn.get("moe_top_k", 1)
    norm = ffn.get("moe_normalize_expert_weights", 1.0)
    for i in range(cfg["n_layers"]):
        pre = f"transformer.blocks.{i}.ffn."
        params = {"gate.weight": w.get(pre + "router.layer.weight", (E, H), scale=tweak.get("router_scale"))}
        mlp = pre + "experts.mlp."
        w1, v1, w2 = (w.get(mlp + name, (E * Fe, H)).reshape(E, Fe, H) for name in ("w1", "v1", "w2"))
        params["experts.w1"], params["experts.w_up"] = w1, v1
        params["experts.w2"] = w2.transpose(0, 2, 1)
        routing = ref.RoutingConfig(num_experts=E, top_k=k, norm_p=1.0 if norm in (None, 1) else norm,
                                    norm="none" if norm is None else "selected" if norm == 1 else "pnorm")
        x = ref.moe_layer(x, params, ref.LayerConfig(routing=routing, storage=st))["out"]
    return x


def gpt_oss_reference(cfg, x, w, tweak):
    """gpt-oss (transformers' GptOssMLP): every layer MoE; router logits with
    a bias, top-k of them, softmax over the k; experts from gate_up_proj
    [E, H, 2F] (x @ W; gate at even, up at odd columns) plus its bias, the
    clamped SwiGLU (up + 1) * g * sigmoid(alpha g), g = min(gate, limit), up
    clamped to [-limit, limit], then down_proj [E, F, H] plus its bias."""
    Fe, k = cfg["intermediate_size"], cfg["num_experts_per_tok"]
    alpha, limit = cfg.get("swiglu_alpha", 1.702), cfg.get("swiglu_limit", 7.0)
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}.mlp."
        wr = w.get(pre + "router.weight", (E, H), scale=tweak.get("router_scale"), f32=True)
        br = w.get(pre + "router.bias", (E,), scale=0.5, f32=True)
        gate_up = w.get(pre + "experts.gate_up_proj", (E, H, 2 * Fe), scale=H ** -0.5)
        gate_up_bias = w.get(pre + "experts.gate_up_proj_bias", (E, 2 * Fe), scale=0.5)
        down = w.get(pre + "experts.down_proj", (E, Fe, H), scale=Fe ** -0.5)
        down_bias = w.get(pre + "experts.down_proj_bias", (E, H), scale=0.5)
        logits = x @ wr.T + br
        top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        chosen = np.take_along_axis(logits, top, axis=1)
        weights = np.exp(chosen - chosen.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        out = np.zeros_like(x)
        for t in range(x.shape[0]):
            for j in range(k):
                e = top[t, j]
                gu = x[t] @ gate_up[e] + gate_up_bias[e]
                g, u = np.minimum(gu[::2], limit), np.clip(gu[1::2], -limit, limit)
                h = (u + 1) * g / (1 + np.exp(-alpha * g))
                out[t] += weights[t, j] * (h @ down[e] + down_bias[e])
        x = x + out
    return x


def llama4_reference(cfg, x, w, tweak):
    """Llama 4 (transformers' Llama4TextMoe / Llama4TextMLP): the text
    model's keys under text_config for model_type llama4 (the decoder under
    language_model.); MoE layers are moe_layers, else every
    interleave_moe_layer_step-th from step - 1; the others are an MLP of
    intermediate_size_mlp. Router: top-k of the logits, each weight the
    sigmoid of its logit, scaling the expert's input: out = shared(x) +
    sum_j expert_j(x * w_j); experts from gate_up_proj [E, H, 2F] (x @ W;
    gate the first F columns, up the last F) and down_proj [E, F, H]."""
    prefix = "model.layers."
    if cfg["model_type"] == "llama4":
        cfg, prefix = cfg["text_config"], "language_model.model.layers."
    L, k = cfg["num_hidden_layers"], cfg.get("num_experts_per_tok", 1)
    Fe, Fd = cfg["intermediate_size"], cfg.get("intermediate_size_mlp", 16384)
    step = cfg.get("interleave_moe_layer_step", 1)
    moe_layers = cfg.get("moe_layers") or list(range(step - 1, L, step))
    silu = lambda v: v / (1 + np.exp(-v))  # noqa: E731

    def mlp(pre, width, rows):
        g = w.get(pre + "gate_proj.weight", (width, H))
        u = w.get(pre + "up_proj.weight", (width, H))
        d = w.get(pre + "down_proj.weight", (H, width))
        return (silu(rows @ g.T) * (rows @ u.T)) @ d.T

    for i in range(L):
        pre = f"{prefix}{i}.feed_forward."
        if i not in moe_layers:
            x = x + mlp(pre, Fd, x)
            continue
        wr = w.get(pre + "router.weight", (E, H), scale=tweak.get("router_scale"), f32=True)
        gate_up = w.get(pre + "experts.gate_up_proj", (E, H, 2 * Fe), scale=H ** -0.5)
        down = w.get(pre + "experts.down_proj", (E, Fe, H), scale=Fe ** -0.5)
        out = mlp(pre + "shared_expert.", Fe, x)
        logits = x @ wr.T
        top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        scores = 1 / (1 + np.exp(-np.take_along_axis(logits, top, axis=1)))
        for t in range(x.shape[0]):
            for j in range(k):
                e = top[t, j]
                gu = (x[t] * scores[t, j]) @ gate_up[e]
                out[t] += (silu(gu[:Fe]) * gu[Fe:]) @ down[e]
        x = x + out
    return x


def hf_reference(cfg, x, w, tweak):
    """The HF families' FFN stack, read from config.json."""
    t = cfg["model_type"]
    if t in ("llama4", "llama4_text"):
        return llama4_reference(cfg, x, w, tweak)
    if t == "dbrx":
        return dbrx_reference(cfg, x, w, tweak)
    if t == "gpt_oss":
        return gpt_oss_reference(cfg, x, w, tweak)
    if t in FAMILY_LAYER_TYPES:
        return family_reference(cfg, x, w, tweak)
    st = "bf16" if cfg["torch_dtype"] == "bfloat16" else "f32"
    k = cfg["num_experts_per_tok"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        if t.startswith("deepseek") and i < cfg.get("first_k_dense_replace", 0):
            Fd = cfg["intermediate_size"]
            params = {"w1": w.get(p + "mlp.gate_proj.weight", (Fd, H)),
                      "w_up": w.get(p + "mlp.up_proj.weight", (Fd, H)),
                      "w2": w.get(p + "mlp.down_proj.weight", (H, Fd))}
            x = ref.round_to_storage(x + ref.round_to_storage(ref.ffn(x, params, ref.FfnConfig(), st), st), st)
            continue
        mix = t in ("mixtral", "phimoe")
        Fe = cfg["intermediate_size"] if t in ("mixtral", "phimoe", "olmoe") else cfg["moe_intermediate_size"]
        pre = p + ("block_sparse_moe." if mix else "mlp.")
        names = ("w1", "w3", "w2") if mix else ("gate_proj", "up_proj", "down_proj")
        params = {"gate.weight": w.get(pre + "gate.weight", (E, H), scale=tweak.get("router_scale"))}
        params["experts.w1"] = w.experts(pre + "experts.{e}." + names[0] + ".weight", (Fe, H))
        params["experts.w_up"] = w.experts(pre + "experts.{e}." + names[1] + ".weight", (Fe, H))
        params["experts.w2"] = w.experts(pre + "experts.{e}." + names[2] + ".weight", (H, Fe))
        routing = dict(num_experts=E, top_k=k)
        shared, gated = None, False
        if t in ("mixtral",):
            routing["norm"] = "selected"
        elif t == "phimoe":
            routing.update(score_func="sparsemixer", jitter_eps=cfg.get("router_jitter_noise", 0.01))
        elif t in ("qwen2_moe", "qwen3_moe", "olmoe"):
            routing["norm"] = "selected" if cfg.get("norm_topk_prob", False) else "none"
        if t == "qwen2_moe":
            Fs = cfg["shared_expert_intermediate_size"]
            shared, gated = ref.FfnConfig(), True
            for n, shape in (("gate_proj", (Fs, H)), ("up_proj", (Fs, H)), ("down_proj", (H, Fs))):
                params["shared." + {"gate_proj": "w1", "up_proj": "w_up", "down_proj": "w2"}[n]] = \
                    w.get(pre + "shared_expert." + n + ".weight", shape)
            params["shared_gate.weight"] = w.get(pre + "shared_expert_gate.weight", (1, H))
        if t.startswith("deepseek"):
            v3 = t == "deepseek_v3"
            norm = cfg.get("norm_topk_prob", v3) and k > 1
            routing.update(score_func="sigmoid" if v3 else "softmax",
                           norm="selected" if norm else "none",
                           norm_epsilon=1e-20 if norm else 0.0,
                           routed_scaling_factor=cfg.get("routed_scaling_factor", 2.5 if v3 else 1.0)
                           if (v3 or not norm) else 1.0)
            if v3 or cfg.get("topk_method") == "group_limited_greedy":
                routing.update(n_group=cfg["n_group"], topk_group=cfg["topk_group"],
                               group_score="top2_sum" if v3 else "max")
            if v3:
                params["gate.correction_bias"] = w.get(pre + "gate.e_score_correction_bias", (E,), scale=0.1, f32=True)
            Fs = cfg["n_shared_experts"] * cfg["moe_intermediate_size"]
            shared = ref.FfnConfig()
            params["shared.w1"] = w.get(pre + "shared_experts.gate_proj.weight", (Fs, H))
            params["shared.w_up"] = w.get(pre + "shared_experts.up_proj.weight", (Fs, H))
            params["shared.w2"] = w.get(pre + "shared_experts.down_proj.weight", (H, Fs))
        lc = ref.LayerConfig(routing=ref.RoutingConfig(**routing), storage=st, shared=shared, shared_gated=gated)
        x = ref.moe_layer(x, params, lc)["out"]
    return x


def prmoe_reference(cfg, x, w, tweak):
    st = "bf16" if cfg.get("torch_dtype") == "bfloat16" else "f32"
    P, Fm, k = cfg.get("weight_prefix", "language_model.encoder.layers"), cfg["ffn_hidden_size"], cfg.get("top_k", 1)
    Hm = cfg["hidden_size"]
    plain = ref.FfnConfig(kind="plain", activation=cfg.get("activation", "gelu"))
    interval = cfg.get("expert_interval", 2)
    counts = cfg["num_experts"] if isinstance(cfg["num_experts"], list) else [cfg["num_experts"]]
    moe_index = 0
    for i in range(cfg["num_layers"]):
        p = f"{P}.{i}.mlp."
        ne = counts[min(moe_index, len(counts) - 1)] if (i + 1) % interval == 0 else 1
        if (i + 1) % interval == 0:
            moe_index += 1
        if ne == 1:  # a dense layer
            params = {"w1": w.get(p + "dense_h_to_4h.weight", (Fm, Hm)), "b1": w.get(p + "dense_h_to_4h.bias", (Fm,)),
                      "w2": w.get(p + "dense_4h_to_h.weight", (Hm, Fm)), "b2": w.get(p + "dense_4h_to_h.bias", (Hm,))}
            x = ref.round_to_storage(x + ref.round_to_storage(ref.ffn(x, params, plain, st), st), st)
            continue
        pe = p + "deepspeed_moe.experts.deepspeed_experts.{e}."
        params = {"gate.weight": w.get(p + "deepspeed_moe.gate.wg.weight", (ne, Hm), scale=tweak.get("router_scale")),
                  "experts.w1": w.experts(pe + "dense_h_to_4h.weight", (Fm, Hm), ne),
                  "experts.b1": w.experts(pe + "dense_h_to_4h.bias", (Fm,), ne),
                  "experts.w2": w.experts(pe + "dense_4h_to_h.weight", (Hm, Fm), ne),
                  "experts.b2": w.experts(pe + "dense_4h_to_h.bias", (Hm,), ne)}
        residual = cfg.get("mlp_type", "standard") == "residual"
        if residual:
            params.update({"mlp.w1": w.get(p + "mlp.dense_h_to_4h.weight", (Fm, Hm)),
                           "mlp.b1": w.get(p + "mlp.dense_h_to_4h.bias", (Fm,)),
                           "mlp.w2": w.get(p + "mlp.dense_4h_to_h.weight", (Hm, Fm)),
                           "mlp.b2": w.get(p + "mlp.dense_4h_to_h.bias", (Hm,)),
                           "coefficient.weight": w.get(p + "coefficient.weight", (2, Hm)),
                           "coefficient.bias": w.get(p + "coefficient.bias", (2,))})
        drop = cfg.get("drop_tokens", True)
        order = cfg.get("drop_order", "choice_major" if k <= 2 else "probs")
        routing = ref.RoutingConfig(
            num_experts=ne, top_k=k, norm="none" if k == 1 else ("kept" if drop else "selected"),
            capacity_factor=cfg.get("capacity_factor", 1.0) if drop else 0.0,
            min_capacity=cfg.get("min_capacity", 4) if drop else 0,
            drop_order=order if drop else "token_major")
        lc = ref.LayerConfig(routing=routing, ffn=plain, storage=st, residual_mlp=plain if residual else None)
        x = ref.moe_layer(x, params, lc)["out"]
    return x


def hf(model_type, layers=2, dtype="float32", **extra):
    c = {"model_type": model_type, "hidden_size": H, "num_hidden_layers": layers,
         "torch_dtype": dtype, "num_experts_per_tok": 2}
    if model_type in ("mixtral", "phimoe", "olmoe"):
        c.update({"intermediate_size": F, ("num_experts" if model_type == "olmoe" else "num_local_experts"): E})
    else:
        c.update({"moe_intermediate_size": F, "intermediate_size": 2 * F})
        c["n_routed_experts" if model_type.startswith("deepseek") else "num_experts"] = E
    c.update(extra)
    return c


def fam(model_type, layers=2, dtype="float32", **extra):
    """A config of the families of family_layer: every size given."""
    return {"model_type": model_type, "hidden_size": H, "num_hidden_layers": layers,
            "torch_dtype": dtype, **extra}


def prmoe(drop_order, top_k=2, cf=0.5, layers=2, dtype="float32", drop=True):
    return {"model_type": "prmoe", "num_layers": layers, "hidden_size": H, "ffn_hidden_size": F,
            "activation": "gelu", "torch_dtype": dtype, "num_experts": [E], "expert_interval": 1,
            "mlp_type": "residual", "top_k": top_k, "capacity_factor": cf, "min_capacity": 1,
            "drop_tokens": drop, "drop_order": drop_order,
            "weight_prefix": "language_model.encoder.layers"}


CASES = [
    ("mixtral", hf("mixtral"), {}),
    ("mixtral-bf16", hf("mixtral", dtype="bfloat16"), {}),
    # sparsemixer with a mask wide enough that some tokens share a softmax
    # and others do not.
    ("phimoe", hf("phimoe", router_jitter_noise=0.3), {}),
    ("qwen2-moe", hf("qwen2_moe", shared_expert_intermediate_size=F, norm_topk_prob=False), {}),
    ("qwen3-moe", hf("qwen3_moe", norm_topk_prob=True), {}),
    ("deepseek-v2", hf("deepseek_v2", topk_method="group_limited_greedy", n_group=4, topk_group=2,
                       n_shared_experts=1, routed_scaling_factor=1.5, first_k_dense_replace=0), {}),
    ("deepseek-v3", hf("deepseek_v3", layers=3, n_group=4, topk_group=2, n_shared_experts=1,
                       routed_scaling_factor=2.5, first_k_dense_replace=1, topk_method="noaux_tc",
                       scoring_func="sigmoid"), {}),
    ("olmoe", hf("olmoe"), {}),
    # Ties: a zero router gives equal logits; the lower expert index wins.
    ("olmoe-ties", hf("olmoe"), {"router_scale": 0.0}),
    ("glm4-moe", fam("glm4_moe", layers=3, intermediate_size=2 * F, moe_intermediate_size=F,
                     n_routed_experts=E, num_experts_per_tok=3, n_shared_experts=1, first_k_dense_replace=1,
                     n_group=4, topk_group=2, norm_topk_prob=True, routed_scaling_factor=1.5), {}),
    ("dots1", fam("dots1", intermediate_size=2 * F, moe_intermediate_size=F, n_routed_experts=E,
                  num_experts_per_tok=2, n_shared_experts=2, norm_topk_prob=False,
                  routed_scaling_factor=2.5), {}),
    ("qwen3-next", fam("qwen3_next", layers=3, intermediate_size=2 * F, moe_intermediate_size=F,
                       num_experts=E, num_experts_per_tok=2, shared_expert_intermediate_size=F,
                       mlp_only_layers=[1]), {}),
    ("jamba", fam("jamba", layers=4, intermediate_size=F, num_experts=E, num_experts_per_tok=2), {}),
    ("hunyuan-v1-moe", fam("hunyuan_v1_moe", intermediate_size=F, num_experts=E, moe_topk=[2, 2]), {}),
    ("ernie4.5-moe", fam("ernie4_5_moe", layers=3, intermediate_size=2 * F, moe_intermediate_size=F,
                         moe_num_experts=E, moe_k=2, moe_num_shared_experts=1), {}),
    # A floor above most top-2 sums: the weights are divided by it.
    ("ernie4.5-moe-clamp", fam("ernie4_5_moe", intermediate_size=2 * F, moe_intermediate_size=F,
                               moe_num_experts=E, moe_k=2, moe_num_shared_experts=1,
                               moe_norm_min=0.6), {}),
    ("granitemoe", fam("granitemoe", intermediate_size=F, num_local_experts=E, num_experts_per_tok=2,
                       residual_multiplier=0.5), {}),
    ("granitemoeshared", fam("granitemoeshared", intermediate_size=F, num_local_experts=E,
                             num_experts_per_tok=3, shared_intermediate_size=F // 2,
                             residual_multiplier=0.5), {}),
    ("dbrx", {"model_type": "dbrx", "d_model": H, "n_layers": 2, "torch_dtype": "float32",
              "ffn_config": {"ffn_hidden_size": F, "moe_num_experts": E, "moe_top_k": 3}}, {}),
    ("dbrx-unnormalized", {"model_type": "dbrx", "d_model": H, "n_layers": 2, "torch_dtype": "float32",
                           "ffn_config": {"ffn_hidden_size": F, "moe_num_experts": E, "moe_top_k": 2,
                                          "moe_normalize_expert_weights": None}}, {}),
    ("dbrx-pnorm", {"model_type": "dbrx", "d_model": H, "n_layers": 2, "torch_dtype": "float32",
                    "ffn_config": {"ffn_hidden_size": F, "moe_num_experts": E, "moe_top_k": 4,
                                   "moe_normalize_expert_weights": 2.0}}, {}),
    # swiglu_limit 0.5: both clamps bite on these unit-scale projections.
    ("gpt-oss", fam("gpt_oss", intermediate_size=F, num_local_experts=E, num_experts_per_tok=2,
                    swiglu_limit=0.5), {}),
    # Top-2 over interleaved layers: 1 and 3 MoE, 0 and 2 dense MLPs.
    ("llama4-text", fam("llama4_text", layers=4, intermediate_size=F, intermediate_size_mlp=2 * F,
                        num_local_experts=E, num_experts_per_tok=2, interleave_moe_layer_step=2), {}),
    # The multimodal config: the text model under text_config, top-1,
    # moe_layers listed (layer 1 dense).
    ("llama4", {"model_type": "llama4", "torch_dtype": "float32", "vision_config": {"hidden_size": 16},
                "text_config": fam("llama4_text", layers=3, intermediate_size=F, intermediate_size_mlp=F // 2,
                                   num_local_experts=E, num_experts_per_tok=1, moe_layers=[0, 2])}, {}),
    ("prmoe-choice-major", prmoe("choice_major"), {}),
    ("prmoe-token-major", prmoe("token_major"), {}),
    ("prmoe-probs", prmoe("probs", top_k=1, cf=1.0), {}),
    ("prmoe-dropless", prmoe("choice_major", drop=False), {}),
    # All-negative logits (positive x, negative router) and few tokens:
    # experts with no tokens, no NaN.
    ("prmoe-negative", prmoe("choice_major", cf=2.0), {"negative": True}),
]


# On 4 ranks (mesh 1x4: 8 experts -> EP 4, two per rank), each rank's tokens
# are one step of their own; dropless families must also equal one rank
# running all the tokens (EP = 1 vs EP = 4).
MULTI_RANK = {"mixtral": True, "qwen2-moe": True, "qwen3-moe": True, "deepseek-v2": True,
              "deepseek-v3": True, "olmoe": True, "prmoe-choice-major": False,
              "prmoe-probs": False, "prmoe-dropless": True, "glm4-moe": True, "dots1": True,
              "qwen3-next": True, "jamba": True, "hunyuan-v1-moe": True, "ernie4.5-moe": True,
              "ernie4.5-moe-clamp": True, "granitemoe": True, "granitemoeshared": True,
              "dbrx": True, "dbrx-pnorm": True, "gpt-oss": True,
              "phimoe": True, "llama4-text": True, "llama4": True}


# Expert slicing and tensor-parallel dense MLPs: 4 ranks with tp forced to 2
# (8 experts: EP 2 x TP 2). Qwen2-MoE's shared expert and PR-MoE's residual
# MLP run tensor parallel; PR-MoE's experts and MLP carry down biases, added
# by one slice only. Dropless families must also equal EP 4 (tp 1).
TP_CASES = {"mixtral": True, "qwen2-moe": True, "prmoe-choice-major": False,
            "prmoe-dropless": True,
            # Fused input_linear / output_linear read as F-sliced boxes.
            "granitemoeshared": True,
            # [E*F, H] views F-sliced, w2 read by column.
            "dbrx": True}


def compare(name, seed, what, a, b, dtype, tolerance=TOL):
    err = check.rel_error(a, b)
    same = err <= tolerance[dtype]
    print(f"{'ok  ' if same else 'FAIL'} {name:22s} seed {seed}: {what} max rel difference {err:.3e}")
    return same


# A case's input and CPU output, its directory and the reference's drops.
Run = collections.namedtuple("Run", "x y work dropped")


def run_case(args, name, cfg, tweak, seed, ranks=1, extra=(), tokens=None, x_in=None):
    work = os.path.join(args.workdir, f"{name}-s{seed}-r{ranks}-t{tokens or args.tokens}" +
                        "".join(e.strip("-") for e in extra))
    os.makedirs(work, exist_ok=True)
    cfg_path = os.path.join(work, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    rng = np.random.default_rng(seed)
    dtype = cfg.get("torch_dtype", "float32")
    w = Weights(rng, dtype)
    tokens = tokens or args.tokens
    hidden = cfg.get("hidden_size", H)
    x = rng.uniform(-1, 1, (ranks * tokens, hidden)).astype(np.float32) if x_in is None else x_in
    if tweak.get("negative"):
        x = np.abs(x)
    if dtype == "bfloat16":
        x = ref.round_to_bf16(x)
    xs = x.astype(np.float64)
    st = "bf16" if dtype == "bfloat16" else "f32"
    refs = []
    GATES.clear()
    for r in range(ranks):  # each rank's tokens form their own step
        w.rng = np.random.default_rng(seed + 1000)  # the same weights each time
        w.tensors = {}
        if tweak.get("negative"):
            orig = w.get
            w.get = lambda key, shape, scale=None, f32=False, orig=orig: (
                -np.abs(orig(key, shape, scale, f32)) if key.endswith("gate.wg.weight") else orig(key, shape, scale, f32))
        rx = xs[r * tokens:(r + 1) * tokens]
        refs.append(prmoe_reference(cfg, rx, w, tweak) if cfg["model_type"] == "prmoe" else hf_reference(cfg, rx, w, tweak))
    expected = np.concatenate(refs)
    if tweak.get("negative"):
        w.tensors = {k: (-np.abs(v) if k.endswith("gate.wg.weight") else v) for k, v in w.tensors.items()}
    write_weights(os.path.join(work, "w.safetensors"), w.tensors, dtype)
    write_npy(os.path.join(work, "x.npy"), x)
    np.save(os.path.join(work, "y_ref.npy"), expected)
    ref_dropped = sum(int(np.sum(g.slots < 0)) for g in GATES)
    STATS["dropped"] += ref_dropped
    STATS["empty_experts"] += sum(int(np.sum(g.counts == 0)) for g in GATES)
    tag = f"ranks {ranks}" + (f" {' '.join(extra)}" if extra else "")

    def moe_run(backend, out):
        """Runs the case on one backend; the output, or None after a failure."""
        cmd = [args.moe_run, cfg_path, "--backend", backend, "--mesh", f"1x{ranks}", "--tokens", str(tokens),
               "--weights", os.path.join(work, "w.safetensors"), "--input", os.path.join(work, "x.npy"),
               "--output", out, "--cache-dir", os.path.join(args.workdir, "cache"), *extra]
        if backend == "cpu":  # the C++ is the same for both backends
            cmd += ["--emit-cpp", os.path.join(work, "model.cpp")]
        run = check.launch(cmd, ranks if backend == "cuda" else 1, args.timeout)
        if args.verbose:
            print(run.stdout, end="")
        if not run.ok:
            print(f"FAIL {name} {tag} {backend}: moe-run {run.why()}\n{run.stdout}{run.stderr}")
            return None, None
        # The table's dropped choices must be the reference's.
        dropped = check.dropped_choices(run.stdout)
        if dropped != ref_dropped:
            print(f"FAIL {name} {tag} {backend}: moe-run dropped {dropped} choices, the reference {ref_dropped}")
            return None, None
        return np.load(out).astype(np.float64), dropped

    y, dropped = moe_run("cpu", os.path.join(work, "y.npy"))
    if y is None:
        return False, None
    err = check.rel_error(y, expected)
    ok = err <= TOL[dtype]
    print(f"{'ok  ' if ok else 'FAIL'} {name:22s} seed {seed} {tag}: max rel error {err:.3e} "
          f"(tol {TOL[dtype]:.0e}), dropped {dropped}")
    if args.backend == "cuda":
        y_cuda, dropped = moe_run("cuda", os.path.join(work, "y-cuda.npy"))
        if y_cuda is None:
            return False, None
        tol = check.tolerance("cuda", dtype)
        errs = check.rel_error(y_cuda, expected), check.rel_error(y_cuda, y)
        cuda_ok = max(errs) <= tol
        print(f"{'ok  ' if cuda_ok else 'FAIL'} {name:22s} seed {seed} {tag} cuda: max rel error "
              f"{errs[0]:.3e} vs NumPy, {errs[1]:.3e} vs CPU (tol {tol:.0e}), dropped {dropped}")
        ok = ok and cuda_ok
    return ok, Run(x, y, work, ref_dropped)


STATS = {"dropped": 0, "empty_experts": 0}


def same_unfused(args, name, cfg, tweak, seed, ranks, fused):
    """The default (fused) run against --fuse=false on the same input."""
    if fused is None:
        return False
    ok, unfused = run_case(args, name, cfg, tweak, seed, ranks=ranks, extra=("--fuse=false",), x_in=fused.x)
    return ok and compare(name, seed, f"fused vs unfused, ranks {ranks}", fused.y, unfused.y,
                          cfg["torch_dtype"], FUSED_VS_UNFUSED_TOL)


def variants(name):
    """(ranks, moe-run flags) of every run of a case on CUDA."""
    runs = [(1, ()), (1, ("--fuse=false",))]
    if name in MULTI_RANK:
        runs += [(4, ()), (4, ("--fuse=false",))]
    if name in TP_CASES:
        runs.append((4, ("--ep", "2", "--tp", "2")))
    return runs


def cuda_main(args):
    gpus, why = check.visible_gpus()
    if not gpus:
        print(f"no GPU for the CUDA end-to-end test: {why}; skipping")
        return 77
    print(f"CUDA backend: {why}")
    failures = ran = skipped = 0
    for seed in range(args.seeds):
        for name, cfg, tweak in CASES:
            if args.only and args.only not in name:
                continue
            for ranks, extra in variants(name):
                if ranks > gpus:
                    tag = f"ranks {ranks}" + (f" {' '.join(extra)}" if extra else "")
                    print(f"skip {name:22s} seed {seed} {tag}: needs {ranks} GPUs, {gpus} visible")
                    skipped += 1
                    continue
                ok, _ = run_case(args, name, cfg, tweak, seed, ranks=ranks, extra=extra)
                ran += 1
                failures += not ok
    print(f"{ran - failures} passed, {failures} failed, {skipped} skipped (CUDA runs)")
    if failures:
        return 1
    return 0 if ran else 77


# The device bundle: every family of examples/ (the PR-MoE case with drops).
BUNDLE_CASES = ("mixtral", "qwen2-moe", "qwen3-moe", "deepseek-v2", "deepseek-v3", "olmoe",
                "prmoe-choice-major")


def write_bundle(args):
    """Runs the bundle's cases on the CPU backend and copies what a machine
    without MLIR needs to run and check them (format: e2e_check.py)."""
    out = os.path.abspath(args.bundle)
    os.makedirs(os.path.join(out, "cases"), exist_ok=True)
    manifest, failures = [], 0
    for name, cfg, tweak in CASES:
        if name not in BUNDLE_CASES:
            continue
        for dtype in ("float32", "bfloat16"):
            case = f"{name}-{'f32' if dtype == 'float32' else 'bf16'}"
            for extra in ((), ("--fuse=false",)):
                ok, run = run_case(args, case, dict(cfg, torch_dtype=dtype), tweak, 0, extra=extra)
                failures += not ok
                if not ok:
                    continue
                # The unfused run shares the weights, x and reference.
                fused = not extra
                rel = os.path.join("cases", case)
                os.makedirs(os.path.join(out, rel), exist_ok=True)
                files = {"model_cpp": f"model-{'fused' if fused else 'unfused'}.cpp",
                         "y_cpu": f"y_cpu-{'fused' if fused else 'unfused'}.npy",
                         "weights": "w.safetensors", "x": "x.npy", "y_ref": "y_ref.npy"}
                sources = {"model_cpp": "model.cpp", "y_cpu": "y.npy"}
                for key, file in files.items():
                    shutil.copyfile(os.path.join(run.work, sources.get(key, file)), os.path.join(out, rel, file))
                manifest.append(dict(name=case + ("" if fused else "-unfused"), dtype=dtype, ranks=1,
                                     tokens=args.tokens, fuse=fused, dropped=run.dropped,
                                     **{k: os.path.join(rel, f) for k, f in files.items()}))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"cases": manifest}, f, indent=1)
    print(f"{len(manifest)} case(s) in {out}; {failures} failure(s)")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moe-run", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--backend", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: also run every case on the CUDA backend and compare")
    ap.add_argument("--tokens", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--only", default="")
    ap.add_argument("--config", help="run only this config (its family read from model_type)")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300, help="seconds per moe-run launch")
    ap.add_argument("--bundle", help="write the device bundle here (scripts/gpu-bundle.sh)")
    ap.add_argument("--verbose", action="store_true", help="print moe-run's output")
    args = ap.parse_args()
    if args.bundle:
        if args.backend != "cpu":
            ap.error("--bundle runs the CPU backend")
        return write_bundle(args)
    if args.backend == "cuda" and not args.config:
        return cuda_main(args)
    if args.config:
        if args.backend == "cuda":
            gpus, why = check.visible_gpus()
            if gpus < args.ranks:
                print(f"{args.ranks} rank(s) need {args.ranks} GPU(s): {why}; skipping")
                return 77
        with open(args.config) as f:
            cfg = json.load(f)
        ok, _ = run_case(args, os.path.basename(args.config), cfg, {}, 0, ranks=args.ranks)
        return 0 if ok else 1
    failures = 0
    for seed in range(args.seeds):
        for name, cfg, tweak in CASES:
            if args.only and args.only not in name:
                continue
            dtype = cfg["torch_dtype"]
            ok, fused = run_case(args, name, cfg, tweak, seed)
            failures += not ok
            failures += not same_unfused(args, name, cfg, tweak, seed, 1, fused)
            if name not in MULTI_RANK:
                continue
            ok, result = run_case(args, name, cfg, tweak, seed, ranks=4)
            failures += not ok
            failures += not same_unfused(args, name, cfg, tweak, seed, 4, result)
            if ok and MULTI_RANK[name]:
                x, y4 = result.x, result.y
                ok, one = run_case(args, name, cfg, tweak, seed, ranks=1,
                                   tokens=4 * args.tokens, x_in=x)
                failures += not (ok and compare(name, seed, "EP=4 vs EP=1", y4, one.y, dtype))
            if name not in TP_CASES:
                continue
            ok, tp_result = run_case(args, name, cfg, tweak, seed, ranks=4, extra=("--ep", "2", "--tp", "2"),
                                     x_in=result.x if result else None)
            failures += not ok
            if ok and result and TP_CASES[name]:
                failures += not compare(name, seed, "EP=2xTP=2 vs EP=4", tp_result.y, result.y, dtype)
    # The cases must exercise capacity drops and experts without tokens.
    if not args.only:
        for what in ("dropped", "empty_experts"):
            if STATS[what] == 0:
                print(f"FAIL no case had {what.replace('_', ' ')}")
                failures += 1
        print(f"choices dropped over all cases: {STATS['dropped']}; experts without tokens: "
              f"{STATS['empty_experts']}")
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
