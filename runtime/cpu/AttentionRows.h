//===- runtime/cpu/AttentionRows.h - Attention's row loops ------*- C++ -*-===//
//
// The loops every CPU attention (moert_attention, both forms of
// moert_latent_attention) runs over rows `ld` elements apart, read where
// they are in their own dtype (f32, f16 or bf16: a cache, kv_b) and widened
// in registers:
//   scores: out[t] = scale * (q . rows[t]), each a sum in 16 lanes along d
//     then a tree over the lanes; the rows' sums are independent, so their
//     chains overlap where a lone dot product waits out each;
//   weightedSum: o[d] += p[t] * rows[t][d] over t in order, 64 of o in
//     registers at a time (also the scores of keys stored transposed:
//     rows[n][t] over the query's n);
//   softmaxTerms: row[t] = e^(row[t] - top), returning their sum;
//   transpose and panelScores: the keys of many queries widened once into
//     a panel of columns, panel[d * width + t] = rows[t][d], then scores
//     of 16 keys at a time, each lane class of d summed in registers and
//     the classes added in the tree of `scores`: the same bits, without a
//     reduction per key.
// Portable C++ for any CPU, and AVX-512 where gemm::isa() has it.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_CPU_ATTENTIONROWS_H
#define MOERT_CPU_ATTENTIONROWS_H

#include "runtime/moert.h"

#include <cstdint>

namespace moert::cpu {

struct AttentionRows {
  void (*scores)(const float *q, const void *rows, moert_dtype_t type,
                 int64_t ld, int64_t dim, int64_t count, float scale,
                 float *out);
  void (*weightedSum)(float *o, const float *p, const void *rows,
                      moert_dtype_t type, int64_t ld, int64_t dim,
                      int64_t count);
  float (*softmaxTerms)(float *row, int64_t count, float top);
  // Rows [0, count) as the panel's columns; width (a multiple of 16, at
  // least count) columns per d, the columns past count 0.
  void (*transpose)(const void *rows, moert_dtype_t type, int64_t ld,
                    int64_t dim, int64_t count, int64_t width, float *panel);
  // `scores` of the panel's columns [0, count) (panel may point at a column
  // inside a wider panel; up to 15 columns past count are read, so the
  // panel's storage runs 16 floats past its last column).
  void (*panelScores)(const float *q, const float *panel, int64_t width,
                      int64_t dim, int64_t count, float scale, float *out);
};

// The loops of the ISA this process uses.
const AttentionRows &attentionRows();

} // namespace moert::cpu

#endif // MOERT_CPU_ATTENTIONROWS_H
