//===- runtime/cpu/gemm/Avx512.cpp - AVX-512 FMA and BF16 kernels ---------===//
//
// FMA (any weight dtype): the row-dot kernel (DotKernel.h) on 16 lanes up to
// 48 rows; past them the same sums as outer products (lane classes, below),
// which keep a row's bits and run at GEMM speed.
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

// The same, lanes past `count` 0.
template <moert_dtype_t W>
MOERT_AVX512 inline __m512 loadWidened(const char *row, int64_t count) {
  return loadWidenedMasked<W>(row, laneMask(count));
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
  // sums() for 16 outputs at once, lane l's partial sums of output o in
  // lane o of a[l]: the same additions in the same order, lane by lane
  // (w_j = (a_j + a_8+j) + (a_4+j + a_12+j), then (w_0 + w_2) + (w_1 + w_3)).
  MOERT_AVX512 static Reg sumClasses(const Reg *a) {
    Reg w[4];
    for (int j = 0; j < 4; ++j)
      w[j] = _mm512_add_ps(_mm512_add_ps(a[j], a[8 + j]),
                           _mm512_add_ps(a[4 + j], a[12 + j]));
    return _mm512_add_ps(_mm512_add_ps(w[0], w[2]), _mm512_add_ps(w[1], w[3]));
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

//===--- fp32 FMA past the decode rows: lane classes ----------------------===//
//
// The row-dot kernel's lane l sums the products of k = l (mod 16) in k order
// (class l), then sums() adds the 16 class sums in one tree. Here each class
// is an outer product instead: X packed class-major, the item's 32 weight
// rows transposed once into a class-major panel, blocks of up to 12 rows
// accumulating a class in registers against broadcast x, and sumClasses
// adding the classes. The same fused multiply-adds from the same zero in the
// same order, and the same tree: the bits of the row-dot kernel, without its
// per-output reductions and per-chunk spills.

constexpr int64_t classes = lanes;
// Rows of a packed group and of a block: 24 accumulators, 2 panel vectors.
constexpr int64_t groupRows = 12;

int64_t classSteps(int64_t k) { return (k + classes - 1) / classes; }
// Past 48 rows the panel's transposition pays for itself; up to there the
// row-dot kernel, whose weight chunks stream while it computes, was as fast
// (moe-bench-cpu-layer, f32, 64 to 256 tokens on 8 experts).
constexpr int64_t classMinRows = 48;
bool classLayout(int64_t m) { return m > classMinRows; }

// Packed X past 48 rows: groups of 12 rows; in a group, class l's step j
// (k = l + 16 j) holds the group's 12 x values contiguously. Up to 48 rows:
// the row-dot kernel's fp32 rows.
size_t classRowsBytes(int64_t m, int64_t k, bool split) {
  if (!classLayout(m))
    return floatRowsBytes(m, k, split);
  int64_t groups = (m + groupRows - 1) / groupRows;
  return static_cast<size_t>(groups * classes * classSteps(k) * groupRows) *
         sizeof(float);
}

// Past k the classes' last step reads zeros (the row-dot kernel's masked
// tail); rows past m are never read.
void clearClassRows(const PackedRows &x) {
  if (!classLayout(x.m) || x.k % classes == 0)
    return;
  int64_t steps = classSteps(x.k), groups = (x.m + groupRows - 1) / groupRows;
  auto *data = static_cast<float *>(x.data);
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t l = x.k % classes; l < classes; ++l)
      std::memset(data + ((g * classes + l) * steps + steps - 1) * groupRows, 0,
                  groupRows * sizeof(float));
}

// Per group of rows and 16-aligned block of columns: the rows' values as
// vectors, one 16x16 transpose, one store per class.
MOERT_AVX512 void packClassRows(const void *src, moert_dtype_t srcType,
                                int64_t ld, int64_t m0, int64_t rows,
                                int64_t k0, int64_t cols, const PackedRows &x) {
  if (!classLayout(x.m))
    return packFloatRows(src, srcType, ld, m0, rows, k0, cols, x);
  int64_t steps = classSteps(x.k);
  auto *data = static_cast<float *>(x.data);
  size_t element = dtypeSize(srcType), rowBytes = ld * element;
  for (int64_t r = 0; r < rows;) {
    int64_t offset = (m0 + r) % groupRows;
    int64_t count = std::min(groupRows - offset, rows - r);
    float *group = data + (m0 + r) / groupRows * classes * steps * groupRows +
                   offset;
    const char *in = static_cast<const char *>(src) + r * rowBytes;
    for (int64_t c = 0; c < cols;) {
      int64_t first = (k0 + c) % classes, step = (k0 + c) / classes;
      int64_t n = std::min(classes - first, cols - c);
      __mmask16 lanes = static_cast<__mmask16>(laneMask(n) << first);
      const char *at = in + (c - first) * element;
      __m512 v[16];
      for (int i = 0; i < 16; ++i)
        v[i] = i < count ? loadValues(at + i * rowBytes, srcType, lanes)
                         : _mm512_setzero_ps();
      transpose16(v);
      for (int64_t l = first; l < first + n; ++l)
        _mm512_mask_storeu_ps(group + (l * steps + step) * groupRows,
                              laneMask(count), v[l]);
      c += n;
    }
    r += count;
  }
}

// panel[l][j] = the item's 32 panel columns at k = l + 16 j (fp32; rows
// past the weights and k past the end are 0).
template <moert_dtype_t W>
MOERT_AVX512 void fillClassPanel(const Slabs &slabs, int64_t k, float *panel) {
  constexpr size_t e = W == MOERT_F32 ? 4 : 2;
  int64_t steps = classSteps(k);
  for (int s = 0; s < 2; ++s) {
    // Rows past the weights read nothing (mask 0).
    const char *rows[slabRows];
    bool live[slabRows];
    for (int r = 0; r < slabRows; ++r) {
      live[r] = r < slabs.valid(s);
      rows[r] = slabs.base(s) + (live[r] ? r : 0) * slabs.rowBytes();
    }
    for (int64_t j = 0; j < steps; ++j) {
      __mmask16 mask = laneMask(k - j * classes);
      __m512 v[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r)
        v[r] = loadWidenedMasked<W>(rows[r] + j * classes * e,
                                    live[r] ? mask : __mmask16(0));
      transpose16(v);
#pragma GCC unroll 16
      for (int l = 0; l < classes; ++l)
        _mm512_store_ps(panel + (l * steps + j) * panelColumns + s * slabRows,
                        v[l]);
    }
  }
}

// Brings the next item's weights toward L2 a few lines per step() while
// this item computes, so that the next item's panel fill waits less on
// memory (2 to 3% of an f32 prefill step). With several threads the next
// item may be another thread's: its lines then wait in the shared LLC.
class NextItemPrefetch {
public:
  // `steps`: how often the caller will call step() during the item.
  NextItemPrefetch(const Weights &w, int64_t item, int64_t steps) {
    if (item + 1 >= w.items())
      return;
    Slabs next(w, item + 1);
    for (int64_t j = 0; j < panelColumns; ++j)
      if (const char *row = next.row(j))
        rows_[rowCount_++] = row;
    lines_ = static_cast<int64_t>((next.rowBytes() + 63) / 64);
    perStep_ = (rowCount_ * lines_ + steps - 1) / steps;
  }
  void step() {
    for (int64_t i = 0; i < perStep_ && line_ < lines_; ++i) {
      _mm_prefetch(rows_[row_] + line_ * 64, _MM_HINT_T1);
      if (++row_ == rowCount_) {
        row_ = 0;
        ++line_;
      }
    }
  }

private:
  const char *rows_[panelColumns];
  int64_t rowCount_ = 0, lines_ = 0, perStep_ = 0, row_ = 0, line_ = 0;
};

// R rows of a group (x: the group's start) against the whole panel; out
// [R][32] gets the sums.
template <int R>
MOERT_AVX512 void classBlock(const float *x, const float *panel, int64_t steps,
                             __m512 *classSums, float *out,
                             NextItemPrefetch &prefetch) {
  for (int64_t l = 0; l < classes; ++l) {
    prefetch.step();
    const float *xl = x + l * steps * groupRows;
    const float *pl = panel + l * steps * panelColumns;
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r)
      acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t j = 0; j < steps; ++j) {
      __m512 p0 = _mm512_load_ps(pl + j * panelColumns);
      __m512 p1 = _mm512_load_ps(pl + j * panelColumns + slabRows);
      for (int r = 0; r < R; ++r) {
        __m512 b = _mm512_set1_ps(xl[j * groupRows + r]);
        acc[r][0] = _mm512_fmadd_ps(b, p0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(b, p1, acc[r][1]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int h = 0; h < 2; ++h)
        classSums[(r * 2 + h) * classes + l] = acc[r][h];
  }
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2; ++h)
      _mm512_store_ps(out + r * panelColumns + h * slabRows,
                      Avx512Vector::sumClasses(classSums +
                                               (r * 2 + h) * classes));
}

using ClassBlockFn = void (*)(const float *, const float *, int64_t, __m512 *,
                              float *, NextItemPrefetch &);
template <int... R>
constexpr ClassBlockFn classBlockFns[] = {classBlock<R + 1>...};
template <int... R>
constexpr auto makeClassBlocks(std::integer_sequence<int, R...>) {
  return classBlockFns<R...>;
}

template <moert_dtype_t W>
MOERT_AVX512 void runFma(const Weights &w, int64_t item,
                         const PackedRows &packed, Workspace &workspace,
                         Sink &sink) {
  if (!classLayout(packed.m))
    return dot::run<Avx512Vector, W>(w, item, packed, workspace, sink);
  static constexpr auto blocks =
      makeClassBlocks(std::make_integer_sequence<int, groupRows>());
  Slabs slabs(w, item);
  int64_t steps = classSteps(w.k), m = packed.m;
  size_t panelFloats = classes * steps * panelColumns;
  size_t sumsFloats = groupRows * 2 * classes * lanes;
  auto *panel = static_cast<float *>(workspace.get(
      (panelFloats + sumsFloats + groupRows * panelColumns) * sizeof(float)));
  auto *classSums = reinterpret_cast<__m512 *>(panel + panelFloats);
  float *out = panel + panelFloats + sumsFloats;
  fillClassPanel<W>(slabs, w.k, panel);
  NextItemPrefetch prefetch(w, item,
                            (m + groupRows - 1) / groupRows * classes);
  auto *x = static_cast<const float *>(packed.data);
  for (int64_t r0 = 0; r0 < m; r0 += groupRows) {
    int64_t rows = std::min(groupRows, m - r0);
    blocks[rows - 1](x + r0 * classes * steps, panel, steps, classSums, out,
                     prefetch);
    slabs.deliver(sink, r0, rows, out, panelColumns);
  }
}

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

template <moert_dtype_t W> KernelSet fmaKernels() {
  return {classRowsBytes, clearClassRows, packClassRows, runFma<W>, nullptr};
}

} // namespace

const KernelSet &moert::cpu::gemm::avx512Kernels(moert_dtype_t weights) {
  static const KernelSet f32 = fmaKernels<MOERT_F32>(),
                         f16 = fmaKernels<MOERT_F16>(),
                         bf16 = fmaKernels<MOERT_BF16>();
  return weights == MOERT_F32 ? f32 : weights == MOERT_F16 ? f16 : bf16;
}

const KernelSet &moert::cpu::gemm::avx512Bf16Kernels() {
  static const KernelSet set = {bf16RowsBytes, clearBf16Rows, packBf16Rows,
                                runPairs, nullptr};
  return set;
}
