//===- runtime/cpu/gemm/Avx512Bf16Fp8.cpp - FP8 weights on VDPBF16PS ------===//
//
// FP8 e4m3 weights with fp32 block scales, read where they are, one byte a
// weight: each 64-byte load becomes 64 bf16 in registers (two VPERMT2B
// lookups and a sign merge; every e4m3 value is exact in bf16), so a
// decode step streams half the bytes of bf16 weights and writes no panel.
//
// For each output, per scale block b of its weight row: D_b = the block's
// products (exact) summed in fp32 lanes by VDPBF16PS, then Y += s_b * D_b
// in block order, and the output is Y's 16 lanes summed in one fixed tree
// (sumEight). Every row count runs that same sequence (one weight row at a
// time against blocks of up to blockRows X rows), so a row's bits never
// depend on the others. X is packed as bf16 (hi, and lo when split), each 64 k
// values in the order the widened weights come out of the byte unpacks.
//
// Needs AVX512_VBMI beside AVX512_BF16, and blockCols a multiple of 64
// (kernelsForQuantized); other FP8 weights run through runQuantized.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/gemm/Kernels.h"

#include "runtime/cpu/gemm/Avx512Util.h"
#include "runtime/cpu/gemm/Fp8Widening.h"
#include "runtime/cpu/gemm/LaneClasses.h"

#include <algorithm>
#include <cstring>

using namespace moert;
using namespace moert::cpu::gemm;

