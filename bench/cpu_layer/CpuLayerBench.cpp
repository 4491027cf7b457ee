//===- CpuLayerBench.cpp - one MoE layer on the CPU backend ---------------===//
//
// Times a Mixtral-8x7B-shaped MoE layer (H 4096, F 14336, 8 SwiGLU experts,
// top-2, dropless) on one rank of the CPU backend: router GEMM, gate,
// dispatch, grouped expert FFN, combine with the residual. Prints a table:
// median time per token count, tokens per second and the GEMM throughput the
// layer achieved.
//
// usage: moe-bench-cpu-layer [--dtype bf16|f32] [--tokens 1,16,128,1024]
//                            [--runs N] [--hidden H] [--ffn F]
//
//===----------------------------------------------------------------------===//

#include "runtime/moert.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Options {
  int64_t hidden = 4096, ffn = 14336, experts = 8, topK = 2;
  moert_dtype_t dtype = MOERT_BF16;
  std::vector<int64_t> tokens = {1, 16, 128, 1024};
  int runs = 0; // 0: enough runs for about a second per row, at least 3
};

struct Bench {
  Options options;
  std::vector<std::pair<int64_t, double>> medians; // tokens, seconds
};

#define CHECK(call)                                                            \
  do {                                                                         \
    moert_status_t status_ = (call);                                           \
    if (status_ != MOERT_OK) {                                                 \
      std::fprintf(stderr, "%s failed: %s: %s\n", #call,                       \
                   moert_status_name(status_), moert_last_error());           \
      return status_;                                                          \
    }                                                                          \
  } while (0)

/// Fills a view with uniform values in [-scale, scale] from a seeded stream.
moert_status_t fillRandom(moert_context_t ctx, moert_view_t view,
                          int64_t count, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-scale, scale);
  std::vector<float> host(count);
  for (float &v : host)
    v = uniform(rng);
  moert_buffer_t staging;
  CHECK(moert_buffer_alloc(ctx, count * sizeof(float), &staging));
  moert_view_t f32 = moert_make_view(staging, 0, MOERT_F32);
  CHECK(moert_buffer_upload(ctx, f32, host.data(), count));
  CHECK(moert_buffer_copy(ctx, f32, view, count));
  moert_buffer_free(ctx, staging);
  return MOERT_OK;
}

