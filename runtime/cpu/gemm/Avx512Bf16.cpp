//===- runtime/cpu/gemm/Avx512Bf16.cpp - AVX-512-BF16 kernels -------------===//
//
// VDPBF16PS over steps of 32 k values, 16 bf16 pairs: lane l of an
// accumulator sums pair l of every step (class l, LaneClasses.h) in k
// order, a split X's hi term before its lo. Up to 48 rows the row-dot kernel
// (DotKernel.h) reads the weights in place, with no transposition; past
// them the classes are outer products over a panel of the item's pairs.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/gemm/Kernels.h"

#include "runtime/common/Convert.h"
#include "runtime/cpu/gemm/Avx512Util.h"
#include "runtime/cpu/gemm/LaneClasses.h"
#define MOERT_DOT_TARGET MOERT_AVX512_BF16
#include "runtime/cpu/gemm/DotKernel.h"

#include <algorithm>
#include <cstring>
#include <utility>

using namespace moert;
using namespace moert::cpu::gemm;

namespace {

constexpr int64_t pairStep = 2 * classes;
constexpr int64_t panelColumns = 2 * slabRows;
int64_t pairSteps(int64_t k) { return (k + pairStep - 1) / pairStep; }

template <bool Split> struct PairVector {
  using Reg = __m512;
  using XElement = uint16_t;
  struct XReg {
    __m512bh hi, lo;
  };
  static constexpr int64_t lanes = pairStep, blockRows = 3;
  static constexpr int64_t planes = Split ? 2 : 1;
  // Packed rows: per step the 32 hi values, then (split) the 32 lo.
  static int64_t xOffset(int64_t k0) { return k0 * planes; }
  MOERT_AVX512_BF16 static Reg zero() { return _mm512_setzero_ps(); }
  // Packed rows are zero past k to the end of the step: no mask.
  MOERT_AVX512_BF16 static XReg loadX(const uint16_t *row, int64_t i, int64_t) {
    const uint16_t *at = row + i * planes;
    XReg x;
    x.hi = (__m512bh)_mm512_loadu_si512(at);
    if constexpr (Split)
      x.lo = (__m512bh)_mm512_loadu_si512(at + pairStep);
    return x;
  }
  template <moert_dtype_t>
  MOERT_AVX512_BF16 static Reg loadW(const char *row, int64_t count) {
    return _mm512_castsi512_ps(
        _mm512_maskz_loadu_epi16(halfLaneMask(count), row));
  }
  MOERT_AVX512_BF16 static Reg fmadd(XReg x, Reg w, Reg acc) {
    acc = _mm512_dpbf16_ps(acc, (__m512bh)w, x.hi);
    if constexpr (Split)
      acc = _mm512_dpbf16_ps(acc, (__m512bh)w, x.lo);
    return acc;
  }
  MOERT_AVX512_BF16 static void sums(const Reg *a, float *out) {
    sumEight(a, out);
  }
};

// Packed X. Rows (up to 48): row r's step j at (r * steps + j) * 32 *
// planes. Classes (past 48): groups of 12 rows; group g's class l at step j
// holds the group's 12 pairs (32-bit), then the 12 lo pairs when split, at
// ((g * 16 + l) * steps + j) * 12 * planes pairs. Past k every value is 0.
int64_t planesOf(const PackedRows &x) { return x.split ? 2 : 1; }

size_t pairRowsBytes(int64_t m, int64_t k, bool split) {
  int64_t planes = split ? 2 : 1;
  if (!classLayout(m))
    return static_cast<size_t>(m * pairSteps(k) * pairStep * planes) *
           sizeof(uint16_t);
  int64_t groups = (m + classGroupRows - 1) / classGroupRows;
  return static_cast<size_t>(groups * classes * pairSteps(k) * classGroupRows *
                             planes) *
         sizeof(uint32_t);
}

void clearPairRows(const PackedRows &x) {
  int64_t tail = x.k % pairStep, steps = pairSteps(x.k), planes = planesOf(x);
  if (tail == 0)
    return;
  if (!classLayout(x.m)) {
    auto *rows = static_cast<uint16_t *>(x.data);
    for (int64_t r = 0; r < x.m; ++r)
      for (int64_t p = 0; p < planes; ++p)
        std::memset(rows + ((r * steps + steps - 1) * planes + p) * pairStep +
                        tail,
                    0, (pairStep - tail) * sizeof(uint16_t));
    return;
  }
  // Whole pairs past k; a pair half past k is packed as 0.
  auto *pairs = static_cast<uint32_t *>(x.data);
  int64_t groups = (x.m + classGroupRows - 1) / classGroupRows;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t l = (tail + 1) / 2; l < classes; ++l)
      std::memset(pairs + ((g * classes + l) * steps + steps - 1) *
                              classGroupRows * planes,
                  0, classGroupRows * planes * sizeof(uint32_t));
}

