#!/usr/bin/env python3
"""e2e_check's launcher and GPU count, which the CUDA runs depend on and
which a machine without a GPU can still exercise (with a fake nvidia-smi)."""

import os
import stat
import sys
import tempfile
import time
import unittest
from unittest import mock

try:
    import numpy  # noqa: F401  (e2e_check needs it)
except ImportError:
    print("numpy is not installed: skipping")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_check as check  # noqa: E402

PRINT_ENV = [sys.executable, "-c", "import os; print(' '.join(f'{k}={os.environ.get(k)}' for k in "
             "('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'SLURM_PROCID')))"]


class Launch(unittest.TestCase):
    def test_one_process_gets_no_launch_variables(self):
        with mock.patch.dict(os.environ, {"RANK": "3", "WORLD_SIZE": "8", "SLURM_PROCID": "3"}):
            run = check.launch(PRINT_ENV, 1, 30)
        self.assertTrue(run.ok)
        self.assertEqual(run.stdout.split(), ["RANK=None", "WORLD_SIZE=None", "LOCAL_RANK=None",
                                              "LOCAL_WORLD_SIZE=None", "MASTER_ADDR=None", "SLURM_PROCID=None"])

    def test_ranks_are_torchrun_style_and_stdout_is_rank_0s(self):
        run = check.launch(PRINT_ENV + ["x"], 3, 30)
        self.assertTrue(run.ok, run.why())
        self.assertEqual(run.codes, [0, 0, 0])
        self.assertEqual(run.stdout.split(), ["RANK=0", "WORLD_SIZE=3", "LOCAL_RANK=0",
                                              "LOCAL_WORLD_SIZE=3", "MASTER_ADDR=127.0.0.1", "SLURM_PROCID=None"])

    def test_a_failing_rank_ends_the_others(self):
        script = "import os, sys, time\nif os.environ['RANK'] == '1': sys.exit(3)\ntime.sleep(600)"
        start = time.monotonic()
        run = check.launch([sys.executable, "-c", script], 3, 300)
        self.assertLess(time.monotonic() - start, 60)
        self.assertEqual(run.codes, [None, 3, None])
        self.assertFalse(run.ok)
        self.assertEqual(run.why(), "rank 0 killed, rank 1 exited 3, rank 2 killed")

    def test_timeout(self):
        run = check.launch([sys.executable, "-c", "import time; time.sleep(600)"], 2, 1)
        self.assertTrue(run.timed_out)
        self.assertEqual(run.why(), "timed out: rank 0 killed, rank 1 killed")

    def test_stderr_of_every_rank_is_kept(self):
        run = check.launch([sys.executable, "-c", "import os, sys; sys.stderr.write('r' + os.environ['RANK'])"],
                           2, 30)
        self.assertEqual(run.stderr, "[rank 0] r0\n[rank 1] r1\n")


class VisibleGpus(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        smi = os.path.join(self.dir.name, "nvidia-smi")
        with open(smi, "w") as f:
            f.write("#!/bin/sh\nfor i in 0 1 2 3; do echo \"GPU $i: H100 (UUID: GPU-$i)\"; done\n")
        os.chmod(smi, stat.S_IRWXU)

    def tearDown(self):
        self.dir.cleanup()

    def count(self, **env):
        with mock.patch.dict(os.environ, dict(env, PATH=self.dir.name)):
            if "CUDA_VISIBLE_DEVICES" not in env:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            return check.visible_gpus()[0]

    def test_counts(self):
        self.assertEqual(self.count(), 4)
        self.assertEqual(self.count(CUDA_VISIBLE_DEVICES="2,3"), 2)
        self.assertEqual(self.count(CUDA_VISIBLE_DEVICES=""), 0)
        self.assertEqual(self.count(CUDA_VISIBLE_DEVICES="1,-1,2"), 1)
        self.assertEqual(self.count(CUDA_VISIBLE_DEVICES="GPU-3"), 1)

    def test_no_nvidia_smi(self):
        with mock.patch.dict(os.environ, {"PATH": os.path.join(self.dir.name, "none")}):
            count, why = check.visible_gpus()
        self.assertEqual(count, 0)
        self.assertIn("nvidia-smi not found", why)


class Compare(unittest.TestCase):
    def test_rel_error_and_drops(self):
        self.assertAlmostEqual(check.rel_error([[1.0, -2.0]], [[1.0, -2.1]]), 0.1 / 2.1)
        self.assertEqual(check.rel_error([[float("nan")]], [[1.0]]), float("inf"))
        self.assertEqual(check.rel_error([[1.0]], [[1.0, 2.0]]), float("inf"))
        report = "layer time us(max)   dropped\n    0  12.5  3\n    1  10.0  4\nstep: 1.0 us\n"
        self.assertEqual(check.dropped_choices(report), 7)


if __name__ == "__main__":
    unittest.main()
