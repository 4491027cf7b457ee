#!/usr/bin/env python3
"""Golden for moert_quantized_experts on MXFP4 weights, from a NumPy decoder
of the format (OCP microscaling as gpt-oss stores it: `*_blocks` uint8
[.., G, 16], two e2m1 values per byte with the even column in the low
nibble, `*_scales` uint8 e8m0 [.., G], value = e2m1 * 2^(scale - 127);
transformers' convert_moe_packed_tensors decodes the same way).

A synthetic two-expert gated SwiGLU FFN (H 64, F 96, capacity 5): per-expert
tensors experts.{e}.{gate,up,down}_proj_{blocks,scales}, the input x
[2, 5, 64] and y = down(silu(x gate^T) * (x up^T)) in float64, rounded to
float32. Writes runtime/test/data/mxfp4-ffn.safetensors:

  python3 runtime/test/mxfp4_golden.py runtime/test/data/mxfp4-ffn.safetensors
"""

import json
import struct
import sys

import numpy as np

E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                 -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])
EXPERTS, CAPACITY, HIDDEN, FFN = 2, 5, 64, 96


def decode(blocks, scales):
    """[rows, G, 16] u8 + [rows, G] u8 -> float64 [rows, G * 32]."""
    lo, hi = E2M1[blocks & 0xF], E2M1[blocks >> 4]
    values = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    values = values * np.exp2(scales.astype(np.float64) - 127)[..., None]
    return values.reshape(blocks.shape[0], -1)


def write_safetensors(path, tensors):
    header, data, offset = {}, b"", 0
    for name, (dtype, array) in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text.encode() + data)


def main(path):
    rng = np.random.default_rng(7)
    tensors, weights = {}, {}
    for e in range(EXPERTS):
        for proj, (rows, cols) in (("gate", (FFN, HIDDEN)),
                                   ("up", (FFN, HIDDEN)),
                                   ("down", (HIDDEN, FFN))):
            blocks = rng.integers(0, 256, (rows, cols // 32, 16), np.uint8)
            scales = rng.integers(122, 128, (rows, cols // 32), np.uint8)
            key = f"experts.{e}.{proj}_proj"
            tensors[key + "_blocks"] = ("U8", blocks)
            tensors[key + "_scales"] = ("U8", scales)
            weights[(e, proj)] = decode(blocks, scales)
    x = rng.standard_normal((EXPERTS, CAPACITY, HIDDEN)).astype(np.float32)
    y = np.empty_like(x)
    for e in range(EXPERTS):
        xe = x[e].astype(np.float64)
        g, u = xe @ weights[(e, "gate")].T, xe @ weights[(e, "up")].T
        y[e] = (g / (1 + np.exp(-g)) * u) @ weights[(e, "down")].T
    tensors["x"] = ("F32", x)
    tensors["y"] = ("F32", y)
    write_safetensors(path, tensors)
    print(f"{path}: {EXPERTS} experts, H {HIDDEN}, F {FFN}, "
          f"max |y| {np.abs(y).max():.3g}")


if __name__ == "__main__":
    main(sys.argv[1])
