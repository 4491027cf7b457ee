"""png_size.py FILE: prints a PNG's width x height; fails on anything else."""
import struct
import sys

data = open(sys.argv[1], "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
    sys.exit(f"{sys.argv[1]} is not a PNG")
width, height = struct.unpack(">II", data[16:24])
print(f"png {width}x{height}")