// Half a step of fp32 rows as one bf16 term, into classes l0 to l0 + 7 of
// `count` rows of a group (`to`: class l0's slot at the step; classes
// `classStride` apart): the hidden block of a paired item, as the fused FFN
// packs it. Rows q and 4 + q (8 + q and 12 + q) share a vector, so that 4 x 4
// transposes inside 128-bit lanes and one lane shuffle give each pair's 16
// rows: half the shuffles of transpose16, which spends them on lanes masked
// off here. Zen 4, 1 core, with and without in turn in one process: the
// layer at 1024 tokens 0.98 to 0.99 of the time (small, Qwen3, OLMoE).
MOERT_AVX512_BF16 void packHalfStepClasses(const char *in, size_t rowBytes,
                                           int64_t count, uint32_t *to,
                                           int64_t classStride) {
  __m256i pairs[16];
  for (int64_t i = 0; i < 16; ++i)
    pairs[i] = i < count ? _mm512_cvtepi32_epi16(
                               bf16Lanes(_mm512_loadu_si512(in + i * rowBytes)))
                         : _mm256_setzero_si256();
  __m512i u[2][4];
  for (int h = 0; h < 2; ++h) {
    __m512i z[4];
    for (int q = 0; q < 4; ++q)
      z[q] = _mm512_inserti64x4(_mm512_castsi256_si512(pairs[8 * h + q]),
                                pairs[8 * h + 4 + q], 1);
    __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]),
            t1 = _mm512_unpackhi_epi32(z[0], z[1]),
            t2 = _mm512_unpacklo_epi32(z[2], z[3]),
            t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    u[h][0] = _mm512_unpacklo_epi64(t0, t2);
    u[h][1] = _mm512_unpackhi_epi64(t0, t2);
    u[h][2] = _mm512_unpacklo_epi64(t1, t3);
    u[h][3] = _mm512_unpackhi_epi64(t1, t3);
  }
  // u[h][e]'s 128-bit lanes: rows 8h to 8h + 3 of pair e, then of pair 4 + e,
  // then rows 8h + 4 to 8h + 7 of pair e and of pair 4 + e.
  for (int e = 0; e < 4; ++e) {
    _mm512_mask_storeu_epi32(to + e * classStride, laneMask(count),
                             _mm512_shuffle_i32x4(u[0][e], u[1][e], 0x88));
    _mm512_mask_storeu_epi32(to + (4 + e) * classStride, laneMask(count),
                             _mm512_shuffle_i32x4(u[0][e], u[1][e], 0xdd));
  }
}

