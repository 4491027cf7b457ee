//===- runtime/cpu/Kernels.cpp - Router, permutation, FFN, mixes ----------===//
//
// Every GEMM goes through the grouped GEMM (GroupedGemm.h) on the rank's
// threads, with the weights read in their own dtype (gemm/Kernel.h); the
// rest is fp32 row arithmetic.
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/Backend.h"

#include "runtime/common/Activation.h"
#include "runtime/common/Error.h"
#include "runtime/common/Quantized.h"
#include "runtime/cpu/Activation.h"
#include "runtime/cpu/gemm/StoreFloats.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace moert;
using namespace moert::cpu;

namespace {

// Scratch slots of a rank; one purpose each so panels never collide.
enum ScratchSlot : size_t {
  slotBias1 = 0,
  slotBias2,
  slotHiddenA,
  slotHiddenB,
  slotRow,
  slotRowB,
  slotGate,
  slotSharedGate,
  slotNormWeight,
};

// h *= u: the gating product of a gated FFN.
void multiplyInPlace(float *h, const float *u, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    h[i] *= u[i];
}

// Stores fp32 rows into memory of any float dtype (bf16 vectorized).
void storeFloats(const float *src, char *dst, moert_dtype_t dtype,
                 int64_t count) {
  gemm::storeFloats(src, dst, dtype, count);
}

// The expert-major row [E * C] of choice j of token s, or -1 when capacity
// dropped it; a row outside the buffer is bad routing.
int64_t expertRow(const int32_t *ids, const int32_t *slots, int64_t s,
                  int64_t j, int64_t topK, int64_t experts, int64_t capacity) {
  int32_t e = ids[s * topK + j], slot = slots[s * topK + j];
  if (slot < 0)
    return -1;
  require(e >= 0 && e < experts && slot < capacity, "token ", s, " choice ", j,
          " maps to expert ", e, " slot ", slot, " outside [", experts, " x ",
          capacity, "]");
  return e * capacity + slot;
}

// The expert rows and mapping table of a combine.
struct CombineSource {
  const char *y;
  moert_dtype_t yType;
  const int32_t *ids, *slots;
  const float *weights;
  int64_t hidden, topK, experts, capacity;
  CombineSource(Operand y, Operand ids, Operand slots, Operand weights,
                int64_t hidden, int64_t topK, int64_t experts, int64_t capacity)
      : y(y.as<const char>()), yType(y.dtype), ids(ids.as<const int32_t>()),
        slots(slots.as<const int32_t>()), weights(weights.as<const float>()),
        hidden(hidden), topK(topK), experts(experts), capacity(capacity) {}
  // acc += sum_j weights[s,j] * y[ids[s,j], slots[s,j]] over kept choices
  // (weight 1 without weights); `row` is fp32 scratch of `hidden` floats.
  void accumulate(int64_t s, float *acc, float *row) const {
    size_t yRow = hidden * dtypeSize(yType);
    for (int64_t j = 0; j < topK; ++j) {
      int64_t r = expertRow(ids, slots, s, j, topK, experts, capacity);
      if (r < 0)
        continue;
      const char *src = y + r * yRow;
      const float *values = reinterpret_cast<const float *>(src);
      if (yType != MOERT_F32) {
        convertToFloat(src, yType, row, hidden);
        values = row;
      }
      float w = weights ? weights[s * topK + j] : 1.0f;
      for (int64_t h = 0; h < hidden; ++h)
        acc[h] += w * values[h];
    }
  }
};

// An optional [S, H] operand read one row at a time (so that it may alias
// the output row written after it).
struct RowReader {
  const char *data;
  moert_dtype_t dtype;
  int64_t hidden;
  RowReader(Operand rows, int64_t hidden)
      : data(rows.as<const char>()), dtype(rows.dtype), hidden(hidden) {}
  // acc += scale * row s (nothing when absent).
  void addTo(int64_t s, float *acc, float scale, float *row) const {
    if (!data)
      return;
    convertToFloat(data + s * hidden * dtypeSize(dtype), dtype, row, hidden);
    for (int64_t h = 0; h < hidden; ++h)
      acc[h] += scale * row[h];
  }
};

// The rows [0, rows) of a row-major buffer as one problem.
ProblemRows allRows(Operand in, Operand out, int64_t rows) {
  return {in.as<const char>(), in.dtype, out.as<char>(), out.dtype,
          {{0, rows}}};
}

// out[tokens, n] = x . w^T (+ bias) in fp32.
void linearRows(CpuBackend &backend, int32_t rank, Operand x, Operand w,
                const float *bias, float *out, int64_t tokens, int64_t n,
                int64_t k) {
  groupedLinear(backend.gemm(rank),
                {{allRows(x, Operand{out, MOERT_F32}, tokens), w.data, bias}},
                w.dtype, n, k);
}

// PR-MoE: coef[s, 0..2) = softmax(x[s] . wc[2, H]^T + bc), in scratch.
const float *mixCoefficients(CpuBackend &backend, int32_t rank, Operand x,
                             Operand wc, Operand bc, int64_t tokens,
                             int64_t hidden) {
  Scratch &scratch = backend.scratch(rank);
  float *coef = scratch.floats(slotGate, tokens * 2);
  const float *bias =
      bc.present() ? floatInput(scratch, slotBias1, bc, 2) : nullptr;
  linearRows(backend, rank, x, wc, bias, coef, tokens, 2, hidden);
  for (int64_t s = 0; s < tokens; ++s) {
    float a = coef[2 * s], b = coef[2 * s + 1], top = std::max(a, b);
    float ea = std::exp(a - top), eb = std::exp(b - top);
    coef[2 * s] = ea / (ea + eb);
    coef[2 * s + 1] = eb / (ea + eb);
  }
  return coef;
}

// Qwen-MoE: gate[s] = sigmoid(x[s] . w_sg[1, H]^T); null when w_sg is absent
// (DeepSeek adds the shared output ungated).
const float *sharedGates(CpuBackend &backend, int32_t rank, Operand x,
                         Operand wSg, int64_t tokens, int64_t hidden) {
  if (!wSg.present())
    return nullptr;
  float *gate = backend.scratch(rank).floats(slotSharedGate, tokens);
  linearRows(backend, rank, x, wSg, nullptr, gate, tokens, 1, hidden);
  for (int64_t s = 0; s < tokens; ++s)
    gate[s] = 1.0f / (1.0f + std::exp(-gate[s]));
  return gate;
}

// Which rows of an expert-major [E, C, .] buffer hold tokens (see
// moert_experts); the counts are checked once, here.
struct ExpertRows {
  int64_t experts, capacity, blocks, blockRows;
  const int32_t *rows;
  ExpertRows(Operand rowsOperand, int64_t experts, int64_t capacity,
             int64_t blocks)
      : experts(experts), capacity(capacity), blocks(blocks),
        blockRows(capacity / blocks), rows(rowsOperand.as<const int32_t>()) {
    if (!rows)
      return;
    for (int64_t i = 0; i < experts * blocks; ++i)
      require(rows[i] >= 0 && rows[i] <= blockRows, "expert ", i / blocks,
              " block ", i % blocks, " has ", rows[i],
              " rows, capacity per block is ", blockRows);
  }
  int64_t used(int64_t e, int64_t b) const {
    return rows ? rows[e * blocks + b] : blockRows;
  }
  // The table of expert e alone (already checked).
  ExpertRows expert(int64_t e) const {
    ExpertRows one = *this;
    one.experts = 1;
    if (rows)
      one.rows = rows + e * blocks;
    return one;
  }
  bool anyUsed(int64_t e) const {
    for (int64_t b = 0; b < blocks; ++b)
      if (used(e, b) > 0)
        return true;
    return false;
  }
};

// The used rows of expert e as runs; the other rows of its blocks in out
// (rows of `outRow` bytes) are set to 0.
ProblemRows expertProblemRows(const ExpertRows &rows, int64_t e, Operand in,
                              int64_t inColumns, Operand out,
                              int64_t outColumns) {
  ProblemRows problem{in.as<const char>(), in.dtype, out.as<char>(),
                      out.dtype, {}};
  size_t outRow = outColumns * dtypeSize(out.dtype);
  for (int64_t b = 0; b < rows.blocks; ++b) {
    int64_t used = rows.used(e, b);
    int64_t first = e * rows.capacity + b * rows.blockRows;
    if (used > 0)
      problem.runs.push_back({first, used});
    if (used < rows.blockRows) // memset(nullptr, 0, 0) is undefined
      std::memset(problem.out + (first + used) * outRow, 0,
                  (rows.blockRows - used) * outRow);
  }
  return problem;
}

// The FFN problems of the used experts of a grouped call: expert e's
// weights are `first`/`second` [F, H] and `down` [H, F] at element offset
// e * F * H times `stride` (2 for a packed [gate | up]).
struct ExpertWeights {
  Operand first, second, down;
  int64_t stride;
  const float *b1, *b2;
};

void addExpertProblems(std::vector<FfnProblem> &problems,
                       const ExpertRows &rows, const ExpertWeights &w,
                       moert_activation_t activation, int64_t hidden,
                       int64_t ffn, Operand in, Operand out) {
  int64_t panel = ffn * hidden;
  for (int64_t e = 0; e < rows.experts; ++e) {
    ProblemRows problemRows =
        expertProblemRows(rows, e, in, hidden, out, hidden);
    if (problemRows.runs.empty())
      continue; // unused experts cost nothing, their weights unread
    problems.push_back(
        {std::move(problemRows), hidden, ffn, activation,
         w.first.at(e * w.stride * panel).data,
         w.second.present() ? w.second.at(e * w.stride * panel).data : nullptr,
         w.down.at(e * panel).data, w.first.dtype, w.down.dtype,
         w.b1 ? w.b1 + e * ffn : nullptr, w.b2 ? w.b2 + e * hidden : nullptr});
  }
}

// moert_experts_linear: out[e, r] = in[e, r] . w[e]^T over the used rows.
void expertsGemm(CpuBackend &backend, int32_t rank, const ExpertRows &rows,
                 Operand w, Operand in, Operand out, int64_t n, int64_t k) {
  std::vector<LinearProblem> problems;
  for (int64_t e = 0; e < rows.experts; ++e) {
    ProblemRows problemRows = expertProblemRows(rows, e, in, k, out, n);
    if (!problemRows.runs.empty())
      problems.push_back({std::move(problemRows), w.at(e * n * k).data,
                          nullptr});
  }
  groupedLinear(backend.gemm(rank), problems, w.dtype, n, k);
}

// Applies `fn(x, y)` to fp32 chunks of a and (optionally) b and stores into
// out; chunks are disjoint so out may alias a or b.
template <typename Fn>
void chunked(Scratch &scratch, Operand a, const Operand *b, Operand out,
             int64_t count, Fn fn) {
  constexpr int64_t chunk = 4096;
  float *x = scratch.floats(slotRow, chunk);
  float *y = scratch.floats(slotRowB, chunk);
  for (int64_t begin = 0; begin < count; begin += chunk) {
    int64_t n = std::min(chunk, count - begin);
    convertToFloat(a.at(begin).data, a.dtype, x, n);
    if (b)
      convertToFloat(b->at(begin).data, b->dtype, y, n);
    fn(x, y, n);
    storeFloats(x, out.at(begin).as<char>(), out.dtype, n);
  }
}

} // namespace

