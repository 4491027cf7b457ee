#!/usr/bin/env python3
"""router_near_tie.py make DIR ROUTER_DTYPE | check Y.npy X.npy PICKED

make: a bf16 deepseek_v3 checkpoint (2 experts, top-1, no groups, no shared
expert) whose router is stored as DeepSeek's bf16 checkpoints store it, in
F32 ('F32'), or rounded to bf16 ('BF16'). Every token is e_0, so its logits
are the router's column 0: 1.0 for expert 0, 1 + 2^-9 for expert 1. In f32
expert 1 wins; rounded to bf16 both are 1.0 and the tie goes to expert 0.
Expert 0 is all zeros, expert 1 adds a nonzero row, so the output says which
expert ran.

check: PICKED (0 or 1) is the expert y = x + expert(x) shows. Pure Python:
no NumPy needed.
"""
import json
import os
import struct
import sys

H, F = 8, 8


def bf16_bytes(values):
    # Every value here is exact in bf16: its top 16 bits.
    return b"".join(struct.pack("<f", v)[2:] for v in values)


def f32_bytes(values):
    return b"".join(struct.pack("<f", v) for v in values)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_npy(path, rows, cols, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (
        rows, cols)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)))
        f.write(header.encode() + f32_bytes(values))


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<H", data[8:10])
    body = data[10 + n:]
    return list(struct.unpack("<%df" % (len(body) // 4), body))


def make(out, router_dtype):
    os.makedirs(out, exist_ok=True)
    config = {
        "model_type": "deepseek_v3", "torch_dtype": "bfloat16",
        "hidden_size": H, "num_hidden_layers": 1, "intermediate_size": F,
        "moe_intermediate_size": F, "n_routed_experts": 2,
        "num_experts_per_tok": 1, "n_shared_experts": 0,
        "first_k_dense_replace": 0, "n_group": 1, "topk_group": 1,
        "routed_scaling_factor": 1.0}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    tie = 1.0 + 2.0 ** -9
    router = [0.0] * (2 * H)
    router[0] = 1.0
    router[H] = tie if router_dtype == "F32" else 1.0  # bf16 rounds it to 1
    p = "model.layers.0.mlp."
    tensors = {
        p + "gate.weight": (router_dtype, [2, H],
                            f32_bytes(router) if router_dtype == "F32"
                            else bf16_bytes(router)),
        p + "gate.e_score_correction_bias": ("F32", [2], f32_bytes([0, 0])),
    }
    for e in range(2):
        one = 1.0 if e == 1 else 0.0
        col0 = [one if c == 0 else 0.0 for r in range(F) for c in range(H)]
        for proj in ("gate_proj", "up_proj"):
            tensors[f"{p}experts.{e}.{proj}.weight"] = ("BF16", [F, H],
                                                        bf16_bytes(col0))
        tensors[f"{p}experts.{e}.down_proj.weight"] = (
            "BF16", [H, F], bf16_bytes([0.125 * one] * (H * F)))
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    x = [1.0 if c == 0 else 0.0 for r in range(4) for c in range(H)]
    write_npy(os.path.join(out, "x.npy"), 4, H, x)


def check(y_path, x_path, picked):
    y, x = read_npy(y_path), read_npy(x_path)
    moved = max(abs(a - b) for a, b in zip(y, x))
    got = 1 if moved > 0.1 else 0
    print(f"max |y - x| = {moved:.4f}: expert {got} ran")
    return 0 if got == int(picked) else 1


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    else:
        sys.exit(check(*sys.argv[2:5]))
