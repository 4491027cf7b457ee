#!/usr/bin/env python3
"""Fused versus unfused lowering: runtime calls, bytes and CPU time.

1. Counts, exactly, from the lowered IR (moe-opt ... --convert-moe-to-moert
   --moert-count-kernels, with and without --moe-fuse-kernels): per model of
   examples/ on the smallest mesh its plan fits (per rank), at 1, 128 and
   4096 tokens, the kernel launches and the bytes they read and write (whole
   views at the token bound, weights included). Layers with the same numbers
   share a row ("first..last (count)"). Then the same per fusion pattern:
   the runtime calls each pattern replaces, summed over the model (gate;
   combine + epilogue; the expert FFN, and with shared experts folded).
2. CPU backend time of one step (moe-run, best of --runs) of small models of
   each family (hidden 256, 8 experts, 2 layers, random weights), fused
   versus unfused, at the same token counts.

Writes the tables and a plot (per model: launches and bytes moved per rank,
fused vs unfused; CPU step time vs tokens) to bench/results/fusion-*.{md,png}.

usage: bench/fusion.py [--build build] [--runs 3] [--per-layer] [--no-time]
"""
import argparse
import glob
import json
import os
import re
import subprocess
import tempfile

import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENS = (1, 128, 4096)
MESHES = ("1x1", "1x8", "2x8", "4x8", "8x8")


def importer(path):
    return "--import-prmoe" if "prmoe" in path else "--import-hf"


def counts(build, config, tokens, fuse):
    """(mesh, [(layer, launches, read, written)], total, {kernel family: totals})
    or None when no mesh fits."""
    imported = subprocess.run([os.path.join(build, "bin", "moe-translate"), importer(config), config],
                              check=True, capture_output=True, text=True).stdout
    for mesh in MESHES:
        passes = ["--canonicalize", f"--moe-assign-parallelism=mesh={mesh} tokens={tokens}"]
        if fuse:
            passes.append("--moe-fuse-kernels")
        passes += [f"--convert-moe-to-moert=tokens={tokens}", "--moert-count-kernels"]
        proc = subprocess.run([os.path.join(build, "bin", "moe-opt"), *passes, "-o", os.devnull],
                              input=imported, capture_output=True, text=True)
        if proc.returncode != 0:
            if "no parallel plan" in proc.stderr:
                continue  # does not fit: try a bigger mesh
            raise RuntimeError(proc.stderr)
        layers, total, families = [], None, {}
        for line in proc.stdout.splitlines():
            k = re.match(r"family (\S+): launches (\d+) read (\d+) written (\d+)", line)
            if k:
                families[k.group(1)] = tuple(int(v) for v in k.groups()[1:])
                continue
            m = re.match(r"(layer (\d+)|total): launches (\d+) read (\d+) written (\d+)", line)
            if not m:
                continue
            row = tuple(int(v) for v in m.groups()[2:])
            if m.group(2) is None:
                total = row
            else:
                layers.append((int(m.group(2)),) + row)
        return mesh, layers, total, families
    return None


def row(name, mesh, tokens, layers, f, u):
    b = report.human_bytes
    return (f"{name:18s} {mesh:5s} {tokens:6d} {layers:>13s} {f[0]:5d} {u[0]:5d} "
            f"{b(f[1]):>11s} {b(u[1]):>11s} {b(f[2]):>11s} {b(u[2]):>11s}")


