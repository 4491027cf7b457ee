//===- runtime/cpu/gemm/Quantized.cpp - Dequantizing GEMM items -----------===//

#include "runtime/cpu/gemm/Quantized.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

using namespace moert;
using namespace moert::cpu::gemm;

namespace {

// float8_e4m3fn's magnitude bits placed at an fp32's exponent and mantissa
// fields read as that value times 2^-120, normals and subnormals alike; e2m1
// the same way times 2^-126. One shift and exact power-of-two multiplies
// per weight: loops the compiler vectorizes for each ISA below, where a
// table lookup would stay scalar.
inline __attribute__((always_inline)) float fromBits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

inline __attribute__((always_inline)) void
e4m3Body(const uint8_t *in, float scale, float *out, int64_t count) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t i = 0; i < count; ++i) {
    uint32_t b = in[i];
    float v = fromBits(((b & 0x80u) << 24) | ((b & 0x7fu) << 20)) * 0x1p120f;
    out[i] = (b & 0x7fu) == 0x7fu ? nan : v * scale;
  }
}

// 16 bytes: 32 values, the even one in each low nibble.
inline __attribute__((always_inline)) void e2m1Body(const uint8_t *in,
                                                    float scale, float *out) {
  for (int64_t i = 0; i < 32; ++i) {
    uint32_t nibble = (in[i / 2] >> (4 * (i % 2))) & 0xfu;
    float v =
        fromBits(((nibble & 0x8u) << 28) | ((nibble & 0x7u) << 22)) * 0x1p126f;
    out[i] = v * scale;
  }
}

using E4m3Row = void (*)(const uint8_t *, float, float *, int64_t);
using E2m1Block = void (*)(const uint8_t *, float, float *);

void e4m3Generic(const uint8_t *in, float scale, float *out, int64_t count) {
  e4m3Body(in, scale, out, count);
}
void e2m1Generic(const uint8_t *in, float scale, float *out) {
  e2m1Body(in, scale, out);
}
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void
e4m3Avx2(const uint8_t *in, float scale, float *out, int64_t count) {
  e4m3Body(in, scale, out, count);
}
__attribute__((target("avx2,fma"))) void e2m1Avx2(const uint8_t *in,
                                                  float scale, float *out) {
  e2m1Body(in, scale, out);
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void
e4m3Avx512(const uint8_t *in, float scale, float *out, int64_t count) {
  e4m3Body(in, scale, out, count);
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void
e2m1Avx512(const uint8_t *in, float scale, float *out) {
  e2m1Body(in, scale, out);
}
#endif

std::pair<E4m3Row, E2m1Block> decodersFor(Isa level) {
#if defined(__x86_64__)
  if (level >= Isa::Avx512)
    return {e4m3Avx512, e2m1Avx512};
  if (level >= Isa::Avx2)
    return {e4m3Avx2, e2m1Avx2};
#endif
  return {e4m3Generic, e2m1Generic};
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
                                      int64_t row0, int64_t count, float *out,
                                      Isa level) {
  auto [e4m3Row, e2m1Block] = decodersFor(level);
  QuantizedLayout layout = quant.layout(n, k);
  int64_t scaleCols = layout.scaleCols();
  auto *bytes = static_cast<const uint8_t *>(data);
  if (quant.format == MOERT_WEIGHTS_MXFP4) {
    auto *scales = static_cast<const uint8_t *>(quant.scales);
    for (int64_t r = 0; r < count; ++r) {
      int64_t row = row0 + r;
      const uint8_t *in = bytes + row * (k / 2);
      for (int64_t b = 0; b < scaleCols; ++b)
        e2m1Block(in + b * 16, e8m0ToFloat(scales[row * scaleCols + b]),
                  out + r * k + b * 32);
    }
    return;
  }
  auto *scales = static_cast<const float *>(quant.scales);
  for (int64_t r = 0; r < count; ++r) {
    int64_t row = row0 + r;
    const float *rowScales = scales + (row / quant.blockRows) * scaleCols;
    for (int64_t b = 0; b < scaleCols; ++b) {
      int64_t c0 = b * quant.blockCols, c1 = std::min(k, c0 + quant.blockCols);
      e4m3Row(bytes + row * k + c0, rowScales[b], out + r * k + c0, c1 - c0);
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
