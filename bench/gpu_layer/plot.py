#!/usr/bin/env python3
"""plot.py gpu_layer-<GPU>-<date>.txt: the GPU layer benchmark's table
(moe-bench-gpu-layer) as a plot beside it (.png): per model, time vs tokens
of the compiled layer, its CUDA graph replay and PyTorch eager, with the
roofline floor of that routing drawn (bench/results/README.md: the columns).
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import report  # noqa: E402  (bench/report.py)


def number(text):
    return float(text) if text not in ("-", "") else math.nan


def read(path):
    """(title, graphs, {model: [(tokens, us, floor us, graph us, torch us)]})."""
    title, graphs, rows = "", False, {}
    with open(path) as f:
        for line in f:
            if line.startswith("# GPU layer forward:"):
                title = line[2:].strip()
            if line.startswith("#") or not line.strip():
                continue
            cells = line.split()
            if cells[0] == "model":
                graphs = "graph" in cells
                continue
            if len(cells) < 12 or not cells[1].isdigit():
                continue  # "written to ..."
            graph = number(cells[10]) if graphs else math.nan
            torch = number(cells[-2])
            rows.setdefault(cells[0], []).append(
                (int(cells[1]), number(cells[5]), number(cells[6]), graph, torch))
    return title, graphs, rows


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plot.py gpu_layer-<GPU>-<date>.txt")
    path = sys.argv[1]
    title, graphs, rows = read(path)
    if not rows:
        sys.exit(f"{path}: no result rows")
    plt = report.pyplot()
    if not plt:
        return 1
    columns = min(3, len(rows))
    lines = math.ceil(len(rows) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(5 * columns, 3.8 * lines),
                             squeeze=False)
    for ax, (model, points) in zip(axes.flat, rows.items()):
        tokens = [p[0] for p in points]
        for index, label, style in ((1, "moe-mlir", "o-"), (3, "moe-mlir, CUDA graph", "s-"),
                                    (4, "PyTorch eager", "^-"), (2, "roofline floor", "k--")):
            values = [p[index] for p in points]
            if not all(math.isnan(v) for v in values):
                ax.plot(tokens, values, style, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(model)
        ax.set_xlabel("tokens")
        ax.set_ylabel("us per layer forward")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle(title)
    report.save(fig, os.path.splitext(path)[0] + ".png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
