#!/usr/bin/env python3
"""The NumPy whole-model reference against the committed goldens
(test/Integration/hf-models/, written by transformers' generate, and for
the PR-MoE GPT by hf_models.py's separate torch implementation), without
torch: greedy ids identical and logits max |l - ref| / max |ref| <= 1e-4
for every family and prompt, with MLA's decode steps in the absorbed and in
the naive form. Two implementations written apart agreeing is what makes
either trustworthy as the target of a compiled model. Also: the KV-cached
decode equals recomputing the whole sequence; the RoPE frequencies equal
transformers' own (where it is installed); and `hf_models.py check`'s
comparison, run against fake moe-run scripts (one that writes the expected
outputs must pass; a wrong id, logits off by 1e-3, a crash, a missing
prompt must each fail). Exit 77 (ctest: skipped) without NumPy.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

try:
    import numpy as np
except ImportError:
    print("numpy is not installed: skipping the whole-model reference test")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model_reference as mr  # noqa: E402
from e2e_check import rel_error  # noqa: E402

GOLDENS = os.path.join(HERE, "hf-models")
FAMILIES = ["dbrx", "deepseek_v2", "deepseek_v3", "dots1", "ernie4_5_moe", "glm4_moe", "gpt_oss", "gpt_oss_mxfp4",
            "granitemoe", "granitemoeshared", "hunyuan_v1_moe", "mixtral", "olmoe", "phimoe", "prmoe_gpt",
            "prmoe_gpt_rope", "qwen2_moe", "qwen3_moe"]
TOL = 1e-4
ROWS = []


def drop_weights(*suffixes):
    """A change for features_matter: the weights whose keys end so, gone."""
    def apply(model):
        model.t = {k: v for k, v in model.t.items() if not k.endswith(suffixes)}
    return apply


class Goldens(unittest.TestCase):
    def test_every_family_is_committed(self):
        self.assertEqual(sorted(d for d in os.listdir(GOLDENS) if os.path.isdir(os.path.join(GOLDENS, d))),
                         FAMILIES)

    def check_family(self, family):
        d = os.path.join(GOLDENS, family)
        prompts, exp_ids, exp_logits = mr.read_goldens(d)
        self.assertGreaterEqual(len(prompts), 2)
        self.assertEqual(len({len(p) for p in prompts}), len(prompts), "prompts of different lengths")
        model = mr.Model(d)
        forms = ("absorbed", "naive") if model.mla else ("absorbed",)
        for form in forms:
            worst, same = 0.0, True
            for i, (pr, ids, logits) in enumerate(zip(prompts, exp_ids, exp_logits)):
                self.assertGreaterEqual(len(ids), 16)
                self.assertEqual(logits.shape, (len(ids), model.lm_head.shape[0]))
                self.assertEqual(logits.dtype, np.float32)
                self.assertGreater(len(set(ids)), 1, f"{family} prompt {i}: a constant output")
                got_ids, got_logits = model.generate(pr, len(ids), mla=form)
                same &= got_ids.tolist() == ids
                err = rel_error(got_logits, logits)
                worst = max(worst, err)
                self.assertEqual(got_ids.tolist(), ids, f"{family} prompt {i} ({form})")
                self.assertLessEqual(err, TOL, f"{family} prompt {i} ({form})")
            ROWS.append((family, form if model.mla else "-", "yes" if same else "NO", f"{worst:.2e}"))

    def test_deepseek_v2(self):
        self.check_family("deepseek_v2")

    def test_deepseek_v3(self):
        self.check_family("deepseek_v3")

    def test_dbrx(self):
        self.check_family("dbrx")

    def test_dbrx_clip_qkv_matters(self):
        """clip_qkv clamps some q/k/v values, and without it the reference
        no longer matches the goldens."""
        d = os.path.join(GOLDENS, "dbrx")
        prompts, _, exp_logits = mr.read_goldens(d)
        model = mr.Model(d)
        model.generate(prompts[0], 16)
        self.assertGreater(model.clipped, 0, "clip_qkv never bites")
        model = mr.Model(d)
        model.clip_qkv = None
        _, logits = model.generate(prompts[0], exp_logits[0].shape[0])
        self.assertGreater(rel_error(logits, exp_logits[0]), 1e-2)

    def test_gpt_oss(self):
        self.check_family("gpt_oss")

    def test_gpt_oss_mxfp4(self):
        self.check_family("gpt_oss_mxfp4")

    def test_gpt_oss_window_and_sinks_matter(self):
        """The goldens depend on the window (its exact width) and the
        sinks: without either, or with the window one wider or narrower,
        the reference no longer matches them; the SwiGLU clamps bite."""
        d = os.path.join(GOLDENS, "gpt_oss")
        prompts, _, exp_logits = mr.read_goldens(d)
        for change in ("no window", "window + 1", "window - 1", "no sinks"):
            model = mr.Model(d)
            if change == "no sinks":
                model.t = {k: v for k, v in model.t.items() if not k.endswith(".sinks")}
            else:
                delta = {"no window": None, "window + 1": 1, "window - 1": -1}[change]
                model.windows = [0 if not w else (0 if delta is None else w + delta) for w in model.windows]
            _, logits = model.generate(prompts[0], exp_logits[0].shape[0])
            self.assertGreater(rel_error(logits, exp_logits[0]), 1e-2, change)
        model = mr.Model(d)
        model.generate(prompts[0], 16)
        self.assertGreater(model.clamped, 0, "swiglu_limit never bites")

    def test_glm4_moe(self):
        self.check_family("glm4_moe")

    def test_dots1(self):
        self.check_family("dots1")

    def features_matter(self, family, changes):
        """Each change (name -> what it does to a fresh Model) moves the
        first prompt's logits past 1e-2: the goldens test that feature."""
        d = os.path.join(GOLDENS, family)
        prompts, _, exp_logits = mr.read_goldens(d)
        for change, apply in changes.items():
            model = mr.Model(d)
            apply(model)
            _, logits = model.generate(prompts[0], exp_logits[0].shape[0])
            self.assertGreater(rel_error(logits, exp_logits[0]), 1e-2, f"{family}: {change}")

    def test_glm4_moe_features_matter(self):
        """Rotating half of each head (partial_rotary_factor 0.5), the q/k
        norm and the q/k/v biases each show in the glm4_moe goldens."""
        def whole_head(model):
            model.rope_dim = model.head_dim
            model.inv_freq, _ = mr.rope_frequencies(mr.rope_parameters(model.config), model.head_dim, 128)
        self.features_matter("glm4_moe", {"whole-head rotary": whole_head,
                                          "no q/k norm": drop_weights("q_norm.weight", "k_norm.weight"),
                                          "no q/k/v bias": drop_weights("q_proj.bias", "k_proj.bias", "v_proj.bias")})

    def test_dots1_features_matter(self):
        """dots1's q/k norm, its o_proj bias and its sliding layer's window
        each show in the goldens."""
        def no_window(model):
            model.windows = [0] * model.layers
        self.assertEqual(mr.Model(os.path.join(GOLDENS, "dots1")).windows, [0, 8, 0])
        self.features_matter("dots1", {"no q/k norm": drop_weights("q_norm.weight", "k_norm.weight"),
                                       "no o bias": drop_weights("o_proj.bias"), "no window": no_window})

    def test_ernie4_5_moe(self):
        self.check_family("ernie4_5_moe")

    def test_ernie4_5_moe_features_matter(self):
        """ERNIE-4.5's interleaved rotary pairs and its correction bias
        each show in the goldens."""
        def rotate_half(model):
            model.rope_style = "half"

        def no_bias(model):
            drop_weights("e_score_correction_bias")(model)
            model.config = dict(model.config, moe_use_aux_free=False)
        self.features_matter("ernie4_5_moe", {"rotate_half pairs": rotate_half, "no correction bias": no_bias})

    def test_hunyuan_v1_moe(self):
        self.check_family("hunyuan_v1_moe")

    def test_hunyuan_v1_moe_features_matter(self):
        """The q/k norm's place after the rope and the alpha-stretched rope
        base each show in the hunyuan_v1_moe goldens."""
        def norm_first(model):
            model.qk_norm_after_rope = False

        def plain_base(model):
            model.inv_freq, _ = mr.rope_frequencies(dict(mr.rope_parameters(model.config), rope_type="default"),
                                                    model.head_dim, 128)
        self.features_matter("hunyuan_v1_moe", {"norm before rope": norm_first, "no alpha": plain_base})

    def test_granitemoe(self):
        self.check_family("granitemoe")

    def test_granitemoeshared(self):
        self.check_family("granitemoeshared")

    def test_granitemoe_multipliers_matter(self):
        """Each of Granite's four scalars, set back to what every other
        family has (1, or head_dim^-0.5 for the attention scale, or 1 as
        transformers' default), moves the logits past 1e-2: the goldens
        test every one of them."""
        model = mr.Model(os.path.join(GOLDENS, "granitemoe"))
        self.assertTrue(all(v != 1 for v in (model.embedding_multiplier, model.scale, model.residual_multiplier,
                                             model.logits_scaling)))
        values = {"embedding_multiplier": 1.0, "residual_multiplier": 1.0, "logits_scaling": 1.0,
                  "scale = head_dim^-0.5": model.head_dim ** -0.5, "scale = 1": 1.0}

        def reset(change):
            return lambda model: setattr(model, change.split(" ")[0], values[change])
        self.features_matter("granitemoe", {change: reset(change) for change in values})

    def test_mixtral(self):
        self.check_family("mixtral")

    def test_olmoe(self):
        self.check_family("olmoe")

    def test_phimoe(self):
        self.check_family("phimoe")

    def test_phimoe_features_matter(self):
        """The phimoe goldens depend on long_mscale (the whole run is in the
        long regime), the window, the LayerNorm and LM head biases."""
        d = os.path.join(GOLDENS, "phimoe")
        prompts, _, exp_logits = mr.read_goldens(d)
        for change in ("short mscale", "no window", "no lm_head bias", "no norm bias"):
            model = mr.Model(d)
            if change == "short mscale":
                original, short, _ = model.longrope
                model.longrope = (original, short, short)
            elif change == "no window":
                model.windows = [0] * model.layers
            elif change == "no lm_head bias":
                model.lm_head_bias = None
            else:
                model.t = {k: (0 * v if "layernorm.bias" in k else v) for k, v in model.t.items()}
            _, logits = model.generate(prompts[0], exp_logits[0].shape[0])
            self.assertGreater(rel_error(logits, exp_logits[0]), 1e-2, change)

    def test_prmoe_gpt(self):
        self.check_family("prmoe_gpt")

    def test_prmoe_gpt_rope(self):
        self.check_family("prmoe_gpt_rope")

    def test_qwen2_moe(self):
        self.check_family("qwen2_moe")

    def test_qwen3_moe(self):
        self.check_family("qwen3_moe")