def count_table(build, per_layer, table, totals):
    """Prints the counts; totals[(model, tokens)] = (fused, unfused) model rows."""
    print = table.print
    print("## Runtime calls and bytes per rank, from the lowered IR (fused / unfused)\n")
    print(f"{'model':18s} {'mesh':5s} {'tokens':>6s} {'layers (n)':>13s} {'launch':>5s} {'s':>5s} "
          f"{'read':>11s} {'':>11s} {'written':>11s} {'':>11s}")
    print(f"{'':18s} {'':5s} {'':>6s} {'':>13s} {'fused':>5s} {'unfus':>5s} "
          f"{'fused':>11s} {'unfused':>11s} {'fused':>11s} {'unfused':>11s}")
    for name, config in example_configs():
        for tokens in TOKENS:
            fused = counts(build, config, tokens, True)
            unfused = counts(build, config, tokens, False)
            if fused is None or unfused is None:
                print(f"{name:18s} no plan fits up to {MESHES[-1]}")
                break
            mesh = fused[0]
            assert unfused[0] == mesh, (name, mesh, unfused[0])
            groups = {}  # layers with equal numbers share a row
            for f, u in zip(fused[1], unfused[1]):
                if per_layer:
                    groups[(f[0],)] = [f[0]]
                    continue
                groups.setdefault((f[1:], u[1:]), []).append(f[0])
            for f, u in zip(fused[1], unfused[1]):
                layers = groups.pop((f[0],) if per_layer else (f[1:], u[1:]), None)
                if layers is None:
                    continue
                span = str(layers[0]) if len(layers) == 1 else f"{layers[0]}..{layers[-1]} ({len(layers)})"
                print(row(name, mesh, tokens, span, f[1:], u[1:]))
            f, u = fused[2], unfused[2]
            totals[(name, tokens)] = (f, u)
            print(row(name, mesh, tokens, "model", f, u))
    print()


# Each fusion pattern by the kernel families (getKernelFamily() of the moert
# call ops, printed by --moert-count-kernels) of the calls it replaces,
# fused or not. "combine" keeps moert.add in both modes since dense layers
# keep theirs. "experts" is the expert FFN: a shared expert folded into
# moert.fused_experts counts there, so "experts+shared" adds the dense_ffn
# family (which dense layers, PR-MoE MLPs and tensor-parallel shared experts
# keep in both) for the like-for-like comparison.
PATTERNS = {
    "gate": ("gate",),
    "combine+epilogue": ("combine",),
    "experts": ("experts",),
    "experts+shared": ("experts", "dense_ffn"),
}


def pattern_table(build, table):
    print = table.print
    b = report.human_bytes
    print("## Per fusion pattern, whole model per rank (fused / unfused)\n")
    print(f"{'model':18s} {'tokens':>6s} {'pattern':17s} {'launch':>5s} {'s':>5s} "
          f"{'read':>11s} {'':>11s} {'written':>11s} {'':>11s}")
    for name, config in example_configs():
        for tokens in TOKENS:
            fused = counts(build, config, tokens, True)
            unfused = counts(build, config, tokens, False)
            if fused is None or unfused is None:
                break
            for pattern, families in PATTERNS.items():
                f = [sum(fused[3].get(k, (0, 0, 0))[i] for k in families) for i in range(3)]
                u = [sum(unfused[3].get(k, (0, 0, 0))[i] for k in families) for i in range(3)]
                print(f"{name:18s} {tokens:6d} {pattern:17s} {f[0]:5d} {u[0]:5d} "
                      f"{b(f[1]):>11s} {b(u[1]):>11s} {b(f[2]):>11s} {b(u[2]):>11s}")
    print()


def example_configs():
    configs = sorted(glob.glob(os.path.join(ROOT, "examples", "hf", "*", "config.json"))) + \
        sorted(glob.glob(os.path.join(ROOT, "examples", "prmoe", "*.json")))
    for config in configs:
        yield (os.path.basename(os.path.dirname(config)) if config.endswith("config.json")
               else os.path.splitext(os.path.basename(config))[0]), config


H, F, E = 256, 512, 8
SMALL = {
    "mixtral": {"model_type": "mixtral", "intermediate_size": F, "num_local_experts": E},
    "qwen2-moe": {"model_type": "qwen2_moe", "moe_intermediate_size": F, "num_experts": E,
                  "shared_expert_intermediate_size": F, "intermediate_size": 2 * F},
    "deepseek-v3": {"model_type": "deepseek_v3", "moe_intermediate_size": F, "n_routed_experts": E,
                    "intermediate_size": 2 * F, "n_shared_experts": 1, "n_group": 4, "topk_group": 2,
                    "first_k_dense_replace": 0},
    "prmoe": {"model_type": "prmoe", "num_layers": 2, "ffn_hidden_size": F, "activation": "gelu",
              "num_experts": [E], "expert_interval": 1, "mlp_type": "residual", "top_k": 2,
              "capacity_factor": 1.25, "min_capacity": 4, "drop_tokens": True,
              "drop_order": "choice_major", "weight_prefix": "language_model.encoder.layers"},
}


