"""Writes safetensors files for the numeric tests (F32 or BF16 tensors)."""
import json

import numpy as np


def write_safetensors(path, tensors):
    """tensors: name -> (array, "F32" | "BF16"); BF16 truncates the fp32 bits,
    so the values must already be rounded to bf16."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        array, dtype = tensors[name]
        array = np.ascontiguousarray(array, dtype=np.float32)
        if dtype == "BF16":
            raw = (array.view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = array.astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for blob in blobs:
            f.write(blob)
