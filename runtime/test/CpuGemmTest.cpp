//===- runtime/test/CpuGemmTest.cpp - The CPU GEMM kernels, each ISA ------===//
//
// Every kernel set (generic, AVX2, AVX-512, AVX-512-BF16, AMX) is run
// directly on odd shapes against a double-precision reference, so that a
// broken or missing kernel fails here even when the dispatch would not pick
// it. Paths this CPU lacks are skipped, never passed. The grouped FFN is
// checked the same way through the dispatch (ctest reruns it under each
// MOERT_CPU_ISA).
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Convert.h"
#include "runtime/cpu/AttentionRows.h"
#include "runtime/cpu/GroupedGemm.h"
#include "runtime/cpu/ThreadPool.h"
#include "runtime/cpu/gemm/Isa.h"
#include "runtime/cpu/gemm/Kernels.h"
#include "runtime/cpu/gemm/StoreFloats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

using namespace moert;
using namespace moert::cpu;
using namespace moert::cpu::gemm;

namespace {

// Values in `dtype` (raw bytes) and the same values as fp32, exactly.
struct Tensor {
  std::vector<char> bytes;
  std::vector<float> values;
  moert_dtype_t dtype;
};

Tensor randomTensor(int64_t count, moert_dtype_t dtype, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> raw(count);
  for (float &v : raw)
    v = dist(rng);
  Tensor t{std::vector<char>(count * dtypeSize(dtype) + 1), raw, dtype};
  convertFromFloat(raw.data(), t.bytes.data(), dtype, count);
  convertToFloat(t.bytes.data(), dtype, t.values.data(), count);
  return t;
}

// Collects a GEMM's outputs as [m, n] (and the paired second as [m, n]).
class Collect final : public Sink {
public:
  Collect(int64_t m, int64_t n)
      : n_(n), first(m * n, std::nanf("")), second(m * n, std::nanf("")) {}
  void store(int64_t m0, int64_t rows, int64_t n0, int64_t cols,
             const float *a, const float *b, int64_t ld) override {
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

// Packs X (whole, or in 16-row x 16-column pieces, as the fused FFN packs
// its hidden operand) and runs every item. An f32 or f16 X is split into
// two bf16 terms for the kernels that multiply bf16, unless !splitFloats
// (one term, as the fused FFN packs its hidden operand before bf16 weights).
Collect runKernels(const KernelSet &kernels, const Weights &w, const Tensor &x,
                   int64_t m, bool piecewise = false, bool splitFloats = true) {
  Workspace packedSpace, workspace;
  bool split = x.dtype != MOERT_BF16 && splitFloats;
  PackedRows packed{packedSpace.get(kernels.packedBytes(m, w.k, split) + 64),
                    m, w.k, split};
  kernels.clearPadding(packed);
  size_t element = dtypeSize(x.dtype);
  if (!piecewise) {
    kernels.pack(x.bytes.data(), x.dtype, w.k, 0, m, 0, w.k, packed);
  } else {
    for (int64_t r = 0; r < m; r += 16)
      for (int64_t c = 0; c < w.k; c += 16)
        kernels.pack(x.bytes.data() + (r * w.k + c) * element, x.dtype, w.k, r,
                     std::min<int64_t>(16, m - r), c,
                     std::min<int64_t>(16, w.k - c), packed);
  }
  Collect out(m, w.n);
  for (int64_t item = 0; item < w.items(); ++item)
    kernels.run(w, item, packed, workspace, out);
  return out;
}

// Checks out[m, n] against x . w^T in double: each element within
// `relative` of sum |x||w| plus fp32 summation error.
void expectNear(const std::vector<float> &out, const Tensor &x,
                const Tensor &w, int64_t m, int64_t n, int64_t k,
                double relative, const std::string &what) {
  int bad = 0;
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) {
      double exact = 0, magnitude = 0;
      for (int64_t i = 0; i < k; ++i) {
        double p = double(x.values[r * k + i]) * w.values[c * k + i];
        exact += p;
        magnitude += std::fabs(p);
      }
      double tolerance = (relative + k * 0x1p-24) * magnitude + 1e-30;
      float got = out[r * n + c];
      if (!(std::fabs(got - exact) <= tolerance) && bad++ < 5)
        ADD_FAILURE() << what << ": out[" << r << "][" << c << "] = " << got
                      << ", expected " << exact << " +- " << tolerance;
    }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " elements off";
}

struct Path {
  const char *name;
  Isa level;
  const KernelSet *(*kernels)(moert_dtype_t weights); // null: dtype unsupported
  bool multipliesBf16; // f32/f16 X is split into two bf16 terms
};

void PrintTo(const Path &path, std::ostream *os) { *os << path.name; }

const KernelSet *generic(moert_dtype_t w) { return &genericKernels(w); }
#if defined(__x86_64__)
const KernelSet *avx2(moert_dtype_t w) { return &avx2Kernels(w); }
const KernelSet *avx512(moert_dtype_t w) {
  return &avx512Kernels(w, Decode::Rowwise);
}
const KernelSet *avx512GroupsAhead(moert_dtype_t w) {
  return &avx512Kernels(w, Decode::GroupsAhead);
}
const KernelSet *avx512Bf16(moert_dtype_t w) {
  return w == MOERT_BF16 ? &avx512Bf16Kernels(Decode::Rowwise) : nullptr;
}
const KernelSet *avx512Bf16GroupsAhead(moert_dtype_t w) {
  return w == MOERT_BF16 ? &avx512Bf16Kernels(Decode::GroupsAhead) : nullptr;
}
const KernelSet *amx(moert_dtype_t w) {
  return w == MOERT_BF16 ? &amxKernels() : nullptr;
}
#endif

const Path paths[] = {
    {"generic", Isa::Generic, generic, false},
#if defined(__x86_64__)
    {"avx2", Isa::Avx2, avx2, false},
    {"avx512", Isa::Avx512, avx512, false},
    {"avx512_groups_ahead", Isa::Avx512, avx512GroupsAhead, false},
    {"avx512bf16", Isa::Avx512Bf16, avx512Bf16, true},
    {"avx512bf16_groups_ahead", Isa::Avx512Bf16, avx512Bf16GroupsAhead, true},
    {"amx", Isa::Amx, amx, true},
#endif
};

bool cpuHas(Isa level) { return level <= detectedIsa(); }

struct Shape {
  int64_t m, n, k;
};

// No rows (a rank the routing left idle), 1 row, rows and columns off every
// multiple of 16/32, k past the kernels' k chunks (256 to 2048), and many
// rows.
const Shape shapes[] = {{0, 17, 33},    {1, 1, 1},     {1, 17, 33},
                        {3, 50, 100},   {17, 33, 513}, {16, 32, 64},
                        {31, 47, 1100}, {1, 300, 2},   {200, 40, 70},
                        {1000, 19, 37}, {5, 40, 2100}, {13, 21, 4500}};

class KernelPath : public ::testing::TestWithParam<Path> {
protected:
  void SetUp() override {
    if (!cpuHas(GetParam().level))
      GTEST_SKIP() << "this CPU has no " << GetParam().name;
  }
};

TEST_P(KernelPath, MatchesDoubleReference) {
  const Path &path = GetParam();
  for (moert_dtype_t wType : {MOERT_F32, MOERT_F16, MOERT_BF16}) {
    const KernelSet *kernels = path.kernels(wType);
    if (!kernels)
      continue;
    for (moert_dtype_t xType : {MOERT_F32, MOERT_BF16, MOERT_F16})
      for (const Shape &s : shapes) {
        Tensor w = randomTensor(s.n * s.k, wType, 7 + s.n);
        Tensor x = randomTensor(s.m * s.k, xType, 11 + s.m);
        Collect out = runKernels(*kernels, {w.bytes.data(), nullptr, wType,
                                            s.n, s.k},
                                 x, s.m);
        // Split X: two bf16 terms leave 2^-17 of each x.
        double relative = path.multipliesBf16 && xType != MOERT_BF16
                              ? 0x1p-16
                              : 0.0;
        expectNear(out.first, x, w, s.m, s.n, s.k, relative,
                   std::string(path.name) + " w " + dtypeName(wType) + " x " +
                       dtypeName(xType) + " " + std::to_string(s.m) + "x" +
                       std::to_string(s.n) + "x" + std::to_string(s.k));
      }
  }
}

// Gate and up in one item: both outputs right, each in its own block.
TEST_P(KernelPath, PairedWeights) {
  const Path &path = GetParam();
  for (moert_dtype_t wType : {MOERT_F32, MOERT_BF16}) {
    const KernelSet *kernels = path.kernels(wType);
    if (!kernels)
      continue;
    for (const Shape &s : {Shape{5, 23, 77}, Shape{40, 16, 600}}) {
      Tensor a = randomTensor(s.n * s.k, wType, 1),
             b = randomTensor(s.n * s.k, wType, 2);
      Tensor x = randomTensor(s.m * s.k, MOERT_F32, 3);
      Collect out = runKernels(
          *kernels, {a.bytes.data(), b.bytes.data(), wType, s.n, s.k}, x, s.m);
      double relative = path.multipliesBf16 ? 0x1p-16 : 0.0;
      expectNear(out.first, x, a, s.m, s.n, s.k, relative,
                 std::string(path.name) + " paired first");
      expectNear(out.second, x, b, s.m, s.n, s.k, relative,
                 std::string(path.name) + " paired second");
    }
  }
}

// A row's bits do not depend on the other rows, their count, or how X was
// packed: what makes expert-parallel runs equal single-rank runs.
TEST_P(KernelPath, RowIndependentBits) {
  const Path &path = GetParam();
  for (moert_dtype_t wType : {MOERT_F32, MOERT_BF16}) {
    const KernelSet *kernels = path.kernels(wType);
    if (!kernels)
      continue;
    // An f32 X is split in two bf16 terms by the bf16 kernels; a bf16 X not.
    for (moert_dtype_t xType : {MOERT_F32, MOERT_BF16}) {
      int64_t m = 1000, n = 37, k = 1100;
      size_t rowBytes = k * dtypeSize(xType);
      Tensor w = randomTensor(n * k, wType, 5);
      Tensor x = randomTensor(m * k, xType, 6);
      Weights weights{w.bytes.data(), nullptr, wType, n, k};
      std::string what = std::string(path.name) + " w " + dtypeName(wType) +
                         " x " + dtypeName(xType);
      Collect all = runKernels(*kernels, weights, x, m);
      Collect pieces = runKernels(*kernels, weights, x, m, true);
      EXPECT_EQ(0, std::memcmp(all.first.data(), pieces.first.data(),
                               m * n * sizeof(float)))
          << what << ": packing in pieces changed bits";
      // Alone, among a few rows (the kernels' decode paths: one weight row
      // at a time up to 2 rows of X of 8 KB in all, else 8 at once for 1
      // row, 4 from 2 rows; groups ahead, 8 at once up to 3 rows) and
      // among a few dozen (AVX-512: the row-dot kernels up to 48 rows,
      // outer products past them).
      for (int64_t count : {1, 2, 3, 4, 5, 20, 60})
        for (int64_t r : {0, 1, 15, 16, 17, 500, 995}) {
          if (r + count > m)
            continue;
          Tensor rows = x;
          rows.bytes.assign(x.bytes.begin() + r * rowBytes,
                            x.bytes.begin() + (r + count) * rowBytes);
          Collect few = runKernels(*kernels, weights, rows, count);
          EXPECT_EQ(0, std::memcmp(few.first.data(), all.first.data() + r * n,
                                   count * n * sizeof(float)))
              << what << ": rows " << r << " to " << r + count - 1
              << " differ from those among 1000";
        }
    }
  }
}

// An f32 X packed as one bf16 term, in pieces of 16 columns (the fused
// FFN's hidden blocks of a paired item, half a 32-pair step) or whole: the
// same bits, in the row layout and the class groups, with pieces that cross
// a group's 12 rows and a last piece short of 16 columns.
TEST_P(KernelPath, UnsplitFloatPiecesKeepBits) {
  const KernelSet *kernels = GetParam().kernels(MOERT_BF16);
  if (!kernels)
    return;
  for (const Shape &s : {Shape{30, 20, 80}, Shape{100, 20, 80},
                         Shape{100, 33, 70}}) {
    Tensor w = randomTensor(s.n * s.k, MOERT_BF16, 41);
    Tensor x = randomTensor(s.m * s.k, MOERT_F32, 42);
    Weights weights{w.bytes.data(), nullptr, MOERT_BF16, s.n, s.k};
    Collect whole = runKernels(*kernels, weights, x, s.m, false, false);
    Collect pieces = runKernels(*kernels, weights, x, s.m, true, false);
    EXPECT_EQ(0, std::memcmp(whole.first.data(), pieces.first.data(),
                             s.m * s.n * sizeof(float)))
        << GetParam().name << " " << s.m << "x" << s.n << "x" << s.k;
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, KernelPath, ::testing::ValuesIn(paths),
                         [](const auto &info) {
                           return std::string(info.param.name);
                         });

// kernelsFor picks the best set the (capped) ISA allows per weight dtype
// and, for bf16 on AMX, row count; the AVX-512 sets take this CPU's Decode.
TEST(CpuGemmDispatch, FollowsIsa) {
  Isa level = isa();
  for (moert_dtype_t wType : {MOERT_F32, MOERT_F16, MOERT_BF16})
    for (int64_t rows : {1, 2, 3, 100}) {
      const KernelSet *expected = &genericKernels(wType);
#if defined(__x86_64__)
      if (wType == MOERT_BF16 && level == Isa::Amx && rows >= amxBf16Rows)
        expected = &amxKernels();
      else if (wType == MOERT_BF16 && level >= Isa::Avx512Bf16)
        expected = &avx512Bf16Kernels(decode());
      else if (level >= Isa::Avx512)
        expected = &avx512Kernels(wType, decode());
      else if (level >= Isa::Avx2)
        expected = &avx2Kernels(wType);
#endif
      EXPECT_EQ(&kernelsFor(wType, rows), expected)
          << dtypeName(wType) << ", " << rows << " rows";
    }
  // A cap lowers the level to its own, never above what the CPU has.
  Isa expected = detectedIsa();
  if (const char *cap = std::getenv("MOERT_CPU_ISA"))
    for (Isa l : {Isa::Generic, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16,
                   Isa::Amx})
      if (std::string(cap) == isaName(l) && l < expected)
        expected = l;
  EXPECT_EQ(isaName(level), std::string(isaName(expected)));
}

// Intel CPUs stream decode weights in whole groups asking ahead, others row
// by row, unless MOERT_CPU_DECODE names one; the vendor from the kernel's
// /proc/cpuinfo, not CPUID as decode() reads it.
TEST(CpuGemmDispatch, DecodeFollowsVendor) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, vendor;
  while (vendor.empty() && std::getline(cpuinfo, line))
    if (line.rfind("vendor_id", 0) == 0)
      vendor = line.substr(line.find(':') + 2);
  if (vendor.empty())
    GTEST_SKIP() << "no vendor_id in /proc/cpuinfo";
  Decode expected =
      vendor == "GenuineIntel" ? Decode::GroupsAhead : Decode::Rowwise;
  if (const char *name = std::getenv("MOERT_CPU_DECODE"))
    for (Decode d : {Decode::Rowwise, Decode::GroupsAhead})
      if (std::string(name) == decodeName(d))
        expected = d;
  EXPECT_EQ(decodeName(decode()), std::string(decodeName(expected))) << vendor;
}

// The grouped FFN through the dispatch: gated SwiGLU over several experts'
// row runs, f32 / f16 / bf16 weights, against double.
struct FfnCase {
  int64_t hidden, ffn;
  std::vector<std::vector<RowRun>> runs; // per expert
  int64_t tokens;
};

// down(silu(x . g) * (x . u)) for one row, in double. Before bf16 down
// weights the hidden is rounded to bf16, as the backend stores it; where a
// value sits so near a rounding boundary that the kernels' own fp32 error
// may round it the other way, slack[o] allows that one bf16 step.
struct ReferenceRow {
  std::vector<double> y, slack;
};

ReferenceRow referenceFfn(const Tensor &x, const Tensor &g, const Tensor &u,
                          const Tensor &d, int64_t hidden, int64_t ffn,
                          int64_t row, int64_t expert) {
  std::vector<double> h(ffn), step(ffn, 0.0);
  ReferenceRow ref{std::vector<double>(hidden, 0.0),
                   std::vector<double>(hidden, 0.0)};
  const float *xr = x.values.data() + row * hidden;
  for (int64_t f = 0; f < ffn; ++f) {
    double a = 0, b = 0;
    const float *gr = g.values.data() + (expert * ffn + f) * hidden;
    const float *ur = u.values.data() + (expert * ffn + f) * hidden;
    for (int64_t i = 0; i < hidden; ++i) {
      a += double(xr[i]) * gr[i];
      b += double(xr[i]) * ur[i];
    }
    h[f] = a / (1 + std::exp(-a)) * b;
    if (d.dtype != MOERT_BF16 || h[f] == 0)
      continue;
    double rounded = bf16ToFloat(floatToBf16(static_cast<float>(h[f])));
    double ulp = std::ldexp(1.0, std::ilogb(h[f]) - 7);
    if (ulp / 2 - std::fabs(h[f] - rounded) < std::ldexp(std::fabs(h[f]), -12))
      step[f] = ulp;
    h[f] = rounded;
  }
  for (int64_t o = 0; o < hidden; ++o) {
    const float *dr = d.values.data() + (expert * hidden + o) * ffn;
    for (int64_t f = 0; f < ffn; ++f) {
      ref.y[o] += h[f] * dr[f];
      ref.slack[o] += step[f] * std::fabs(dr[f]);
    }
  }
  return ref;
}

std::vector<float> runFfn(int threads, const FfnCase &c, const Tensor &x,
                          const Tensor &g, const Tensor &u, const Tensor &d) {
  GemmContext context(threads);
  std::vector<float> out(c.tokens * c.hidden, 0.0f);
  std::vector<FfnProblem> problems;
  size_t wBytes = dtypeSize(g.dtype);
  for (size_t e = 0; e < c.runs.size(); ++e)
    problems.push_back(
        {{x.bytes.data(), x.dtype, reinterpret_cast<char *>(out.data()),
          MOERT_F32, c.runs[e]},
         c.hidden, c.ffn, MOERT_ACT_SILU,
         g.bytes.data() + e * c.ffn * c.hidden * wBytes,
         u.bytes.data() + e * c.ffn * c.hidden * wBytes,
         d.bytes.data() + e * c.hidden * c.ffn * wBytes, g.dtype, d.dtype,
         nullptr, nullptr});
  groupedFfn(context, problems);
  return out;
}

const FfnCase ffnCases[] = {
    // decode: one token's two choices, each expert its own out row
    {96, 200, {{{0, 1}}, {{1, 1}}}, 2},
    // odd extents, runs that split and skip rows
    {70, 45, {{{0, 3}, {10, 20}}, {{3, 7}}, {{30, 1}}}, 31},
    // many rows in one expert
    {64, 80, {{{0, 300}}, {{300, 17}}}, 317},
    // nine experts of a few rows each: a thread may run whole experts
    // (groupedFfn does on 1 and 2 threads, not on 3 or 8)
    {48,
     40,
     {{{0, 5}},
      {{5, 6}},
      {{11, 4}},
      {{15, 5}},
      {{20, 6}},
      {{26, 5}},
      {{31, 4}},
      {{35, 6}},
      {{41, 7}}},
     48},
};

TEST(CpuGroupedFfn, MatchesDoubleReference) {
  for (moert_dtype_t wType : {MOERT_F32, MOERT_F16, MOERT_BF16})
    for (const FfnCase &c : ffnCases) {
      int64_t experts = c.runs.size();
      Tensor x = randomTensor(c.tokens * c.hidden, MOERT_F32, 21);
      Tensor g = randomTensor(experts * c.ffn * c.hidden, wType, 22);
      Tensor u = randomTensor(experts * c.ffn * c.hidden, wType, 23);
      Tensor d = randomTensor(experts * c.hidden * c.ffn, wType, 24);
      std::vector<float> out = runFfn(2, c, x, g, u, d);
      // A bf16 first GEMM takes the f32 X as two bf16 terms (2^-17).
      double tolerance = wType == MOERT_BF16 && isa() >= Isa::Avx512Bf16
                             ? 2e-4
                             : 2e-5;
      int bad = 0;
      for (int64_t e = 0; e < experts; ++e)
        for (const RowRun &run : c.runs[e])
          for (int64_t r = run.first; r < run.first + run.count; ++r) {
            ReferenceRow ref = referenceFfn(x, g, u, d, c.hidden, c.ffn, r, e);
            const std::vector<double> &y = ref.y;
            double scale = 0;
            for (double v : y)
              scale = std::max(scale, std::fabs(v));
            for (int64_t o = 0; o < c.hidden; ++o)
              if (!(std::fabs(out[r * c.hidden + o] - y[o]) <=
                    tolerance * (scale + 1) + ref.slack[o]) &&
                  bad++ < 5)
                ADD_FAILURE() << isaName(isa()) << " " << dtypeName(wType)
                              << " row " << r << " out " << o << ": "
                              << out[r * c.hidden + o] << " vs " << y[o];
          }
      EXPECT_EQ(bad, 0);
    }
}

// The rank's thread count never changes a bit of the output.
TEST(CpuGroupedFfn, ThreadCountKeepsBits) {
  for (moert_dtype_t wType : {MOERT_F32, MOERT_BF16})
    for (const FfnCase &c : ffnCases) {
      int64_t experts = c.runs.size();
      Tensor x = randomTensor(c.tokens * c.hidden, MOERT_BF16, 31);
      Tensor g = randomTensor(experts * c.ffn * c.hidden, wType, 32);
      Tensor u = randomTensor(experts * c.ffn * c.hidden, wType, 33);
      Tensor d = randomTensor(experts * c.hidden * c.ffn, wType, 34);
      std::vector<float> one = runFfn(1, c, x, g, u, d);
      for (int threads : {2, 3, 8}) {
        std::vector<float> many = runFfn(threads, c, x, g, u, d);
        EXPECT_EQ(0, std::memcmp(one.data(), many.data(),
                                 one.size() * sizeof(float)))
            << threads << " threads, " << dtypeName(wType);
      }
    }
}

// Every fp32 -> bf16 path gives the scalar floatToBf16's bits: zeros,
// denormals (which VCVTNEPS2BF16 would flush), ties both ways, overflow to
// inf, infs and NaNs (signalling ones come out quiet), at every position of
// a vector and its tail.
TEST(CpuStoreFloats, EveryPathMatchesScalarBits) {
  std::vector<uint32_t> bits = {
      0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x00008000, 0x00018000,
      0x007fffff, 0x807fffff, 0x00800000, 0x3f808000, 0x3f818000, 0x3f808001,
      0x3f807fff, 0xbf818000, 0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f7f7fff,
      0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001,
      0x7fbfffff, 0x7fffffff, 0xffffffff, 0x7f80ffff, 0x3f800000, 0xc0490fdb};
  std::mt19937 rng(41);
  for (int i = 0; i < 100000; ++i)
    bits.push_back(rng());
  std::vector<float> values(bits.size());
  std::memcpy(values.data(), bits.data(), bits.size() * sizeof(float));
  std::vector<uint16_t> want(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    want[i] = floatToBf16(values[i]);

  using Convert = void (*)(const float *, uint16_t *, int64_t);
  struct Route {
    const char *name;
    Isa level;
    Convert convert;
  };
  std::vector<Route> routes = {{"generic", Isa::Generic, floatsToBf16Generic}};
#if defined(__x86_64__)
  routes.push_back({"avx2", Isa::Avx2, floatsToBf16Avx2});
  routes.push_back({"avx512", Isa::Avx512, floatsToBf16Avx512});
#endif
  auto storeDispatched = [](const float *src, uint16_t *dst, int64_t count) {
    storeFloats(src, dst, MOERT_BF16, count);
  };
  routes.push_back({"dispatched", Isa::Generic, storeDispatched});
  for (const Route &route : routes) {
    if (!cpuHas(route.level)) {
      std::cout << "skipped " << route.name << ": this CPU lacks it\n";
      continue;
    }
    // Whole arrays, then every length 0 to 40 from every offset 0 to 16,
    // checking that nothing past the end is written.
    std::vector<uint16_t> got(values.size(), 0x1234);
    route.convert(values.data(), got.data(), values.size());
    for (size_t i = 0; i < values.size(); ++i)
      ASSERT_EQ(got[i], want[i])
          << route.name << ": bits 0x" << std::hex << bits[i];
    for (int64_t offset = 0; offset <= 16; ++offset)
      for (int64_t count = 0; count <= 40; ++count) {
        std::vector<uint16_t> part(count + 1, 0x1234);
        route.convert(values.data() + offset, part.data(), count);
        for (int64_t i = 0; i < count; ++i)
          ASSERT_EQ(part[i], want[offset + i])
              << route.name << " offset " << offset << " count " << count;
        ASSERT_EQ(part[count], 0x1234)
            << route.name << " wrote past " << count << " values";
      }
  }
  // Rounding in place keeps those bits in fp32, tails included.
  for (int64_t offset = 0; offset <= 16; ++offset)
    for (int64_t count : {int64_t(0), int64_t(1), int64_t(15), int64_t(33),
                          static_cast<int64_t>(values.size()) - offset}) {
      std::vector<float> rounded(values.begin() + offset, values.end());
      roundToBf16InPlace(rounded.data(), count);
      for (int64_t i = 0; i < static_cast<int64_t>(rounded.size()); ++i) {
        uint32_t got;
        std::memcpy(&got, &rounded[i], sizeof(got));
        uint32_t expect = i < count ? uint32_t(want[offset + i]) << 16
                                    : bits[offset + i];
        ASSERT_EQ(got, expect) << "in place, offset " << offset << " count "
                               << count << " element " << i;
      }
    }
  // Other dtypes go through convertFromFloat unchanged.
  float f[3] = {1.5f, -2.25f, 0.1f};
  uint16_t half[3], expected[3];
  storeFloats(f, half, MOERT_F16, 3);
  convertFromFloat(f, expected, MOERT_F16, 3);
  EXPECT_EQ(0, std::memcmp(half, expected, sizeof(half)));
}

// The panel form of the attention scores gives the row form's bits for
// every key dtype, head size (tails of d included), key count and column
// offset inside the panel.
TEST(CpuAttentionRows, PanelScoresAreTheRowScoresBits) {
  const AttentionRows &rows = attentionRows();
  for (moert_dtype_t type : {MOERT_F32, MOERT_F16, MOERT_BF16})
    for (int64_t dim : {8, 64, 80, 128}) {
      const int64_t keys = 70, ld = 3 * dim, width = 80;
      Tensor cache = randomTensor(keys * ld, type, 51);
      Tensor q = randomTensor(dim, MOERT_F32, 52);
      std::vector<float> panel(dim * width + 16, 0.0f);
      rows.transpose(cache.bytes.data(), type, ld, dim, keys, width,
                     panel.data());
      for (int64_t t = 0; t < keys; ++t)
        for (int64_t d = 0; d < dim; ++d)
          ASSERT_EQ(panel[d * width + t], cache.values[t * ld + d]);
      for (int64_t offset : {0, 5})
        for (int64_t count : {1, 15, 16, 17, 40, 65}) {
          std::vector<float> byRows(count), byPanel(count + 1, 7.0f);
          rows.scores(q.values.data(),
                      cache.bytes.data() + offset * ld * dtypeSize(type), type,
                      ld, dim, count, 0.125f, byRows.data());
          rows.panelScores(q.values.data(), panel.data() + offset, width, dim,
                           count, 0.125f, byPanel.data());
          EXPECT_EQ(0, std::memcmp(byRows.data(), byPanel.data(),
                                   count * sizeof(float)))
              << dtypeName(type) << " dim " << dim << " offset " << offset
              << " count " << count;
          EXPECT_EQ(byPanel[count], 7.0f) << "wrote past " << count;
        }
    }
}

TEST(CpuThreads, PerRankShareOfCores) {
  const char *saved = std::getenv("MOERT_CPU_THREADS");
  std::string keep = saved ? saved : "";
  unsetenv("MOERT_CPU_THREADS");
  int all = threadsPerRank(1);
  EXPECT_GE(all, 1);
  EXPECT_EQ(threadsPerRank(all * 4), 1); // more ranks than cores: 1 each
  EXPECT_EQ(threadsPerRank(2), std::max(1, all / 2));
  setenv("MOERT_CPU_THREADS", "3", 1);
  EXPECT_EQ(threadsPerRank(8), 3);
  setenv("MOERT_CPU_THREADS", "zero", 1);
  EXPECT_ANY_THROW(threadsPerRank(1));
  if (saved)
    setenv("MOERT_CPU_THREADS", keep.c_str(), 1);
  else
    unsetenv("MOERT_CPU_THREADS");
}

} // namespace
