#!/usr/bin/env python3
"""One run of the CPU MoE layer benchmark (issue 15): the project's layer
(moe-bench-cpu-layer) against PyTorch blocks (torch_moe_cpu.py: transformers'
MoE block, eager and grouped_mm, and a sorted one-matmul-per-expert block) on
the issue's shapes, f32 and bf16 (and fp8 with --dtypes), on 1 core (taskset -c 0, 1 thread) and on
all cores, with the measured read bandwidth and GEMM peaks of each core set.
Every implementation (the project and each PyTorch block) runs in a process
of its own.
Writes bench/results/cpu_layer-<cpu>-<date>.{md,jsonl,png}.

PyTorch, transformers and matplotlib are needed here only, never by the
runtime:  pip install torch transformers matplotlib
(PyPI's torch wheel runs on CPU; the smaller CPU-only wheel is at
--index-url https://download.pytorch.org/whl/cpu where that host resolves.)
Cache (--cache): "cold" (the default) reads twice the last-level cache of
other memory and then flushes the layer's weights (CacheFlush.h) before
every timed run, on both sides and for the read ceiling, so that weights
come from DRAM as in a model whose other layers evict them (reading alone
leaves part of a set read many times in the cache); "warm" repeats one
layer back to back, so that weights that fit
the last-level cache (or the part of them its replacement keeps) are read
from it.
usage: cpu_layer.py [--build build] [--min-seconds 0.5] [--only NAME,...]
                    [--dtypes f32,bf16] [--cache cold|warm] [--out-dir DIR]
       cpu_layer.py --report OUT_BASE RUN.jsonl...   (one table from several runs)
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# name: experts, hidden, ffn, top_k, shared ffn, tokens
SHAPES = {
    "small": (8, 512, 1024, 2, 0, [1, 16, 128, 1024]),
    "qwen3-30b-a3b": (128, 2048, 768, 8, 0, [1, 16, 128, 1024]),
    "olmoe": (64, 2048, 1024, 8, 0, [1, 16, 128, 1024]),
    "mixtral-8x7b": (8, 4096, 14336, 2, 0, [1, 16]),
    # DeepSeek-V3 has 256 experts (22.5 GB in bf16, 45 GB in f32): on a 24 GiB
    # machine only 32 of them are allocated. 1 token reads what the full layer
    # reads (8 routed + the shared expert); 16 tokens touch at most 32.
    "deepseek-v3-e32": (32, 7168, 2048, 8, 2048, [1, 16]),
}


TORCH_IMPLS = ["hf-eager", "hf-grouped", "sorted"]


def cpu_name():
    with open("/proc/cpuinfo") as f:
        text = f.read()
    model = re.search(r"model name\s*:\s*(.*)", text).group(1)
    flags = re.search(r"flags\s*:\s*(.*)", text).group(1).split()
    family = re.search(r"cpu family\s*:\s*(\d+)", text).group(1)
    number = re.search(r"model\s*:\s*(\d+)", text).group(1)
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    slug = re.sub(r"-?(intel-r|r|processor|cpu)-?", "-", slug).strip("-")
    if "amx_bf16" in flags:
        slug += "-amx"
    return f"{model} (family {family} model {number})", f"{slug}-f{family}m{number}"


def llc_megabytes():
    """The last-level cache of cpu0 in MB (sysfs), 256 if it says nothing."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    for index in os.listdir(base) if os.path.isdir(base) else []:
        try:
            with open(os.path.join(base, index, "size")) as f:
                text = f.read().strip()
        except OSError:
            continue
        scale = {"K": 1 / 1024, "M": 1, "G": 1024}.get(text[-1:], 1 / 2 ** 20)
        best = max(best, float(text.rstrip("KMG")) * scale)
    return int(best) or 256


