#!/usr/bin/env python3
"""FP8 block-quantized checkpoints (DeepSeek-V3 / Qwen3-FP8 layout) ->
moe-run DIR -> "dequantize to f32, then the f32 model".

generate OUT: for deepseek_v3 and qwen3_moe, the tiny transformers model of
hf_checkpoints.py (same configs), whose FFN projections (routed experts,
shared experts, dense MLPs; never the router) are quantized the way the
published FP8 checkpoints are: `weight` float8_e4m3fn plus `weight_scale_inv`
f32 [ceil(out / R), ceil(in / C)], one scale per R x C block, with
quantization_config {quant_method fp8, fmt e4m3, weight_block_size [R, C]}.
The block [16, 24] leaves partial blocks in both directions (F = 24 and 40
rows, H = 32 columns). deepseek_v3_block64 is the same family with H 128
and blocks [64, 64], which the CPU reads in place (FP8 kernel of
AVX-512-BF16) where the [16, 24] blocks are widened per item. The reference dequantizes the stored bytes with a
NumPy decoder of e4m3 (checked against torch's), puts the f32 weights back
into the transformers model and runs the FFN stack on x.npy:
y = y + layer.mlp(y) per layer, saved as y.npy. The committed goldens in
test/Integration/fp8-checkpoints/ are this command's output:

  python3 test/Integration/fp8_checkpoints.py generate \\
      test/Integration/fp8-checkpoints

qwen3_moe_mxfp4 is a synthetic checkpoint (no published Qwen3-MoE is
MXFP4): the same family with F 64, its expert projections stored MXFP4 the
way gpt-oss stores its experts (`<key>_blocks` uint8 [rows, cols / 32, 16],
two e2m1 values a byte with the even column in the low nibble, and
`<key>_scales` uint8 e8m0 [rows, cols / 32]; quantization_config
{quant_method mxfp4}), decoded for the reference by NumPy.

gpt_oss_mxfp4 is gpt-oss's own layout (F 64, swiglu_limit 0.3 so that both
clamps bite): the experts' `gate_up_proj` [E, H, 2F] (gate and up
interleaved by column) and `down_proj` [E, F, H] stored as gpt-oss
publishes them, each expert's matrix transposed and packed along its first
axis: `gate_up_proj_blocks` [E, 2F, H / 32, 16] / `_scales` [E, 2F, H / 32]
and `down_proj_blocks` [E, H, F / 32, 16] / `_scales` (transformers'
integrations/mxfp4.py dequantizes them back with a transpose); the biases,
router and attention stay f32. Its experts run staged (biases,
swiglu_clamped) through moert_quantized_experts_linear.

check: moe-run on meshes 1x1 and 1x4 against y.npy, max |y - ref| / max
|ref| <= 1e-5 (hf_checkpoints.check_dir); moe-run keeps the expert weights
fp8 in memory (moert_quantized_experts). Exit 77 (ctest: skipped) without
NumPy.
"""

import argparse
import json
import os
import shutil
import sys

try:
    import numpy as np
except ImportError:
    print("numpy is not installed: skipping the fp8 checkpoint test")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_checkpoints  # noqa: E402  (configs, check_dir, golden_dirs)

BLOCK = [16, 24]
FAMILIES = ["deepseek_v3", "qwen3_moe", "qwen3_moe_mxfp4", "gpt_oss_mxfp4",
            "deepseek_v3_block64"]
# FP8 variants of other blocks than BLOCK.
BLOCKS = {"deepseek_v3_block64": [64, 64]}
# Variant -> (model_type, config overrides, format).
VARIANTS = {"deepseek_v3": ("deepseek_v3", {}, "fp8"),
            "qwen3_moe": ("qwen3_moe", {}, "fp8"),
            "qwen3_moe_mxfp4": ("qwen3_moe", {"moe_intermediate_size": 64},
                                "mxfp4"),
            "gpt_oss_mxfp4": ("gpt_oss", {"intermediate_size": 64,
                                          "swiglu_limit": 0.3}, "mxfp4"),
            # Blocks of 64 columns, the CPU reads it in place where it has
            # AVX-512-BF16 and VBMI (runtime/cpu/gemm/Avx512Bf16Fp8.cpp):
            # H 128 (two column blocks for gate and up), the dense layer's
            # down k 96 (a partial block and step), routed down k 32.
            "deepseek_v3_block64": ("deepseek_v3",
                                    {"hidden_size": 128,
                                     "intermediate_size": 96,
                                     "moe_intermediate_size": 32}, "fp8")}
