//===- runtime/cpu/gemm/Avx512.cpp - AVX-512 FMA and BF16 kernels ---------===//
//
// FMA (any weight dtype): the row-dot kernel (DotKernel.h) on 16 lanes.
// BF16 pairs: a chunk of an item's two slabs becomes a panel with one weight
// row per vector lane (16x16 transposes in registers), then blocks of up to
// 12 rows run: per k pair, two panel vectors meet each row's broadcast x
// pair in two VDPBF16PS. Accumulators stay in registers within a chunk and
// in the workspace between chunks, so the order of every sum is k order.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/gemm/Kernels.h"

#include "runtime/common/Convert.h"
#include "runtime/cpu/gemm/Avx512Util.h"
#define MOERT_DOT_TARGET MOERT_AVX512
#include "runtime/cpu/gemm/DotKernel.h"

#include <algorithm>
#include <cstring>
#include <utility>

using namespace moert;
using namespace moert::cpu::gemm;

namespace {

constexpr int64_t lanes = 16;
constexpr int64_t panelColumns = 2 * slabRows;
constexpr int64_t blockRows = 12;
// k values per chunk: a 32 KB fp32 panel, an L1-sized block of rows.
constexpr int64_t chunk = 256;

// 16 values of a weight row as fp32 (lanes past `count` are 0).
template <moert_dtype_t W>
MOERT_AVX512 inline __m512 loadWidened(const char *row, int64_t count) {
  __mmask16 mask = laneMask(count);
  if constexpr (W == MOERT_F32) {
    return _mm512_maskz_loadu_ps(mask, row);
  } else {
    __m256i half = _mm256_maskz_loadu_epi16(mask, row);
    if constexpr (W == MOERT_F16)
      return _mm512_cvtph_ps(half);
    else
      return _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
  }
}

// The rows past `valid` of a slab are zeros.
MOERT_AVX512 inline void storeTransposed(__m512 v[16], float *panel,
                                         int64_t column) {
  transpose16(v);
  for (int i = 0; i < 16; ++i)
    _mm512_store_ps(panel + i * panelColumns + column, v[i]);
}

//===--- fp32 FMA: the row-dot kernel ----------------------------------===//

struct Avx512Vector {
  using Reg = __m512;
  static constexpr int64_t lanes = 16, blockRows = 3;
  MOERT_AVX512 static Reg zero() { return _mm512_setzero_ps(); }
  MOERT_AVX512 static Reg fmadd(Reg a, Reg b, Reg acc) {
    return _mm512_fmadd_ps(a, b, acc);
  }
  MOERT_AVX512 static void sums(const Reg *a, float *out) {
    // Halves of pairs, then quarters, then 64- and 32-bit pieces: lane l
    // of 128-bit lane L ends as output L (l even) or 4 + L (l odd).
    Reg h[4], g[2];
    for (int i = 0; i < 4; ++i)
      h[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                           _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xee));
    for (int i = 0; i < 2; ++i)
      g[i] = _mm512_add_ps(_mm512_shuffle_f32x4(h[2 * i], h[2 * i + 1], 0x88),
                           _mm512_shuffle_f32x4(h[2 * i], h[2 * i + 1], 0xdd));
    Reg t = _mm512_add_ps(_mm512_unpacklo_ps(g[0], g[1]),
                          _mm512_unpackhi_ps(g[0], g[1]));
    t = _mm512_add_ps(t, _mm512_shuffle_ps(t, t, 0x4e));
    const __m512i order =
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_mask_storeu_ps(out, 0xff, _mm512_permutexvar_ps(order, t));
  }
  MOERT_AVX512 static void store(float *to, Reg v) { _mm512_storeu_ps(to, v); }
  MOERT_AVX512 static Reg loadX(const float *x, int64_t count) {
    return count >= lanes ? _mm512_loadu_ps(x)
                          : _mm512_maskz_loadu_ps(laneMask(count), x);
  }
  template <moert_dtype_t W>
  MOERT_AVX512 static Reg loadW(const char *row, int64_t count) {
    return loadWidened<W>(row, count);
  }
};

//===--- bf16 pairs (VDPBF16PS) -------------------------------------------===//

// Packed X: bf16 rows [m][k rounded up to even], the pad column 0; when
// split, the rows of lo = x - hi follow those of hi.
int64_t pairColumns(int64_t k) { return (k + 1) / 2 * 2; }

size_t bf16RowsBytes(int64_t m, int64_t k, bool split) {
  return static_cast<size_t>(m * pairColumns(k)) * sizeof(uint16_t) *
         (split ? 2 : 1);
}

void clearBf16Rows(const PackedRows &x) {
  if (x.k % 2 == 0)
    return;
  auto *rows = static_cast<uint16_t *>(x.data);
  for (int64_t r = 0; r < x.m * (x.split ? 2 : 1); ++r)
    rows[r * (x.k + 1) + x.k] = 0;
}

