//===- bench/gpu_layer/LayerCost.h - Shapes, bytes and flops ----*- C++ -*-===//
//
// The host-side arithmetic of the GPU layer benchmark: the benchmarked MoE
// layer shapes, the exact flops and compulsory bytes of one layer forward at
// T tokens, and the roofline floor on a GPU of measured copy bandwidth and
// GEMM peak. Plain C++ (no CUDA): unit-tested and printed by --dry-run.
//
// Counting rules (one layer forward, T tokens, bf16 weights and activations):
// - flops: 2*m*n*k per GEMM: router T x E x H; every kept routed choice
//   through its expert FFN (gated: gate, up, down; plain: W1, W2) - the
//   grouped GEMMs run the gate's counts of rows per expert, never E*C;
//   shared experts and the PR-MoE residual MLP on all T tokens; the PR-MoE
//   mixing coefficients T x 2 x H. Elementwise work (softmax, activation,
//   the weighted sum) is not counted.
// - bytes: compulsory traffic only: every weight read once (router, the
//   experts the choices touch, shared experts, residual MLP, biases,
//   DeepSeek's f32 correction bias), x read once, y written once.
// - Routing: a GPU run counts kept choices and touched experts from the
//   gate's counts; without one (--dry-run) every choice is kept (dropless)
//   and min(E, T*k) experts are touched, the most T*k choices can reach. A
//   captured forward (CUDA graph) cannot give cuBLAS the counts (they stay
//   on the device), so its grouped GEMMs run all E*C rows of every expert
//   (runtime/cuda/Kernels.h, Rows): E*C rows, E experts touched.
// - floor = max(bytes / copy bandwidth, flops / GEMM peak).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BENCH_GPU_LAYER_LAYERCOST_H
#define MOE_BENCH_GPU_LAYER_LAYERCOST_H

#include <cstdint>
#include <string>
#include <vector>

namespace moe::bench {

struct MoeLayerShape {
  std::string name;
  int64_t experts = 0; // E
  int64_t hidden = 0;  // H
  int64_t ffn = 0;     // F per expert
  int64_t topK = 0;    // k
  bool gated = true;   // SwiGLU (3 matrices) or plain GELU MLP (2 + biases)
  int64_t groups = 1;  // DeepSeek-V3 group-limited routing
  int64_t keptGroups = 1;
  bool correctionBias = false; // f32 [E] added for selection
  int64_t sharedExperts = 0;   // each a gated FFN of width sharedFfn
  int64_t sharedFfn = 0;
  int64_t residualFfn = 0; // PR-MoE: a plain MLP of this width on every token
};

// Mixtral-8x7B, DeepSeek-V3, Qwen3-30B-A3B and a PR-MoE layer, in that order.
std::vector<MoeLayerShape> benchmarkShapes();
// 1, 8, 64, 512, 4096, 8192.
std::vector<int64_t> benchmarkTokens();

constexpr int64_t kElementBytes = 2; // bf16

// What the routed experts compute (see "Routing" above).
struct Routing {
  int64_t expertRows = 0;     // rows through the expert FFNs
  int64_t expertsTouched = 0; // experts whose weights are read
};

// Dropless, every choice kept, min(E, T*k) experts touched.
Routing assumedRouting(const MoeLayerShape &shape, int64_t tokens);
// From the gate's counts[E] (kept choices per expert).
Routing measuredRouting(const std::vector<int32_t> &counts);
// A captured forward at capacity C: every row of every expert.
Routing capturedRouting(const MoeLayerShape &shape, int64_t capacity);

struct LayerCost {
  int64_t flops = 0;
  int64_t bytes = 0;
  int64_t expertsTouched = 0;
  double intensity() const { return double(flops) / double(bytes); }
};

LayerCost layerCost(const MoeLayerShape &shape, int64_t tokens,
                    const Routing &routing);
inline LayerCost layerCost(const MoeLayerShape &shape, int64_t tokens) {
  return layerCost(shape, tokens, assumedRouting(shape, tokens));
}

// Seconds; bandwidth in bytes/s, peak in flop/s (both measured on the GPU).
double rooflineFloorSeconds(const LayerCost &cost, double copyBytesPerSecond,
                            double gemmFlopsPerSecond);

// The --dry-run table: one row per shape and token count, assumed routing.
std::string costTable(const std::vector<MoeLayerShape> &shapes,
                      const std::vector<int64_t> &tokens);

} // namespace moe::bench

#endif // MOE_BENCH_GPU_LAYER_LAYERCOST_H