void CpuBackend::router(int32_t rank, Operand x, Operand wg, Operand bias,
                        Operand logits, int64_t tokens, int64_t hidden,
                        int64_t experts) {
  const float *b = bias.present()
                       ? floatInput(scratch(rank), slotBias1, bias, experts)
                       : nullptr;
  linearRows(*this, rank, x, wg, b, logits.as<float>(), tokens, experts,
             hidden);
}

void CpuBackend::dispatch(int32_t rank, Operand x, Operand ids, Operand slots,
                          Operand weights, Operand buf, int64_t tokens,
                          int64_t hidden, int64_t topK, int64_t experts,
                          int64_t capacity) {
  const char *xData = x.as<const char>();
  const int32_t *idData = ids.as<const int32_t>();
  const int32_t *slotData = slots.as<const int32_t>();
  const float *scale = weights.as<const float>(); // null: unscaled
  char *out = buf.as<char>();
  size_t inRow = hidden * dtypeSize(x.dtype);
  size_t outRow = hidden * dtypeSize(buf.dtype);
  // Rows no kept choice writes are zeroed; the others (one choice each)
  // are written once, tokens on the rank's threads.
  int64_t rows = experts * capacity;
  std::vector<bool> written(rows, false);
  for (int64_t s = 0; s < tokens; ++s)
    for (int64_t j = 0; j < topK; ++j) {
      int64_t r = expertRow(idData, slotData, s, j, topK, experts, capacity);
      if (r >= 0)
        written[r] = true;
    }
  for (int64_t r = 0; r < rows;) {
    int64_t end = r;
    while (end < rows && !written[end])
      ++end;
    std::memset(out + r * outRow, 0, (end - r) * outRow);
    r = end + 1;
  }
  parallelRows(
      gemm(rank).pool, tokens, scale ? hidden : 0, [&](int64_t s, float *row) {
        for (int64_t j = 0; j < topK; ++j) {
          int64_t r =
              expertRow(idData, slotData, s, j, topK, experts, capacity);
          if (r < 0)
            continue;
          if (!scale) {
            convert(xData + s * inRow, x.dtype, out + r * outRow, buf.dtype,
                    hidden);
            continue;
          }
          // x * w in fp32, rounded once to the buffer's dtype.
          convertToFloat(xData + s * inRow, x.dtype, row, hidden);
          float w = scale[s * topK + j];
          for (int64_t h = 0; h < hidden; ++h)
            row[h] *= w;
          storeFloats(row, out + r * outRow, buf.dtype, hidden);
        }
      });
}

