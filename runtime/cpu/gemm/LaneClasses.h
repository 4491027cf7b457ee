//===- runtime/cpu/gemm/LaneClasses.h - Row-dot sums by class --*- C++ -*-===//
//
// The AVX-512 row-dot kernels' lane l sums the products of class l (k = l
// mod 16 for fp32, pair l mod 16 for bf16 pairs) in k order, and sumEight
// adds the 16 class sums in one tree. Past classMinRows rows the same sums
// run as outer products, class by class, over groups of classGroupRows
// rows, and sumClasses adds them in the same tree: a row's bits do not
// depend on how many rows the GEMM has. For the x86-64 kernel files only.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_GEMM_LANECLASSES_H
#define MOERT_CPU_GEMM_LANECLASSES_H

#include "runtime/cpu/gemm/Avx512Util.h"
#include "runtime/cpu/gemm/Kernel.h"

#include <algorithm>

namespace moert::cpu::gemm {

constexpr int64_t classes = 16;
// Rows of a packed group and of a block: 24 accumulators, 2 panel vectors.
constexpr int64_t classGroupRows = 12;
// Past 48 rows the panel's transposition pays for itself; up to there the
// row-dot kernel, whose weight chunks stream while it computes, was as fast
// (moe-bench-cpu-layer, f32, 64 to 256 tokens on 8 experts). bf16 pairs,
// Zen 4, 1 core, in turn in one process: classes from 25 rows took 1.03 to
// 1.12x the time (small at 128 tokens, OLMoE at 256, Qwen3 at 512), from 17
// rows 1.18x (OLMoE at 128).
constexpr int64_t classMinRows = 48;
inline bool classLayout(int64_t m) { return m > classMinRows; }

MOERT_AVX512 inline void sumEight(const __m512 *a, float *out) {
  // Halves of pairs, then quarters, then 64- and 32-bit pieces: lane l
  // of 128-bit lane L ends as output L (l even) or 4 + L (l odd). The
  // zero-masked forms with every lane: GCC 12 warns that the plain ones'
  // undefined pass-through is uninitialized once inlined into a BF16
  // kernel.
  constexpr __mmask16 all = 0xffff;
  __m512 h[4], g[2];
  for (int i = 0; i < 4; ++i)
    h[i] = _mm512_add_ps(
        _mm512_maskz_shuffle_f32x4(all, a[2 * i], a[2 * i + 1], 0x44),
        _mm512_maskz_shuffle_f32x4(all, a[2 * i], a[2 * i + 1], 0xee));
  for (int i = 0; i < 2; ++i)
    g[i] = _mm512_add_ps(
        _mm512_maskz_shuffle_f32x4(all, h[2 * i], h[2 * i + 1], 0x88),
        _mm512_maskz_shuffle_f32x4(all, h[2 * i], h[2 * i + 1], 0xdd));
  __m512 t = _mm512_add_ps(_mm512_maskz_unpacklo_ps(all, g[0], g[1]),
                           _mm512_maskz_unpackhi_ps(all, g[0], g[1]));
  t = _mm512_add_ps(t, _mm512_maskz_shuffle_ps(all, t, t, 0x4e));
  const __m512i order =
      _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  _mm512_mask_storeu_ps(out, 0xff, _mm512_maskz_permutexvar_ps(all, order, t));
}

// sumEight() for 16 outputs at once, lane l's partial sums of output o in
// lane o of a[l]: the same additions in the same order, lane by lane
// (w_j = (a_j + a_8+j) + (a_4+j + a_12+j), then (w_0 + w_2) + (w_1 + w_3)).
MOERT_AVX512 inline __m512 sumClasses(const __m512 *a) {
  __m512 w[4];
  for (int j = 0; j < 4; ++j)
    w[j] = _mm512_add_ps(_mm512_add_ps(a[j], a[8 + j]),
                         _mm512_add_ps(a[4 + j], a[12 + j]));
  return _mm512_add_ps(_mm512_add_ps(w[0], w[2]), _mm512_add_ps(w[1], w[3]));
}

// A class block's bookkeeping: class l's accumulators of R rows (two
// 16-column halves each) kept for the tree, and after the last class each
// row's 32 sums into out[R][32].
template <int R>
MOERT_AVX512 inline void keepClass(const __m512 (&acc)[R][2], int64_t l,
                                   __m512 *classSums) {
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2; ++h)
      classSums[(r * 2 + h) * classes + l] = acc[r][h];
}
template <int R>
MOERT_AVX512 inline void storeClassSums(const __m512 *classSums, float *out) {
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < 2; ++h)
      _mm512_store_ps(out + r * 2 * slabRows + h * slabRows,
                      sumClasses(classSums + (r * 2 + h) * classes));
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
    for (int64_t j = 0; j < 2 * slabRows; ++j)
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
  const char *rows_[2 * slabRows];
  int64_t rowCount_ = 0, lines_ = 0, perStep_ = 0, row_ = 0, line_ = 0;
};

// One item in the class form: the panel (classes x steps x 32 values of
// 32 bits, written by fill(slabs, panel)), then each group of up to
// classGroupRows packed rows (groupElements apart from x) through
// blocks[rows - 1], delivered.
template <class Element, class Block, class Fill>
void runClassGroups(const Weights &w, int64_t item, const Element *x,
                    int64_t groupElements, int64_t m, int64_t steps,
                    const Block *blocks, Fill fill, Workspace &workspace,
                    Sink &sink) {
  constexpr int64_t panelColumns = 2 * slabRows;
  size_t panelElements = classes * steps * panelColumns;
  size_t sumsFloats = classGroupRows * 2 * classes * classes;
  auto *panel = static_cast<Element *>(workspace.get(
      (panelElements + sumsFloats + classGroupRows * panelColumns) *
      sizeof(float)));
  auto *classSums = reinterpret_cast<__m512 *>(panel + panelElements);
  float *out = reinterpret_cast<float *>(panel + panelElements) + sumsFloats;
  Slabs slabs(w, item);
  fill(slabs, panel);
  NextItemPrefetch prefetch(
      w, item, (m + classGroupRows - 1) / classGroupRows * classes);
  for (int64_t r0 = 0; r0 < m; r0 += classGroupRows) {
    int64_t rows = std::min(classGroupRows, m - r0);
    blocks[rows - 1](x + r0 / classGroupRows * groupElements, panel, steps,
                     classSums, out, prefetch);
    slabs.deliver(sink, r0, rows, out, panelColumns);
  }
}

} // namespace moert::cpu::gemm

#endif // MOERT_CPU_GEMM_LANECLASSES_H