GPT_OSS_EXPERTS = (".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")
E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                 -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])
E4M3_MAX = 448.0


def e4m3_to_f32(bytes_):
    """float8_e4m3fn bytes -> float32, from the format (bias 7, subnormals
    m * 2^-9, no infinities, S.1111.111 NaN)."""
    b = bytes_.astype(np.uint32)
    sign = np.where(b & 0x80, -1.0, 1.0)
    exponent = (b >> 3) & 0xF
    mantissa = (b & 0x7).astype(np.float64)
    normal = (1.0 + mantissa / 8.0) * np.exp2(exponent.astype(np.float64) - 7)
    subnormal = mantissa * 2.0 ** -9
    value = sign * np.where(exponent == 0, subnormal, normal)
    value = np.where((exponent == 0xF) & ((b & 0x7) == 0x7), np.nan, value)
    return value.astype(np.float32)


def dequantize(q_bytes, scale_inv, block):
    """w[r, c] = e4m3(q[r, c]) * scale_inv[r / R, c / C] in float32."""
    rows, cols = q_bytes.shape
    w = e4m3_to_f32(q_bytes)
    s = np.repeat(np.repeat(scale_inv, block[0], axis=0), block[1], axis=1)
    return (w * s[:rows, :cols]).astype(np.float32)


