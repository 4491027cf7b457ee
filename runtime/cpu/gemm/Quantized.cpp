//===- runtime/cpu/gemm/Quantized.cpp - Dequantizing GEMM items -----------===//

#include "runtime/cpu/gemm/Quantized.h"

#include <algorithm>
#include <array>

using namespace moert;
using namespace moert::cpu::gemm;

namespace {

// Every byte's value: a table lookup per weight instead of bit fiddling.
const std::array<float, 256> &e4m3Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> values{};
    for (int v = 0; v < 256; ++v)
      values[v] = e4m3ToFloat(static_cast<uint8_t>(v));
    return values;
  }();
  return table;
}

// Both e2m1 values of every byte (low nibble first).
const std::array<std::array<float, 2>, 256> &e2m1PairTable() {
  static const std::array<std::array<float, 2>, 256> table = [] {
    std::array<std::array<float, 2>, 256> values{};
    for (int v = 0; v < 256; ++v)
      values[v] = {e2m1ToFloat(v & 0xf), e2m1ToFloat(v >> 4)};
    return values;
  }();
  return table;
}

// Adds the item's first column to what a kernel run on the item's panel
// alone reports.
class OffsetSink final : public Sink {
public:
  OffsetSink(Sink &sink, int64_t n0) : sink_(sink), n0_(n0) {}
  void store(int64_t m0, int64_t rows, int64_t n0, int64_t cols,
             const float *first, const float *second, int64_t ld) override {
    sink_.store(m0, rows, n0_ + n0, cols, first, second, ld);
  }
  bool storeColumns(int64_t m0, int64_t rows, int64_t n0, int64_t cols,
                    const float *first, const float *second,
                    int64_t ld) override {
    return sink_.storeColumns(m0, rows, n0_ + n0, cols, first, second, ld);
  }

private:
  Sink &sink_;
  int64_t n0_;
};

} // namespace

void moert::cpu::gemm::dequantizeRows(const Quantization &quant,
                                      const void *data, int64_t n, int64_t k,
                                      int64_t row0, int64_t count, float *out) {
  QuantizedLayout layout = quant.layout(n, k);
  int64_t scaleCols = layout.scaleCols();
  auto *bytes = static_cast<const uint8_t *>(data);
  if (quant.format == MOERT_WEIGHTS_MXFP4) {
    const auto &pairs = e2m1PairTable();
    auto *scales = static_cast<const uint8_t *>(quant.scales);
    for (int64_t r = 0; r < count; ++r) {
      int64_t row = row0 + r;
      const uint8_t *in = bytes + row * (k / 2);
      float *o = out + r * k;
      for (int64_t b = 0; b < scaleCols; ++b) {
        float scale = e8m0ToFloat(scales[row * scaleCols + b]);
        for (int64_t i = 0; i < 16; ++i) {
          const std::array<float, 2> &pair = pairs[in[b * 16 + i]];
          o[b * 32 + 2 * i] = pair[0] * scale;
          o[b * 32 + 2 * i + 1] = pair[1] * scale;
        }
      }
    }
    return;
  }
  const auto &table = e4m3Table();
  auto *scales = static_cast<const float *>(quant.scales);
  for (int64_t r = 0; r < count; ++r) {
    int64_t row = row0 + r;
    const uint8_t *in = bytes + row * k;
    const float *rowScales = scales + (row / quant.blockRows) * scaleCols;
    float *o = out + r * k;
    for (int64_t b = 0; b < scaleCols; ++b) {
      float scale = rowScales[b];
      int64_t c0 = b * quant.blockCols, c1 = std::min(k, c0 + quant.blockCols);
      for (int64_t c = c0; c < c1; ++c)
        o[c] = table[in[c]] * scale;
    }
  }
}

void moert::cpu::gemm::runQuantized(const KernelSet &f32, const Weights &w,
                                    int64_t item, const PackedRows &x,
                                    Workspace &workspace, Sink &sink) {
  // The panel lives beside the kernel's own workspace, one per thread.
  static thread_local Workspace panelSpace;
  bool paired = w.paired();
  int64_t n0 = item * itemColumns(paired);
  int64_t rows = std::min(itemColumns(paired), w.n - n0);
  auto *panel =
      static_cast<float *>(panelSpace.get(2 * slabRows * w.k * sizeof(float)));
  dequantizeRows(*w.quantFirst, w.first, w.n, w.k, n0, rows, panel);
  float *second = nullptr;
  if (paired) {
    second = panel + slabRows * w.k;
    dequantizeRows(*w.quantSecond, w.second, w.n, w.k, n0, rows, second);
  }
  Weights widened{panel, second, MOERT_F32, rows, w.k};
  OffsetSink offset(sink, n0);
  f32.run(widened, 0, x, workspace, offset);
}