class Forms(unittest.TestCase):
    """The cache and the MLA algebra, independently of the goldens."""

    def sequence(self, family, form):
        model = mr.Model(os.path.join(GOLDENS, family))
        prompts, exp_ids, _ = mr.read_goldens(os.path.join(GOLDENS, family))
        seq = prompts[-1] + exp_ids[-1]
        cache = model.new_cache()
        steps = [model.forward(seq[:len(prompts[-1])], 0, cache, form)]
        for t in range(len(prompts[-1]), len(seq)):
            steps.append(model.forward(seq[t:t + 1], t, cache, form))
        return model, seq, np.concatenate(steps)

    def test_mla_absorbed_equals_naive(self):
        for family in ("deepseek_v2", "deepseek_v3"):
            _, _, absorbed = self.sequence(family, "absorbed")
            _, _, naive = self.sequence(family, "naive")
            self.assertLessEqual(rel_error(absorbed, naive), 1e-12, family)

    def test_cache_equals_recompute(self):
        for family in FAMILIES:
            model, seq, cached = self.sequence(family, "absorbed")
            whole = model.forward(seq, 0, model.new_cache())
            self.assertLessEqual(rel_error(cached, whole), 1e-12, family)


class Rope(unittest.TestCase):
    """inv_freq and the cos/sin factor of every rope type against
    transformers' ROPE_INIT_FUNCTIONS (skipped without transformers)."""

    def test_against_transformers(self):
        try:
            import torch  # noqa: F401
            import transformers
            from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
        except ImportError:
            self.skipTest("torch/transformers not installed")
        cases = [
            {"rope_type": "linear", "rope_theta": 10000.0, "factor": 3.0},
            {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
             "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
            {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "original_max_position_embeddings": 64,
             "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
            {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 32,
             "mscale": 1.0, "mscale_all_dim": 0.8},
            {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 16.0, "original_max_position_embeddings": 256},
            # gpt-oss-20b's: the ramp ends not rounded.
            {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "original_max_position_embeddings": 4096,
             "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False},
        ]
        for p in cases:
            # max_position_embeddings = factor x original, as yarn expects.
            max_pos = int(p["factor"] * p.get("original_max_position_embeddings", 1024))
            config = transformers.LlamaConfig(hidden_size=256, num_attention_heads=4, max_position_embeddings=max_pos,
                                              rope_parameters=dict(p))
            inv, factor = ROPE_INIT_FUNCTIONS[p["rope_type"]](config, "cpu")
            mine, my_factor = mr.rope_frequencies(dict(p), 64, max_pos)
            np.testing.assert_allclose(mine, inv.double().numpy(), rtol=1e-6, err_msg=str(p))
            self.assertAlmostEqual(my_factor, float(factor), places=6, msg=str(p))


FAKE = textwrap.dedent("""\
    #!{python}
    # A stand-in for moe-run: writes the goldens' outputs ({mode}).
    import argparse, os, sys
    import numpy as np
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--mesh", required=True)
    ap.add_argument("--prompt-ids", action="append", required=True)
    ap.add_argument("--max-new-tokens", type=int, required=True)
    ap.add_argument("--output-ids", required=True)
    ap.add_argument("--output-logits", required=True)
    ap.add_argument("--attention-plan")
    a = ap.parse_args()
    mode = "{mode}"
    if mode == "crash" or (mode == "needs-plan" and a.attention_plan != "tp"):
        sys.exit(3)
    prompts = [l.split() for l in open(os.path.join(a.dir, "prompts.txt")) if l.strip()]
    expected = [l.split() for l in open(os.path.join(a.dir, "expected-ids.txt")) if l.strip()]
    given = [p.split(",") for p in a.prompt_ids]
    which = [prompts.index(g) for g in given]  # ValueError: a prompt that is not a golden's
    expected = [expected[i] for i in which]
    logits = np.stack([np.load(os.path.join(a.dir, f"expected-logits-{{i}}.npy")) for i in which])
    assert a.max_new_tokens == logits.shape[1]
    if mode == "wrong-id" and a.mesh == "1x2":
        expected[0][5] = str((int(expected[0][5]) + 1) % logits.shape[2])
    if mode == "logits-off":
        logits[0, 3, 7] += 1e-3 * np.abs(logits[0]).max()
    if mode == "missing-prompt" and len(given) > 1:
        expected = expected[:-1]
    with open(a.output_ids, "w") as f:
        f.writelines(" ".join(e) + "\\n" for e in expected)
    np.save(a.output_logits, logits[0] if len(given) == 1 else logits)
    """)


class Check(unittest.TestCase):
    """hf_models.py check against fake moe-run scripts."""

    def run_check(self, mode, families=("deepseek_v3", "qwen2_moe"), extra=()):
        with tempfile.TemporaryDirectory() as tmp:
            fake = os.path.join(tmp, "moe-run")
            with open(fake, "w") as f:
                f.write(FAKE.format(python=sys.executable, mode=mode))
            os.chmod(fake, 0o755)
            cmd = [sys.executable, os.path.join(HERE, "hf_models.py"), "check", "--moe-run", fake,
                   "--mesh", "1x1", "--mesh", "1x2", "--no-fresh", "--workdir", os.path.join(tmp, "w"),
                   *extra, "--families", *families]
            return subprocess.run(cmd, capture_output=True, text=True)

    def test_expected_outputs_pass(self):
        run = self.run_check("exact")
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("deepseek_v3", run.stdout)
        # 2 families x 2 meshes x (all prompts, prompt 0 alone)
        self.assertEqual(run.stdout.count(" ok"), 8, run.stdout)

    def test_extra_arguments_reach_moe_run(self):
        run = self.run_check("needs-plan", families=("olmoe",))
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        run = self.run_check("needs-plan", families=("olmoe",), extra=["--moe-run-arg=--attention-plan=tp"])
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_wrong_id_fails(self):
        run = self.run_check("wrong-id")
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("ids differ", run.stderr)
        self.assertEqual(run.stdout.count("FAIL"), 4, run.stdout)  # mesh 1x2 of both families, both batches

    def test_logits_off_fails(self):
        run = self.run_check("logits-off", families=("mixtral",))
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("logits max rel error", run.stderr)

    def test_crash_fails(self):
        run = self.run_check("crash", families=("olmoe",))
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("exited 3", run.stderr)

    def test_missing_prompt_fails(self):
        run = self.run_check("missing-prompt", families=("olmoe",))
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("lines for 3 prompts", run.stderr)
        self.assertEqual(run.stdout.count("FAIL"), 2, run.stdout)  # the batch on both meshes, not prompt 0 alone


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    if ROWS:
        print("\nreference vs goldens (max |l - ref| / max |ref| over the prompts)")
        print(f"{'family':14s} {'MLA decode':10s} {'ids equal':9s} max logits err")
        for r in sorted(ROWS):
            print(f"{r[0]:14s} {r[1]:10s} {r[2]:9s} {r[3]}")
    sys.exit(0 if result.wasSuccessful() else 1)
