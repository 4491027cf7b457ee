//===- runtime/cpu/Kernels.cpp - Router, permutation, FFN, mixes ----------===//
//
// Every GEMM goes through OpenBLAS cblas_sgemm on fp32 panels; f16/bf16
// operands are widened once per call (weights once per expert per call).
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/Backend.h"

#include "runtime/common/Activation.h"
#include "runtime/common/Error.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace moert;
using namespace moert::cpu;

namespace {

// Scratch slots of a rank; one purpose each so panels never collide.
enum ScratchSlot : size_t {
  slotInput = 0,
  slotWeightA,
  slotWeightB,
  slotWeightC,
  slotBias1,
  slotBias2,
  slotHiddenA,
  slotHiddenB,
  slotOutput,
  slotRow,
  slotRowB,
  slotGate,
  slotWeightD,
  slotSharedGate,
};

// C[m,n] = A[m,k] . B[n,k]^T (+ C if accumulate): the nn.Linear product.
void linear(int64_t m, int64_t n, int64_t k, const float *a, const float *b,
            float *c, bool accumulate = false) {
  if (m == 0 || n == 0)
    return;
  if (k == 0) {
    if (!accumulate)
      std::fill_n(c, m * n, 0.0f);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), 1.0f, a,
              static_cast<int>(k), b, static_cast<int>(k),
              accumulate ? 1.0f : 0.0f, c, static_cast<int>(n));
}

void addRowBias(float *rows, int64_t m, int64_t n, const float *bias) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      rows[i * n + j] += bias[j];
}

template <typename Fn> void applyInPlace(float *data, int64_t count, Fn fn) {
  for (int64_t i = 0; i < count; ++i)
    data[i] = fn(data[i]);
}

// The switch is outside the loop: each case's loop inlines one formula.
void activateInPlace(moert_activation_t activation, float *data,
                     int64_t count) {
  switch (activation) {
  case MOERT_ACT_SILU:
    return applyInPlace(data, count,
                        [](float x) { return activate(MOERT_ACT_SILU, x); });
  case MOERT_ACT_GELU:
    return applyInPlace(data, count,
                        [](float x) { return activate(MOERT_ACT_GELU, x); });
  case MOERT_ACT_GELU_TANH:
    return applyInPlace(
        data, count, [](float x) { return activate(MOERT_ACT_GELU_TANH, x); });
  case MOERT_ACT_RELU:
    return applyInPlace(data, count,
                        [](float x) { return activate(MOERT_ACT_RELU, x); });
  }
}

// h *= u: the gating product of a gated FFN.
void multiplyInPlace(float *h, const float *u, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    h[i] *= u[i];
}

// Stores fp32 rows into memory of any float dtype.
void storeFloats(const float *src, char *dst, moert_dtype_t dtype,
                 int64_t count) {
  convertFromFloat(src, dst, dtype, count);
}

