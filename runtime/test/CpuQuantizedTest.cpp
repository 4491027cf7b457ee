//===- runtime/test/CpuQuantizedTest.cpp - Dequantizing GEMMs, each ISA ---===//
//
// FP8 e4m3 block-scaled and MXFP4 weights: the format decoders against
// values written out by hand, the dequantizing GEMM item of every ISA path
// this CPU has against a reference loop over QuantizedLayout::at in double,
// and bit for bit against the same ISA's fp32 kernel on the dequantized
// tensor; the grouped FFN (through the dispatch, rerun by ctest under each
// MOERT_CPU_ISA) the same way.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Convert.h"
#include "runtime/common/Quantized.h"
#include "runtime/cpu/GroupedGemm.h"
#include "runtime/cpu/gemm/Isa.h"
#include "runtime/cpu/gemm/Kernels.h"
#include "runtime/cpu/gemm/Quantized.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace moert;
using namespace moert::cpu;
using namespace moert::cpu::gemm;

namespace {

TEST(QuantizedFormats, E4m3) {
  EXPECT_EQ(e4m3ToFloat(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(e4m3ToFloat(0x80)));
  EXPECT_EQ(e4m3ToFloat(0x38), 1.0f);   // exponent 7 = bias
  EXPECT_EQ(e4m3ToFloat(0x7e), 448.0f); // largest finite
  EXPECT_EQ(e4m3ToFloat(0xfe), -448.0f);
  EXPECT_EQ(e4m3ToFloat(0x01), 0x1p-9f); // smallest subnormal
  EXPECT_EQ(e4m3ToFloat(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(e4m3ToFloat(0x08), 0x1p-6f); // smallest normal
  EXPECT_EQ(e4m3ToFloat(0x3d), 1.625f);  // 1 + 5/8
  EXPECT_EQ(e4m3ToFloat(0xc4), -3.0f);   // -(1 + 4/8) * 2
  EXPECT_TRUE(std::isnan(e4m3ToFloat(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3ToFloat(0xff)));
  EXPECT_FALSE(std::isnan(e4m3ToFloat(0x78))); // 256: no infinities
}

TEST(QuantizedFormats, E2m1AndE8m0) {
  const float values[16] = {0,  0.5f,  1,  1.5f,  2,  3,  4,  6,
                            -0, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (int n = 0; n < 16; ++n)
    EXPECT_EQ(e2m1ToFloat(n), values[n]) << n;
  EXPECT_EQ(e8m0ToFloat(127), 1.0f);
  EXPECT_EQ(e8m0ToFloat(130), 8.0f);
  EXPECT_EQ(e8m0ToFloat(1), 0x1p-126f);
  EXPECT_EQ(e8m0ToFloat(0), 0x1p-127f);
  EXPECT_EQ(e8m0ToFloat(254), 0x1p127f);
  EXPECT_TRUE(std::isnan(e8m0ToFloat(255)));
}

// Every byte (NaN codes included) and every e8m0 exponent (0, 255
// included) through the vectorized decoders of each ISA this CPU has: the
// bits of QuantizedLayout::at.
TEST(QuantizedFormats, VectorDecodersEqualTheFormula) {
  std::vector<uint8_t> bytes(256 * 3);
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<uint8_t>(i * 7 + i / 256);
  auto same = [](float a, float b) {
    return (std::isnan(a) && std::isnan(b)) ||
           std::memcmp(&a, &b, sizeof(a)) == 0;
  };
  for (Isa level : {Isa::Generic, Isa::Avx2, Isa::Avx512}) {
    if (level > detectedIsa())
      continue;
    // fp8: 3 rows of 256 in 16 x 100 blocks (partial column blocks).
    std::vector<float> f32Scales = {0.5f, 3e-3f, 7.0f, 1e-30f, 2.0f, 1.0f};
    Quantization fp8{MOERT_WEIGHTS_FP8_E4M3_BLOCK, f32Scales.data(), 16, 100};
    std::vector<float> out(3 * 256);
    dequantizeRows(fp8, bytes.data(), 3, 256, 0, 3, out.data(), level);
    QuantizedLayout layout = fp8.layout(3, 256);
    int bad = 0;
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t c = 0; c < 256; ++c)
        bad += !same(out[r * 256 + c],
                     layout.at(bytes.data(), f32Scales.data(), r, c));
    EXPECT_EQ(bad, 0) << "fp8 " << isaName(level);
    // MXFP4: 6 rows of 256 values (8 blocks each), every exponent.
    std::vector<uint8_t> exponents(6 * 8);
    for (size_t i = 0; i < exponents.size(); ++i)
      exponents[i] = i == 0 ? 0 : i == 1 ? 255 : static_cast<uint8_t>(i * 5);
    Quantization mx{MOERT_WEIGHTS_MXFP4, exponents.data(), 1, 32};
    std::vector<float> mxOut(6 * 256);
    dequantizeRows(mx, bytes.data(), 6, 256, 0, 6, mxOut.data(), level);
    QuantizedLayout mxLayout = mx.layout(6, 256);
    bad = 0;
    for (int64_t r = 0; r < 6; ++r)
      for (int64_t c = 0; c < 256; ++c)
        bad += !same(mxOut[r * 256 + c],
                     mxLayout.at(bytes.data(), exponents.data(), r, c));
    EXPECT_EQ(bad, 0) << "mxfp4 " << isaName(level);
  }
}

// A quantized weight [n, k] with its scales, and its dequantized values.
struct QuantizedTensor {
  std::vector<uint8_t> data;
  std::vector<float> f32Scales;
  std::vector<uint8_t> e8m0Scales;
  Quantization quant;
  std::vector<float> values; // dequantized, [n, k]
};

QuantizedTensor randomQuantized(moert_weight_format_t format, int64_t n,
                                int64_t k, int64_t blockRows, int64_t blockCols,
                                unsigned seed) {
  std::mt19937 rng(seed);
  QuantizedTensor t;
  QuantizedLayout layout{format, n, k, blockRows, blockCols};
  t.data.resize(layout.dataElements());
  for (uint8_t &b : t.data) {
    b = static_cast<uint8_t>(rng());
    if (format == MOERT_WEIGHTS_FP8_E4M3_BLOCK && (b & 0x7f) == 0x7f)
      b ^= 0x01; // not NaN
  }
  if (format == MOERT_WEIGHTS_MXFP4) {
    t.e8m0Scales.resize(layout.scaleElements());
    for (uint8_t &s : t.e8m0Scales)
      s = static_cast<uint8_t>(120 + rng() % 10);
    t.quant = {format, t.e8m0Scales.data(), blockRows, blockCols};
  } else {
    std::uniform_real_distribution<float> dist(1e-3f, 4e-3f);
    t.f32Scales.resize(layout.scaleElements());
    for (float &s : t.f32Scales)
      s = dist(rng);
    t.quant = {format, t.f32Scales.data(), blockRows, blockCols};
  }
  const void *scales = format == MOERT_WEIGHTS_MXFP4
                           ? static_cast<const void *>(t.e8m0Scales.data())
                           : t.f32Scales.data();
  t.values.resize(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      t.values[r * k + c] = layout.at(t.data.data(), scales, r, c);
  return t;
}

std::vector<float> randomFloats(int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (float &x : v)
    x = dist(rng);
  return v;
}

class Collect final : public Sink {
public:
  Collect(int64_t m, int64_t n)
      : n_(n), first(m * n, std::nanf("")), second(m * n, std::nanf("")) {}
  void store(int64_t m0, int64_t rows, int64_t n0, int64_t cols, const float *a,
             const float *b, int64_t ld) override {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        first[(m0 + r) * n_ + n0 + c] = a[r * ld + c];
        if (b)
          second[(m0 + r) * n_ + n0 + c] = b[r * ld + c];
      }
  }
  int64_t n_;
  std::vector<float> first, second;
};

// How X is packed: whole, in the 16 x 16 pieces of rows the fused FFN packs
// its hidden operand in, or those pieces given column-major (packColumns).
enum class Packing { Whole, Pieces, ColumnPieces };

// Every item of w over X [m, k] (f32; split: kept as two bf16 terms where
// the kernel multiplies bf16): through runQuantized when w is quantized and
// the kernels do not read it themselves, else the kernel's own run.
Collect runItems(const KernelSet &kernels, const Weights &w,
                 const std::vector<float> &x, int64_t m, bool split = true,
                 Packing packing = Packing::Whole) {
  Workspace packedSpace, workspace;
  PackedRows packed{packedSpace.get(kernels.packedBytes(m, w.k, split) + 64), m,
                    w.k, split};
  kernels.clearPadding(packed);
  if (packing == Packing::Whole)
    kernels.pack(x.data(), MOERT_F32, w.k, 0, m, 0, w.k, packed);
  for (int64_t r = 0; packing != Packing::Whole && r < m; r += 16)
    for (int64_t c = 0; c < w.k; c += 16) {
      int64_t rows = std::min<int64_t>(16, m - r);
      int64_t cols = std::min<int64_t>(16, w.k - c);
      if (packing == Packing::Pieces) {
        kernels.pack(x.data() + r * w.k + c, MOERT_F32, w.k, r, rows, c, cols,
                     packed);
        continue;
      }
      std::vector<float> block(16 * 16, 0.0f);
      for (int64_t j = 0; j < cols; ++j)
        for (int64_t i = 0; i < rows; ++i)
          block[16 * j + i] = x[(r + i) * w.k + c + j];
      kernels.packColumns(block.data(), r, rows, c, cols, packed);
    }
  Collect out(m, w.n);
  for (int64_t item = 0; item < w.items(); ++item) {
    if (w.quantized() && !kernels.readsQuantized)
      runQuantized(kernels, w, item, packed, workspace, out);
    else
      kernels.run(w, item, packed, workspace, out);
  }
  return out;
}

// out[m, n] against x . w^T in double over the dequantized values, within
// k fp32 roundings of the terms' magnitude (and `relative` of it more).
void expectNear(const std::vector<float> &out, const std::vector<float> &x,
                const std::vector<float> &w, int64_t m, int64_t n, int64_t k,
                const std::string &what, double relative = 0) {
  int bad = 0;
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) {
      double exact = 0, magnitude = 0;
      for (int64_t i = 0; i < k; ++i) {
        double p = double(x[r * k + i]) * w[c * k + i];
        exact += p;
        magnitude += std::fabs(p);
      }
      double tolerance = (k * 0x1p-24 + relative) * magnitude + 1e-30;
      float got = out[r * n + c];
      if (!(std::fabs(got - exact) <= tolerance) && bad++ < 5)
        ADD_FAILURE() << what << ": out[" << r << "][" << c << "] = " << got
                      << ", expected " << exact << " +- " << tolerance;
    }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " elements off";
}

// A kernel set under test and the ISA it needs.
struct Path {
  const char *name;
  Isa level;
  const KernelSet &(*kernels)();
};

void PrintTo(const Path &path, std::ostream *os) { *os << path.name; }

std::string pathName(const ::testing::TestParamInfo<Path> &info) {
  return info.param.name;
}

// The fp32 sets, whose items runQuantized widens.
const Path paths[] = {
    {"generic", Isa::Generic,
     []() -> const KernelSet & { return genericKernels(MOERT_F32); }},
#if defined(__x86_64__)
    {"avx2", Isa::Avx2,
     []() -> const KernelSet & { return avx2Kernels(MOERT_F32); }},
    {"avx512", Isa::Avx512,
     []() -> const KernelSet & {
       return avx512Kernels(MOERT_F32, Decode::Rowwise);
     }},
    {"avx512_groups_ahead", Isa::Avx512,
     []() -> const KernelSet & {
       return avx512Kernels(MOERT_F32, Decode::GroupsAhead);
     }},
#endif
};

struct QuantCase {
  moert_weight_format_t format;
  int64_t m, n, k, blockRows, blockCols;
};

// Partial blocks (dims off the block size: 160 x 200 with 128 x 128,
// blocks smaller than the dims), one row and many, k past the kernels'
// chunks; MXFP4 with k a multiple of 32.
const QuantCase cases[] = {
    {MOERT_WEIGHTS_FP8_E4M3_BLOCK, 1, 160, 200, 128, 128},
    {MOERT_WEIGHTS_FP8_E4M3_BLOCK, 5, 47, 90, 16, 32},
    {MOERT_WEIGHTS_FP8_E4M3_BLOCK, 40, 33, 600, 8, 128},
    {MOERT_WEIGHTS_FP8_E4M3_BLOCK, 130, 70, 1100, 128, 128},
    {MOERT_WEIGHTS_FP8_E4M3_BLOCK, 3, 17, 33, 1, 1},
    {MOERT_WEIGHTS_MXFP4, 1, 40, 64, 1, 32},
    {MOERT_WEIGHTS_MXFP4, 7, 33, 96, 1, 32},
    {MOERT_WEIGHTS_MXFP4, 100, 70, 1056, 1, 32},
};

std::string describe(const char *path, const QuantCase &c) {
  return std::string(path) +
         (c.format == MOERT_WEIGHTS_MXFP4 ? " mxfp4 " : " fp8 ") +
         std::to_string(c.m) + "x" + std::to_string(c.n) + "x" +
         std::to_string(c.k) + " blocks " + std::to_string(c.blockRows) + "x" +
         std::to_string(c.blockCols);
}

class QuantizedPath : public ::testing::TestWithParam<Path> {
protected:
  void SetUp() override {
    if (GetParam().level > detectedIsa())
      GTEST_SKIP() << "this CPU has no " << GetParam().name;
  }
};

TEST_P(QuantizedPath, MatchesReferenceLoop) {
  const Path &path = GetParam();
  for (const QuantCase &c : cases) {
    QuantizedTensor w =
        randomQuantized(c.format, c.n, c.k, c.blockRows, c.blockCols, 3);
    std::vector<float> x = randomFloats(c.m * c.k, 4);
    Weights quantized{w.data.data(), nullptr, MOERT_F32, c.n, c.k, &w.quant};
    Collect out = runItems(path.kernels(), quantized, x, c.m);
    expectNear(out.first, x, w.values, c.m, c.n, c.k, describe(path.name, c));
    // The same sums as the fp32 kernel on the dequantized tensor.
    Collect widened =
        runItems(path.kernels(),
                 {w.values.data(), nullptr, MOERT_F32, c.n, c.k}, x, c.m);
    EXPECT_EQ(0, std::memcmp(out.first.data(), widened.first.data(),
                             out.first.size() * sizeof(float)))
        << describe(path.name, c) << ": differs from the dequantized GEMM";
  }
}

// Gate and up in one item, each with its own scales.
TEST_P(QuantizedPath, PairedWeights) {
  const Path &path = GetParam();
  for (const QuantCase &c : cases) {
    QuantizedTensor a =
        randomQuantized(c.format, c.n, c.k, c.blockRows, c.blockCols, 5);
    QuantizedTensor b =
        randomQuantized(c.format, c.n, c.k, c.blockRows, c.blockCols, 6);
    std::vector<float> x = randomFloats(c.m * c.k, 7);
    Weights quantized{a.data.data(), b.data.data(), MOERT_F32, c.n,
                      c.k,           &a.quant,      &b.quant};
    Collect out = runItems(path.kernels(), quantized, x, c.m);
    std::string what = describe(path.name, c) + " paired";
    expectNear(out.first, x, a.values, c.m, c.n, c.k, what + " first");
    expectNear(out.second, x, b.values, c.m, c.n, c.k, what + " second");
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, QuantizedPath, ::testing::ValuesIn(paths),
                         pathName);

#if defined(__x86_64__)
// FP8 read in place (AVX-512-BF16 with VBMI, scale blocks of 64k columns;
// on AMX tiles where the CPU has them).
bool fp8InPlace() {
  Quantization probe{MOERT_WEIGHTS_FP8_E4M3_BLOCK, nullptr, 128, 128};
  return kernelsForQuantized({&probe}, 1).readsQuantized;
}

TEST(Fp8Dispatch, OnlyWholeStepBlocks) {
  if (!fp8InPlace())
    GTEST_SKIP() << "no in-place FP8 kernel at " << isaName(isa());
  for (int64_t blockCols : {1, 32, 100})
    for (moert_weight_format_t format :
         {MOERT_WEIGHTS_FP8_E4M3_BLOCK, MOERT_WEIGHTS_MXFP4}) {
      Quantization q{format, nullptr, 1, blockCols};
      EXPECT_FALSE(kernelsForQuantized({&q}, 1).readsQuantized) << blockCols;
    }
  Quantization fits{MOERT_WEIGHTS_FP8_E4M3_BLOCK, nullptr, 1, 64};
  Quantization other{MOERT_WEIGHTS_FP8_E4M3_BLOCK, nullptr, 1, 32};
  // AMX tiles from a row block's worth of rows on.
  for (int64_t rows : {int64_t(1), amxFp8Rows - 1, amxFp8Rows, int64_t(500)})
    EXPECT_EQ(&kernelsForQuantized({&fits}, rows),
              isa() == Isa::Amx && rows >= amxFp8Rows ? &amxFp8Kernels()
                                                      : &avx512Bf16Fp8Kernels())
        << rows << " rows";
  EXPECT_FALSE(kernelsForQuantized({&fits, &other}, 1).readsQuantized);
}

const Path fp8Sets[] = {
    {"avx512bf16", Isa::Avx512Bf16, avx512Bf16Fp8Kernels},
    {"amx", Isa::Amx, amxFp8Kernels},
};

class Fp8InPlace : public ::testing::TestWithParam<Path> {
protected:
  void SetUp() override {
    if (GetParam().level > detectedIsa() || !hasAvx512Vbmi())
      GTEST_SKIP() << "this CPU has no " << GetParam().name << " with VBMI";
  }
  const KernelSet &kernels() const { return GetParam().kernels(); }
};

// Against the double loop: products exact, X split to 2^-17 (or bf16
// already), the sums and scales fp32; one row and many, partial blocks, k
// off the 64-value step, paired gate and up with their own scales.
TEST_P(Fp8InPlace, MatchesReferenceLoop) {
  const QuantCase fp8Cases[] = {
      {MOERT_WEIGHTS_FP8_E4M3_BLOCK, 1, 160, 200, 128, 128},
      {MOERT_WEIGHTS_FP8_E4M3_BLOCK, 2, 47, 90, 16, 64},
      {MOERT_WEIGHTS_FP8_E4M3_BLOCK, 5, 33, 600, 8, 128},
      {MOERT_WEIGHTS_FP8_E4M3_BLOCK, 40, 70, 1100, 128, 128},
      {MOERT_WEIGHTS_FP8_E4M3_BLOCK, 130, 40, 1100, 1, 64},
  };
  const KernelSet &kernels = this->kernels();
  for (const QuantCase &c : fp8Cases)
    for (bool split : {true, false}) {
      QuantizedTensor a =
          randomQuantized(c.format, c.n, c.k, c.blockRows, c.blockCols, 8);
      QuantizedTensor b =
          randomQuantized(c.format, c.n, c.k, c.blockRows, c.blockCols, 9);
      std::vector<float> x = randomFloats(c.m * c.k, 10);
      if (!split)
        for (float &v : x)
          v = bf16ToFloat(floatToBf16(v));
      std::string what = describe("in place", c) + (split ? " split" : "");
      double relative = split ? 0x1p-16 : 0;
      Collect single = runItems(
          kernels, {a.data.data(), nullptr, MOERT_F32, c.n, c.k, &a.quant}, x,
          c.m, split);
      expectNear(single.first, x, a.values, c.m, c.n, c.k, what, relative);
      Collect paired = runItems(kernels,
                                {a.data.data(), b.data.data(), MOERT_F32, c.n,
                                 c.k, &a.quant, &b.quant},
                                x, c.m, split);
      expectNear(paired.first, x, a.values, c.m, c.n, c.k, what + " first",
                 relative);
      expectNear(paired.second, x, b.values, c.m, c.n, c.k, what + " second",
                 relative);
    }
}

// A row's bits alone, in a block of rows and past a panel of rows.
TEST_P(Fp8InPlace, RowIndependentBits) {
  const int64_t m = 200, n = 40, k = 1100;
  QuantizedTensor w =
      randomQuantized(MOERT_WEIGHTS_FP8_E4M3_BLOCK, n, k, 16, 128, 12);
  Weights weights{w.data.data(), nullptr, MOERT_F32, n, k, &w.quant};
  std::vector<float> x = randomFloats(m * k, 13);
  const KernelSet &kernels = this->kernels();
  Collect all = runItems(kernels, weights, x, m);
  for (int64_t r : {0, 3, 87, 150, 199}) {
    std::vector<float> row(x.begin() + r * k, x.begin() + (r + 1) * k);
    Collect alone = runItems(kernels, weights, row, 1);
    EXPECT_EQ(0, std::memcmp(alone.first.data(), all.first.data() + r * n,
                             n * sizeof(float)))
        << "row " << r;
  }
}

// X packed in the pieces the fused FFN packs its hidden rows in gives the
// same bits as packed whole (the pieces land in the widening's k order).
TEST_P(Fp8InPlace, PackingInPiecesKeepsBits) {
  const int64_t m = 40, n = 40, k = 1100;
  QuantizedTensor w =
      randomQuantized(MOERT_WEIGHTS_FP8_E4M3_BLOCK, n, k, 16, 128, 14);
  Weights weights{w.data.data(), nullptr, MOERT_F32, n, k, &w.quant};
  std::vector<float> x = randomFloats(m * k, 15);
  for (bool split : {true, false}) {
    Collect whole = runItems(kernels(), weights, x, m, split);
    for (Packing packing : {Packing::Pieces, Packing::ColumnPieces}) {
      if (packing == Packing::ColumnPieces && !kernels().packColumns)
        continue;
      Collect pieces = runItems(kernels(), weights, x, m, split, packing);
      EXPECT_EQ(0, std::memcmp(whole.first.data(), pieces.first.data(),
                               m * n * sizeof(float)))
          << (packing == Packing::Pieces ? "pieces" : "column pieces")
          << (split ? " split" : "");
    }
  }
}

// Every byte through the in-place widening, one k position at a time (X
// rows one-hot, scales powers of two: every output exact), k off the step;
// a NaN code makes its row NaN, as the dequantized product does.
TEST_P(Fp8InPlace, WidensEveryByteExactly) {
  const int64_t n = 256, k = 200, blockRows = 16, blockCols = 64;
  QuantizedLayout layout{MOERT_WEIGHTS_FP8_E4M3_BLOCK, n, k, blockRows,
                         blockCols};
  std::vector<uint8_t> data(n * k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < k; ++t) {
      auto byte = static_cast<uint8_t>(i + 3 * t);
      data[i * k + t] = (byte & 0x7f) == 0x7f ? 0 : byte;
    }
  data[0 * k + 5] = 0x7f;
  data[1 * k + 150] = 0xff;
  std::vector<float> scales(layout.scaleElements());
  for (size_t s = 0; s < scales.size(); ++s)
    scales[s] = std::ldexp(1.0f, static_cast<int>(s % 7) - 3);
  Quantization quant{MOERT_WEIGHTS_FP8_E4M3_BLOCK, scales.data(), blockRows,
                     blockCols};
  std::vector<float> x(k * k, 0.0f);
  for (int64_t t = 0; t < k; ++t)
    x[t * k + t] = 1.0f;
  Collect out = runItems(
      kernels(), {data.data(), nullptr, MOERT_F32, n, k, &quant}, x, k, false);
  int bad = 0;
  for (int64_t t = 0; t < k; ++t)
    for (int64_t i = 0; i < n; ++i) {
      float got = out.first[t * n + i];
      float expected =
          i < 2 ? std::nanf("") : layout.at(data.data(), scales.data(), i, t);
      bool same = std::isnan(expected) ? std::isnan(got) : got == expected;
      if (!same && bad++ < 5)
        ADD_FAILURE() << "row " << i << " k " << t << ": " << got
                      << ", expected " << expected;
    }
  EXPECT_EQ(bad, 0);
}

INSTANTIATE_TEST_SUITE_P(Isa, Fp8InPlace, ::testing::ValuesIn(fp8Sets),
                         pathName);
#endif

// The grouped FFN of quantized experts equals, bit for bit, the grouped FFN
// of their dequantized f32 weights on the dispatched ISA; where that reads
// FP8 in place (different sums), within 1e-5 of the largest output.
TEST(CpuQuantizedFfn, EqualsDequantizedFfn) {
  struct Case {
    moert_weight_format_t format;
    int64_t hidden, ffn, blockRows, blockCols;
    std::vector<std::vector<RowRun>> runs;
    int64_t tokens;
  };
  const Case ffnCases[] = {
      {MOERT_WEIGHTS_FP8_E4M3_BLOCK,
       160,
       96,
       128,
       128,
       {{{0, 1}}, {{1, 1}}},
       2},
      {MOERT_WEIGHTS_FP8_E4M3_BLOCK,
       70,
       45,
       16,
       32,
       {{{0, 3}, {10, 20}}, {{3, 7}}, {{30, 1}}},
       31},
      // Experts on both sides of amxFp8Rows in one call (on AMX: tiles
      // and VDPBF16PS), k off the 64-value step in both GEMMs.
      {MOERT_WEIGHTS_FP8_E4M3_BLOCK,
       200,
       136,
       128,
       64,
       {{{0, 40}}, {{40, 3}}, {{43, 17}}},
       60},
      {MOERT_WEIGHTS_MXFP4, 64, 96, 1, 32, {{{0, 40}}, {{40, 9}}}, 49},
  };
  for (const Case &c : ffnCases) {
    size_t experts = c.runs.size();
    std::vector<float> x = randomFloats(c.tokens * c.hidden, 11);
    std::vector<QuantizedTensor> g, u, d;
    for (size_t e = 0; e < experts; ++e) {
      g.push_back(randomQuantized(c.format, c.ffn, c.hidden, c.blockRows,
                                  c.blockCols, 20 + e));
      u.push_back(randomQuantized(c.format, c.ffn, c.hidden, c.blockRows,
                                  c.blockCols, 40 + e));
      d.push_back(randomQuantized(c.format, c.hidden, c.ffn, c.blockRows,
                                  c.blockCols, 60 + e));
    }
    auto run = [&](bool quantized) {
      GemmContext context(3);
      std::vector<float> out(c.tokens * c.hidden, 0.0f);
      std::vector<FfnProblem> problems;
      for (size_t e = 0; e < experts; ++e) {
        ProblemRows rows{reinterpret_cast<const char *>(x.data()), MOERT_F32,
                         reinterpret_cast<char *>(out.data()), MOERT_F32,
                         c.runs[e]};
        if (quantized)
          problems.push_back({rows, c.hidden, c.ffn, MOERT_ACT_SILU,
                              g[e].data.data(), u[e].data.data(),
                              d[e].data.data(), MOERT_F32, MOERT_F32, nullptr,
                              nullptr, &g[e].quant, &u[e].quant, &d[e].quant});
        else
          problems.push_back({rows, c.hidden, c.ffn, MOERT_ACT_SILU,
                              g[e].values.data(), u[e].values.data(),
                              d[e].values.data(), MOERT_F32, MOERT_F32, nullptr,
                              nullptr});
      }
      groupedFfn(context, problems);
      return out;
    };
    std::vector<float> quantized = run(true), widened = run(false);
    bool anyNonZero = false;
    for (float v : quantized)
      anyNonZero |= v != 0.0f;
    EXPECT_TRUE(anyNonZero);
    std::string what = std::string(isaName(isa())) + " hidden " +
                       std::to_string(c.hidden) + " ffn " +
                       std::to_string(c.ffn);
    if (!kernelsForQuantized({&g[0].quant}, 1).readsQuantized) {
      EXPECT_EQ(0, std::memcmp(quantized.data(), widened.data(),
                               quantized.size() * sizeof(float)))
          << what;
      continue;
    }
    float largest = 0;
    for (float v : widened)
      largest = std::max(largest, std::fabs(v));
    for (size_t i = 0; i < widened.size(); ++i)
      ASSERT_NEAR(quantized[i], widened[i], 1e-5f * largest)
          << what << " " << i;
  }
}

} // namespace
