//===- bench/gpu_layer/LayerCost.cpp - Shapes, bytes and flops ------------===//

#include "bench/gpu_layer/LayerCost.h"

#include <algorithm>
#include <cstdio>

namespace moe::bench {

std::vector<MoeLayerShape> benchmarkShapes() {
  std::vector<MoeLayerShape> shapes(4);
  MoeLayerShape &mixtral = shapes[0];
  mixtral.name = "Mixtral-8x7B";
  mixtral.experts = 8, mixtral.hidden = 4096, mixtral.ffn = 14336;
  mixtral.topK = 2;
  MoeLayerShape &deepseek = shapes[1];
  deepseek.name = "DeepSeek-V3";
  deepseek.experts = 256, deepseek.hidden = 7168, deepseek.ffn = 2048;
  deepseek.topK = 8, deepseek.groups = 8, deepseek.keptGroups = 4;
  deepseek.correctionBias = true;
  deepseek.sharedExperts = 1, deepseek.sharedFfn = 2048;
  MoeLayerShape &qwen = shapes[2];
  qwen.name = "Qwen3-30B-A3B";
  qwen.experts = 128, qwen.hidden = 2048, qwen.ffn = 768, qwen.topK = 8;
  // DeepSpeed PR-MoE (1.3B base): GELU experts of width 4H, top-1, and a
  // dense residual MLP of the same width mixed in by learned coefficients.
  MoeLayerShape &prmoe = shapes[3];
  prmoe.name = "PR-MoE-1.3B";
  prmoe.experts = 128, prmoe.hidden = 2048, prmoe.ffn = 8192, prmoe.topK = 1;
  prmoe.gated = false, prmoe.residualFfn = 8192;
  return shapes;
}

std::vector<int64_t> benchmarkTokens() { return {1, 8, 64, 512, 4096, 8192}; }

Routing assumedRouting(const MoeLayerShape &s, int64_t tokens) {
  return {tokens * s.topK, std::min(s.experts, tokens * s.topK)};
}

Routing measuredRouting(const std::vector<int32_t> &counts) {
  Routing r;
  for (int32_t n : counts) {
    r.expertRows += n;
    r.expertsTouched += n > 0;
  }
  return r;
}

Routing capturedRouting(const MoeLayerShape &s, int64_t capacity) {
  return {s.experts * capacity, s.experts};
}

LayerCost layerCost(const MoeLayerShape &s, int64_t tokens,
                    const Routing &routing) {
  const int64_t T = tokens, H = s.hidden, F = s.ffn;
  const int64_t matrices = s.gated ? 3 : 2;
  LayerCost c;
  c.expertsTouched = routing.expertsTouched;
  int64_t weightElements = s.experts * H;                // router
  weightElements += c.expertsTouched * matrices * H * F; // routed experts
  if (!s.gated)
    weightElements += c.expertsTouched * (F + H);          // b1, b2
  weightElements += s.sharedExperts * 3 * H * s.sharedFfn; // shared
  if (s.residualFfn)                                       // MLP + coef
    weightElements += 2 * H * s.residualFfn + s.residualFfn + H + 2 * H + 2;
  c.bytes = weightElements * kElementBytes + 2 * T * H * kElementBytes;
  if (s.correctionBias)
    c.bytes += s.experts * 4;
  c.flops = 2 * T * H * s.experts;                      // router
  c.flops += 2 * routing.expertRows * matrices * H * F; // routed experts
  c.flops += 2 * T * s.sharedExperts * 3 * H * s.sharedFfn;
  if (s.residualFfn)
    c.flops += 2 * T * 2 * H * s.residualFfn + 2 * T * 2 * H;
  return c;
}

double rooflineFloorSeconds(const LayerCost &cost, double copyBytesPerSecond,
                            double gemmFlopsPerSecond) {
  return std::max(double(cost.bytes) / copyBytesPerSecond,
                  double(cost.flops) / gemmFlopsPerSecond);
}

std::string costTable(const std::vector<MoeLayerShape> &shapes,
                      const std::vector<int64_t> &tokens) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line,
                "%-14s %5s %5s %6s %2s %7s %8s %8s %12s %12s %9s\n", "model",
                "E", "H", "F", "k", "tokens", "touched", "shared", "GFLOP",
                "MB", "flop/B");
  out += line;
  for (const MoeLayerShape &s : shapes)
    for (int64_t t : tokens) {
      LayerCost c = layerCost(s, t);
      std::snprintf(line, sizeof line,
                    "%-14s %5lld %5lld %6lld %2lld %7lld %8lld %8lld %12.3f "
                    "%12.3f %9.2f\n",
                    s.name.c_str(), (long long)s.experts, (long long)s.hidden,
                    (long long)s.ffn, (long long)s.topK, (long long)t,
                    (long long)c.expertsTouched, (long long)s.sharedExperts,
                    c.flops / 1e9, c.bytes / 1e6, c.intensity());
      out += line;
    }
  return out;
}

} // namespace moe::bench