void CpuBackend::combine(int32_t rank, Operand y, Operand ids, Operand slots,
                         Operand weights, Operand addend, Operand out,
                         int64_t tokens, int64_t hidden, int64_t topK,
                         int64_t experts, int64_t capacity) {
  CombineSource source(y, ids, slots, weights, hidden, topK, experts, capacity);
  RowReader addendRows(addend, hidden);
  size_t outRow = hidden * dtypeSize(out.dtype);
  char *outData = out.as<char>();
  // Tokens on the rank's threads: each reads its addend row before it
  // writes its out row, so out may alias addend.
  parallelRows(gemm(rank).pool, tokens, 2 * hidden, [&](int64_t t, float *acc) {
    float *row = acc + hidden;
    std::fill_n(acc, hidden, 0.0f);
    source.accumulate(t, acc, row);
    addendRows.addTo(t, acc, 1.0f, row);
    storeFloats(acc, outData + t * outRow, out.dtype, hidden);
  });
}

void CpuBackend::fusedCombine(int32_t rank, Operand y, Operand ids,
                              Operand slots, Operand weights, Operand mlpOut,
                              Operand wc, Operand bc, Operand shared,
                              Operand wSg, Operand x, Operand addend,
                              Operand out, int64_t tokens, int64_t hidden,
                              int64_t topK, int64_t experts, int64_t capacity) {
  CombineSource source(y, ids, slots, weights, hidden, topK, experts, capacity);
  RowReader mlpRows(mlpOut, hidden), sharedRows(shared, hidden),
      addendRows(addend, hidden);
  // Everything read from x is computed before any row of out (which may
  // alias x) is written.
  const float *coef =
      mlpOut.present()
          ? mixCoefficients(*this, rank, x, wc, bc, tokens, hidden)
          : nullptr;
  const float *gate = sharedGates(*this, rank, x, wSg, tokens, hidden);
  size_t outRow = hidden * dtypeSize(out.dtype);
  char *outData = out.as<char>();
  parallelRows(gemm(rank).pool, tokens, 2 * hidden, [&](int64_t t, float *acc) {
    float *row = acc + hidden;
    std::fill_n(acc, hidden, 0.0f);
    source.accumulate(t, acc, row);
    if (coef) {
      for (int64_t h = 0; h < hidden; ++h)
        acc[h] *= coef[2 * t];
      mlpRows.addTo(t, acc, coef[2 * t + 1], row);
    }
    sharedRows.addTo(t, acc, gate ? gate[t] : 1.0f, row);
    addendRows.addTo(t, acc, 1.0f, row);
    storeFloats(acc, outData + t * outRow, out.dtype, hidden);
  });
}