// fp32 pointer to `count` elements from element `first` of an operand:
// direct for f32, otherwise converted into a scratch slot.
const float *floatSlice(Scratch &scratch, size_t slot, Operand operand,
                        int64_t first, int64_t count) {
  return floatInput(scratch, slot, operand.at(first), count);
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
  // acc += sum_j weights[s,j] * y[ids[s,j], slots[s,j]] over kept choices;
  // `row` is fp32 scratch of `hidden` floats.
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
      float w = weights[s * topK + j];
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

// PR-MoE: coef[s, 0..2) = softmax(x[s] . wc[2, H]^T + bc), in scratch.
const float *mixCoefficients(Scratch &scratch, Operand x, Operand wc,
                             Operand bc, int64_t tokens, int64_t hidden) {
  const float *xData = floatInput(scratch, slotInput, x, tokens * hidden);
  const float *wData = floatInput(scratch, slotWeightA, wc, 2 * hidden);
  float *coef = scratch.floats(slotGate, tokens * 2);
  linear(tokens, 2, hidden, xData, wData, coef);
  if (bc.present())
    addRowBias(coef, tokens, 2, floatInput(scratch, slotBias1, bc, 2));
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
const float *sharedGates(Scratch &scratch, Operand x, Operand wSg,
                         int64_t tokens, int64_t hidden) {
  if (!wSg.present())
    return nullptr;
  const float *xData = floatInput(scratch, slotInput, x, tokens * hidden);
  const float *wData = floatInput(scratch, slotWeightD, wSg, hidden);
  float *gate = scratch.floats(slotSharedGate, tokens);
  linear(tokens, 1, hidden, xData, wData, gate);
  applyInPlace(gate, tokens,
               [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
  return gate;
}

// An FFN with stacked copies of its weights, run one copy at a time.
struct Ffn {
  const FfnOperands &w;

  // fp32 weights of copy `index` (f16/bf16 widened once, here).
  struct Panels {
    const float *first, *up, *down, *b1, *b2;
  };
  Panels panels(Scratch &scratch, int64_t index) const {
    int64_t panel = w.ffn * w.hidden;
    Panels p{};
    p.first = floatSlice(scratch, slotWeightA, w.wGate, index * panel, panel);
    p.down = floatSlice(scratch, slotWeightC, w.wDown, index * panel, panel);
    if (w.gated())
      p.up = floatSlice(scratch, slotWeightB, w.wUp, index * panel, panel);
    if (w.b1.present())
      p.b1 = floatSlice(scratch, slotBias1, w.b1, index * w.ffn, w.ffn);
    if (w.b2.present())
      p.b2 = floatSlice(scratch, slotBias2, w.b2, index * w.hidden, w.hidden);
    return p;
  }

  // y[rows,H] = FFN(x[rows,H]), all fp32.
  void run(Scratch &scratch, const Panels &p, const float *x, int64_t rows,
           float *y) const {
    float *h = scratch.floats(slotHiddenA, rows * w.ffn);
    linear(rows, w.ffn, w.hidden, x, p.first, h);
    if (w.gated()) {
      float *u = scratch.floats(slotHiddenB, rows * w.ffn);
      linear(rows, w.ffn, w.hidden, x, p.up, u);
      activateInPlace(w.activation, h, rows * w.ffn);
      multiplyInPlace(h, u, rows * w.ffn);
    } else {
      if (p.b1)
        addRowBias(h, rows, w.ffn, p.b1);
      activateInPlace(w.activation, h, rows * w.ffn);
    }
    linear(rows, w.hidden, w.ffn, h, p.down, y);
    if (p.b2)
      addRowBias(y, rows, w.hidden, p.b2);
  }
};

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

// The grouped GEMM stage: out[e, r, :n] = in[e, r, :k] . w[e]^T for the used
// rows r; the other rows of out are set to 0. in/out are raw rows of any
// float dtype so moert_experts can chain stages through fp32 scratch.
void groupedLinear(Scratch &scratch, const ExpertRows &rows, Operand w,
                   const char *in, moert_dtype_t inType, char *out,
                   moert_dtype_t outType, int64_t n, int64_t k) {
  size_t inRow = k * dtypeSize(inType);
  size_t outRow = n * dtypeSize(outType);
  for (int64_t e = 0; e < rows.experts; ++e) {
    // Empty experts cost nothing: their weights are not even widened.
    const float *panel = nullptr;
    if (rows.anyUsed(e))
      panel = floatSlice(scratch, slotWeightA, w, e * n * k, n * k);
    for (int64_t b = 0; b < rows.blocks; ++b) {
      int64_t used = rows.used(e, b);
      int64_t first = e * rows.capacity + b * rows.blockRows;
      if (used > 0) {
        const float *x;
        if (inType == MOERT_F32) {
          x = reinterpret_cast<const float *>(in + first * inRow);
        } else {
          float *converted = scratch.floats(slotInput, used * k);
          convertToFloat(in + first * inRow, inType, converted, used * k);
          x = converted;
        }
        if (outType == MOERT_F32) {
          linear(used, n, k, x, panel,
                 reinterpret_cast<float *>(out + first * outRow));
        } else {
          float *y = scratch.floats(slotOutput, used * n);
          linear(used, n, k, x, panel, y);
          storeFloats(y, out + first * outRow, outType, used * n);
        }
      }
      if (used < rows.blockRows) // memset(nullptr, 0, 0) is undefined
        std::memset(out + (first + used) * outRow, 0,
                    (rows.blockRows - used) * outRow);
    }
  }
}

// out = FFN(in) of a packed GATED FFN over the rows `rows` selects (others
// of out set to 0): per expert, one GEMM gives [gate | up] per row,
// act(gate) * up goes into an fp32 [rows, F] panel in one pass, one GEMM
// gives down. Expert by expert, so both panels stay the size of one
// expert's rows.
void runPackedFfn(Scratch &scratch, const PackedFfnOperands &w,
                  const ExpertRows &rows, Operand in, Operand out) {
  int64_t hidden = w.hidden, ffn = w.ffn;
  float *gateUp = scratch.floats(slotHiddenA, rows.capacity * 2 * ffn);
  float *h = scratch.floats(slotHiddenB, rows.capacity * ffn);
  int64_t expertRows = rows.capacity * hidden;
  for (int64_t e = 0; e < rows.experts; ++e) {
    ExpertRows one = rows.expert(e);
    groupedLinear(scratch, one, w.wGateUp.at(e * 2 * ffn * hidden),
                  in.at(e * expertRows).as<const char>(), in.dtype,
                  reinterpret_cast<char *>(gateUp), MOERT_F32, 2 * ffn, hidden);
    for (int64_t b = 0; b < rows.blocks; ++b) {
      int64_t first = b * rows.blockRows;
      for (int64_t r = first; r < first + one.used(0, b); ++r) {
        const float *gate = gateUp + r * 2 * ffn;
        float *product = h + r * ffn;
        std::copy_n(gate, ffn, product);
        activateInPlace(w.activation, product, ffn);
        multiplyInPlace(product, gate + ffn, ffn);
      }
    }
    groupedLinear(scratch, one, w.wDown.at(e * hidden * ffn),
                  reinterpret_cast<const char *>(h), MOERT_F32,
                  out.at(e * expertRows).as<char>(), out.dtype, hidden, ffn);
  }
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
  Scratch &s = scratch(rank);
  const float *xData = floatInput(s, slotInput, x, tokens * hidden);
  const float *wData = floatInput(s, slotWeightA, wg, experts * hidden);
  float *out = logits.as<float>();
  linear(tokens, experts, hidden, xData, wData, out);
  if (bias.present())
    addRowBias(out, tokens, experts, floatInput(s, slotBias1, bias, experts));
}

void CpuBackend::dispatch(int32_t rank, Operand x, Operand ids, Operand slots,
                          Operand buf, int64_t tokens, int64_t hidden,
                          int64_t topK, int64_t experts, int64_t capacity) {
  const char *xData = x.as<const char>();
  const int32_t *idData = ids.as<const int32_t>();
  const int32_t *slotData = slots.as<const int32_t>();
  char *out = buf.as<char>();
  size_t inRow = hidden * dtypeSize(x.dtype);
  size_t outRow = hidden * dtypeSize(buf.dtype);
  std::memset(out, 0, experts * capacity * outRow);
  for (int64_t s = 0; s < tokens; ++s) {
    for (int64_t j = 0; j < topK; ++j) {
      int64_t r = expertRow(idData, slotData, s, j, topK, experts, capacity);
      if (r >= 0)
        convert(xData + s * inRow, x.dtype, out + r * outRow, buf.dtype,
                hidden);
    }
  }
}

void CpuBackend::combine(int32_t rank, Operand y, Operand ids, Operand slots,
                         Operand weights, Operand addend, Operand out,
                         int64_t tokens, int64_t hidden, int64_t topK,
                         int64_t experts, int64_t capacity) {
  Scratch &s = scratch(rank);
  CombineSource source(y, ids, slots, weights, hidden, topK, experts, capacity);
  RowReader addendRows(addend, hidden);
  size_t outRow = hidden * dtypeSize(out.dtype);
  char *outData = out.as<char>();
  float *acc = s.floats(slotOutput, hidden);
  float *row = s.floats(slotRow, hidden);
  for (int64_t t = 0; t < tokens; ++t) {
    std::fill_n(acc, hidden, 0.0f);
    source.accumulate(t, acc, row);
    addendRows.addTo(t, acc, 1.0f, row);
    storeFloats(acc, outData + t * outRow, out.dtype, hidden);
  }
}

void CpuBackend::fusedCombine(int32_t rank, Operand y, Operand ids,
                              Operand slots, Operand weights, Operand mlpOut,
                              Operand wc, Operand bc, Operand shared,
                              Operand wSg, Operand x, Operand addend,
                              Operand out, int64_t tokens, int64_t hidden,
                              int64_t topK, int64_t experts, int64_t capacity) {
  Scratch &s = scratch(rank);
  CombineSource source(y, ids, slots, weights, hidden, topK, experts, capacity);
  RowReader mlpRows(mlpOut, hidden), sharedRows(shared, hidden),
      addendRows(addend, hidden);
  // Everything read from x is computed before any row of out (which may
  // alias x) is written.
  const float *coef = mlpOut.present()
                          ? mixCoefficients(s, x, wc, bc, tokens, hidden)
                          : nullptr;
  const float *gate = sharedGates(s, x, wSg, tokens, hidden);
  size_t outRow = hidden * dtypeSize(out.dtype);
  char *outData = out.as<char>();
  float *acc = s.floats(slotOutput, hidden);
  float *row = s.floats(slotRow, hidden);
  for (int64_t t = 0; t < tokens; ++t) {
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
  }
}

void CpuBackend::experts(int32_t rank, const FfnOperands &ffn, Operand in,
                         Operand out, Operand rows, int64_t experts,
                         int64_t capacity, int64_t blocks) {
  Scratch &s = scratch(rank);
  ExpertRows used(rows, experts, capacity, blocks);
  int64_t hidden = ffn.hidden, width = ffn.ffn;
  const char *inData = in.as<const char>();
  char *outData = out.as<char>();
  if (ffn.gated()) {
    // The stage calls in sequence, through fp32 scratch.
    int64_t count = experts * capacity * width;
    float *h = s.floats(slotHiddenA, count);
    float *u = s.floats(slotHiddenB, count);
    groupedLinear(s, used, ffn.wGate, inData, in.dtype,
                  reinterpret_cast<char *>(h), MOERT_F32, width, hidden);
    groupedLinear(s, used, ffn.wUp, inData, in.dtype,
                  reinterpret_cast<char *>(u), MOERT_F32, width, hidden);
    activateInPlace(ffn.activation, h, count);
    multiplyInPlace(h, u, count);
    groupedLinear(s, used, ffn.wDown, reinterpret_cast<const char *>(h),
                  MOERT_F32, outData, out.dtype, hidden, width);
    return;
  }
  Ffn plain{ffn};
  size_t outRow = hidden * dtypeSize(out.dtype);
  for (int64_t e = 0; e < experts; ++e) {
    Ffn::Panels panels{};
    if (used.anyUsed(e))
      panels = plain.panels(s, e);
    for (int64_t b = 0; b < blocks; ++b) {
      int64_t rowsUsed = used.used(e, b);
      int64_t first = e * capacity + b * used.blockRows;
      if (rowsUsed > 0) {
        const float *x =
            floatSlice(s, slotInput, in, first * hidden, rowsUsed * hidden);
        float *y = s.floats(slotOutput, rowsUsed * hidden);
        plain.run(s, panels, x, rowsUsed, y);
        storeFloats(y, outData + first * outRow, out.dtype, rowsUsed * hidden);
      }
      std::memset(outData + (first + rowsUsed) * outRow, 0,
                  (used.blockRows - rowsUsed) * outRow);
    }
  }
}

void CpuBackend::fusedExperts(int32_t rank, const PackedFfnOperands &ffn,
                              Operand in, Operand out, Operand rows,
                              int64_t experts, int64_t capacity, int64_t blocks,
                              const PackedFfnOperands *shared, Operand sharedX,
                              Operand sharedOut, int64_t tokens) {
  Scratch &s = scratch(rank);
  runPackedFfn(s, ffn, ExpertRows(rows, experts, capacity, blocks), in, out);
  // The shared expert is one more problem of the grouped loop: one
  // "expert" whose capacity is this rank's tokens, every row used.
  if (shared)
    runPackedFfn(s, *shared, ExpertRows(Operand{}, 1, tokens, 1), sharedX,
                 sharedOut);
}

void CpuBackend::expertsLinear(int32_t rank, Operand w, Operand in, Operand out,
                               Operand rows, int64_t experts, int64_t capacity,
                               int64_t blocks, int64_t n, int64_t k) {
  groupedLinear(scratch(rank), ExpertRows(rows, experts, capacity, blocks), w,
                in.as<const char>(), in.dtype, out.as<char>(), out.dtype, n, k);
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

void CpuBackend::denseFfn(int32_t rank, const FfnOperands &ffn, Operand x,
                          Operand out, int64_t tokens) {
  Scratch &s = scratch(rank);
  int64_t count = tokens * ffn.hidden;
  const float *xData = floatInput(s, slotInput, x, count);
  float *y = s.floats(slotOutput, count);
  Ffn dense{ffn};
  dense.run(s, dense.panels(s, 0), xData, tokens, y);
  storeFloats(y, out.as<char>(), out.dtype, count);
}

void CpuBackend::residualMix(int32_t rank, Operand x, Operand wc, Operand bc,
                             Operand moeOut, Operand mlpOut, Operand out,
                             int64_t tokens, int64_t hidden) {
  Scratch &s = scratch(rank);
  int64_t count = tokens * hidden;
  const float *coef = mixCoefficients(s, x, wc, bc, tokens, hidden);
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
  const float *gate = sharedGates(s, x, wSg, tokens, hidden);
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
  Scratch &s = scratch(rank);
  const float *w = floatInput(s, slotWeightA, weight, hidden);
  float *row = s.floats(slotRow, hidden);
  char *rounded = s.bytes(0, hidden * dtypeSize(x.dtype));
  // Row by row so that out may alias x.
  for (int64_t t = 0; t < tokens; ++t) {
    convertToFloat(x.at(t * hidden).data, x.dtype, row, hidden);
    double squares = 0;
    for (int64_t h = 0; h < hidden; ++h)
      squares += static_cast<double>(row[h]) * row[h];
    float inverse =
        1.0f / std::sqrt(static_cast<float>(squares / hidden) + epsilon);
    for (int64_t h = 0; h < hidden; ++h)
      row[h] *= inverse;
    if (x.dtype != MOERT_F32) { // the normalised x in x's dtype, as HF
      convertFromFloat(row, rounded, x.dtype, hidden);
      convertToFloat(rounded, x.dtype, row, hidden);
    }
    for (int64_t h = 0; h < hidden; ++h)
      row[h] *= w[h];
    storeFloats(row, out.at(t * hidden).as<char>(), out.dtype, hidden);
  }
}

void CpuBackend::add(int32_t rank, Operand a, Operand b, Operand out,
                     int64_t count) {
  chunked(scratch(rank), a, &b, out, count,
          [](float *x, const float *y, int64_t n) {
            for (int64_t i = 0; i < n; ++i)
              x[i] += y[i];
          });
}