def quantize(w, block):
    """Per block: scale = max|w| / 448, q = e4m3(w / scale) (torch rounds)."""
    import torch
    rows, cols = w.shape
    br, bc = block
    srows, scols = -(-rows // br), -(-cols // bc)
    scale = torch.empty(srows, scols, dtype=torch.float32)
    q = torch.empty(rows, cols, dtype=torch.float8_e4m3fn)
    for i in range(srows):
        for j in range(scols):
            tile = w[i * br:(i + 1) * br, j * bc:(j + 1) * bc]
            s = max(float(tile.abs().max()), 1e-12) / E4M3_MAX
            scale[i, j] = s
            q[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = (
                tile / s).to(torch.float8_e4m3fn)
    return q, scale


def mxfp4_quantize(w):
    """[rows, cols] -> blocks uint8 [rows, cols / 32, 16], scales uint8
    [rows, cols / 32] and the decoded float32 values: per 32 values the
    exponent that brings max |w| within e2m1's 6, then the nearest e2m1."""
    rows, cols = w.shape
    groups = w.astype(np.float64).reshape(rows, cols // 32, 32)
    amax = np.abs(groups).max(axis=-1)
    exponent = np.ceil(np.log2(np.maximum(amax, 1e-30) / 6.0)).astype(np.int64)
    exponent = np.clip(exponent, -127, 127)
    scaled = groups / np.exp2(exponent)[..., None]
    codes = np.abs(scaled[..., None] - E2M1[None, None, None, :8]).argmin(-1)
    codes = codes + 8 * (scaled < 0)
    nibbles = codes.astype(np.uint8).reshape(rows, cols // 32, 16, 2)
    blocks = nibbles[..., 0] | (nibbles[..., 1] << 4)
    scales = (exponent + 127).astype(np.uint8)
    return blocks, scales, mxfp4_decode(blocks, scales)


def mxfp4_decode(blocks, scales):
    """The format, independently of the runtime: float32 [rows, G * 32]."""
    lo, hi = E2M1[blocks & 0xF], E2M1[blocks >> 4]
    values = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    values = values * np.exp2(scales.astype(np.float64) - 127)[..., None]
    return values.reshape(blocks.shape[0], -1).astype(np.float32)


def is_quantized(name):
    """The FFN projections: experts, shared experts, dense MLPs; not the
    router (mlp.gate) nor Qwen's shared_expert_gate."""
    return ((".mlp." in name and name.endswith("_proj.weight")) or
            name.endswith(GPT_OSS_EXPERTS))


def mxfp4_quantize_experts(w):
    """gpt-oss's experts [E, A, B] (x @ W) -> blocks [E, B, A / 32, 16],
    scales [E, B, A / 32] of each expert's transpose, and the decoded
    float32 [E, A, B]."""
    quantized = [mxfp4_quantize(np.ascontiguousarray(m.T)) for m in w]
    blocks = np.stack([q[0] for q in quantized])
    scales = np.stack([q[1] for q in quantized])
    decoded = np.ascontiguousarray(np.stack([q[2].T for q in quantized]))
    return blocks, scales, decoded


def clamps_bite(model, x, limit):
    """Whether the first MoE layer's gate (above limit) and up (below
    -limit) pre-activations are clamped somewhere, over every expert."""
    experts = model.model.layers[0].mlp.experts
    gate_up = (np.einsum("sh,ehf->esf", x.numpy(),
                         experts.gate_up_proj.detach().numpy()) +
               experts.gate_up_proj_bias.detach().numpy()[:, None, :])
    return ((gate_up[..., 0::2] > limit).any() and
            (gate_up[..., 1::2] < -limit).any())


def generate(out, families, seed):
    import tempfile

    import torch
    import transformers
    from safetensors.torch import load_file, save_file

    os.makedirs(out, exist_ok=True)
    for family in families:
        model_type, overrides, fmt = VARIANTS[family]
        block = BLOCKS.get(family, BLOCK)
        torch.manual_seed(seed)
        config = transformers.AutoConfig.for_model(
            model_type, **{**hf_checkpoints.COMMON,
                           **hf_checkpoints.FAMILIES[model_type],
                           **overrides})
        config.dtype = torch.float32
        model = transformers.AutoModelForCausalLM.from_config(config).eval()
        with torch.no_grad():
            for layer in model.model.layers:
                for name, p in layer.mlp.named_parameters():
                    p.normal_(0.0, 0.1 if "correction_bias" in name
                              else 1.0 / np.sqrt(p.shape[-1]))
                for name, b in layer.mlp.named_buffers():
                    if "correction_bias" in name:
                        b.normal_(0.0, 0.1)
        target = os.path.join(out, family)
        shutil.rmtree(target, ignore_errors=True)
        model.save_pretrained(target, max_shard_size="40KB")
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(target, extra)):
                os.remove(os.path.join(target, extra))
        index_path = os.path.join(target, "model.safetensors.index.json")
        with open(index_path) as f:
            index = json.load(f)
        shards = sorted(set(index["weight_map"].values()))
        count = 0
        with tempfile.TemporaryDirectory() as dequantized:
            # The stored keys (one tensor per expert, as published), each
            # FFN projection quantized; the f32 model gets their values
            # dequantized by the NumPy decoder (checked against torch's).
            shutil.copy(os.path.join(target, "config.json"), dequantized)
            shutil.copy(index_path, dequantized)
            for shard in shards:
                path = os.path.join(target, shard)
                tensors = load_file(path)
                widened = dict(tensors)
                for name in list(tensors):
                    if not is_quantized(name):
                        continue
                    if fmt == "mxfp4":
                        quantize_mx = (mxfp4_quantize_experts
                                       if name.endswith(GPT_OSS_EXPERTS)
                                       else mxfp4_quantize)
                        blocks, scales, w = quantize_mx(tensors[name].numpy())
                        if name.endswith(GPT_OSS_EXPERTS):
                            # The layout as transformers reads gpt-oss's.
                            from transformers.integrations.mxfp4 import \
                                convert_moe_packed_tensors
                            theirs = convert_moe_packed_tensors(
                                torch.from_numpy(blocks),
                                torch.from_numpy(scales), dtype=torch.float32)
                            assert np.array_equal(theirs.numpy(), w), name
                        widened[name] = torch.from_numpy(w)
                        del tensors[name]
                        for suffix, array in (("_blocks", blocks),
                                              ("_scales", scales)):
                            tensors[name + suffix] = torch.from_numpy(
                                np.ascontiguousarray(array))
                            index["weight_map"][name + suffix] = shard
                        del index["weight_map"][name]
                        count += 1
                        continue
                    q, scale = quantize(tensors[name], block)
                    w = dequantize(q.view(torch.uint8).numpy(),
                                   scale.numpy(), block)
                    expand = torch.repeat_interleave(
                        torch.repeat_interleave(scale, block[0], 0),
                        block[1], 1)[:q.shape[0], :q.shape[1]]
                    assert np.array_equal(w, (q.float() * expand).numpy())
                    widened[name] = torch.from_numpy(w)
                    tensors[name] = q.contiguous()
                    tensors[name + "_scale_inv"] = scale.contiguous()
                    index["weight_map"][name + "_scale_inv"] = shard
                    count += 1
                save_file(widened, os.path.join(dequantized, shard),
                          metadata={"format": "pt"})
                save_file(tensors, path, metadata={"format": "pt"})
            reference = transformers.AutoModelForCausalLM.from_pretrained(
                dequantized, dtype=torch.float32).eval()
            with torch.no_grad():
                x = torch.randn(hf_checkpoints.ROWS, config.hidden_size) * 0.5
                if model_type == "gpt_oss":
                    assert clamps_bite(reference, x, config.swiglu_limit)
                y = x.clone()
                for layer in reference.model.layers:
                    out_l = layer.mlp(y.unsqueeze(0))
                    out_l = out_l[0] if isinstance(out_l, tuple) else out_l
                    y = y + out_l.reshape(y.shape)
        index["weight_map"] = dict(sorted(index["weight_map"].items()))
        with open(index_path, "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")
        config_path = os.path.join(target, "config.json")
        with open(config_path) as f:
            cfg = json.load(f)
        cfg["quantization_config"] = (
            {"quant_method": "mxfp4"} if fmt == "mxfp4" else
            {"activation_scheme": "dynamic", "fmt": "e4m3",
             "quant_method": "fp8", "weight_block_size": block})
        with open(config_path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        np.save(os.path.join(target, "x.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(target, "y.npy"), y.numpy().astype(np.float32))
        print(f"{target}: {len(shards)} shards, {count} {fmt} weights "
              f"(transformers {transformers.__version__}, "
              f"torch {torch.__version__})")


def check_bad_scales(moe_run, golden, workdir):
    """A scale tensor whose shape is not the ceil-div grid of its weight's
    (its header edited, its bytes kept) fails the load, naming the tensor
    and both shapes. Returns the failures."""
    import struct
    import subprocess
    bad = os.path.join(workdir, "bad-scales")
    shutil.rmtree(bad, ignore_errors=True)
    shutil.copytree(golden, bad)
    key = "model.layers.1.mlp.experts.3.gate_proj.weight_scale_inv"
    with open(os.path.join(bad, "model.safetensors.index.json")) as f:
        shard = os.path.join(bad, json.load(f)["weight_map"][key])
    with open(shard, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    assert header[key]["shape"] == [2, 2], header[key]
    header[key]["shape"] = [4, 1]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (length - len(text))
    assert len(text) == length
    with open(shard, "wb") as f:
        f.write(data[:8] + text + data[8 + length:])
    run = subprocess.run(
        [moe_run, bad, "--mesh", "1x1", "--tokens", "32", "--input",
         os.path.join(bad, "x.npy"), "--output",
         os.path.join(workdir, "bad.npy"), "--cache-dir",
         os.path.join(workdir, "cache"), "--quiet"],
        capture_output=True, text=True)
    expected = f"tensor '{key}' has shape [4,1], expected [2,2]"
    if run.returncode == 0 or expected not in run.stderr:
        return [f"{bad}: expected a failed load naming {expected!r}, got "
                f"exit {run.returncode}:\n{run.stderr}"]
    print(f"{bad}: refused ({expected})")
    return []


def check(args):
    dirs = hf_checkpoints.golden_dirs(args.goldens, args.workdir, generate)
    failures = check_bad_scales(args.moe_run,
                                os.path.join(args.goldens, "deepseek_v3"),
                                args.workdir)
    for d in dirs:
        failures += hf_checkpoints.check_dir(args.moe_run, d, args.workdir)
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("out")
    gen.add_argument("--families", nargs="*", default=FAMILIES)
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