namespace {

// A gated FFN whose gate and up weights differ in dtype cannot pair them in
// one GEMM: the stage calls in sequence, through fp32 scratch.
void stagedExperts(CpuBackend &backend, int32_t rank, const FfnOperands &ffn,
                   const ExpertRows &used, Operand in, Operand out) {
  Scratch &s = backend.scratch(rank);
  int64_t count = used.experts * used.capacity * ffn.ffn;
  Operand h{s.floats(slotHiddenA, count), MOERT_F32};
  Operand u{s.floats(slotHiddenB, count), MOERT_F32};
  expertsGemm(backend, rank, used, ffn.wGate, in, h, ffn.ffn, ffn.hidden);
  expertsGemm(backend, rank, used, ffn.wUp, in, u, ffn.ffn, ffn.hidden);
  // Before bf16 down weights the hidden is bf16, as groupedFfn stores it.
  gatedHidden(ffn.activation, h.as<float>(), u.as<const float>(), count, 1,
              count, ffn.wDown.dtype == MOERT_BF16, h.as<float>());
  expertsGemm(backend, rank, used, ffn.wDown, h, out, ffn.hidden, ffn.ffn);
}

// The biases of every stacked copy in fp32 (null when absent).
const float *biases(Scratch &s, size_t slot, Operand bias, int64_t count) {
  return bias.present() ? floatInput(s, slot, bias, count) : nullptr;
}

} // namespace