MOERT_AVX512_BF16 void packPairRows(const void *src, moert_dtype_t srcType,
                                    int64_t ld, int64_t m0, int64_t rows,
                                    int64_t k0, int64_t cols,
                                    const PackedRows &x) {
  int64_t steps = pairSteps(x.k), planes = planesOf(x);
  size_t element = dtypeSize(srcType), rowBytes = ld * element;
  auto *in = static_cast<const char *>(src);
  const PackSteps packing{k0, cols, pairStep, element};
  alignas(64) char staged[pairStep * sizeof(float)];
  auto stepAt = [&](int64_t r, int64_t j, int64_t a, int64_t b) {
    return packing.at(in + r * rowBytes, j, a, b, staged);
  };
  if (!classLayout(x.m)) {
    auto *out = static_cast<uint16_t *>(x.data);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = k0 / pairStep; j * pairStep < k0 + cols; ++j) {
        int64_t a, b;
        packing.lanes(j, a, b);
        __mmask32 mask = halfLaneMask(b) & ~halfLaneMask(a);
        __m512i hi, lo;
        loadStep(stepAt(r, j, a, b), srcType, mask, x.split, hi, lo);
        uint16_t *to = out + ((m0 + r) * steps + j) * pairStep * planes;
        _mm512_mask_storeu_epi16(to, mask, hi);
        if (x.split)
          _mm512_mask_storeu_epi16(to + pairStep, mask, lo);
      }
    return;
  }
  auto *out = static_cast<uint32_t *>(x.data);
  bool halfStep = !x.split && srcType == MOERT_F32 && cols == pairStep / 2 &&
                  k0 % (pairStep / 2) == 0;
  for (int64_t r = 0; r < rows;) {
    int64_t offset = (m0 + r) % classGroupRows;
    int64_t count = std::min(classGroupRows - offset, rows - r);
    uint32_t *group =
        out +
        (m0 + r) / classGroupRows * classes * steps * classGroupRows * planes +
        offset;
    if (halfStep) {
      int64_t l0 = k0 % pairStep / 2, j = k0 / pairStep;
      packHalfStepClasses(in + r * rowBytes, rowBytes, count,
                          group + (l0 * steps + j) * classGroupRows,
                          steps * classGroupRows);
      r += count;
      continue;
    }
    for (int64_t j = k0 / pairStep; j * pairStep < k0 + cols; ++j) {
      int64_t a, b;
      packing.lanes(j, a, b);
      __mmask32 mask = halfLaneMask(b) & ~halfLaneMask(a);
      __m512 hi[16], lo[16];
      for (int i = 0; i < 16; ++i) {
        __m512i h = _mm512_setzero_si512(), l = _mm512_setzero_si512();
        if (i < count)
          loadStep(stepAt(r + i, j, a, b), srcType, mask, x.split, h, l);
        hi[i] = _mm512_castsi512_ps(h);
        lo[i] = _mm512_castsi512_ps(l);
      }
      for (int64_t p = 0; p < planes; ++p) {
        __m512 *v = p ? lo : hi;
        transpose16(v);
        for (int64_t l = a / 2; l < (b + 1) / 2; ++l)
          _mm512_mask_storeu_epi32(group + ((l * steps + j) * planes + p) *
                                               classGroupRows,
                                   laneMask(count), _mm512_castps_si512(v[l]));
      }
    }
    r += count;
  }
}

// panel[l][j] = the item's 32 panel columns' pair 16 j + l (32-bit; rows
// past the weights and pairs past k are 0).
MOERT_AVX512_BF16 void fillPairPanel(const Slabs &slabs, int64_t k,
                                     uint32_t *panel) {
  int64_t steps = pairSteps(k);
  for (int s = 0; s < 2; ++s)
    for (int64_t j = 0; j < steps; ++j) {
      __mmask32 mask = halfLaneMask(k - j * pairStep);
      __m512 v[16];
      for (int r = 0; r < 16; ++r)
        v[r] = _mm512_castsi512_ps(
            _mm512_maskz_loadu_epi16(r < slabs.valid(s) ? mask : 0,
                                     slabs.base(s) + r * slabs.rowBytes() +
                                         j * pairStep * sizeof(uint16_t)));
      transpose16(v);
      for (int l = 0; l < classes; ++l)
        _mm512_store_ps(reinterpret_cast<float *>(panel) +
                            (l * steps + j) * panelColumns + s * slabRows,
                        v[l]);
    }
}

