#!/usr/bin/env python3
"""The batch split over the ranks (attention data parallel, each rank its own
sequences and KV caches) against the committed goldens.

  hf_models_split_batch.py --moe-run PATH [--families ...] [--workdir DIR]

hf_models.py check runs the goldens' 3 prompts, which 2 or 4 ranks do not
divide: every rank then runs the whole batch. Here the batch is the prompts
0, 1, 2, 0 (4 sequences): on 1x2 each rank holds 2 of them, on 1x4 one, and
every sequence must still produce its golden ids and logits. With
--moe-run-arg=--attention-tp=2 on 1x4 the 4 sequences split over 2 groups of
2 ranks that share their tokens and split the heads.
"""
import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hf_models  # noqa: E402
import model_reference  # noqa: E402

ORDER = [0, 1, 2, 0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moe-run", required=True)
    parser.add_argument("--goldens", default=os.path.join(HERE, "hf-models"))
    parser.add_argument("--families", nargs="*",
                        default=["mixtral", "qwen2_moe", "qwen3_moe", "olmoe",
                                 "deepseek_v2", "deepseek_v3"])
    parser.add_argument("--mesh", action="append")
    parser.add_argument("--workdir")
    parser.add_argument("--moe-run-arg", action="append", default=[],
                        help="repeatable, e.g. --moe-run-arg=--attention-tp=2")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="hf-split-")
    failures = []
    for family in args.families:
        ckpt = os.path.join(args.goldens, family)
        prompts, exp_ids, exp_logits = model_reference.read_goldens(ckpt)
        for mesh in args.mesh or ["1x2", "1x4"]:
            run_dir = os.path.join(workdir, f"{family}-{mesh}")
            try:
                ids, logits = hf_models.run_moe_run(
                    args.moe_run, ckpt, mesh, [prompts[i] for i in ORDER],
                    run_dir, 600, args.moe_run_arg)
                same, err, why = hf_models.compare(
                    ids, logits, [exp_ids[i] for i in ORDER],
                    [exp_logits[i] for i in ORDER])
            except (RuntimeError, ValueError, OSError) as e:
                same, err, why = False, float("inf"), str(e)
            print(f"{family:10} {mesh} {' '.join(args.moe_run_arg)} 4 sequences split  ids equal: "
                  f"{'yes' if same else 'NO'}  max logits err {err:.2e}")
            if why:
                failures.append(f"{family} {mesh}: {why}")
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