void CpuBackend::experts(int32_t rank, const FfnOperands &ffn, Operand in,
                         Operand out, Operand rows, int64_t experts,
                         int64_t capacity, int64_t blocks) {
  ExpertRows used(rows, experts, capacity, blocks);
  if (ffn.gated() && ffn.wGate.dtype != ffn.wUp.dtype)
    return stagedExperts(*this, rank, ffn, used, in, out);
  Scratch &s = scratch(rank);
  ExpertWeights w{ffn.wGate,
                  ffn.gated() ? ffn.wUp : Operand{},
                  ffn.wDown,
                  1,
                  biases(s, slotBias1, ffn.b1, experts * ffn.ffn),
                  biases(s, slotBias2, ffn.b2, experts * ffn.hidden)};
  std::vector<FfnProblem> problems;
  addExpertProblems(problems, used, w, ffn.activation, ffn.hidden, ffn.ffn, in,
                    out);
  groupedFfn(gemm(rank), problems);
}

void CpuBackend::fusedExperts(int32_t rank, const PackedFfnOperands &ffn,
                              Operand in, Operand out, Operand rows,
                              int64_t experts, int64_t capacity, int64_t blocks,
                              const PackedFfnOperands *shared, Operand sharedX,
                              Operand sharedOut, int64_t tokens) {
  auto packed = [](const PackedFfnOperands &w) {
    return ExpertWeights{w.wGateUp, w.wGateUp.at(w.ffn * w.hidden), w.wDown,
                         2,         nullptr,                         nullptr};
  };
  std::vector<FfnProblem> problems;
  addExpertProblems(problems, ExpertRows(rows, experts, capacity, blocks),
                    packed(ffn), ffn.activation, ffn.hidden, ffn.ffn, in, out);
  if (!shared)
    return groupedFfn(gemm(rank), problems);
  // The shared expert is one more problem of the same grouped GEMMs (one
  // "expert" whose rows are this rank's tokens) when its dtypes match.
  std::vector<FfnProblem> sharedProblems;
  addExpertProblems(sharedProblems, ExpertRows(Operand{}, 1, tokens, 1),
                    packed(*shared), shared->activation, shared->hidden,
                    shared->ffn, sharedX, sharedOut);
  bool sameTypes = shared->wGateUp.dtype == ffn.wGateUp.dtype &&
                   shared->wDown.dtype == ffn.wDown.dtype;
  if (!sameTypes)
    groupedFfn(gemm(rank), sharedProblems);
  else
    problems.insert(problems.end(), sharedProblems.begin(),
                    sharedProblems.end());
  groupedFfn(gemm(rank), problems);
}

void CpuBackend::expertsLinear(int32_t rank, Operand w, Operand in, Operand out,
                               Operand rows, int64_t experts, int64_t capacity,
                               int64_t blocks, int64_t n, int64_t k) {
  expertsGemm(*this, rank, ExpertRows(rows, experts, capacity, blocks), w, in,
              out, n, k);
}

void CpuBackend::activation(int32_t rank, moert_activation_t activation,
                            Operand x, Operand out, int64_t count) {
  chunked(scratch(rank), x, nullptr, out, count,
          [&](float *v, const float *, int64_t n) {
            activateInPlace(activation, v, n);
          });
}

void CpuBackend::multiply(int32_t rank, Operand a, Operand b, Operand out,
                          int64_t count) {
  chunked(scratch(rank), a, &b, out, count, multiplyInPlace);
}

void CpuBackend::swigluClamped(int32_t rank, Operand gate, Operand up,
                               Operand out, int64_t count, float alpha,
                               float limit) {
  chunked(scratch(rank), gate, &up, out, count,
          [&](float *g, const float *u, int64_t n) {
            for (int64_t i = 0; i < n; ++i)
              g[i] = moert::swigluClamped(g[i], u[i], alpha, limit);
          });
}