namespace {

// k values per step: one 64-byte load of weights.
constexpr int64_t step = fp8InPlaceStep;
// Each step asks for the weight stream this far ahead toward L2 (running on
// into the next rows). A step's widening takes uops enough that the
// out-of-order window alone keeps too few lines in flight. Zen 4, 1 core,
// from DRAM, 1 row: Mixtral's down rows (k 14336) 11 to 21 G weights/s,
// its gate rows (k 4096) 19 to 24; 2 and 8 KB ahead gained less.
constexpr uintptr_t streamAhead = 16384;
// X rows per pass over the weight rows: Y, D_a and D_b a row in registers,
// X loaded as used.
constexpr int blockRows = 4;

int64_t steps(int64_t k) { return (k + step - 1) / step; }
int64_t planesOf(const PackedRows &x) { return x.split ? 2 : 1; }
int64_t rowWords(const PackedRows &x) {
  return steps(x.k) * step * planesOf(x);
}

size_t fp8RowsBytes(int64_t m, int64_t k, bool split) {
  return static_cast<size_t>(m * steps(k) * step * (split ? 2 : 1)) *
         sizeof(uint16_t);
}

// Packed rows are zero past k, where the masked weight loads give 0: the
// workspace's old bits there could be NaN, and 0 x NaN is NaN.
void clearFp8Rows(const PackedRows &x) {
  int64_t tail = x.k % step, planes = planesOf(x);
  if (tail == 0)
    return;
  auto *rows = static_cast<uint16_t *>(x.data);
  int64_t last = (steps(x.k) - 1) * step * planes;
  for (int64_t r = 0; r < x.m; ++r)
    std::memset(rows + r * rowWords(x) + last, 0,
                step * planes * sizeof(uint16_t));
}

// Word p of a step's 64 natural-order values (two registers of 32) that
// goes to packed position p.
struct StepOrder {
  alignas(64) uint16_t index[step];
  StepOrder() {
    for (int64_t t = 0; t < step; ++t)
      index[packedPosition(t)] = static_cast<uint16_t>(t);
  }
};

MOERT_FP8_TARGET void packFp8Rows(const void *src, moert_dtype_t srcType,
                                  int64_t ld, int64_t m0, int64_t rows,
                                  int64_t k0, int64_t cols,
                                  const PackedRows &x) {
  static const StepOrder order;
  const __m512i firstHalf = _mm512_load_si512(order.index);
  const __m512i secondHalf = _mm512_load_si512(order.index + 32);
  int64_t planes = planesOf(x);
  size_t element = dtypeSize(srcType);
  auto *in = static_cast<const char *>(src);
  auto *out = static_cast<uint16_t *>(x.data);
  const PackSteps packing{k0, cols, step, element};
  alignas(64) char staged[step * sizeof(float)];
  for (int64_t r = 0; r < rows; ++r) {
    const char *row = in + r * ld * element;
    for (int64_t j = k0 / step; j * step < k0 + cols; ++j) {
      int64_t a, b;
      packing.lanes(j, a, b);
      const char *at = packing.at(row, j, a, b, staged);
      __m512i hi[2], lo[2];
      for (int h = 0; h < 2; ++h) {
        int64_t from = std::max<int64_t>(a - 32 * h, 0);
        int64_t to = std::min<int64_t>(b - 32 * h, 32);
        __mmask32 mask = halfLaneMask(to) & ~halfLaneMask(from);
        loadStep(at + 32 * h * element, srcType, mask, x.split, hi[h], lo[h]);
      }
      // Only the words of [a, b): other calls pack the step's other columns.
      __mmask64 inRange = a == 0 && b == step ? ~0ull : 0;
      for (int64_t t = a; inRange != ~0ull && t < b; ++t)
        inRange |= 1ull << packedPosition(t);
      uint16_t *to = out + ((m0 + r) * steps(x.k) + j) * step * planes;
      for (int64_t p = 0; p < planes; ++p) {
        const __m512i *v = p ? lo : hi;
        _mm512_mask_storeu_epi16(
            to + p * step, static_cast<__mmask32>(inRange),
            _mm512_permutex2var_epi16(v[0], firstHalf, v[1]));
        _mm512_mask_storeu_epi16(
            to + p * step + 32, static_cast<__mmask32>(inRange >> 32),
            _mm512_permutex2var_epi16(v[0], secondHalf, v[1]));
      }
    }
  }
}

// y[r][c] = the lanes of X row r (x + r * ldx) . weight row rows[c]: per
// scale block D_b in two chains (the unpacklo and unpackhi halves), then
// y += s_b * D_b. The C rows share their blocks' steps (rowBlock).
template <int R, int C, bool Split>
MOERT_FP8_TARGET inline __attribute__((always_inline)) void
dotLanes(const uint16_t *x, int64_t ldx, const ItemRow *rows, int64_t k,
         const Widener &widener, __m512 (*y)[C]) {
  constexpr int64_t planes = Split ? 2 : 1;
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      y[r][c] = _mm512_setzero_ps();
  int64_t n = steps(k), blockSteps = rows[0].blockSteps;
  __mmask64 tail = k % step ? (1ull << (k % step)) - 1 : ~0ull;
  for (int64_t j0 = 0, b = 0; j0 < n; j0 += blockSteps, ++b) {
    __m512 da[R][C], db[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c)
        da[r][c] = db[r][c] = _mm512_setzero_ps();
    for (int64_t j = j0; j < std::min(n, j0 + blockSteps); ++j) {
      __m512i first[C], second[C];
      for (int c = 0; c < C; ++c) {
        const uint8_t *at = rows[c].data + j * step;
        // A hint, formed as an integer: it may point past the weights.
        __builtin_prefetch(reinterpret_cast<const void *>(
                               reinterpret_cast<uintptr_t>(at) + streamAhead),
                           0, 2);
        __m512i bytes = j + 1 < n ? _mm512_loadu_si512(at)
                                  : _mm512_maskz_loadu_epi8(tail, at);
        widener.widen(bytes, first[c], second[c]);
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const uint16_t *xr = x + r * ldx + j * step * planes;
        for (int64_t p = 0; p < planes; ++p) {
          __m512bh xa = (__m512bh)_mm512_loadu_si512(xr + p * step);
          __m512bh xb = (__m512bh)_mm512_loadu_si512(xr + p * step + 32);
          for (int c = 0; c < C; ++c) {
            da[r][c] = _mm512_dpbf16_ps(da[r][c], (__m512bh)first[c], xa);
            db[r][c] = _mm512_dpbf16_ps(db[r][c], (__m512bh)second[c], xb);
          }
        }
      }
    }
    for (int c = 0; c < C; ++c) {
      __m512 s = _mm512_set1_ps(rows[c].scales[b]);
      for (int r = 0; r < R; ++r)
        y[r][c] =
            _mm512_fmadd_ps(s, _mm512_add_ps(da[r][c], db[r][c]), y[r][c]);
    }
  }
}

// out[r * columns + c] for R X rows and the item's 32 panel columns, the
// weight rows in address order; each 8 columns' lanes summed by sumEight.
// Up to 2 X rows meet one weight row at a time (one stream from memory);
// more meet two, which share each X load. Zen 4, 1 core, rows in turn in
// one process: 3 to 8 X rows 0 to 50% faster; 2 rows were 5 to 7% slower.
template <int R, bool Split>
MOERT_FP8_TARGET void rowBlock(const uint16_t *x, int64_t ldx,
                               const ItemRow *rows, int64_t k, float *out,
                               int64_t columns) {
  constexpr int C = R >= 3 ? 2 : 1;
  const Widener widener(e4m3Tables());
  for (int64_t g = 0; g < columns; g += 8) {
    __m512 lanes[R][8];
    for (int c = 0; c < 8; c += C) {
      const ItemRow *at = rows + g + c;
      bool together = true;
      for (int i = 1; i < C; ++i)
        together =
            together && at[i].data && at[i].blockSteps == at[0].blockSteps;
      if (at[0].data && together) {
        __m512 y[R][C];
        dotLanes<R, C, Split>(x, ldx, at, k, widener, y);
        for (int r = 0; r < R; ++r)
          for (int i = 0; i < C; ++i)
            lanes[r][c + i] = y[r][i];
        continue;
      }
      for (int i = 0; i < C; ++i) {
        __m512 y[R][1];
        if (at[i].data)
          dotLanes<R, 1, Split>(x, ldx, at + i, k, widener, y);
        for (int r = 0; r < R; ++r)
          lanes[r][c + i] = at[i].data ? y[r][0] : _mm512_setzero_ps();
      }
    }
    for (int r = 0; r < R; ++r)
      sumEight(lanes[r], out + r * columns + g);
  }
}

using RowBlockFn = void (*)(const uint16_t *, int64_t, const ItemRow *, int64_t,
                            float *, int64_t);
template <bool Split>
constexpr RowBlockFn rowBlocks[] = {rowBlock<1, Split>, rowBlock<2, Split>,
                                    rowBlock<3, Split>, rowBlock<4, Split>};
static_assert(sizeof(rowBlocks<false>) / sizeof(RowBlockFn) == blockRows);

// Blocks of X rows one after the other, each against the item's 32 weight
// rows: for a decode step one pass, the rows streamed once in address
// order; past it the item's rows (32 x k bytes) are read again from L2.
template <bool Split>
MOERT_FP8_TARGET void runFp8(const Weights &w, int64_t item,
                             const PackedRows &packed, Workspace &workspace,
                             Sink &sink) {
  constexpr int64_t columns = 2 * slabRows;
  bool paired = w.paired();
  int64_t n0 = item * itemColumns(paired), m = packed.m;
  int64_t valid = std::min(itemColumns(paired), w.n - n0);
  auto *x = static_cast<const uint16_t *>(packed.data);
  int64_t ldx = rowWords(packed);
  ItemRow rows[columns];
  for (int64_t c = 0; c < columns; ++c)
    rows[c] = itemRow(w, n0, c);
  auto *out = static_cast<float *>(workspace.get(
      static_cast<size_t>(std::max<int64_t>(m, 1) * columns) * sizeof(float)));
  for (int64_t r0 = 0; r0 < m; r0 += blockRows) {
    int64_t count = std::min<int64_t>(blockRows, m - r0);
    rowBlocks<Split>[count - 1](x + r0 * ldx, ldx, rows, w.k,
                                out + r0 * columns, columns);
  }
  for (int64_t m0 = 0; m0 < m; m0 += slabRows) {
    int64_t count = std::min(slabRows, m - m0);
    const float *block = out + m0 * columns;
    if (paired)
      sink.store(m0, count, n0, valid, block, block + slabRows, columns);
    else
      sink.store(m0, count, n0, valid, block, nullptr, columns);
  }
}

MOERT_FP8_TARGET void runFp8Item(const Weights &w, int64_t item,
                                 const PackedRows &packed, Workspace &workspace,
                                 Sink &sink) {
  if (packed.split)
    runFp8<true>(w, item, packed, workspace, sink);
  else
    runFp8<false>(w, item, packed, workspace, sink);
}

} // namespace

const KernelSet &moert::cpu::gemm::avx512Bf16Fp8Kernels() {
  static const KernelSet set = {fp8RowsBytes, clearFp8Rows, packFp8Rows,
                                runFp8Item,   nullptr,      true};
  return set;
}
