//===- runtime/cpu/Norms.cpp - LayerNorm, bias add, clamp and scale -------===//
//
// Row by row in fp32 (mean and variance accumulated in double), rows on the
// rank's threads, each output rounded once to its dtype, so that out may
// alias x.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Convert.h"
#include "runtime/cpu/Backend.h"
#include "runtime/cpu/gemm/StoreFloats.h"

#include <algorithm>
#include <cmath>

using namespace moert;
using namespace moert::cpu;

namespace {

// out[i] = f(x[i]) in fp32, rounded once to out's dtype, mapChunk elements
// at a time through `chunk` (so out may alias x).
constexpr int64_t mapChunk = 4096;
template <typename Fn>
void mapFloats(float *chunk, Operand x, Operand out, int64_t count, Fn f) {
  for (int64_t start = 0; start < count; start += mapChunk) {
    int64_t n = std::min(mapChunk, count - start);
    convertToFloat(x.at(start).data, x.dtype, chunk, n);
    for (int64_t i = 0; i < n; ++i)
      chunk[i] = f(chunk[i]);
    convertFromFloat(chunk, out.at(start).as<char>(), out.dtype, n);
  }
}

// Scratch slots past those of Kernels.cpp and Decoder.cpp.
enum NormSlot : size_t {
  slotNormRow = 40,
  slotLayerNormWeight = 41,
  slotLayerNormBias = 42,
  slotAddedBias = 43,
};

} // namespace

void CpuBackend::layerNorm(int32_t rank, Operand x, Operand weight,
                           Operand bias, Operand out, int64_t tokens,
                           int64_t hidden, float epsilon) {
  Scratch &s = scratch(rank);
  const float *w = floatInput(s, slotLayerNormWeight, weight, hidden);
  const float *b =
      bias.present() ? floatInput(s, slotLayerNormBias, bias, hidden) : nullptr;
  // Row by row so that out may alias x.
  parallelRows(gemm(rank).pool, tokens, hidden, [&](int64_t t, float *row) {
    convertToFloat(x.at(t * hidden).data, x.dtype, row, hidden);
    double mean =
        laneSum(hidden, [&](int64_t h) { return double(row[h]); }) / hidden;
    double squares = laneSum(hidden, [&](int64_t h) {
      return (row[h] - mean) * (row[h] - mean);
    });
    double inverse = 1.0 / std::sqrt(squares / hidden + double(epsilon));
    for (int64_t h = 0; h < hidden; ++h) {
      float y = static_cast<float>((row[h] - mean) * inverse) * w[h];
      row[h] = b ? y + b[h] : y;
    }
    gemm::storeFloats(row, out.at(t * hidden).as<char>(), out.dtype, hidden);
  });
}

void CpuBackend::biasAdd(int32_t rank, Operand x, Operand bias, Operand out,
                         int64_t tokens, int64_t hidden) {
  Scratch &s = scratch(rank);
  const float *b = floatInput(s, slotAddedBias, bias, hidden);
  float *row = s.floats(slotNormRow, hidden);
  for (int64_t t = 0; t < tokens; ++t) {
    convertToFloat(x.at(t * hidden).data, x.dtype, row, hidden);
    for (int64_t h = 0; h < hidden; ++h)
      row[h] += b[h];
    convertFromFloat(row, out.at(t * hidden).as<char>(), out.dtype, hidden);
  }
}

void CpuBackend::clamp(int32_t rank, Operand x, Operand out, int64_t count,
                       float limit) {
  // Comparisons that keep a NaN (std::clamp's order would too).
  mapFloats(scratch(rank).floats(slotNormRow, std::min(count, mapChunk)), x,
            out, count, [limit](float v) {
              return v < -limit ? -limit : (v > limit ? limit : v);
            });
}

void CpuBackend::scale(int32_t rank, Operand x, Operand out, int64_t count,
                       float factor) {
  mapFloats(scratch(rank).floats(slotNormRow, std::min(count, mapChunk)), x,
            out, count, [factor](float v) { return v * factor; });
}