void CpuBackend::expertsBiasAdd(int32_t rank, Operand bias, Operand x,
                                Operand out, Operand rows, int64_t experts,
                                int64_t capacity, int64_t blocks, int64_t n) {
  ExpertRows used(rows, experts, capacity, blocks);
  Scratch &s = scratch(rank);
  const float *b = floatInput(s, slotBias1, bias, experts * n);
  float *row = s.floats(slotRow, n);
  // Row by row: each is read whole before it is written, so out may be x.
  for (int64_t e = 0; e < experts; ++e)
    for (int64_t c = 0; c < capacity; ++c) {
      int64_t first = (e * capacity + c) * n;
      convertToFloat(x.at(first).data, x.dtype, row, n);
      if (c % used.blockRows < used.used(e, c / used.blockRows))
        for (int64_t i = 0; i < n; ++i)
          row[i] += b[e * n + i];
      storeFloats(row, out.at(first).as<char>(), out.dtype, n);
    }
}

void CpuBackend::denseFfn(int32_t rank, const FfnOperands &ffn, Operand x,
                          Operand out, int64_t tokens) {
  if (ffn.gated() && ffn.wGate.dtype != ffn.wUp.dtype)
    return stagedExperts(*this, rank, ffn, ExpertRows(Operand{}, 1, tokens, 1),
                         x, out);
  Scratch &s = scratch(rank);
  ExpertWeights w{ffn.wGate,
                  ffn.gated() ? ffn.wUp : Operand{},
                  ffn.wDown,
                  1,
                  biases(s, slotBias1, ffn.b1, ffn.ffn),
                  biases(s, slotBias2, ffn.b2, ffn.hidden)};
  std::vector<FfnProblem> problems;
  addExpertProblems(problems, ExpertRows(Operand{}, 1, tokens, 1), w,
                    ffn.activation, ffn.hidden, ffn.ffn, x, out);
  groupedFfn(gemm(rank), problems);
}

void CpuBackend::quantizedExperts(int32_t rank, const QuantizedFfnOperands &ffn,
                                  Operand in, Operand out, Operand rows,
                                  int64_t experts, int64_t capacity,
                                  int64_t blocks) {
  ExpertRows used(rows, experts, capacity, blocks);
  QuantizedLayout upLayout{ffn.format, ffn.ffn, ffn.hidden, ffn.blockRows,
                           ffn.blockCols};
  QuantizedLayout downLayout{ffn.format, ffn.hidden, ffn.ffn, ffn.blockRows,
                             ffn.blockCols};
  // Expert e's data and scales follow expert e - 1's, dense.
  auto expertWeight = [](const QuantizedOperand &w,
                         const QuantizedLayout &layout, int64_t e) {
    return std::make_pair(w.data.at(e * layout.dataElements()).data,
                          w.scales.at(e * layout.scaleElements()).data);
  };
  std::vector<gemm::Quantization> scales;
  scales.reserve(3 * experts); // the problems point into it
  std::vector<FfnProblem> problems;
  for (int64_t e = 0; e < experts; ++e) {
    ProblemRows problemRows =
        expertProblemRows(used, e, in, ffn.hidden, out, ffn.hidden);
    if (problemRows.runs.empty())
      continue; // unused experts cost nothing, their weights unread
    auto gate = expertWeight(ffn.gate, upLayout, e);
    auto up = expertWeight(ffn.up, upLayout, e);
    auto down = expertWeight(ffn.down, downLayout, e);
    for (const void *scale : {gate.second, up.second, down.second})
      scales.push_back({ffn.format, scale, ffn.blockRows, ffn.blockCols});
    const gemm::Quantization *q = &scales[scales.size() - 3];
    problems.push_back({std::move(problemRows), ffn.hidden, ffn.ffn,
                        ffn.activation, gate.first, up.first, down.first,
                        MOERT_F32, MOERT_F32, nullptr, nullptr, &q[0], &q[1],
                        &q[2]});
  }
  groupedFfn(gemm(rank), problems);
}

