//===- runtime/cpu/gemm/Avx512.cpp - AVX-512 FMA kernels ------------------===//
//
// FMA (any weight dtype): the row-dot kernel (DotKernel.h) on 16 lanes up to
// 48 rows; past them the same sums as outer products (lane classes, below),
// which keep a row's bits and run at GEMM speed.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/gemm/Kernels.h"

#include "runtime/common/Convert.h"
#include "runtime/cpu/gemm/Avx512Util.h"
#include "runtime/cpu/gemm/LaneClasses.h"
#define MOERT_DOT_TARGET MOERT_AVX512
#include "runtime/cpu/gemm/DotKernel.h"

#include <algorithm>
#include <cstring>
#include <utility>

using namespace moert;
using namespace moert::cpu::gemm;

namespace {

constexpr int64_t panelColumns = 2 * slabRows;

// The same, lanes past `count` 0.
template <moert_dtype_t W>
MOERT_AVX512 inline __m512 loadWidened(const char *row, int64_t count) {
  return loadWidenedMasked<W>(row, laneMask(count));
}

//===--- fp32 FMA: the row-dot kernel ----------------------------------===//

struct Avx512Vector {
  using Reg = __m512;
  using XReg = Reg;
  using XElement = float;
  static constexpr int64_t lanes = 16, blockRows = 3;
  MOERT_AVX512 static Reg zero() { return _mm512_setzero_ps(); }
  MOERT_AVX512 static Reg fmadd(Reg a, Reg b, Reg acc) {
    return _mm512_fmadd_ps(a, b, acc);
  }
  MOERT_AVX512 static void sums(const Reg *a, float *out) { sumEight(a, out); }
  MOERT_AVX512 static void store(float *to, Reg v) { _mm512_storeu_ps(to, v); }
  static int64_t xOffset(int64_t k0) { return k0; }
  MOERT_AVX512 static Reg loadX(const float *row, int64_t i, int64_t count) {
    return count >= lanes ? _mm512_loadu_ps(row + i)
                          : _mm512_maskz_loadu_ps(laneMask(count), row + i);
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

int64_t classSteps(int64_t k) { return (k + classes - 1) / classes; }

// Packed X past 48 rows: groups of 12 rows; in a group, class l's step j
// (k = l + 16 j) holds the group's 12 x values contiguously. Up to 48 rows:
// the row-dot kernel's fp32 rows.
size_t classRowsBytes(int64_t m, int64_t k, bool split) {
  if (!classLayout(m))
    return floatRowsBytes(m, k, split);
  int64_t groups = (m + classGroupRows - 1) / classGroupRows;
  return static_cast<size_t>(groups * classes * classSteps(k) *
                             classGroupRows) *
         sizeof(float);
}

// Past k the classes' last step reads zeros (the row-dot kernel's masked
// tail); rows past m are never read.
void clearClassRows(const PackedRows &x) {
  if (!classLayout(x.m) || x.k % classes == 0)
    return;
  int64_t steps = classSteps(x.k),
          groups = (x.m + classGroupRows - 1) / classGroupRows;
  auto *data = static_cast<float *>(x.data);
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t l = x.k % classes; l < classes; ++l)
      std::memset(data +
                      ((g * classes + l) * steps + steps - 1) * classGroupRows,
                  0, classGroupRows * sizeof(float));
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
    int64_t offset = (m0 + r) % classGroupRows;
    int64_t count = std::min(classGroupRows - offset, rows - r);
    float *group =
        data + (m0 + r) / classGroupRows * classes * steps * classGroupRows +
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
        _mm512_mask_storeu_ps(group + (l * steps + step) * classGroupRows,
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

// R rows of a group (x: the group's start) against the whole panel; out
// [R][32] gets the sums.
template <int R>
MOERT_AVX512 void classBlock(const float *x, const float *panel, int64_t steps,
                             __m512 *classSums, float *out,
                             NextItemPrefetch &prefetch) {
  for (int64_t l = 0; l < classes; ++l) {
    prefetch.step();
    const float *xl = x + l * steps * classGroupRows;
    const float *pl = panel + l * steps * panelColumns;
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r)
      acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t j = 0; j < steps; ++j) {
      __m512 p0 = _mm512_load_ps(pl + j * panelColumns);
      __m512 p1 = _mm512_load_ps(pl + j * panelColumns + slabRows);
      for (int r = 0; r < R; ++r) {
        __m512 b = _mm512_set1_ps(xl[j * classGroupRows + r]);
        acc[r][0] = _mm512_fmadd_ps(b, p0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(b, p1, acc[r][1]);
      }
    }
    keepClass<R>(acc, l, classSums);
  }
  storeClassSums<R>(classSums, out);
}

using ClassBlockFn = void (*)(const float *, const float *, int64_t, __m512 *,
                              float *, NextItemPrefetch &);
template <int... R>
constexpr ClassBlockFn classBlockFns[] = {classBlock<R + 1>...};
template <int... R>
constexpr auto makeClassBlocks(std::integer_sequence<int, R...>) {
  return classBlockFns<R...>;
}

template <moert_dtype_t W, Decode D>
MOERT_AVX512 void runFma(const Weights &w, int64_t item,
                         const PackedRows &packed, Workspace &workspace,
                         Sink &sink) {
  if (!classLayout(packed.m))
    return dot::run<Avx512Vector, W, D>(w, item, packed, workspace, sink);
  static constexpr auto blocks =
      makeClassBlocks(std::make_integer_sequence<int, classGroupRows>());
  int64_t steps = classSteps(w.k);
  runClassGroups(
      w, item, static_cast<const float *>(packed.data),
      classes * steps * classGroupRows, packed.m, steps, blocks,
      [&](const Slabs &slabs, float *panel) {
        fillClassPanel<W>(slabs, w.k, panel);
      },
      workspace, sink);
}

template <moert_dtype_t W, Decode D> KernelSet fmaKernels() {
  return {classRowsBytes, clearClassRows, packClassRows, runFma<W, D>, nullptr};
}

template <Decode D> const KernelSet &fmaKernelsFor(moert_dtype_t weights) {
  static const KernelSet f32 = fmaKernels<MOERT_F32, D>(),
                         f16 = fmaKernels<MOERT_F16, D>(),
                         bf16 = fmaKernels<MOERT_BF16, D>();
  return weights == MOERT_F32 ? f32 : weights == MOERT_F16 ? f16 : bf16;
}

} // namespace

const KernelSet &moert::cpu::gemm::avx512Kernels(moert_dtype_t weights,
                                                 Decode decode) {
  return decode == Decode::GroupsAhead
             ? fmaKernelsFor<Decode::GroupsAhead>(weights)
             : fmaKernelsFor<Decode::Rowwise>(weights);
}
