#!/usr/bin/env python3
"""merge_shards.py CKPT_DIR OUT.safetensors: the tensors of a sharded
checkpoint (through its index) in one safetensors file, bytes unchanged."""
import json
import os
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return header, data


def main(ckpt, out):
    with open(os.path.join(ckpt, "model.safetensors.index.json")) as f:
        weight_map = json.load(f)["weight_map"]
    shards = {s: read(os.path.join(ckpt, s)) for s in set(weight_map.values())}
    header, blobs, offset = {}, [], 0
    for name in sorted(weight_map):
        info, data = shards[weight_map[name]][0][name], shards[weight_map[name]][1]
        begin, end = info["data_offsets"]
        header[name] = {"dtype": info["dtype"], "shape": info["shape"],
                        "data_offsets": [offset, offset + end - begin]}
        blobs.append(data[begin:end])
        offset += end - begin
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


if __name__ == "__main__":
    main(*sys.argv[1:])