// classBlock for pairs: R rows of a group (x: the group's start).
template <int R, bool Split>
MOERT_AVX512_BF16 void pairClassBlock(const uint32_t *x, const uint32_t *panel,
                                      int64_t steps, __m512 *classSums,
                                      float *out, NextItemPrefetch &prefetch) {
  constexpr int64_t planes = Split ? 2 : 1;
  for (int64_t l = 0; l < classes; ++l) {
    prefetch.step();
    const uint32_t *xl = x + l * steps * classGroupRows * planes;
    const uint32_t *pl = panel + l * steps * panelColumns;
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r)
      acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t j = 0; j < steps; ++j) {
      __m512bh p0 = (__m512bh)_mm512_load_si512(pl + j * panelColumns);
      __m512bh p1 =
          (__m512bh)_mm512_load_si512(pl + j * panelColumns + slabRows);
      for (int r = 0; r < R; ++r)
        for (int64_t p = 0; p < planes; ++p) {
          __m512bh b = (__m512bh)_mm512_set1_epi32(
              static_cast<int>(xl[(j * planes + p) * classGroupRows + r]));
          acc[r][0] = _mm512_dpbf16_ps(acc[r][0], p0, b);
          acc[r][1] = _mm512_dpbf16_ps(acc[r][1], p1, b);
        }
    }
    keepClass<R>(acc, l, classSums);
  }
  storeClassSums<R>(classSums, out);
}

using PairClassBlockFn = void (*)(const uint32_t *, const uint32_t *, int64_t,
                                  __m512 *, float *, NextItemPrefetch &);
template <bool Split, int... R>
constexpr PairClassBlockFn pairClassBlockFns[] = {
    pairClassBlock<R + 1, Split>...};
template <bool Split, int... R>
constexpr auto makePairClassBlocks(std::integer_sequence<int, R...>) {
  return pairClassBlockFns<Split, R...>;
}

template <bool Split, Decode D>
MOERT_AVX512_BF16 void runPairs(const Weights &w, int64_t item,
                                const PackedRows &packed, Workspace &workspace,
                                Sink &sink) {
  using V = PairVector<Split>;
  int64_t k = w.k, m = packed.m, steps = pairSteps(k);
  if (!classLayout(m))
    return dot::runInPlace<V, MOERT_BF16, D>(
        w, item, static_cast<const uint16_t *>(packed.data),
        steps * pairStep * V::planes, m, workspace, sink);
  static constexpr auto blocks = makePairClassBlocks<Split>(
      std::make_integer_sequence<int, classGroupRows>());
  runClassGroups(
      w, item, static_cast<const uint32_t *>(packed.data),
      classes * steps * classGroupRows * V::planes, m, steps, blocks,
      [&](const Slabs &slabs, uint32_t *panel) {
        fillPairPanel(slabs, k, panel);
      },
      workspace, sink);
}

template <Decode D>
MOERT_AVX512_BF16 void runPairItem(const Weights &w, int64_t item,
                                   const PackedRows &packed,
                                   Workspace &workspace, Sink &sink) {
  if (packed.split)
    runPairs<true, D>(w, item, packed, workspace, sink);
  else
    runPairs<false, D>(w, item, packed, workspace, sink);
}

template <Decode D> KernelSet pairKernels() {
  return {pairRowsBytes, clearPairRows, packPairRows, runPairItem<D>, nullptr};
}

} // namespace

const KernelSet &moert::cpu::gemm::avx512Bf16Kernels(Decode decode) {
  static const KernelSet rowwise = pairKernels<Decode::Rowwise>(),
                         groupsAhead = pairKernels<Decode::GroupsAhead>();
  return decode == Decode::GroupsAhead ? groupsAhead : rowwise;
}
