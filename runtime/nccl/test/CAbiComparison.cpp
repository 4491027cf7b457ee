//===- runtime/nccl/test/CAbiComparison.cpp - CUDA vs CPU via moert.h -----===//
//
// Every moert.h entry point on a one-rank MOERT_BACKEND_CUDA world against
// the same call on the CPU backend: each case draws fresh random inputs
// (the same seed on both backends), poisons its outputs (NaN, or -7 for
// integers) and compares what it downloads: integers and host scalars
// exactly, f32 within 1e-5 and f16/bf16 within 2e-2 (relative to 1 + |cpu|).
// Needs a GPU; part of moert-gpu-smoke.
//
//===----------------------------------------------------------------------===//

#include "runtime/nccl/test/CAbiComparison.h"

#include "runtime/common/Convert.h"
#include "runtime/common/Gate.h"
#include "runtime/moert.hpp"
#include "runtime/weights/Safetensors.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace moert;

namespace {

// What one case produced on one backend, in the order it kept them.
struct Output {
  std::string name;
  moert_dtype_t dtype;
  std::vector<double> values;
};

// A case's view of one backend: allocation, random inputs, poisoned
// outputs, and the outputs it keeps for the comparison.
class Session {
public:
  Session(moert_context_t ctx, moert_backend_t backend, unsigned seed)
      : ctx(ctx), backend(backend), rng(seed) {}
  moert_context_t ctx;
  moert_backend_t backend;
  std::mt19937 rng;
  std::vector<Output> outputs;