def step_us(build, config, tokens, fuse, runs, work):
    best = None
    for _ in range(runs):
        out = subprocess.run([os.path.join(build, "bin", "moe-run"), config, "--tokens", str(tokens),
                              f"--fuse={'true' if fuse else 'false'}",
                              "--cache-dir", os.path.join(work, "cache")],
                             check=True, capture_output=True, text=True).stdout
        us = float(re.search(r"step: ([0-9.]+) us", out).group(1))
        best = us if best is None else min(best, us)
    return best


def time_table(build, runs, table, times):
    """times[model] = [(tokens, fused us, unfused us)]."""
    print = table.print
    print(f"## CPU backend, one step, best of {runs} (hidden {H}, ffn {F}, {E} experts, top-2, "
          "2 layers, f32, 1 rank)\n")
    print(f"{'model':14s} {'tokens':>6s} {'fused us':>12s} {'unfused us':>12s} {'speedup':>8s}")
    with tempfile.TemporaryDirectory() as work:
        for name, extra in SMALL.items():
            cfg = {"hidden_size": H, "torch_dtype": "float32", **extra}
            if name != "prmoe":
                cfg.update(num_hidden_layers=2, num_experts_per_tok=2)
            path = os.path.join(work, name + ".json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            for tokens in TOKENS:
                fused = step_us(build, path, tokens, True, runs, work)
                unfused = step_us(build, path, tokens, False, runs, work)
                times.setdefault(name, []).append((tokens, fused, unfused))
                print(f"{name:14s} {tokens:6d} {fused:12.1f} {unfused:12.1f} {unfused / fused:8.2f}")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("MOE_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--per-layer", action="store_true", help="one row per layer (no merging)")
    ap.add_argument("--no-time", action="store_true", help="counts only")
    ap.add_argument("--out-dir", default=report.RESULTS)
    args = ap.parse_args()
    table, totals, times = report.Table(), {}, {}
    count_table(args.build, args.per_layer, table, totals)
    pattern_table(args.build, table)
    if not args.no_time:
        time_table(args.build, args.runs, table, times)
    base = report.result_base("fusion", args.out_dir)
    table.write(base + ".md")
    plot(totals, times, base + ".png")


def plot(totals, times, path):
    """Per model at the largest token count: launches and bytes moved,
    fused vs unfused; then CPU step time vs tokens."""
    plt = report.pyplot()
    if not plt:
        return
    tokens = max(t for _, t in totals)
    models = [m for m, t in totals if t == tokens]
    panels = 3 if times else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.8))
    x = range(len(models))
    for ax, (index, label) in zip(axes, ((0, "runtime calls per step"),
                                         (None, "bytes read + written per rank"))):
        for shift, (which, name) in ((-0.2, (0, "fused")), (0.2, (1, "unfused"))):
            values = [totals[(m, tokens)][which][index] if index is not None
                      else sum(totals[(m, tokens)][which][1:]) for m in models]
            ax.bar([i + shift for i in x], values, width=0.4, label=name)
        ax.set_xticks(list(x), models, rotation=35, ha="right")
        if index is None:  # bytes: ticks at powers of two
            ax.set_yscale("log", base=2, subs=[])
        else:
            ax.set_yscale("log")
        ax.set_title(f"{label}, {tokens} tokens")
        ax.legend()
        if index is None:
            ax.yaxis.set_major_formatter(
                plt.FuncFormatter(lambda v, _: report.human_bytes(v)))
    if times:
        ax = axes[2]
        for name, rows in times.items():
            line, = ax.plot([r[0] for r in rows], [r[1] for r in rows], marker="o",
                            label=f"{name} fused")
            ax.plot([r[0] for r in rows], [r[2] for r in rows], marker="x", linestyle="--",
                    color=line.get_color(), label=f"{name} unfused")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tokens per step")
        ax.set_ylabel("us per step (best of runs)")
        ax.set_title("CPU backend, small models, 1 rank")
        ax.legend(fontsize=7)
    report.save(fig, path)


if __name__ == "__main__":
    main()