def run_jsonl(cmd, log):
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        log.write(proc.stderr)
        print(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}", file=sys.stderr)
        return []
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--min-seconds", type=float, default=0.5)
    p.add_argument("--only", default="", help="shape names, comma separated")
    p.add_argument("--dtypes", default="f32,bf16", help="of f32, bf16, fp8")
    p.add_argument("--cache", choices=["cold", "warm"], default="cold")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--report", nargs="+", metavar=("OUT_BASE", "RUN.jsonl"),
                   help="write OUT_BASE.{md,png} from the rows of earlier runs")
    args = p.parse_args()
    if args.report:
        rows = []
        for path in args.report[1:]:
            with open(path) as f:
                rows += [json.loads(line) for line in f if line.strip()]
        cpu, _ = cpu_name()
        write_report(rows, args.report[0], cpu, datetime.date.today().isoformat())
        return
    bench = os.path.join(args.build, "bench", "cpu_layer", "moe-bench-cpu-layer")
    worker = os.path.join(HERE, "torch_moe_cpu.py")
    cores = len(os.sched_getaffinity(0))
    core_sets = [("1 core", ["taskset", "-c", "0"], 1), (f"{cores} cores", [], cores)]
    cpu, slug = cpu_name()
    date = datetime.date.today().isoformat()
    base = os.path.join(args.out_dir, f"cpu_layer-{slug}-{date}")
    os.makedirs(args.out_dir, exist_ok=True)
    rows = []
    cold = args.cache == "cold"
    evict = ["--evict-mb", str(2 * llc_megabytes()) if cold else "0"]
    flush_lib = os.path.join(os.path.dirname(bench), "libmoe-bench-cache-flush.so")
    bench_cold = evict + ["--flush-weights", "1" if cold else "0"]
    # Cold rows also time plain reads of the weights they read, in turn
    # with their runs: the floor for the same bytes at the same moment.
    bench_floor = ["--read-floor", "1"] if cold else []
    torch_cold = evict + (["--flush-lib", flush_lib] if cold else [])
    with open(base + ".log", "w") as log, open(base + ".jsonl", "w") as out:
        def record(items, **extra):
            for item in items:
                item.update(extra, cache=args.cache)
                rows.append(item)
                out.write(json.dumps(item) + "\n")
                out.flush()

        # Before and after the rows: other tenants move this VM's DRAM
        # bandwidth, and the report keeps each ceiling's best.
        def measure_ceilings():
            for label, pin, threads in core_sets:
                record(run_jsonl(pin + [sys.executable, worker, "--ceilings",
                                        "--threads", str(threads)] + torch_cold, log),
                       cores=label)

        measure_ceilings()
        only = [s for s in args.only.split(",") if s]
        for name, (E, H, F, k, Fs, tokens) in SHAPES.items():
            if only and name not in only:
                continue
            for dtype in args.dtypes.split(","):
                shape = ["--experts", str(E), "--hidden", str(H), "--ffn", str(F),
                         "--top-k", str(k), "--shared-ffn", str(Fs), "--dtype", dtype,
                         "--tokens", ",".join(map(str, tokens))]
                for label, pin, threads in core_sets:
                    print(f"{name} {dtype} {label}", flush=True)
                    record(run_jsonl(pin + [bench, "--json", "1", "--threads", str(threads),
                                            "--min-seconds", str(args.min_seconds)] + bench_cold +
                                     bench_floor + shape,
                                     log),
                           kind="project", impl="project", shape=name, cores=label)
                    # One process per block: none inherits the cache and
                    # prefetcher history another block's runs left.
                    for impl in TORCH_IMPLS if dtype != "fp8" else ["sorted"]:
                        record(run_jsonl(pin + [sys.executable, worker, "--threads", str(threads),
                                                "--min-seconds", str(args.min_seconds),
                                                "--impls", impl] + torch_cold + shape,
                                         log),
                               shape=name, cores=label)
        measure_ceilings()
    write_report(rows, base, cpu, date)