  moert_view_t alloc(int64_t count, moert_dtype_t dtype) {
    buffers.push_back(std::make_unique<Buffer>(
        ctx, std::max<int64_t>(count, 1) * moert_dtype_size(dtype)));
    return buffers.back()->view(dtype);
  }
  std::vector<float> normal(int64_t count, float scale) {
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> values(count);
    for (float &v : values)
      v = dist(rng);
    return values;
  }
  moert_view_t upload(const std::vector<float> &values, moert_dtype_t dtype) {
    int64_t count = static_cast<int64_t>(values.size());
    std::vector<char> bytes(std::max<int64_t>(count, 1) *
                            moert_dtype_size(dtype));
    convertFromFloat(values.data(), bytes.data(), dtype, count);
    moert_view_t view = alloc(count, dtype);
    check(moert_buffer_upload(ctx, view, bytes.data(), count));
    return view;
  }
  moert_view_t random(int64_t count, moert_dtype_t dtype, float scale = 1.0f) {
    return upload(normal(count, scale), dtype);
  }
  moert_view_t ints(const std::vector<int32_t> &values) {
    moert_view_t view = alloc(static_cast<int64_t>(values.size()), MOERT_I32);
    check(moert_buffer_upload(ctx, view, values.data(),
                              static_cast<int64_t>(values.size())));
    return view;
  }
  moert_view_t poisoned(int64_t count, moert_dtype_t dtype) {
    moert_view_t view = alloc(count, dtype);
    bool integer = dtype == MOERT_I32 || dtype == MOERT_I64;
    check(moert_buffer_fill(ctx, view, count, integer ? -7.0 : NAN));
    return view;
  }
  void keep(const char *name, moert_view_t view, int64_t count) {
    size_t size = moert_dtype_size(view.dtype);
    std::vector<char> bytes(std::max<int64_t>(count, 1) * size);
    check(moert_buffer_download(ctx, bytes.data(), view, count));
    Output out{name, view.dtype, std::vector<double>(count)};
    for (int64_t i = 0; i < count; ++i) {
      const char *at = bytes.data() + i * size;
      if (view.dtype == MOERT_I32)
        out.values[i] = *reinterpret_cast<const int32_t *>(at);
      else if (view.dtype == MOERT_I64)
        out.values[i] =
            static_cast<double>(*reinterpret_cast<const int64_t *>(at));
      else {
        float v;
        convertToFloat(at, view.dtype, &v, 1);
        out.values[i] = v;
      }
    }
    outputs.push_back(std::move(out));
  }
  void keepScalar(const char *name, int64_t value) {
    outputs.push_back({name, MOERT_I64, {static_cast<double>(value)}});
  }

private:
  std::vector<std::unique_ptr<Buffer>> buffers;
};

using Case = std::function<void(Session &)>;

std::vector<Output> runOn(moert_backend_t backend, const Case &body,
                          unsigned seed) {
  World world(1, 1, 30000, backend);
  std::vector<Output> outputs;
  world.run([&](moert_context_t ctx) {
    Session session(ctx, backend, seed);
    body(session);
    outputs = std::move(session.outputs);
  });
  return outputs;
}

double tolerance(moert_dtype_t dtype) {
  switch (dtype) {
  case MOERT_F32:
    return 1e-5;
  case MOERT_F16:
  case MOERT_BF16:
    return 2e-2;
  default:
    return 0;
  }
}

// Compares one case; returns the number of mismatching outputs.
int compareCase(const char *name, const Case &body, unsigned seed) {
  std::vector<Output> cpu = runOn(MOERT_BACKEND_CPU, body, seed);
  std::vector<Output> gpu = runOn(MOERT_BACKEND_CUDA, body, seed);
  int failed = 0;
  for (size_t o = 0; o < cpu.size(); ++o) {
    const Output &want = cpu[o], &got = gpu[o];
    double tol = tolerance(want.dtype);
    for (size_t i = 0; i < want.values.size(); ++i) {
      double a = got.values[i], b = want.values[i];
      bool ok = std::isfinite(a) && std::isfinite(b) &&
                std::fabs(a - b) <= tol * (1.0 + std::fabs(b));
      if (!ok) {
        std::fprintf(stderr,
                     "FAILED: %s: %s[%zu] cuda %.8g, cpu %.8g (tolerance "
                     "%g)\n",
                     name, want.name.c_str(), i, a, b, tol);
        ++failed;
        break;
      }
    }
  }
  std::printf("%-28s %s\n", name, failed ? "FAILED" : "ok");
  return failed;
}

// Routing for the permutation and combine cases, computed on the host so
// that both backends see the same table.
struct Routing {
  moert_gate_config_t cfg;
  int64_t tokens, capacity;
  std::vector<int32_t> ids, slots, counts;
  std::vector<float> weights;
};

Routing routing(Session &s, int64_t tokens, int32_t experts, int32_t topK) {
  Routing r;
  moert_gate_config_init(&r.cfg, experts, topK);
  r.cfg.capacity_factor = 1.0;
  r.cfg.norm = MOERT_NORM_KEPT;
  r.tokens = tokens;
  std::vector<float> logits = s.normal(tokens * experts, 1.0f);
  r.ids.resize(tokens * topK);
  r.slots.resize(tokens * topK);
  r.weights.resize(tokens * topK);
  r.counts.resize(experts);
  r.capacity = computeGate(r.cfg, logits.data(), nullptr, tokens, r.ids.data(),
                           r.weights.data(), r.slots.data(), r.counts.data());
  return r;
}

moert_gate_config_t gateConfig(int variant) {
  moert_gate_config_t cfg;
  moert_gate_config_init(&cfg, 16, 4);
  switch (variant) {
  case 0: // Mixtral-like, dropless
    cfg.norm = MOERT_NORM_SELECTED;
    break;
  case 1: // DeepSeek-V3-like groups, sigmoid, capacity
    cfg.score_func = MOERT_SCORE_SIGMOID;
    cfg.n_group = 4;
    cfg.topk_group = 2;
    cfg.group_score = MOERT_GROUP_SCORE_TOP2_SUM;
    cfg.norm = MOERT_NORM_SELECTED;
    cfg.norm_epsilon = 1e-20f;
    cfg.routed_scaling_factor = 2.5f;
    cfg.capacity_factor = 1.25;
    cfg.drop_order = MOERT_DROP_CHOICE_MAJOR;
    break;
  default: // PROBS drops, kept-normalised
    cfg.capacity_factor = 0.75;
    cfg.drop_order = MOERT_DROP_PROBS;
    cfg.norm = MOERT_NORM_KEPT;
    break;
  }
  return cfg;
}

moert_ffn_desc_t gatedFfn(Session &s, int64_t stack, int64_t hidden,
                          int64_t ffn, moert_dtype_t dtype) {
  moert_ffn_desc_t desc{};
  desc.kind = MOERT_FFN_GATED;
  desc.activation = MOERT_ACT_SILU;
  desc.hidden = hidden;
  desc.ffn = ffn;
  desc.w_gate = s.random(stack * ffn * hidden, dtype, 0.2f);
  desc.w_up = s.random(stack * ffn * hidden, dtype, 0.2f);
  desc.w_down = s.random(stack * hidden * ffn, dtype, 0.2f);
  desc.b1 = desc.b2 = moert_absent_view();
  return desc;
}

// The packed form of a gated FFN's weights: [stack, 2F, H] gate|up.
moert_packed_ffn_desc_t packed(Session &s, const moert_ffn_desc_t &ffn,
                               int64_t stack) {
  int64_t panel = ffn.ffn * ffn.hidden;
  moert_view_t gateUp = s.alloc(stack * 2 * panel, ffn.w_gate.dtype);
  for (int64_t e = 0; e < stack; ++e) {
    moert_view_t gate = ffn.w_gate, up = ffn.w_up, dst = gateUp;
    gate.offset += e * panel;
    up.offset += e * panel;
    dst.offset += e * 2 * panel;
    check(moert_buffer_copy(s.ctx, gate, dst, panel));
    dst.offset += panel;
    check(moert_buffer_copy(s.ctx, up, dst, panel));
  }
  return moert_packed_ffn_desc_t{ffn.activation, ffn.hidden, ffn.ffn, gateUp,
                                 ffn.w_down};
}

const int64_t S = 96, H = 64, E = 8, K = 2, F = 48;
const moert_dtype_t bf16 = MOERT_BF16, f32 = MOERT_F32;

void buffers(Session &s) {
  moert_view_t a = s.random(1000, f32);
  s.keep("upload/download", a, 1000);
  moert_view_t filled = s.poisoned(300, bf16);
  check(moert_buffer_fill(s.ctx, filled, 300, 1.5));
  s.keep("fill bf16", filled, 300);
  moert_view_t ints = s.poisoned(10, MOERT_I64);
  check(moert_buffer_fill(s.ctx, ints, 10, 123456789.0));
  s.keep("fill i64", ints, 10);
  moert_view_t narrow = s.poisoned(1000, bf16);
  check(moert_buffer_copy(s.ctx, a, narrow, 1000));
  s.keep("copy f32->bf16", narrow, 1000);
  moert_view_t wide = s.poisoned(999, f32);
  moert_view_t shifted = narrow;
  shifted.offset += 1;
  check(moert_buffer_copy(s.ctx, shifted, wide, 999));
  s.keep("copy bf16->f32 at an offset", wide, 999);
  // CPU buffers are host memory; CUDA ones are not, and say so.
  void *address = nullptr;
  moert_status_t status = moert_buffer_host_address(s.ctx, a, &address);
  s.keepScalar("host address where buffers are host memory",
               s.backend == MOERT_BACKEND_CPU
                   ? status == MOERT_OK && address
                   : status == MOERT_UNSUPPORTED && !address);
}

void router(Session &s) {
  moert_view_t logits = s.poisoned(S * E, f32);
  check(moert_router(s.ctx, s.random(S * H, bf16), s.random(E * H, bf16, 0.1f),
                     s.random(E, f32), logits, S, H, E));
  s.keep("logits", logits, S * E);
}

void gate(Session &s, int variant) {
  moert_gate_config_t cfg = gateConfig(variant);
  int64_t choices = S * cfg.top_k;
  moert_view_t logits = s.random(S * cfg.experts, f32);
  moert_view_t bias =
      variant == 1 ? s.random(cfg.experts, f32, 0.1f) : moert_absent_view();
  moert_view_t ids = s.poisoned(choices, MOERT_I32),
               weights = s.poisoned(choices, f32),
               slots = s.poisoned(choices, MOERT_I32),
               counts = s.poisoned(cfg.experts, MOERT_I32);
  int64_t capacity = -1;
  check(moert_gate(s.ctx, &cfg, logits, bias, S, ids, weights, slots, counts,
                   &capacity));
  s.keep("ids", ids, choices);
  s.keep("weights", weights, choices);
  s.keep("slots", slots, choices);
  s.keep("counts", counts, cfg.experts);
  s.keepScalar("capacity", capacity);

  // The stage calls, each from fresh poison.
  moert_view_t scores = s.poisoned(S * cfg.experts, f32);
  check(moert_gate_scores(s.ctx, &cfg, logits, S, scores));
  s.keep("stage scores", scores, S * cfg.experts);
  moert_view_t ids2 = s.poisoned(choices, MOERT_I32),
               weights2 = s.poisoned(choices, f32);
  check(moert_gate_select(s.ctx, &cfg, scores, bias, S, ids2, weights2));
  s.keep("stage ids", ids2, choices);
  s.keep("stage weights", weights2, choices);
  moert_view_t slots2 = s.poisoned(choices, MOERT_I32),
               counts2 = s.poisoned(cfg.experts, MOERT_I32);
  int64_t capacity2 = -1;
  check(moert_gate_slots(s.ctx, &cfg, ids2, weights2, S, slots2, counts2,
                         &capacity2));
  s.keep("stage slots", slots2, choices);
  s.keep("stage counts", counts2, cfg.experts);
  s.keepScalar("stage capacity", capacity2);
  check(moert_gate_normalize(s.ctx, &cfg, slots2, S, weights2));
  s.keep("stage normalized", weights2, choices);
}

void permutation(Session &s) {
  Routing r = routing(s, S, E, K);
  moert_view_t ids = s.ints(r.ids), slots = s.ints(r.slots);
  moert_view_t weights = s.upload(r.weights, f32);
  int64_t C = r.capacity;
  moert_view_t buf = s.poisoned(E * C * H, bf16);
  check(moert_dispatch(s.ctx, s.random(S * H, bf16), ids, slots,
                       moert_absent_view(), buf, S, H, K, E, C));
  s.keep("dispatch", buf, E * C * H);
  moert_view_t y = s.random(E * C * H, bf16);
  moert_view_t out = s.poisoned(S * H, bf16);
  check(moert_combine(s.ctx, y, ids, slots, weights, s.random(S * H, bf16), out,
                      S, H, K, E, C));
  s.keep("combine", out, S * H);
  // fused_combine with every epilogue term, in place on x (= addend).
  moert_view_t x = s.random(S * H, bf16);
  check(moert_fused_combine(s.ctx, y, ids, slots, weights,
                            s.random(S * H, bf16), s.random(2 * H, f32, 0.1f),
                            s.random(2, f32), s.random(S * H, bf16),
                            s.random(H, bf16, 0.1f), x, x, x, S, H, K, E, C));
  s.keep("fused_combine in place", x, S * H);
  moert_view_t plain = s.poisoned(S * H, f32);
  check(moert_fused_combine(
      s.ctx, y, ids, slots, weights, moert_absent_view(), moert_absent_view(),
      moert_absent_view(), s.random(S * H, f32), moert_absent_view(),
      moert_absent_view(), moert_absent_view(), plain, S, H, K, E, C));
  s.keep("fused_combine shared only", plain, S * H);
}

// Quantized expert weights (fp8 with partial 32 x 40 blocks, MXFP4): the
// CUDA kernel dequantizes in shared memory, the CPU inside its GEMM tiles.
void quantizedFfn(Session &s) {
  const int64_t C = 12, blocks = 2;
  std::vector<int32_t> rowCounts;
  for (int64_t i = 0; i < E * blocks; ++i)
    rowCounts.push_back(static_cast<int32_t>(s.rng() % (C / blocks + 1)));
  moert_view_t rows = s.ints(rowCounts);
  moert_view_t in = s.random(E * C * H, f32);
  auto bytes = [&](int64_t count, moert_dtype_t dtype, int lo, int span) {
    std::vector<uint8_t> values(count);
    for (uint8_t &v : values) {
      v = static_cast<uint8_t>(lo + s.rng() % span);
      if (dtype == MOERT_F8_E4M3 && (v & 0x7f) == 0x7f)
        v = 0; // not NaN
    }
    moert_view_t view = s.alloc(count, dtype);
    check(moert_buffer_upload(s.ctx, view, values.data(), count));
    return view;
  };
  for (moert_weight_format_t format :
       {MOERT_WEIGHTS_FP8_E4M3_BLOCK, MOERT_WEIGHTS_MXFP4}) {
    bool mx = format == MOERT_WEIGHTS_MXFP4;
    int64_t br = mx ? 1 : 32, bc = mx ? 32 : 40;
    auto weight = [&](int64_t rows, int64_t cols) {
      int64_t scales = E * ((rows + br - 1) / br) * ((cols + bc - 1) / bc);
      moert_quantized_weight_t w;
      w.data = mx ? bytes(E * rows * cols / 2, MOERT_U8, 0, 256)
                  : bytes(E * rows * cols, MOERT_F8_E4M3, 0, 256);
      std::vector<float> positive = s.normal(scales, 0.01f);
      for (float &v : positive)
        v = std::fabs(v) + 1e-3f;
      w.scales = mx ? bytes(scales, MOERT_U8, 120, 6) : s.upload(positive, f32);
      return w;
    };
    moert_quantized_ffn_desc_t desc{
        format, br,           bc,           MOERT_ACT_SILU, H,
        F,      weight(F, H), weight(F, H), weight(H, F)};
    moert_view_t out = s.poisoned(E * C * H, f32);
    check(moert_quantized_experts(s.ctx, &desc, in, out, rows, E, C, blocks));
    s.keep(mx ? "quantized_experts mxfp4" : "quantized_experts fp8", out,
           E * C * H);
    // One stage GEMM on the quantized gate (gpt-oss's staged experts).
    moert_view_t h = s.poisoned(E * C * F, f32);
    check(moert_quantized_experts_linear(s.ctx, format, br, bc, desc.gate.data,
                                         desc.gate.scales, in, h, rows, E, C,
                                         blocks, F, H));
    s.keep(mx ? "quantized_experts_linear mxfp4"
              : "quantized_experts_linear fp8",
           h, E * C * F);
  }
}

void ffn(Session &s) {
  const int64_t C = 12, blocks = 2;
  std::vector<int32_t> rowCounts;
  for (int64_t i = 0; i < E * blocks; ++i)
    rowCounts.push_back(static_cast<int32_t>(s.rng() % (C / blocks + 1)));
  rowCounts[0] = 0;
  moert_view_t rows = s.ints(rowCounts);
  moert_ffn_desc_t experts = gatedFfn(s, E, H, F, bf16);
  moert_view_t in = s.random(E * C * H, bf16);
  moert_view_t out = s.poisoned(E * C * H, bf16);
  check(moert_experts(s.ctx, &experts, in, out, rows, E, C, blocks));
  s.keep("experts", out, E * C * H);

  // The stage calls through f32 intermediates.
  moert_view_t h = s.poisoned(E * C * F, f32), u = s.poisoned(E * C * F, f32);
  check(moert_experts_linear(s.ctx, experts.w_gate, in, h, rows, E, C, blocks,
                             F, H));
  check(moert_experts_linear(s.ctx, experts.w_up, in, u, rows, E, C, blocks, F,
                             H));
  s.keep("experts_linear", h, E * C * F);
  moert_view_t act = s.poisoned(E * C * F, f32);
  check(moert_activation(s.ctx, MOERT_ACT_GELU_TANH, h, act, E * C * F));
  s.keep("activation", act, E * C * F);
  check(moert_activation(s.ctx, MOERT_ACT_SILU, h, h, E * C * F));
  check(moert_multiply(s.ctx, h, u, h, E * C * F));
  s.keep("multiply in place", h, E * C * F);
  moert_view_t down = s.poisoned(E * C * H, bf16);
  check(moert_experts_linear(s.ctx, experts.w_down, h, down, rows, E, C, blocks,
                             H, F));
  s.keep("experts_linear down", down, E * C * H);

  // Packed, with a shared expert folded in.
  moert_ffn_desc_t sharedFfn = gatedFfn(s, 1, H, 2 * F, bf16);
  moert_packed_ffn_desc_t packedExperts = packed(s, experts, E);
  moert_packed_ffn_desc_t packedShared = packed(s, sharedFfn, 1);
  moert_view_t sharedX = s.random(S * H, bf16);
  moert_view_t fused = s.poisoned(E * C * H, bf16),
               sharedOut = s.poisoned(S * H, bf16);
  check(moert_fused_experts(s.ctx, &packedExperts, in, fused, rows, E, C,
                            blocks, &packedShared, sharedX, sharedOut, S));
  s.keep("fused_experts", fused, E * C * H);
  s.keep("fused_experts shared", sharedOut, S * H);

  moert_ffn_desc_t plainFfn{};
  plainFfn.kind = MOERT_FFN_PLAIN;
  plainFfn.activation = MOERT_ACT_GELU;
  plainFfn.hidden = H;
  plainFfn.ffn = F;
  plainFfn.w_gate = s.random(F * H, f32, 0.2f);
  plainFfn.w_up = moert_absent_view();
  plainFfn.w_down = s.random(H * F, f32, 0.2f);
  plainFfn.b1 = s.random(F, f32);
  plainFfn.b2 = s.random(H, f32);
  moert_view_t dense = s.poisoned(S * H, f32);
  check(moert_dense_ffn(s.ctx, &plainFfn, s.random(S * H, f32), dense, S));
  s.keep("dense_ffn plain f32", dense, S * H);
}

void mixes(Session &s) {
  moert_view_t x = s.random(S * H, bf16);
  moert_view_t mixed = s.poisoned(S * H, bf16);
  check(moert_residual_mix(s.ctx, x, s.random(2 * H, bf16, 0.1f),
                           s.random(2, f32), s.random(S * H, bf16),
                           s.random(S * H, bf16), mixed, S, H));
  s.keep("residual_mix", mixed, S * H);
  moert_view_t routed = s.random(S * H, f32);
  check(moert_shared_add(s.ctx, routed, s.random(S * H, bf16), x,
                         s.random(H, bf16, 0.1f), routed, S, H));
  s.keep("shared_add gated, in place", routed, S * H);
  moert_view_t sum = s.poisoned(S * H, bf16);
  check(moert_shared_add(s.ctx, s.random(S * H, bf16), s.random(S * H, bf16),
                         moert_absent_view(), moert_absent_view(), sum, S, H));
  s.keep("shared_add", sum, S * H);
  moert_view_t a = s.random(S * H, f32);
  check(moert_add(s.ctx, a, s.random(S * H, bf16), a, S * H));
  s.keep("add in place", a, S * H);
  moert_view_t normed = s.random(S * H, bf16);
  check(moert_rms_norm(s.ctx, normed, s.random(H, bf16), normed, S, H, 1e-6f));
  s.keep("rms_norm bf16, in place", normed, S * H);
  moert_view_t layerNormed = s.random(S * H, bf16);
  check(moert_layer_norm(s.ctx, layerNormed, s.random(H, bf16),
                         s.random(H, bf16), layerNormed, S, H, 1e-5f));
  s.keep("layer_norm bf16, in place", layerNormed, S * H);
  moert_view_t unbiased = s.poisoned(S * H, f32);
  check(moert_layer_norm(s.ctx, s.random(S * H, f32), s.random(H, f32),
                         moert_absent_view(), unbiased, S, H, 1e-5f));
  s.keep("layer_norm f32, no bias", unbiased, S * H);
  moert_view_t biased = s.random(S * H, f32);
  check(moert_bias_add(s.ctx, biased, s.random(H, bf16), biased, S, H));
  s.keep("bias_add in place", biased, S * H);
  // The element-wise maps, in place on bf16 and f32 to bf16: DBRX's clip_qkv
  // (a normal sample clamped at 0.5: both sides bite), Granite's multipliers.
  auto map = [&](const std::string &name, auto call, float inPlace,
                 float narrowing) {
    moert_view_t same = s.random(S * H, bf16);
    check(call(s.ctx, same, same, S * H, inPlace));
    s.keep((name + " bf16, in place").c_str(), same, S * H);
    moert_view_t narrowed = s.poisoned(S * H, bf16);
    check(call(s.ctx, s.random(S * H, f32), narrowed, S * H, narrowing));
    s.keep((name + " f32 to bf16").c_str(), narrowed, S * H);
  };
  map("clamp", moert_clamp, 0.5f, 0.5f);
  map("scale", moert_scale, 0.22f, 12.0f);
}

void weightLoading(Session &s, const std::string &path) {
  moert_weights_t file = nullptr;
  check(moert_weights_open(path.c_str(), &file));
  // gate and up of experts [1, 3) packed into [2, 2F, H] by the stride.
  moert_view_t packedView = s.poisoned(2 * 2 * F * H, bf16);
  for (int which = 0; which < 2; ++which) {
    const char *key = which ? "experts.{e}.up" : "experts.{e}.gate";
    int64_t shape[2] = {F, H};
    moert_weight_request_t req;
    moert_weight_request_init(&req, key, 2, shape);
    req.expert_begin = 1;
    req.expert_end = 3;
    req.dst_expert_stride = 2 * F * H;
    moert_view_t dst = packedView;
    dst.offset += which * F * H;
    check(moert_weights_load(s.ctx, file, &req, dst));
  }
  moert_weights_close(file);
  s.keep("weights_load packed", packedView, 2 * 2 * F * H);
}

void collectives(Session &s) {
  int32_t me = moert_context_rank(s.ctx);
  Group group(s.ctx, {me});
  check(moert_barrier(s.ctx, group.get()));
  moert_view_t send = s.random(500, bf16);
  moert_view_t reduced = s.poisoned(500, bf16);
  check(moert_all_reduce(s.ctx, group.get(), MOERT_REDUCE_SUM, send, reduced,
                         500));
  s.keep("all_reduce", reduced, 500);
  moert_view_t gathered = s.poisoned(500, bf16);
  check(moert_all_gather(s.ctx, group.get(), send, gathered, 500));
  s.keep("all_gather", gathered, 500);
  moert_view_t scattered = s.poisoned(500, bf16);
  check(moert_reduce_scatter(s.ctx, group.get(), send, scattered, 500));
  s.keep("reduce_scatter", scattered, 500);
  int64_t value = 41;
  check(moert_all_reduce_i64(s.ctx, group.get(), MOERT_REDUCE_MAX, &value));
  s.keepScalar("all_reduce_i64", value);
  const int64_t C = 5;
  moert_view_t tokens = s.random(E * C * H, bf16);
  for (moert_a2a_algorithm_t algorithm :
       {MOERT_A2A_FLAT, MOERT_A2A_HIERARCHICAL}) {
    moert_view_t experts = s.poisoned(E * C * H, bf16);
    check(moert_all_to_all(s.ctx, group.get(), MOERT_A2A_TO_EXPERTS, algorithm,
                           tokens, experts, E, C, H));
    moert_view_t back = s.poisoned(E * C * H, bf16);
    check(moert_all_to_all_sliced(s.ctx, group.get(), MOERT_A2A_FROM_EXPERTS,
                                  algorithm, experts, back, E, C, H, 1));
    s.keep("all_to_all there", experts, E * C * H);
    s.keep("all_to_all back", back, E * C * H);
  }
}

std::string writeWeightsFile() {
  std::string path = "moert-gpu-smoke-weights.safetensors";
  weights::SafetensorsWriter writer;
  std::mt19937 rng(17);
  std::normal_distribution<float> normal;
  for (int e = 0; e < 4; ++e)
    for (const char *proj : {"gate", "up"}) {
      std::vector<float> w(F * H);
      for (float &v : w)
        v = normal(rng);
      writer.add("experts." + std::to_string(e) + "." + proj, MOERT_F32, {F, H},
                 w.data());
    }
  writer.write(path);
  return path;
}

// One decode-size MoE layer: router, dropless gate with a static capacity,
// dispatch, fused experts, combine into out.
struct LayerStep {
  moert_gate_config_t cfg;
  int64_t tokens, capacity = -1;
  moert_view_t x, wg, ids, weights, slots, counts, logits, buf, y, out;
  moert_packed_ffn_desc_t experts;
};

moert_status_t runLayerStep(moert_context_t ctx, void *user) {
  auto &l = *static_cast<LayerStep *>(user);
  const int64_t T = l.tokens, C = l.cfg.static_capacity;
  moert_status_t st;
  if ((st = moert_router(ctx, l.x, l.wg, moert_absent_view(), l.logits, T, H,
                         E)) ||
      (st = moert_gate(ctx, &l.cfg, l.logits, moert_absent_view(), T, l.ids,
                       l.weights, l.slots, l.counts, &l.capacity)) ||
      (st = moert_dispatch(ctx, l.x, l.ids, l.slots, moert_absent_view(), l.buf,
                           T, H, K, E, C)) ||
      (st = moert_fused_experts(ctx, &l.experts, l.buf, l.y, l.counts, E, C, 1,
                                nullptr, moert_absent_view(),
                                moert_absent_view(), 0)))
    return st;
  return moert_combine(ctx, l.y, l.ids, l.slots, l.weights, l.x, l.out, T, H, K,
                       E, C);
}

moert_status_t downloadInCapture(moert_context_t ctx, void *user) {
  auto &l = *static_cast<LayerStep *>(user);
  int32_t first = 0;
  return moert_buffer_download(ctx, &first, l.counts, 1);
}

// The layer run directly (CPU) or captured once and replayed (CUDA), twice,
// with a new input copied into x between: a replay reads the buffers as
// they are then. Inside a capture, a call that needs the host refuses.
void capturedStep(Session &s) {
  const int64_t T = 8;
  LayerStep l;
  moert_gate_config_init(&l.cfg, E, K);
  l.cfg.norm = MOERT_NORM_SELECTED;
  l.cfg.static_capacity = T;
  l.tokens = T;
  l.x = s.random(T * H, bf16);
  l.wg = s.random(E * H, bf16, 0.2f);
  l.experts = packed(s, gatedFfn(s, E, H, F, bf16), E);
  l.logits = s.poisoned(T * E, f32);
  l.ids = s.poisoned(T * K, MOERT_I32);
  l.weights = s.poisoned(T * K, f32);
  l.slots = s.poisoned(T * K, MOERT_I32);
  l.counts = s.poisoned(E, MOERT_I32);
  l.buf = s.poisoned(E * T * H, bf16);
  l.y = s.poisoned(E * T * H, bf16);
  l.out = s.poisoned(T * H, bf16);
  moert_view_t next = s.random(T * H, bf16);
  bool captured = s.backend == MOERT_BACKEND_CUDA;
  moert_graph_t graph = nullptr;
  if (captured)
    check(moert_graph_capture(s.ctx, runLayerStep, &l, &graph));
  auto step = [&] {
    check(captured ? moert_graph_replay(s.ctx, graph)
                   : runLayerStep(s.ctx, &l));
  };
  step();
  s.keep("step", l.out, T * H);
  s.keepScalar("capacity", l.capacity);
  check(moert_buffer_copy(s.ctx, next, l.x, T * H));
  step();
  s.keep("step on the next input", l.out, T * H);
  s.keep("counts", l.counts, E);
  moert_graph_destroy(s.ctx, graph);
  bool refused = true;
  if (captured) {
    moert_graph_t none = nullptr;
    refused = moert_graph_capture(s.ctx, downloadInCapture, &l, &none) ==
                  MOERT_UNSUPPORTED &&
              std::strstr(moert_last_error(), "moert_buffer_download") &&
              none == nullptr;
  }
  s.keepScalar("a download refused in capture", refused);
}

// DeepSeek MLA: a prefill of two sequences then one decode token each
// through moert_latent_append and moert_latent_attention (YaRN rope), the
// cache and the outputs kept.
void latentAttention(Session &s, moert_dtype_t dtype) {
  const int64_t heads = 4, nope = 16, rope = 8, vDim = 12, rank = 32,
                batch = 2, maxSeq = 16;
  const int64_t row = rank + rope, qRow = heads * (nope + rope);
  moert_rope_config_t cfg{};
  cfg.type = MOERT_ROPE_YARN;
  cfg.theta = 10000.0;
  cfg.factor = 4.0;
  cfg.beta_fast = 32.0;
  cfg.beta_slow = 1.0;
  cfg.attention_factor = 1.0249;
  cfg.original_max_position = 8;
  cfg.truncate = 1;
  std::vector<int32_t> seq = {0, 0, 0, 1, 1, 0, 1}, pos = {0, 1, 2, 0, 1, 3, 2};
  const int64_t tokens = static_cast<int64_t>(seq.size());
  moert_view_t kv = s.random(tokens * row, dtype),
               norm = s.random(rank, dtype),
               q = s.random(tokens * qRow, dtype),
               kvB = s.random(heads * (nope + vDim) * rank, dtype, 0.3f),
               cache = s.poisoned(batch * maxSeq * row, dtype),
               out = s.poisoned(tokens * heads * vDim, dtype);
  moert_view_t sv = s.ints(seq), pv = s.ints(pos);
  auto at = [](moert_view_t v, int64_t offset) {
    v.offset += offset;
    return v;
  };
  for (auto [first, count] : {std::pair<int64_t, int64_t>{0, 5}, {5, 1},
                              {6, 1}}) {
    check(moert_latent_append(s.ctx, &cfg, at(kv, first * row), norm, cache,
                              at(sv, first), at(pv, first), count, rank, rope,
                              batch, maxSeq, 1e-6f));
    check(moert_latent_attention(
        s.ctx, &cfg, at(q, first * qRow), kvB, cache, at(sv, first),
        at(pv, first), at(out, first * heads * vDim), count, heads, nope, rope,
        vDim, rank, batch, maxSeq, 0.21f));
  }
  // Only the written positions of the cache (the rest stays poisoned).
  for (int64_t t = 0; t < tokens; ++t)
    s.keep("latent cache row", at(cache, (seq[t] * maxSeq + pos[t]) * row),
           row);
  s.keep("latent attention out", out, tokens * heads * vDim);
}

// Phi-3 LongRoPE: a prefill in the short regime (largest position 7 of an
// original 8), one in the long (position 8), then single decode tokens on
// either side; the CUDA block-wide maximum against the CPU's loop.
void longRope(Session &s) {
  const int64_t heads = 2, dim = 16, half = dim / 2;
  moert_rope_config_t cfg{};
  cfg.type = MOERT_ROPE_LONGROPE;
  cfg.theta = 10000.0;
  cfg.factor = 1.0;
  cfg.attention_factor = 1.0;
  cfg.original_max_position = 8;
  for (int64_t i = 0; i < half; ++i) {
    cfg.short_factor[i] = 1.0f + 0.1f * static_cast<float>(i);
    cfg.long_factor[i] = 1.0f + 3.0f * static_cast<float>(i);
  }
  cfg.short_mscale = 1.05;
  cfg.long_mscale = 1.25;
  const std::vector<std::vector<int32_t>> calls = {
      {0, 1, 2, 3, 4, 5, 6, 7}, {0, 1, 2, 3, 4, 5, 6, 7, 8}, {7}, {8}};
  for (const std::vector<int32_t> &pos : calls) {
    const int64_t tokens = static_cast<int64_t>(pos.size());
    moert_view_t x = s.random(tokens * heads * dim, MOERT_F32);
    check(moert_rope(s.ctx, &cfg, x, s.ints(pos), tokens, heads, dim));
    s.keep("longrope", x, tokens * heads * dim);
  }
}

// Grouped-query attention over the KV cache with gpt-oss's per-head sinks
// (in the model's dtype) and a sliding window of 2: a prefill of two
// sequences then decode tokens one at a time, past the window.
void slidingAttention(Session &s, moert_dtype_t dtype) {
  const int64_t heads = 4, kvHeads = 2, dim = 16, batch = 2, maxSeq = 8,
                window = 2;
  std::vector<int32_t> seq = {0, 0, 0, 1, 1, 0, 1, 0},
                       pos = {0, 1, 2, 0, 1, 3, 2, 4};
  const int64_t tokens = static_cast<int64_t>(seq.size());
  const int64_t qRow = heads * dim, kvRow = kvHeads * dim;
  moert_view_t q = s.random(tokens * qRow, dtype),
               k = s.random(tokens * kvRow, dtype),
               v = s.random(tokens * kvRow, dtype),
               sinks = s.random(heads, dtype),
               cache = s.poisoned(2 * batch * maxSeq * kvRow, dtype),
               out = s.poisoned(tokens * qRow, dtype);
  moert_view_t sv = s.ints(seq), pv = s.ints(pos);
  auto at = [](moert_view_t view, int64_t offset) {
    view.offset += offset;
    return view;
  };
  for (auto [first, count] :
       {std::pair<int64_t, int64_t>{0, 5}, {5, 1}, {6, 1}, {7, 1}}) {
    check(moert_kv_append(s.ctx, at(k, first * kvRow), at(v, first * kvRow),
                          cache, at(sv, first), at(pv, first), count, kvHeads,
                          dim, batch, maxSeq));
    check(moert_attention(s.ctx, at(q, first * qRow), cache, at(sv, first),
                          at(pv, first), sinks, at(out, first * qRow), count,
                          heads, kvHeads, dim, batch, maxSeq, 0.25f, window));
  }
  s.keep("sliding attention out", out, tokens * qRow);
}

} // namespace

