#!/usr/bin/env python3
"""An independent NumPy reference of the whole decoder and greedy generation
(issue 14, DESIGN.md §4), written from the formulas so that the committed
goldens (test/Integration/hf-models/, made by transformers' generate) and a
compiled model can be checked against something that is neither of them.

Reads a checkpoint directory (config.json + safetensors shards + index) with
NumPy alone (no torch, no safetensors package): the Hugging Face families
(mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek_v2, deepseek_v3, gpt_oss, dbrx, phimoe,
granitemoe, granitemoeshared, glm4_moe, dots1, ernie4_5_moe, hunyuan_v1_moe) and the PR-MoE GPT description (`model_type: prmoe`, extended below). The MoE FFNs
are test/reference/moe_reference.py's gate / experts / shared-expert /
residual-mix functions (the same code the FFN-stack tests use); everything
else (embedding, norms, RoPE, attention, MLA, LM head) is here. Attention and
norms run in float64, the MoE layer in moe_reference's float32 gating and
float64 FFN math; gpt_oss's FFN (router bias, softmax over the top-k
logits, biased experts, clamped SwiGLU) is written out here in float64, and
its attention adds per-head sinks (an extra softmax logit with no value) and
sliding windows (key positions > position - sliding_window) on the layers
whose layer_types entry is "sliding_attention". granitemoe (GraniteMoe*) is
Mixtral's decoder with four scalars: the embeddings times
embedding_multiplier, the attention scale attention_multiplier (instead of
head_dim^-0.5), each attention and MoE output times residual_multiplier
before its residual add, the logits divided by logits_scaling; its experts
are fused, input_linear [E, 2F, H] (gate rows, then up rows) and
output_linear [E, H, F], its router router.layer. glm4_moe and dots1 are
DeepSeek-V3's MoE (first_k_dense_replace dense layers: glm4_moe's default 1)
under GQA: glm4_moe rotates only the first head_dim * partial_rotary_factor
dims of each head (default 0.5), optionally with Qwen3's per-head q/k norm
(use_qk_norm); dots1 always has that norm, biases o with q/k/v
(attention_bias) and slides on its layer_types' sliding layers. ernie4_5_moe
rotates interleaved pairs (the "pairs" style below) and routes by softmax
with a correction bias in the choice, the weights divided by max(sum,
moe_norm_min), beside moe_num_shared_experts shared experts.
hunyuan_v1_moe normalises q and k per head after the rope
(query_layernorm, key_layernorm), biases o with q/k/v, and stretches the
rope base by its "dynamic" alpha (theta * alpha^(D / (D - 2)), HunYuan's
ntk_alpha); a shared_mlp beside softmax top-k experts. MXFP4 experts (`*_blocks`,
`*_scales`, gpt-oss's layout) are decoded on reading (mxfp4_experts).

RoPE (inv_freq and the cos/sin factor exactly as transformers 5's
modeling_rope_utils computes them): default, linear, llama3, yarn, and
phimoe's longrope (short_factor's inv_freq, cos/sin times long_mscale once
the forward's largest position + 1 exceeds original_max_position_embeddings,
else short_mscale; generate prefills everything again when a sequence first
crosses it, as Phimoe's prepare_inputs_for_generation does). Rotation
styles: "half" (rotate_half: llama-style families and PR-MoE GPT) and
"pairs" (DeepSeek: (x0, x1), (x2, x3), ... rotated pairwise; V2's complex
multiply and V3's rope_interleave differ only in the output order, which is
the same for q and k, so q.k is the same).

MLA (DeepSeek multi-head latent attention). Per token: c = RMSNorm(x Wkv_a
[:r]) (the compressed KV, rank r = kv_lora_rank), k_pe = rope(x Wkv_a[r:])
(one head, shared), q = x Wq (or q_b(RMSNorm(q_a x))) split into q_nope and
q_pe = rope(.). The cache holds c and k_pe only. kv_b_proj is [H*(n+v), r];
per head W_UK[h] = rows [n] of head h, W_UV[h] the next v rows.
  naive:    k_nope[h,t] = W_UK[h] c_t, v[h,t] = W_UV[h] c_t,
            s[h,t] = q_nope[h].k_nope[h,t] + q_pe[h].k_pe_t,
            o[h] = sum_t p[h,t] v[h,t]
  absorbed: q_nope[h].(W_UK[h] c_t) = (W_UK[h]^T q_nope[h]).c_t, so
            q_lat[h] = W_UK[h]^T q_nope[h] (r values) and s[h,t] =
            q_lat[h].c_t + q_pe[h].k_pe_t; sum_t p v[h,t] =
            W_UV[h] (sum_t p[h,t] c_t): the attention runs over the latent
            cache, the per-head keys and values are never materialised.
Softmax scale: (n + rope)^-0.5, times mscale(factor, mscale_all_dim)^2 when
the rope is yarn with mscale_all_dim (DeepSeek's code; transformers'
yarn_apply_mscale). Prefill always runs the naive form (as DeepSeek's
inference does); `mla="naive"|"absorbed"` picks the decode form.

PR-MoE GPT (`model_type: prmoe`, a Megatron-DeepSpeed GPT; the keys the
MoE importer reads are docs/Importers.md's; the whole model adds, as a
proposal for the importer's schema): `num_attention_heads`, `vocab_size`,
`max_position_embeddings`, `layernorm_epsilon` (1e-5),
`position_embedding_type` ("learned_absolute" | "rope", Megatron's flag;
rope: rotate_half over the whole head, `rope_theta` 10000),
`tie_word_embeddings` (true: Megatron's shared output layer). Weights
(P = weight_prefix = language_model.encoder.layers):
language_model.embedding.word_embeddings.weight [V, H],
language_model.embedding.position_embeddings.weight [max_pos, H] (learned),
P.{i}.input_layernorm.{weight,bias}, P.{i}.self_attention.query_key_value.
{weight,bias} ([3H, H], Megatron's per-head layout: rows of head h are
[q_h; k_h; v_h], each head_dim), P.{i}.self_attention.dense.{weight,bias},
P.{i}.post_attention_layernorm.{weight,bias}, the MLP keys of
docs/Importers.md, language_model.encoder.final_layernorm.{weight,bias},
language_model.output_layer.weight when not tied. GeLU is exact (erf).
Capacity dropping depends on which tokens share a forward call (prefill vs
one decode token, the batch, the rank), so the goldens use drop_tokens:
false; with drop_tokens the reference applies capacity to the tokens of
each call.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import moe_reference as moe  # noqa: E402

# --- checkpoint reading -------------------------------------------------------

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
           "U8": np.uint8}
E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def mxfp4_experts(blocks, scales):
    """gpt-oss's MXFP4 experts (quantization_config mxfp4): blocks [E, B,
    A/32, 16] (two e2m1 codes per byte, low nibble first) and scales [E, B,
    A/32] (UE8, bias 127) of each expert's transpose -> float64 [E, A, B]."""
    lo, hi = E2M1[blocks & 0xF], E2M1[blocks >> 4]
    values = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    values = values * np.exp2(scales.astype(np.float64) - 127)[..., None]
    return values.reshape(*blocks.shape[:2], -1).transpose(0, 2, 1).copy()


