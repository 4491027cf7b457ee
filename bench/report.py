"""What the bench scripts share: where their results go (bench/results/,
named <bench>-<machine>-<date>), human-readable byte columns, and the
matplotlib plot beside each table.

matplotlib is needed by the benches only (scripts/install-deps.sh --bench).
"""
import datetime
import os
import platform
import re
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine():
    """A short name of this CPU: 'xeon-platinum-8480' from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1] for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.machine()
    words = [w for w in re.split(r"[^a-z0-9]+", model.lower())
             if w and w not in ("intel", "r", "tm", "cpu", "amd", "processor", "core")]
    return "-".join(words[:3]) or "unknown"


def result_base(bench, out_dir=None):
    """bench/results/<bench>-<machine>-<date> (no extension)."""
    out_dir = out_dir or RESULTS
    os.makedirs(out_dir, exist_ok=True)
    return os.path.join(out_dir, f"{bench}-{machine()}-{datetime.date.today().isoformat()}")


def human_bytes(n):
    """1536 -> '1.5 KiB'."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


class Table:
    """Lines printed as they come and kept for the result file."""

    def __init__(self):
        self.lines = []

    def print(self, line=""):
        print(line, flush=True)
        self.lines.append(line)

    def write(self, path):
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        print(f"table: {path}", file=sys.stderr)


def pyplot():
    """matplotlib.pyplot without a display, or None (said on stderr)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        print("matplotlib missing (scripts/install-deps.sh --bench): no plot", file=sys.stderr)
        return None


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}", file=sys.stderr)