void packBf16Rows(const void *src, moert_dtype_t srcType, int64_t ld,
                  int64_t m0, int64_t rows, int64_t k0, int64_t cols,
                  const PackedRows &x) {
  auto *hi = static_cast<uint16_t *>(x.data) + k0;
  uint16_t *lo = hi + x.m * pairColumns(x.k);
  size_t rowBytes = ld * dtypeSize(srcType);
  float values[256];
  for (int64_t r = 0; r < rows; ++r) {
    int64_t row = (m0 + r) * pairColumns(x.k);
    const char *in = static_cast<const char *>(src) + r * rowBytes;
    for (int64_t c = 0; c < cols; c += 256) {
      int64_t n = std::min<int64_t>(256, cols - c);
      convertToFloat(in + c * dtypeSize(srcType), srcType, values, n);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t high = floatToBf16(values[i]);
        hi[row + c + i] = high;
        if (x.split)
          lo[row + c + i] = floatToBf16(values[i] - bf16ToFloat(high));
      }
    }
  }
}

// panel[p][j] = slab row j's bf16 pair p of k0 + 2p (pairs 32-bit).
MOERT_AVX512_BF16 void fillPairPanel(const Slabs &slabs, int64_t k0,
                                     int64_t count, float *panel) {
  for (int s = 0; s < 2; ++s)
    for (int64_t i = 0; i < count; i += 2 * lanes) {
      __mmask32 mask = halfLaneMask(count - i);
      __m512 v[16];
      for (int j = 0; j < 16; ++j)
        v[j] = j < slabs.valid(s)
                   ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(
                         mask, slabs.base(s) + j * slabs.rowBytes() +
                                   (k0 + i) * sizeof(uint16_t)))
                   : _mm512_setzero_ps();
      storeTransposed(v, panel + i / 2 * panelColumns, s * slabRows);
    }
}

// x: hi rows, lo rows `planeStride` elements further (split only).
template <int R, bool Split>
MOERT_AVX512_BF16 void
pairBlock(const uint16_t *x, int64_t planeStride, int64_t k, int64_t k0,
          int64_t count, const float *panel, float *partial, bool first) {
  __m512 acc[R][2];
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2; ++h)
      acc[r][h] = first ? _mm512_setzero_ps()
                        : _mm512_load_ps(partial + r * panelColumns + h * 16);
  int64_t stride = pairColumns(k);
  for (int64_t p = 0; p < (count + 1) / 2; ++p) {
    __m512bh p0 = (__m512bh)_mm512_load_ps(panel + p * panelColumns);
    __m512bh p1 = (__m512bh)_mm512_load_ps(panel + p * panelColumns + 16);
    for (int r = 0; r < R; ++r) {
      for (int plane = 0; plane < (Split ? 2 : 1); ++plane) {
        int32_t pair;
        std::memcpy(&pair, x + plane * planeStride + r * stride + k0 + 2 * p,
                    sizeof(pair));
        __m512bh v = (__m512bh)_mm512_set1_epi32(pair);
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], p0, v);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], p1, v);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2; ++h)
      _mm512_store_ps(partial + r * panelColumns + h * 16, acc[r][h]);
}

using PairBlockFn = void (*)(const uint16_t *, int64_t, int64_t, int64_t,
                             int64_t, const float *, float *, bool);
template <bool Split, int... R>
constexpr PairBlockFn pairBlocks[] = {pairBlock<R + 1, Split>...};
template <bool Split, int... R>
constexpr auto makePairBlocks(std::integer_sequence<int, R...>) {
  return pairBlocks<Split, R...>;
}

MOERT_AVX512_BF16 void runPairs(const Weights &w, int64_t item,
                                const PackedRows &packed, Workspace &workspace,
                                Sink &sink) {
  static constexpr auto single =
      makePairBlocks<false>(std::make_integer_sequence<int, blockRows>());
  static constexpr auto split =
      makePairBlocks<true>(std::make_integer_sequence<int, blockRows>());
  const PairBlockFn *blocks = packed.split ? split : single;
  Slabs slabs(w, item);
  int64_t k = w.k, m = packed.m, planeStride = m * pairColumns(k);
  size_t panelBytes = chunk / 2 * panelColumns * sizeof(float);
  auto *panel = static_cast<float *>(
      workspace.get(panelBytes + m * panelColumns * sizeof(float)));
  float *partial = panel + chunk / 2 * panelColumns;
  auto *x = static_cast<const uint16_t *>(packed.data);
  for (int64_t k0 = 0; k0 < k || k0 == 0; k0 += chunk) {
    int64_t count = std::min(chunk, k - k0);
    fillPairPanel(slabs, k0, count, panel);
    for (int64_t r0 = 0; r0 < m; r0 += blockRows) {
      int64_t rows = std::min(blockRows, m - r0);
      blocks[rows - 1](x + r0 * pairColumns(k), planeStride, k, k0, count,
                       panel, partial + r0 * panelColumns, k0 == 0);
    }
  }
  for (int64_t r0 = 0; r0 < m; r0 += blockRows)
    slabs.deliver(sink, r0, std::min(blockRows, m - r0),
                  partial + r0 * panelColumns, panelColumns);
}

} // namespace

const KernelSet &moert::cpu::gemm::avx512Kernels(moert_dtype_t weights) {
  static const KernelSet f32 = dot::kernels<Avx512Vector, MOERT_F32>(),
                         f16 = dot::kernels<Avx512Vector, MOERT_F16>(),
                         bf16 = dot::kernels<Avx512Vector, MOERT_BF16>();
  return weights == MOERT_F32 ? f32 : weights == MOERT_F16 ? f16 : bf16;
}

const KernelSet &moert::cpu::gemm::avx512Bf16Kernels() {
  static const KernelSet set = {bf16RowsBytes, clearBf16Rows, packBf16Rows,
                                runPairs, nullptr};
  return set;
}