int moert::test::compareCAbiOnCudaWithCpu() {
  std::string weightsPath = writeWeightsFile();
  struct Named {
    const char *name;
    Case body;
  };
  std::vector<Named> cases = {
      {"buffers", buffers},
      {"router", router},
      {"gate dropless", [](Session &s) { gate(s, 0); }},
      {"gate groups + capacity", [](Session &s) { gate(s, 1); }},
      {"gate probs", [](Session &s) { gate(s, 2); }},
      {"dispatch / combine", permutation},
      {"ffn", ffn},
      {"quantized ffn", quantizedFfn},
      {"mixes", mixes},
      {"weights", [&](Session &s) { weightLoading(s, weightsPath); }},
      {"collectives", collectives},
      {"captured step (CUDA graph)", capturedStep},
      {"latent attention f32",
       [](Session &s) { latentAttention(s, MOERT_F32); }},
      {"latent attention bf16",
       [](Session &s) { latentAttention(s, MOERT_BF16); }},
      {"attention sinks + window f32",
       [](Session &s) { slidingAttention(s, MOERT_F32); }},
      {"attention sinks + window bf16",
       [](Session &s) { slidingAttention(s, MOERT_BF16); }},
      {"longrope short and long", longRope},
  };
  int failed = 0;
  unsigned seed = 100;
  for (const Named &c : cases)
    failed += compareCase(c.name, c.body, seed++);
  return failed;
}