def read_safetensors(path):
    """{name: float32/int array} from one .safetensors file (BF16 widened)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = a.reshape(info["shape"]).copy()
    return out


def read_checkpoint(directory):
    """(config dict, tensors) of a checkpoint directory: every shard the
    index names, or the single model.safetensors."""
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        tensors.update(read_safetensors(os.path.join(directory, name)))
    for name in [n for n in tensors if n.endswith("_blocks")]:
        base = name[:-len("_blocks")]
        tensors[base] = mxfp4_experts(tensors.pop(name), tensors.pop(base + "_scales"))
    return config, tensors


# --- building blocks ----------------------------------------------------------


def rms_norm(x, w, eps):
    x = np.asarray(x, np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    x = np.asarray(x, np.float64)
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps) * w
    return y if b is None else y + b  # DBRX's LayerNorm has no bias


def softmax(s, axis=-1):
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def yarn_get_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def rope_parameters(config):
    """transformers 5's rope_parameters, or the older rope_theta +
    rope_scaling keys."""
    p = dict(config.get("rope_parameters") or {})
    if not p:
        p = dict(config.get("rope_scaling") or {})
        p["rope_theta"] = config.get("rope_theta", 10000.0)
    p.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    p["rope_type"] = p.get("rope_type", p.get("type", "default"))
    return p


def rope_frequencies(p, dim, max_position_embeddings):
    """(inv_freq [dim/2], attention_factor) as modeling_rope_utils computes
    them for p["rope_type"]."""
    base = float(p["rope_theta"])
    inv = 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    kind = p["rope_type"]
    if kind == "default":
        return inv, 1.0
    if kind == "linear":
        return inv / p["factor"], 1.0
    if kind == "llama3":
        factor, lo, hi = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
        old = p["original_max_position_embeddings"]
        lo_wavelen, hi_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > lo_wavelen, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < hi_wavelen) & ~(wavelen > lo_wavelen)
        return np.where(medium, smoothed, scaled), 1.0
    if kind == "yarn":
        old = p["original_max_position_embeddings"]
        factor = p.get("factor") or max_position_embeddings / old
        att = p.get("attention_factor")
        mscale, mscale_all = p.get("mscale"), p.get("mscale_all_dim")
        if att is None:
            att = (yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all)
                   if mscale and mscale_all else yarn_get_mscale(factor))
        beta_fast, beta_slow = p.get("beta_fast") or 32, p.get("beta_slow") or 1

        def correction_dim(rotations):
            return dim * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(base))
        low, high = correction_dim(beta_fast), correction_dim(beta_slow)
        if p.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        extrapolation = 1 - ramp
        inv = (inv / factor) * (1 - extrapolation) + inv * extrapolation
        return inv, float(att)
    if kind == "longrope":
        # PhimoeRotaryEmbedding's forward: inv_freq from short_factor (it
        # passes no sequence length); its mscales (Model.rope_scale) scale
        # cos and sin.
        return inv / np.asarray(p["short_factor"], np.float64), None
    raise NotImplementedError(f"rope_type {kind}")


def apply_rope(x, positions, inv_freq, factor, style):
    """x[S, heads, d] rotated by positions[S]."""
    ang = np.asarray(positions, np.float64)[:, None] * inv_freq[None, :]  # [S, d/2]
    cos, sin = (np.cos(ang) * factor)[:, None, :], (np.sin(ang) * factor)[:, None, :]
    if style == "half":
        h = x.shape[-1] // 2
        x1, x2 = x[..., :h], x[..., h:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x, dtype=np.float64)
    out[..., 0::2], out[..., 1::2] = x1 * cos - x2 * sin, x2 * cos + x1 * sin
    return out


def causal_attention(q, k, v, start, scale, window=0, sinks=None):
    """q[S, h, d] at positions start.., k/v[T, h, .] (T = start + S):
    softmax(q.k * scale) over t <= position, and t > position - window when
    window > 0; sinks [h] (gpt-oss): one more logit per head in the
    softmax, with no value."""
    s = np.einsum("shd,thd->hst", q, k) * scale
    S, T = q.shape[0], k.shape[0]
    position = (start + np.arange(S))[:, None]
    allowed = np.arange(T)[None, :] <= position
    if window:
        allowed &= np.arange(T)[None, :] > position - window
    s = np.where(allowed[None], s, -np.inf)
    if sinks is None:
        return np.einsum("hst,thd->shd", softmax(s), v)
    sink = np.broadcast_to(np.asarray(sinks, np.float64)[:, None, None], (s.shape[0], S, 1))
    p = softmax(np.concatenate([s, sink], axis=-1))[..., :-1]
    return np.einsum("hst,thd->shd", p, v)


def routing_margin(logits, cfg, bias=None):
    """The smallest distance, over tokens, between a chosen and a rejected
    candidate in the selection steps (group choice, top-k): how far the
    routing is from a tie that another summation order could flip."""
    logits = np.asarray(logits, np.float64)
    if cfg.score_func == "softmax":
        sc = softmax(logits)
    else:
        sc = 1 / (1 + np.exp(-logits))
    sel = sc + (0 if bias is None else np.asarray(bias, np.float64))
    S, E = sel.shape
    margins = [np.inf]
    if cfg.n_group > 1:
        g = sel.reshape(S, cfg.n_group, -1)
        gs = g.max(axis=2) if cfg.group_score == "max" else np.sort(g, axis=2)[:, :, -2:].sum(axis=2)
        order = np.sort(gs, axis=1)[:, ::-1]
        margins.append(float((order[:, cfg.topk_group - 1] - order[:, cfg.topk_group]).min()))
        keep = np.argsort(-gs, axis=1, kind="stable")[:, :cfg.topk_group]
        mask = np.zeros_like(gs, dtype=bool)
        np.put_along_axis(mask, keep, True, axis=1)
        sel = np.where(np.repeat(mask, E // cfg.n_group, axis=1), sel, -np.inf)
    order = np.sort(sel, axis=1)[:, ::-1]
    if cfg.top_k < E:
        nxt = order[:, cfg.top_k]
        gap = np.where(np.isfinite(nxt), order[:, cfg.top_k - 1] - nxt, np.inf)
        margins.append(float(gap.min()))
    return min(margins)


def experts_of(config):
    """Routed experts per MoE layer, under whichever name the config uses
    (transformers 5 writes num_local_experts for qwen3_moe)."""
    for key in ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"):
        if config.get(key) is not None:
            return config[key]
    return 0


# --- the model ----------------------------------------------------------------


class Model:
    """One checkpoint; forward() over new tokens with a KV cache, generate()
    greedy (argmax, lower index on ties)."""

    def __init__(self, directory):
        self.config, self.t = read_checkpoint(directory)
        c = self.config
        self.type = c["model_type"]
        self.min_router_margin = math.inf
        self.clamped = 0  # gpt-oss: SwiGLU inputs its clamps changed
        self.clipped = 0  # dbrx: q/k/v values clip_qkv changed
        self.longrope = None  # phimoe: (original_max_position, short_mscale, long_mscale)
        # granitemoe's scalars (_init_hf); 1 for every other family.
        self.embedding_multiplier = self.residual_multiplier = self.logits_scaling = 1.0
        if self.type == "prmoe":
            self._init_prmoe()
        elif self.type == "dbrx":
            self._init_dbrx()
        else:
            self._init_hf()

    # -- configuration --

    def _init_hf(self):
        c = self.config
        self.hidden = c["hidden_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.mla = self.type.startswith("deepseek")
        self.eps = c.get("rms_norm_eps", 1e-6)
        rp = rope_parameters(c)
        if self.mla:
            self.rope_dim = c["qk_rope_head_dim"]
            self.head_dim = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
            self.scale = self.head_dim ** -0.5
            if rp["rope_type"] != "default" and rp.get("mscale_all_dim"):
                self.scale *= yarn_get_mscale(rp["factor"], rp["mscale_all_dim"]) ** 2
            self.rope_style = "pairs"
        else:
            self.head_dim = c.get("head_dim") or self.hidden // self.heads
            # glm4_moe rotates the first head_dim * partial_rotary_factor
            # dims (its config's default 0.5), the others whole heads.
            partial = rp.get("partial_rotary_factor", c.get("partial_rotary_factor",
                                                            0.5 if self.type == "glm4_moe" else 1.0))
            self.rope_dim = int(self.head_dim * partial)
            self.qk_norm_after_rope = self.type == "hunyuan_v1_moe"
            if self.type == "hunyuan_v1_moe" and rp["rope_type"] == "dynamic" and rp.get("alpha"):
                # HunYuanMoEV1's ntk_alpha: a default rope over the stretched
                # base theta * alpha^(D / (D - 2)).
                D = self.head_dim
                rp = dict(rp, rope_type="default", rope_theta=rp["rope_theta"] * rp["alpha"] ** (D / (D - 2)))
            self.scale = self.head_dim ** -0.5
            # ERNIE-4.5 rotates interleaved pairs (2i, 2i + 1).
            self.rope_style = "pairs" if self.type == "ernie4_5_moe" else "half"
        self.inv_freq, self.rope_factor = rope_frequencies(
            rp, self.rope_dim, c.get("max_position_embeddings", 2048))
        if self.type == "mixtral" and c.get("sliding_window"):
            raise NotImplementedError("sliding-window attention")
        if self.type == "olmoe" and c.get("clip_qkv"):
            raise NotImplementedError("clip_qkv")
        if self.type == "qwen2_moe" and c.get("use_sliding_window"):
            raise NotImplementedError("sliding-window attention")
        # gpt-oss, dots1: sliding_window on the layers layer_types names so.
        self.windows = [c["sliding_window"] if self.type in ("gpt_oss", "dots1") and kind == "sliding_attention"
                        else 0 for kind in (c.get("layer_types") or ["full_attention"] * self.layers)]
        self.embed = self.t["model.embed_tokens.weight"]
        self.lm_head = self.embed if c.get("tie_word_embeddings") else self.t["lm_head.weight"]
        self.lm_head_bias = None
        self.longrope = None
        # Granite's scalars (GraniteMoe*): inputs_embeds * embedding_multiplier,
        # the attention scale attention_multiplier, each sublayer's output *
        # residual_multiplier before its residual add, logits / logits_scaling.
        # Every other family: 1, head_dim^-0.5, 1, 1.
        if self.type in ("granitemoe", "granitemoeshared"):
            self.embedding_multiplier = c.get("embedding_multiplier", 1.0)
            self.scale = c.get("attention_multiplier", 1.0)
            self.residual_multiplier = c.get("residual_multiplier", 1.0)
            self.logits_scaling = c.get("logits_scaling", 1.0)
        if self.type == "phimoe":
            self._init_phimoe(rp)

    def _init_phimoe(self, rp):
        """Phi-3.5-MoE: LayerNorms with bias, the LM head's bias, one
        sliding window on every layer, longrope's mscale by sequence length."""
        c = self.config
        self.norm = "layer"
        self.lm_head_bias = self.opt("lm_head.bias") if c.get("lm_head_bias") else None
        self.windows = [c.get("sliding_window") or 0] * self.layers
        if rp["rope_type"] == "longrope":
            self.longrope = (rp["original_max_position_embeddings"], rp["short_mscale"], rp["long_mscale"])
            self.rope_factor = rp["short_mscale"]

    def _norm(self, x, key):
        """The decoder's norm of module key (RMSNorm; phimoe's LayerNorm)."""
        if getattr(self, "norm", "rms") == "layer":
            return layer_norm(x, self.get(key + ".weight"), self.get(key + ".bias"), self.eps)
        return rms_norm(x, self.get(key + ".weight"), self.eps)

    def _init_prmoe(self):
        c = self.config
        self.hidden, self.layers = c["hidden_size"], c["num_layers"]
        self.heads = self.kv_heads = c["num_attention_heads"]
        self.head_dim = self.rope_dim = self.hidden // self.heads
        self.scale = self.head_dim ** -0.5
        self.mla = False
        self.eps = c.get("layernorm_epsilon", 1e-5)
        self.positions = c.get("position_embedding_type", "learned_absolute")
        assert self.positions in ("learned_absolute", "rope"), self.positions
        self.inv_freq, self.rope_factor = rope_frequencies(
            {"rope_type": "default", "rope_theta": c.get("rope_theta", 10000.0)}, self.head_dim, 0)
        self.rope_style = "half"
        self.embed = self.t["language_model.embedding.word_embeddings.weight"]
        self.lm_head = (self.embed if c.get("tie_word_embeddings", True)
                        else self.t["language_model.output_layer.weight"])
        self.prefix = c.get("weight_prefix", "language_model.encoder.layers")
        counts = c["num_experts"] if isinstance(c["num_experts"], list) else [c["num_experts"]]
        interval, self.prmoe_experts, m = c.get("expert_interval", 2), [], 0
        for i in range(self.layers):
            if (i + 1) % interval == 0:
                self.prmoe_experts.append(counts[min(m, len(counts) - 1)])
                m += 1
            else:
                self.prmoe_experts.append(1)

    # DBRX: transformer.wte, blocks.N.norm_attn_norm.{norm_1, attn.{Wqkv,
    # out_proj}, norm_2} (LayerNorm without bias, eps 1e-5), blocks.N.ffn,
    # norm_f, lm_head. Wqkv's rows are [q; k; v], clamped to [-clip_qkv,
    # clip_qkv]; transformers 5's rotary reads rope_parameters.
    def _init_dbrx(self):
        c = self.config
        a = c.get("attn_config") or {}
        self.hidden, self.layers = c["d_model"], c["n_layers"]
        self.heads, self.kv_heads = c["n_heads"], a.get("kv_n_heads", 1)
        self.head_dim = self.rope_dim = self.hidden // self.heads
        self.scale = self.head_dim ** -0.5
        self.mla = False
        self.eps = 1e-5
        self.clip_qkv = a.get("clip_qkv")
        rp = c.get("rope_parameters") or {"rope_type": "default", "rope_theta": a.get("rope_theta", 10000.0)}
        self.inv_freq, self.rope_factor = rope_frequencies(rp, self.head_dim, c.get("max_seq_len", 2048))
        self.rope_style = "half"
        self.windows = [0] * self.layers
        self.embed = self.t["transformer.wte.weight"]
        self.lm_head = self.embed if c.get("tie_word_embeddings") else self.t["lm_head.weight"]

    def _qkv_dbrx(self, i, x):
        S, D = x.shape[0], self.head_dim
        qkv = moe.linear(x, self.get(f"transformer.blocks.{i}.norm_attn_norm.attn.Wqkv.weight"), None)
        if self.clip_qkv is not None:
            self.clipped += int((np.abs(qkv) > self.clip_qkv).sum())
            qkv = np.clip(qkv, -self.clip_qkv, self.clip_qkv)
        q, k, v = np.split(qkv, [self.heads * D, (self.heads + self.kv_heads) * D], axis=-1)
        return q.reshape(S, self.heads, D), k.reshape(S, self.kv_heads, D), v.reshape(S, self.kv_heads, D)

    def _mlp_dbrx(self, i, x):
        """DbrxFFN: softmax over all E router logits, top-k, the k weights
        divided by their p-norm (p = moe_normalize_expert_weights; null:
        kept); experts w1, v1, w2 each [E*F, H]: (silu(x w1_e^T) * x v1_e^T)
        w2_e."""
        f, p = self.config["ffn_config"], f"transformer.blocks.{i}.ffn."
        k, E, F = f["moe_top_k"], f["moe_num_experts"], f["ffn_hidden_size"]
        norm_p = f.get("moe_normalize_expert_weights", 1.0)
        logits = x @ self.get(p + "router.layer.weight").T
        scores = softmax(logits)
        order = np.argsort(-scores, axis=-1, kind="stable")
        top = order[:, :k]
        weights = np.take_along_axis(scores, top, axis=-1)
        if k < E:
            rest = np.take_along_axis(scores, order[:, k:k + 1], axis=-1)
            self.min_router_margin = min(self.min_router_margin, float((weights[:, -1:] - rest).min()))
        if norm_p is not None:
            weights = weights / (np.abs(weights) ** norm_p).sum(-1, keepdims=True) ** (1.0 / norm_p)
        w1, v1, w2 = (self.get(p + "experts.mlp." + n).reshape(E, F, -1) for n in ("w1", "v1", "w2"))
        out = np.zeros_like(x)
        for s_ in range(x.shape[0]):
            for j in range(k):
                e = top[s_, j]
                g = x[s_] @ w1[e].T
                out[s_] += weights[s_, j] * ((g / (1 + np.exp(-g)) * (x[s_] @ v1[e].T)) @ w2[e])
        return out

    def get(self, key):
        return np.asarray(self.t[key], np.float64)

    def opt(self, key):
        return np.asarray(self.t[key], np.float64) if key in self.t else None

    # -- cache --

    def new_cache(self):
        return [dict(k=None, v=None) for _ in range(self.layers)]

    @staticmethod
    def _append(cache, name, a):
        cache[name] = a if cache[name] is None else np.concatenate([cache[name], a], axis=0)
        return cache[name]

    # -- attention --

    def _attention(self, i, x, start, cache):
        S = x.shape[0]
        pos = start + np.arange(S)
        if self.type == "prmoe":
            p = f"{self.prefix}.{i}.self_attention."
            qkv = moe.linear(x, self.get(p + "query_key_value.weight"), self.opt(p + "query_key_value.bias"))
            qkv = qkv.reshape(S, self.heads, 3, self.head_dim)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
            if self.positions == "rope":
                q = apply_rope(q, pos, self.inv_freq, 1.0, "half")
                k = apply_rope(k, pos, self.inv_freq, 1.0, "half")
            wo, bo = self.get(p + "dense.weight"), self.opt(p + "dense.bias")
        elif self.type == "dbrx":
            p = f"transformer.blocks.{i}.norm_attn_norm.attn."
            q, k, v = self._qkv_dbrx(i, x)
            q = apply_rope(q, pos, self.inv_freq, self.rope_factor, "half")
            k = apply_rope(k, pos, self.inv_freq, self.rope_factor, "half")
            wo, bo = self.get(p + "out_proj.weight"), None
        else:
            p = f"model.layers.{i}.self_attn."
            q = moe.linear(x, self.get(p + "q_proj.weight"), self.opt(p + "q_proj.bias"))
            k = moe.linear(x, self.get(p + "k_proj.weight"), self.opt(p + "k_proj.bias"))
            v = moe.linear(x, self.get(p + "v_proj.weight"), self.opt(p + "v_proj.bias"))
            # Hunyuan-MoE: query_layernorm / key_layernorm per head, after
            # the rope.
            after_rope = self.qk_norm_after_rope
            qn, kn = ((self.opt(p + "query_layernorm.weight"), self.opt(p + "key_layernorm.weight"))
                      if self.type == "hunyuan_v1_moe"
                      else (self.opt(p + "q_norm.weight"), self.opt(p + "k_norm.weight")))
            # q/k norm over the whole projection (OLMoE) before the split
            # into heads, or per head (Qwen3-MoE): the weight's size says which.
            if qn is not None and qn.shape[0] != self.head_dim:
                q, k = rms_norm(q, qn, self.eps), rms_norm(k, kn, self.eps)
            q = q.reshape(S, self.heads, self.head_dim)
            k = k.reshape(S, self.kv_heads, self.head_dim)
            v = v.reshape(S, self.kv_heads, self.head_dim)
            if qn is not None and qn.shape[0] == self.head_dim and not after_rope:
                q, k = rms_norm(q, qn, self.eps), rms_norm(k, kn, self.eps)
            r = self.rope_dim
            q = np.concatenate([apply_rope(q[..., :r], pos, self.inv_freq, self.rope_factor, self.rope_style),
                                q[..., r:]], axis=-1)
            k = np.concatenate([apply_rope(k[..., :r], pos, self.inv_freq, self.rope_factor, self.rope_style),
                                k[..., r:]], axis=-1)
            if qn is not None and after_rope:
                q, k = rms_norm(q, qn, self.eps), rms_norm(k, kn, self.eps)
            wo, bo = self.get(p + "o_proj.weight"), self.opt(p + "o_proj.bias")
        K, V = self._append(cache, "k", k), self._append(cache, "v", v)
        group = self.heads // self.kv_heads
        K, V = np.repeat(K, group, axis=1), np.repeat(V, group, axis=1)
        window = self.windows[i] if self.type != "prmoe" else 0
        sinks = self.opt(p + "sinks") if self.type not in ("prmoe", "dbrx") else None
        o = causal_attention(q, K, V, start, self.scale, window, sinks)
        return moe.linear(o.reshape(S, -1), wo, bo)

    def _mla(self, i, x, start, cache, form):
        c, S = self.config, x.shape[0]
        p = f"model.layers.{i}.self_attn."
        n, r, rd, vd = c["qk_nope_head_dim"], c["kv_lora_rank"], c["qk_rope_head_dim"], c["v_head_dim"]
        pos = start + np.arange(S)
        if c.get("q_lora_rank"):
            qa = moe.linear(x, self.get(p + "q_a_proj.weight"), self.opt(p + "q_a_proj.bias"))
            q = moe.linear(rms_norm(qa, self.get(p + "q_a_layernorm.weight"), self.eps),
                           self.get(p + "q_b_proj.weight"))
        else:
            q = moe.linear(x, self.get(p + "q_proj.weight"))
        q = q.reshape(S, self.heads, n + rd)
        q_nope = q[..., :n]
        q_pe = apply_rope(q[..., n:], pos, self.inv_freq, self.rope_factor, "pairs")
        kva = moe.linear(x, self.get(p + "kv_a_proj_with_mqa.weight"), self.opt(p + "kv_a_proj_with_mqa.bias"))
        lat = rms_norm(kva[:, :r], self.get(p + "kv_a_layernorm.weight"), self.eps)
        k_pe = apply_rope(kva[:, None, r:], pos, self.inv_freq, self.rope_factor, "pairs")[:, 0]
        C, KPE = self._append(cache, "k", lat), self._append(cache, "v", k_pe)  # [T, r], [T, rd]
        wkvb = self.get(p + "kv_b_proj.weight").reshape(self.heads, n + vd, r)
        w_uk, w_uv = wkvb[:, :n, :], wkvb[:, n:, :]
        T = C.shape[0]
        allowed = np.arange(T)[None, :] <= (start + np.arange(S))[:, None]
        if form == "naive":
            k_nope = np.einsum("hnr,tr->thn", w_uk, C)
            v = np.einsum("hvr,tr->thv", w_uv, C)
            k = np.concatenate([k_nope, np.repeat(KPE[:, None, :], self.heads, axis=1)], axis=-1)
            o = causal_attention(np.concatenate([q_nope, q_pe], axis=-1), k, v, start, self.scale)
        else:
            q_lat = np.einsum("shn,hnr->shr", q_nope, w_uk)
            s = (np.einsum("shr,tr->hst", q_lat, C) + np.einsum("shd,td->hst", q_pe, KPE)) * self.scale
            prob = softmax(np.where(allowed[None], s, -np.inf))
            o_lat = np.einsum("hst,tr->shr", prob, C)
            o = np.einsum("shr,hvr->shv", o_lat, w_uv)
        return moe.linear(o.reshape(S, -1), self.get(p + "o_proj.weight"), self.opt(p + "o_proj.bias"))

    # -- FFN --

    def _ffn_params(self, pre, names):
        return {"w1": self.get(pre + names[0] + ".weight"), "w_up": self.get(pre + names[1] + ".weight"),
                "w2": self.get(pre + names[2] + ".weight")}

    def _moe(self, x, params, cfg):
        xs = np.asarray(x, np.float32)
        logits = moe.router(xs, params["gate.weight"], params.get("gate.bias"))
        self.min_router_margin = min(self.min_router_margin, routing_margin(
            logits, cfg.routing, params.get("gate.correction_bias")))
        return moe.moe_layer(xs, params, cfg)["out"]

    def _experts(self, pre, names, count):
        stack = lambda j: np.stack([self.get(f"{pre}experts.{e}.{names[j]}.weight") for e in range(count)])
        return {"experts.w1": stack(0), "experts.w_up": stack(1), "experts.w2": stack(2)}

    def _mlp_gpt_oss(self, i, x):
        """GptOssMLP: router logits x W^T + b, softmax over the top-k
        logits; experts gate_up [E, H, 2F] (gate even, up odd columns) and
        down [E, F, H] with biases; gate clamped above at swiglu_limit, up
        to [-limit, limit], (up + 1) * gate * sigmoid(alpha * gate)."""
        c, p = self.config, f"model.layers.{i}.mlp."
        k, limit, alpha = c["num_experts_per_tok"], c["swiglu_limit"], c.get("swiglu_alpha", 1.702)
        logits = x @ self.get(p + "router.weight").T + self.get(p + "router.bias")
        order = np.argsort(-logits, axis=-1, kind="stable")
        top = order[:, :k]
        chosen = np.take_along_axis(logits, top, axis=-1)
        if k < logits.shape[-1]:
            rest = np.take_along_axis(logits, order[:, k:k + 1], axis=-1)
            self.min_router_margin = min(self.min_router_margin, float((chosen[:, -1:] - rest).min()))
        weights = softmax(chosen)
        gate_up, gate_up_b = self.get(p + "experts.gate_up_proj"), self.get(p + "experts.gate_up_proj_bias")
        down, down_b = self.get(p + "experts.down_proj"), self.get(p + "experts.down_proj_bias")
        out = np.zeros_like(x)
        for s_ in range(x.shape[0]):
            for j in range(k):
                e = top[s_, j]
                h = x[s_] @ gate_up[e] + gate_up_b[e]
                gate, up = np.minimum(h[0::2], limit), np.clip(h[1::2], -limit, limit)
                self.clamped += int((h[0::2] > limit).sum() + (np.abs(h[1::2]) > limit).sum())
                act = (up + 1) * gate / (1 + np.exp(-alpha * gate))
                out[s_] += weights[s_, j] * (act @ down[e] + down_b[e])
        return out

    def _mlp_hf(self, i, x):
        c, t = self.config, self.type
        if t == "gpt_oss":
            return self._mlp_gpt_oss(i, x)
        gated = moe.FfnConfig()
        names = ("gate_proj", "up_proj", "down_proj")
        pre = f"model.layers.{i}.mlp."
        # DeepSeek-V3's MoE: glm4_moe (first_k_dense_replace default 1) and dots1.
        v3 = t in ("deepseek_v3", "glm4_moe", "dots1")
        if t.startswith("deepseek") or v3:
            dense = i < c.get("first_k_dense_replace", 1 if t == "glm4_moe" else 0)
        elif t in ("qwen2_moe", "qwen3_moe"):
            dense = (i in (c.get("mlp_only_layers") or []) or experts_of(c) == 0
                     or (i + 1) % c.get("decoder_sparse_step", 1) != 0)
        elif t == "ernie4_5_moe":
            end = c.get("moe_layer_end_index", -1)
            end = self.layers - 1 if end == -1 else end
            dense = (i + 1) % c.get("moe_layer_interval", 1) != 0 or not c.get("moe_layer_start_index", 1) <= i <= end
        else:
            dense = False
        if dense:
            return moe.ffn(x, self._ffn_params(pre, names), gated)
        if t == "ernie4_5_moe":
            k = c.get("moe_k", 6)
        elif t == "hunyuan_v1_moe":
            k = c.get("moe_topk", 1)
            k = k[i] if isinstance(k, list) else k
        else:
            k = c["num_experts_per_tok"]
        routing = dict(top_k=k)
        shared, shared_gated = None, False
        # Under pre: the router module, the correction bias key, the shared
        # experts' module (an MLP added plainly).
        router, correction, shared_module = "gate", None, None
        if t == "mixtral":
            pre, names = f"model.layers.{i}.block_sparse_moe.", ("w1", "w3", "w2")
            E = experts_of(c)
            routing.update(norm="selected")
        elif t == "phimoe":
            # Mixtral's keys, the sparsemixer router (eval).
            pre, names = f"model.layers.{i}.block_sparse_moe.", ("w1", "w3", "w2")
            E = experts_of(c)
            routing.update(score_func="sparsemixer", jitter_eps=c["router_jitter_noise"], norm="none")
        elif t in ("qwen2_moe", "qwen3_moe", "olmoe"):
            E = experts_of(c)
            routing.update(norm="selected" if c.get("norm_topk_prob", False) else "none")
        elif t == "hunyuan_v1_moe":
            # HunYuanMoEV1Moe: softmax top-k (moe_topk) normalised, router
            # gate.wg, experts of intermediate_size, one shared_mlp added.
            E = experts_of(c)
            routing.update(norm="selected")
            router, shared_module = "gate.wg", "shared_mlp."
        elif t == "ernie4_5_moe":
            # Ernie4_5_MoeSparseMoeBlock: softmax; the correction bias
            # (moe_use_aux_free) in the choice only; the weights divided by
            # max(their sum, moe_norm_min); moe_num_shared_experts shared
            # experts as one MLP, added plainly.
            E = experts_of(c)
            routing.update(norm="selected_clamped", norm_epsilon=c.get("moe_norm_min", 1e-12))
            if c.get("moe_use_aux_free", True):
                correction = "moe_statics.e_score_correction_bias"
            if c.get("moe_num_shared_experts", 2):
                shared_module = "shared_experts."
        elif t in ("granitemoe", "granitemoeshared"):
            # GraniteMoeTopKRouter: router.layer [E, H], softmax over the
            # top-k logits (= the top-k softmax probabilities divided by
            # their sum, Mixtral's); experts input_linear [E, 2F, H] (gate
            # rows, then up rows), output_linear [E, H, F]; granitemoeshared's
            # shared_mlp (shared_intermediate_size > 0) the same without E,
            # added plainly.
            pre = f"model.layers.{i}.block_sparse_moe."
            E = experts_of(c)
            routing.update(norm="selected")
            fused = self.get(pre + "input_linear.weight")
            F = fused.shape[1] // 2
            params = {"gate.weight": self.get(pre + "router.layer.weight"), "experts.w1": fused[:, :F],
                      "experts.w_up": fused[:, F:], "experts.w2": self.get(pre + "output_linear.weight")}
            if t == "granitemoeshared" and c.get("shared_intermediate_size", 0) > 0:
                shared = gated
                sp = f"model.layers.{i}.shared_mlp."
                rows = self.get(sp + "input_linear.weight")
                Fs = rows.shape[0] // 2
                params.update({"shared.w1": rows[:Fs], "shared.w_up": rows[Fs:],
                               "shared.w2": self.get(sp + "output_linear.weight")})
            cfg = moe.LayerConfig(routing=moe.RoutingConfig(num_experts=E, **routing), shared=shared,
                                  residual=False)
            return self._moe(x, params, cfg)
        else:
            E = experts_of(c)
            norm = bool(c.get("norm_topk_prob", t != "dots1" and v3)) and k > 1
            rsf = c.get("routed_scaling_factor", 1.0)
            if v3:
                routing.update(score_func="sigmoid", n_group=c["n_group"], topk_group=c["topk_group"],
                               group_score="top2_sum", norm="selected" if norm else "none",
                               norm_epsilon=1e-20 if norm else 0.0, routed_scaling_factor=rsf)
                correction = "gate.e_score_correction_bias"
            else:
                # DeepSeek-V2's own code: normalise (no scaling) when
                # norm_topk_prob, else scale (docs/Dialects/MoeRationale.md).
                routing.update(norm="selected" if norm else "none", norm_epsilon=1e-20 if norm else 0.0,
                               routed_scaling_factor=1.0 if norm else rsf)
                if c.get("topk_method") == "group_limited_greedy":
                    routing.update(n_group=c["n_group"], topk_group=c["topk_group"], group_score="max")
            if c.get("n_shared_experts"):
                shared_module = "shared_experts."
        params = {"gate.weight": self.get(pre + router + ".weight")}
        params.update(self._experts(pre, names, E))
        if correction:
            params["gate.correction_bias"] = self.get(pre + correction).reshape(E)
        if t == "qwen2_moe":
            shared, shared_gated = gated, True
            params.update({"shared." + a: b for a, b in self._ffn_params(pre + "shared_expert.", names).items()})
            params["shared_gate.weight"] = self.get(pre + "shared_expert_gate.weight")
        if shared_module:
            shared = gated
            params.update({"shared." + a: b for a, b in self._ffn_params(pre + shared_module, names).items()})
        cfg = moe.LayerConfig(routing=moe.RoutingConfig(num_experts=E, **routing), shared=shared,
                              shared_gated=shared_gated, residual=False)
        return self._moe(x, params, cfg)

    def _mlp_prmoe(self, i, x):
        c = self.config
        plain = moe.FfnConfig(kind="plain", activation=c.get("activation", "gelu"))
        p = f"{self.prefix}.{i}.mlp."
        E = self.prmoe_experts[i]

        def fc(pre):
            return {"w1": self.get(pre + "dense_h_to_4h.weight"), "b1": self.get(pre + "dense_h_to_4h.bias"),
                    "w2": self.get(pre + "dense_4h_to_h.weight"), "b2": self.get(pre + "dense_4h_to_h.bias")}
        if E == 1:
            return moe.ffn(x, fc(p), plain)
        pe = p + "deepspeed_moe.experts.deepspeed_experts."
        params = {"gate.weight": self.get(p + "deepspeed_moe.gate.wg.weight")}
        for key, sub in (("w1", "dense_h_to_4h.weight"), ("b1", "dense_h_to_4h.bias"),
                         ("w2", "dense_4h_to_h.weight"), ("b2", "dense_4h_to_h.bias")):
            params["experts." + key] = np.stack([self.get(f"{pe}{e}.{sub}") for e in range(E)])
        residual = c.get("mlp_type", "standard") == "residual"
        if residual:
            params.update({"mlp." + a: b for a, b in fc(p + "mlp.").items()})
            params["coefficient.weight"] = self.get(p + "coefficient.weight")
            params["coefficient.bias"] = self.get(p + "coefficient.bias")
        k, drop = c.get("top_k", 1), c.get("drop_tokens", True)
        routing = moe.RoutingConfig(
            num_experts=E, top_k=k, norm="none" if k == 1 else ("kept" if drop else "selected"),
            capacity_factor=c.get("capacity_factor", 1.0) if drop else 0.0,
            min_capacity=c.get("min_capacity", 4) if drop else 0,
            drop_order=c.get("drop_order", "choice_major" if k <= 2 else "probs") if drop else "token_major")
        cfg = moe.LayerConfig(routing=routing, ffn=plain, residual_mlp=plain if residual else None, residual=False)
        return self._moe(x, params, cfg)

    # -- the decoder --

    def forward(self, ids, start, cache, mla="absorbed"):
        """Logits [S, vocab] (float64) of the tokens ids at positions start..;
        appends them to cache."""
        ids = np.asarray(ids, np.int64)
        h = self.embed[ids].astype(np.float64)
        if self.type == "prmoe":
            if self.positions == "learned_absolute":
                h = h + self.get("language_model.embedding.position_embeddings.weight")[start:start + len(ids)]
            for i in range(self.layers):
                p = f"{self.prefix}.{i}."
                a = layer_norm(h, self.get(p + "input_layernorm.weight"), self.get(p + "input_layernorm.bias"),
                               self.eps)
                h = h + self._attention(i, a, start, cache[i])
                m = layer_norm(h, self.get(p + "post_attention_layernorm.weight"),
                               self.get(p + "post_attention_layernorm.bias"), self.eps)
                h = h + self._mlp_prmoe(i, m)
            f = "language_model.encoder.final_layernorm."
            h = layer_norm(h, self.get(f + "weight"), self.get(f + "bias"), self.eps)
        elif self.type == "dbrx":
            for i in range(self.layers):
                p = f"transformer.blocks.{i}.norm_attn_norm."
                h = h + self._attention(i, layer_norm(h, self.get(p + "norm_1.weight"), None, self.eps),
                                        start, cache[i])
                h = h + self._mlp_dbrx(i, layer_norm(h, self.get(p + "norm_2.weight"), None, self.eps))
            h = layer_norm(h, self.get("transformer.norm_f.weight"), None, self.eps)
        else:
            h = h * self.embedding_multiplier
            form = "naive" if start == 0 else mla
            if self.longrope:
                # transformers: long_mscale once max(position_ids) + 1 of the
                # forward exceeds original_max_position_embeddings.
                original, short, long = self.longrope
                self.rope_factor = long if start + len(ids) > original else short
            for i in range(self.layers):
                p = f"model.layers.{i}."
                a = self._norm(h, p + "input_layernorm")
                rm = self.residual_multiplier
                h = h + rm * (self._mla(i, a, start, cache[i], form) if self.mla
                              else self._attention(i, a, start, cache[i]))
                m = self._norm(h, p + "post_attention_layernorm")
                h = h + rm * self._mlp_hf(i, m)
            h = self._norm(h, "model.norm")
        logits = h @ np.asarray(self.lm_head, np.float64).T
        if getattr(self, "lm_head_bias", None) is not None:
            logits = logits + self.lm_head_bias
        return logits / self.logits_scaling

    def generate(self, prompt, new_tokens, mla="absorbed"):
        """Greedy: (ids [K], logits [K, vocab] f64), the logits that chose
        each id. Prefill the prompt, then one decode step per new token."""
        cache = self.new_cache()
        logits = self.forward(prompt, 0, cache, mla)[-1]
        ids, out = [], []
        for step in range(new_tokens):
            tok = int(np.argmax(logits))  # the first maximum: lower index on ties
            ids.append(tok)
            out.append(logits)
            if step + 1 < new_tokens:
                if self.longrope and len(prompt) + step + 1 == self.longrope[0] + 1:
                    # Phimoe's prepare_inputs_for_generation drops the cache
                    # when the sequence first outgrows the short regime: all
                    # of it again, under long_mscale.
                    cache = self.new_cache()
                    logits = self.forward(list(prompt) + ids, 0, cache, mla)[-1]
                    continue
                logits = self.forward([tok], len(prompt) + step, cache, mla)[-1]
        return np.array(ids, np.int64), np.stack(out)


def read_goldens(directory):
    """(prompts, expected ids, expected logits) of a goldens directory."""
    with open(os.path.join(directory, "prompts.txt")) as f:
        prompts = [[int(t) for t in line.split()] for line in f if line.strip()]
    with open(os.path.join(directory, "expected-ids.txt")) as f:
        ids = [[int(t) for t in line.split()] for line in f if line.strip()]
    logits = [np.load(os.path.join(directory, f"expected-logits-{i}.npy")) for i in range(len(prompts))]
    return prompts, ids, logits


if __name__ == "__main__":
    # model_reference.py DIR [K]: the reference's greedy ids per prompt.
    m = Model(sys.argv[1])
    prompts, _, _ = read_goldens(sys.argv[1])
    for pr in prompts:
        print(" ".join(map(str, m.generate(pr, int(sys.argv[2]) if len(sys.argv) > 2 else 16)[0])))