moert_status_t run(moert_context_t ctx, void *user) {
  Bench &bench = *static_cast<Bench *>(user);
  const Options &o = bench.options;
  const int64_t h = o.hidden, f = o.ffn, e = o.experts, k = o.topK;
  const int64_t maxTokens = *std::max_element(o.tokens.begin(), o.tokens.end());
  auto alloc = [&](int64_t count, moert_dtype_t dtype, moert_view_t *view) {
    moert_buffer_t buffer;
    moert_status_t status =
        moert_buffer_alloc(ctx, count * moert_dtype_size(dtype), &buffer);
    *view = moert_make_view(buffer, 0, dtype);
    return status;
  };

  moert_view_t x, out, wg, wGate, wUp, wDown, logits, ids, weights, slots,
      counts, dispatched, expertOut;
  CHECK(alloc(maxTokens * h, o.dtype, &x));
  CHECK(alloc(maxTokens * h, o.dtype, &out));
  CHECK(alloc(e * h, o.dtype, &wg));
  CHECK(alloc(e * f * h, o.dtype, &wGate));
  CHECK(alloc(e * f * h, o.dtype, &wUp));
  CHECK(alloc(e * h * f, o.dtype, &wDown));
  CHECK(alloc(maxTokens * e, MOERT_F32, &logits));
  CHECK(alloc(maxTokens * k, MOERT_I32, &ids));
  CHECK(alloc(maxTokens * k, MOERT_F32, &weights));
  CHECK(alloc(maxTokens * k, MOERT_I32, &slots));
  CHECK(alloc(e, MOERT_I32, &counts));
  // Dropless: an expert gets at most every token once.
  CHECK(alloc(e * maxTokens * h, o.dtype, &dispatched));
  CHECK(alloc(e * maxTokens * h, o.dtype, &expertOut));
  // Kaiming-like scales keep activations finite through the layer.
  float wScale = 1.0f / std::sqrt(static_cast<float>(h));
  CHECK(fillRandom(ctx, x, maxTokens * h, 1.0f, 1));
  CHECK(fillRandom(ctx, wg, e * h, wScale, 2));
  CHECK(fillRandom(ctx, wGate, e * f * h, wScale, 3));
  CHECK(fillRandom(ctx, wUp, e * f * h, wScale, 4));
  CHECK(fillRandom(ctx, wDown, e * h * f,
                   1.0f / std::sqrt(static_cast<float>(f)), 5));

  moert_gate_config_t gate;
  moert_gate_config_init(&gate, static_cast<int32_t>(e),
                         static_cast<int32_t>(k));
  gate.norm = MOERT_NORM_SELECTED;
  moert_ffn_desc_t ffn{};
  ffn.kind = MOERT_FFN_GATED;
  ffn.activation = MOERT_ACT_SILU;
  ffn.hidden = h;
  ffn.ffn = f;
  ffn.w_gate = wGate;
  ffn.w_up = wUp;
  ffn.w_down = wDown;
  ffn.b1 = ffn.b2 = moert_absent_view();

  auto layer = [&](int64_t tokens) -> moert_status_t {
    int64_t capacity = 0;
    CHECK(moert_router(ctx, x, wg, moert_absent_view(), logits, tokens, h, e));
    CHECK(moert_gate(ctx, &gate, logits, moert_absent_view(), tokens, ids,
                     weights, slots, counts, &capacity));
    CHECK(moert_dispatch(ctx, x, ids, slots, dispatched, tokens, h, k, e,
                         capacity));
    CHECK(moert_experts(ctx, &ffn, dispatched, expertOut, counts, e, capacity,
                        1));
    CHECK(moert_combine(ctx, expertOut, ids, slots, weights, x, out, tokens, h,
                        k, e, capacity));
    return MOERT_OK;
  };

  for (int64_t tokens : o.tokens) {
    CHECK(layer(tokens)); // warm-up: page in weights and buffers
    std::vector<double> samples;
    auto start = std::chrono::steady_clock::now();
    while (true) {
      auto t0 = std::chrono::steady_clock::now();
      CHECK(layer(tokens));
      samples.push_back(std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - t0)
                            .count());
      double elapsed = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - start)
                           .count();
      if (o.runs ? static_cast<int>(samples.size()) >= o.runs
                 : samples.size() >= 3 && elapsed > 1.0)
        break;
    }
    std::nth_element(samples.begin(), samples.begin() + samples.size() / 2,
                     samples.end());
    bench.medians.emplace_back(tokens, samples[samples.size() / 2]);
  }
  return MOERT_OK;
}

std::vector<int64_t> parseList(const char *text) {
  std::vector<int64_t> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ','))
    values.push_back(std::stoll(item));
  return values;
}

} // namespace

int main(int argc, char **argv) {
  Bench bench;
  Options &o = bench.options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--dtype")
      o.dtype = std::strcmp(argv[i + 1], "f32") == 0 ? MOERT_F32 : MOERT_BF16;
    else if (flag == "--tokens")
      o.tokens = parseList(argv[i + 1]);
    else if (flag == "--runs")
      o.runs = std::atoi(argv[i + 1]);
    else if (flag == "--hidden")
      o.hidden = std::atoll(argv[i + 1]);
    else if (flag == "--ffn")
      o.ffn = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "flag %s needs a value\n", argv[argc - 1]);
    return 2;
  }

  moert_world_desc_t desc{MOERT_BACKEND_CPU, 1, 1, 0};
  moert_world_t world;
  if (moert_world_create(&desc, &world) != MOERT_OK ||
      moert_world_run(world, run, &bench) != MOERT_OK) {
    std::fprintf(stderr, "benchmark failed: %s\n", moert_last_error());
    return 1;
  }
  moert_world_destroy(world);

  std::printf("MoE layer on the CPU backend, 1 rank: H %lld, F %lld, %lld "
              "SwiGLU experts, top-%lld, dropless, %s storage\n",
              (long long)o.hidden, (long long)o.ffn, (long long)o.experts,
              (long long)o.topK, o.dtype == MOERT_F32 ? "f32" : "bf16");
  std::printf("%8s %12s %12s %10s\n", "tokens", "ms/layer", "tokens/s",
              "GFLOP/s");
  for (auto [tokens, seconds] : bench.medians) {
    // Routed expert GEMMs (3 per choice) plus the router.
    double flops = 2.0 * 3 * o.hidden * o.ffn * o.topK * tokens +
                   2.0 * o.hidden * o.experts * tokens;
    std::printf("%8lld %12.2f %12.1f %10.1f\n", (long long)tokens,
                seconds * 1e3, tokens / seconds, flops / seconds / 1e9);
  }
  return 0;
}