void CpuBackend::quantizedExpertsLinear(int32_t rank,
                                        const QuantizedLinearOperands &w,
                                        Operand in, Operand out, Operand rows,
                                        int64_t experts, int64_t capacity,
                                        int64_t blocks) {
  ExpertRows used(rows, experts, capacity, blocks);
  QuantizedLayout layout{w.format, w.n, w.k, w.blockRows, w.blockCols};
  std::vector<gemm::Quantization> scales;
  scales.reserve(experts); // the problems point into it
  std::vector<LinearProblem> problems;
  for (int64_t e = 0; e < experts; ++e) {
    ProblemRows problemRows = expertProblemRows(used, e, in, w.k, out, w.n);
    if (problemRows.runs.empty())
      continue; // unused experts cost nothing, their weights unread
    // Expert e's data and scales follow expert e - 1's, dense.
    scales.push_back({w.format, w.w.scales.at(e * layout.scaleElements()).data,
                      w.blockRows, w.blockCols});
    problems.push_back({std::move(problemRows),
                        w.w.data.at(e * layout.dataElements()).data, nullptr,
                        &scales.back()});
  }
  groupedLinear(gemm(rank), problems, MOERT_F32, w.n, w.k);
}

void CpuBackend::residualMix(int32_t rank, Operand x, Operand wc, Operand bc,
                             Operand moeOut, Operand mlpOut, Operand out,
                             int64_t tokens, int64_t hidden) {
  Scratch &s = scratch(rank);
  int64_t count = tokens * hidden;
  const float *coef = mixCoefficients(*this, rank, x, wc, bc, tokens, hidden);
  const float *moe = floatInput(s, slotHiddenA, moeOut, count);
  const float *mlp = floatInput(s, slotHiddenB, mlpOut, count);
  float *row = s.floats(slotRow, hidden);
  size_t outRow = hidden * dtypeSize(out.dtype);
  char *outData = out.as<char>();
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < hidden; ++h)
      row[h] = moe[t * hidden + h] * coef[2 * t] +
               mlp[t * hidden + h] * coef[2 * t + 1];
    storeFloats(row, outData + t * outRow, out.dtype, hidden);
  }
}

void CpuBackend::sharedAdd(int32_t rank, Operand routed, Operand shared,
                           Operand x, Operand wSg, Operand out, int64_t tokens,
                           int64_t hidden) {
  Scratch &s = scratch(rank);
  const float *gate = sharedGates(*this, rank, x, wSg, tokens, hidden);
  // Row by row so that out may alias routed.
  float *a = s.floats(slotRow, hidden);
  float *b = s.floats(slotRowB, hidden);
  for (int64_t t = 0; t < tokens; ++t) {
    convertToFloat(routed.at(t * hidden).data, routed.dtype, a, hidden);
    convertToFloat(shared.at(t * hidden).data, shared.dtype, b, hidden);
    float g = gate ? gate[t] : 1.0f;
    for (int64_t h = 0; h < hidden; ++h)
      a[h] += g * b[h];
    storeFloats(a, out.at(t * hidden).as<char>(), out.dtype, hidden);
  }
}

void CpuBackend::rmsNorm(int32_t rank, Operand x, Operand weight, Operand out,
                         int64_t tokens, int64_t hidden, float epsilon) {
  const float *w = floatInput(scratch(rank), slotNormWeight, weight, hidden);
  // Per row: the row in fp32, then room for it rounded to x's dtype. Row by
  // row so that out may alias x.
  parallelRows(gemm(rank).pool, tokens, 2 * hidden, [&](int64_t t,
                                                        float *row) {
    char *rounded = reinterpret_cast<char *>(row + hidden);
    convertToFloat(x.at(t * hidden).data, x.dtype, row, hidden);
    double squares = laneSum(hidden, [&](int64_t h) {
      return static_cast<double>(row[h]) * row[h];
    });
    float inverse =
        1.0f / std::sqrt(static_cast<float>(squares / hidden) + epsilon);
    for (int64_t h = 0; h < hidden; ++h)
      row[h] *= inverse;
    if (x.dtype != MOERT_F32) { // the normalised x in x's dtype, as HF
      storeFloats(row, rounded, x.dtype, hidden);
      convertToFloat(rounded, x.dtype, row, hidden);
    }
    for (int64_t h = 0; h < hidden; ++h)
      row[h] *= w[h];
    storeFloats(row, out.at(t * hidden).as<char>(), out.dtype, hidden);
  });
}

void CpuBackend::add(int32_t rank, Operand a, Operand b, Operand out,
                     int64_t count) {
  chunked(scratch(rank), a, &b, out, count,
          [](float *x, const float *y, int64_t n) {
            for (int64_t i = 0; i < n; ++i)
              x[i] += y[i];
          });
}
