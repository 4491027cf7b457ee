"""at_most.py N WHAT: stdin has at most N lines (WHAT=lines) or bytes."""
import sys

limit, what = int(sys.argv[1]), sys.argv[2]
data = sys.stdin.buffer.read()
size = data.count(b"\n") if what == "lines" else len(data)
if size > limit:
    sys.exit(f"{size} {what}, more than {limit}")
print(f"{size} {what}")