def write_report(rows, base, cpu, date):
    # Rows of earlier runs have no "cache": they repeated the layer warm.
    caches = sorted({r.get("cache", "warm") for r in rows})
    for r in rows:
        if len(caches) > 1:
            r["cores"] = f"{r['cores']} {r.get('cache', 'warm')}"
    # Several runs: each ceiling's best measurement.
    ceil = {}
    for r in rows:
        if r["kind"] == "ceilings":
            c = ceil.setdefault(r["cores"], dict(r))
            for name in ("read_gbs", "gemm_f32_gflops", "gemm_bf16_gflops"):
                c[name] = max(c[name], r[name])
    # Runs merged by --report: each implementation's fastest median of a row
    # (the least disturbed by other load), and how far its runs moved.
    table, spread = {}, {}
    for r in rows:
        if r["kind"] == "ceilings" or "seconds" not in r:
            continue
        key = (r["shape"], r["dtype"], r["cores"], r["tokens"])
        impls = table.setdefault(key, {})
        old = impls.get(r["impl"])
        if old:
            s = spread.setdefault((key, r["impl"]), [old["seconds"]])
            s.append(r["seconds"])
        if not old or r["seconds"] < old["seconds"]:
            impls[r["impl"]] = r
    lines = [f"# CPU MoE layer: the project vs PyTorch ({cpu}, {date})", "",
             "Produced by `python3 bench/cpu_layer/cpu_layer.py` (medians; the same input every run;",
             f"cache: {' and '.join(caches)}, see below).",
             "Ceilings per core set: read bandwidth (the best of torch sum / mv f32 / mv bf16 over 1 GiB),",
             "GEMM peak (torch.mm,",
             "f32 2048^3, bf16 4096^3; measured before and after the rows, the best):", ""]
    for label, c in ceil.items():
        lines.append(f"- {label}: read {c['read_gbs']:.1f} GB/s, f32 GEMM "
                     f"{c['gemm_f32_gflops']:.0f} GFLOP/s, bf16 GEMM {c['gemm_bf16_gflops']:.0f} GFLOP/s")
    lines += ["", "`cold`: before every timed run (and every read-ceiling run) both sides read twice the",
              "last-level cache of other memory and flush the layer's weights from the caches",
              "(CLFLUSHOPT), so that the weights come from DRAM, as in a model whose other layers",
              "evict them. `warm`: the layer repeats back to back; weights that",
              "fit the last-level cache (small, Qwen3 and OLMoE decode touch the same experts every",
              "run) are then read from it and can exceed the DRAM read bandwidth (%read > 100).",
              "This 2-vCPU VM is shared with other engineers' builds: see the notes below the table",
              "for how it was measured and how far repeated rows moved.", "",
              "`roofline ms`: the larger of weight bytes / read bandwidth (`mem`) and FLOPs / GEMM",
              "peak (`gemm`): no implementation can beat it on this core set.", "",
              "`best torch`: the fastest of transformers' MixtralSparseMoeBlock (experts eager, or",
              "grouped_mm), and the sorted one-matmul-per-expert block. `ratio` = best torch time /",
              "project time (> 1: the project is faster). `GB/s` and `%read`: weights of the touched",
              "experts (+ shared, router) per second, against the read bandwidth; `GFLOP/s` and",
              "`%peak`: against the GEMM peak of the dtype.", "",
              "`fp8`: expert and shared weights float8_e4m3fn with one f32 scale per 128 x 128 block",
              "(DeepSeek-V3, Qwen3-FP8), activations and router bf16; `%peak` against the bf16 GEMM",
              "peak. Its torch block is `sorted`, widening each touched expert to bf16 per call",
              "(transformers has no CPU FP8 path; dequantized at load it is the bf16 row, twice the",
              "memory).", "",
              "`%floor` (cold rows): a plain read of the same bytes the layer reads (router, touched",
              "experts, shared expert; the same eviction and flush, the rank's threads), timed in turn",
              "with the project's runs (moe-bench-cpu-layer --read-floor 1), one stream per thread and",
              "8 streams per thread in turn: the faster one's median time over the project's. Unlike",
              "`%read`, whose ceiling is measured minutes apart from the row, it moves with the DRAM",
              "bandwidth other tenants leave.", "",
              "| shape | dtype | cores | tokens | touched | project ms | hf-eager ms | hf-grouped ms | sorted ms | best torch | ratio | project GB/s (%read) | %floor | project GFLOP/s (%peak) | roofline ms |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    plot = {}
    for key in sorted(table, key=lambda k: (list(SHAPES).index(k[0]), k[1], k[2], k[3])):
        shape, dtype, cores, tokens = key
        impls = table[key]
        proj = impls.get("project")
        torch_rows = {n: r for n, r in impls.items() if n != "project"}
        if not proj or not torch_rows:
            continue
        best = min(torch_rows, key=lambda n: torch_rows[n]["seconds"])
        ratio = torch_rows[best]["seconds"] / proj["seconds"]
        c = ceil.get(cores, {})
        gbs = proj["weight_bytes"] / proj["seconds"] / 1e9
        gflops = proj["flops"] / proj["seconds"] / 1e9
        read = c.get("read_gbs", float("nan"))
        # fp8 weights are multiplied in bf16 (both sides).
        peak = c.get(f"gemm_{'bf16' if dtype == 'fp8' else dtype}_gflops", float("nan"))
        ms = lambda n: f"{torch_rows[n]['seconds'] * 1e3:.3f}" if n in torch_rows else "-"
        floors = {"mem": proj["weight_bytes"] / read / 1e9, "gemm": proj["flops"] / peak / 1e9}
        bound = max(floors, key=floors.get)
        floor = (f"{100 * proj['floor_seconds'] / proj['seconds']:.0f}%"
                 if proj.get("floor_seconds") else "-")
        lines.append(f"| {shape} | {dtype} | {cores} | {tokens} | {proj['touched']} | "
                     f"{proj['seconds'] * 1e3:.3f} | {ms('hf-eager')} | {ms('hf-grouped')} | "
                     f"{ms('sorted')} | {best} | {ratio:.2f} | {gbs:.1f} ({100 * gbs / read:.0f}%) | {floor} | "
                     f"{gflops:.0f} ({100 * gflops / peak:.0f}%) | "
                     f"{floors[bound] * 1e3:.3f} {bound} |")
        plot.setdefault((shape, dtype, cores), []).append((tokens, ratio))
    if spread:
        lines += ["", "Repeated rows (slowest / fastest median of the same row over the runs):"]
        for side in ("project", "torch"):
            moved = sorted((max(s) / min(s), key)
                           for (key, impl), s in spread.items()
                           if (impl == "project") == (side == "project"))
            if moved:
                worst, key = moved[-1]
                lines.append(f"- {side}: median {moved[len(moved) // 2][0]:.2f}x, worst "
                             f"{worst:.2f}x ({' '.join(map(str, key))} tokens), "
                             f"{sum(m > 1.1 for m, _ in moved)} of {len(moved)} rows moved by more than 10%")
    errors = sorted({(r["impl"], r["error"]) for r in rows if "error" in r})
    if errors:
        lines += ["", "Implementations that did not run:"]
        lines += [f"- {impl}: {error}" for impl, error in errors]
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
        return
    core_labels = sorted({k[2] for k in plot})
    fig, axes = plt.subplots(1, len(core_labels), figsize=(7 * len(core_labels), 5), squeeze=False)
    for ax, cores in zip(axes[0], core_labels):
        for (shape, dtype, c), points in sorted(plot.items()):
            if c != cores:
                continue
            points.sort()
            ax.plot([t for t, _ in points], [r for _, r in points], marker="o",
                    linestyle="-" if dtype == "bf16" else "--", label=f"{shape} {dtype}")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("tokens")
        ax.set_ylabel("best PyTorch time / project time (>1: project faster)")
        ax.set_title(f"{cores}")
        ax.legend(fontsize=7)
    fig.suptitle(f"MoE layer, project vs PyTorch: {cpu}, {date}")
    fig.tight_layout()
    fig.savefig(base + ".png", dpi=110)


if __name__ == "__main__":
    main()
