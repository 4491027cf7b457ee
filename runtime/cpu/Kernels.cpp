//===- runtime/cpu/Kernels.cpp - Router, permutation, FFN, mixes ----------===//
//
// Every GEMM goes through OpenBLAS cblas_sgemm on fp32 panels; f16/bf16
// operands are widened once per call (weights once per expert per call).
//
//===----------------------------------------------------------------------===//

#include "runtime/cpu/Backend.h"

#include "runtime/common/Activation.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

using namespace moert;
using namespace moert::cpu;

namespace {

// Scratch slots of a context; one purpose each so panels never collide.
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

void requireActivation(moert_activation_t activation) {
  require(isActivation(activation), "unknown activation ",
          static_cast<int>(activation));
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
    return applyInPlace(data, count, [](float x) {
      return activate(MOERT_ACT_GELU_TANH, x);
    });
  case MOERT_ACT_RELU:
    return applyInPlace(data, count,
                        [](float x) { return activate(MOERT_ACT_RELU, x); });
  }
  requireActivation(activation);
}

// h *= u: the gating product of a gated FFN.
void multiplyInPlace(float *h, const float *u, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    h[i] *= u[i];
}

// Stores fp32 rows into a view of any float dtype.
void storeFloats(const float *src, char *dst, moert_dtype_t dtype,
                 int64_t count) {
  convertFromFloat(src, dst, dtype, count);
}

// fp32 pointer to element `first` of an operand: direct for f32, otherwise
// converted into a scratch slot.
const float *floatSlice(moert_context_t ctx, size_t slot, moert_view_t view,
                        int64_t first, int64_t count, const char *name) {
  moert_view_t shifted = view;
  shifted.offset += first;
  return floatInput(ctx, slot, shifted, count, name);
}

// The expert rows and mapping table of a combine, checked once.
struct CombineSource {
  const char *y;
  moert_dtype_t yType;
  const int32_t *ids, *slots;
  const float *weights;
  int64_t hidden, topK, experts, capacity;
  CombineSource(moert_view_t yView, moert_view_t idView, moert_view_t slotView,
                moert_view_t weightView, int64_t tokens, int64_t hidden,
                int64_t topK, int64_t experts, int64_t capacity)
      : yType(yView.dtype), hidden(hidden), topK(topK), experts(experts),
        capacity(capacity) {
    require(tokens >= 0 && hidden >= 1 && topK >= 1 && experts >= 1 &&
                capacity >= 0,
            "bad extents");
    requireFloatDtype(yView, "y");
    requireDtype(idView, MOERT_I32, "ids");
    requireDtype(slotView, MOERT_I32, "slots");
    requireDtype(weightView, MOERT_F32, "weights");
    y = viewData(yView, experts * capacity * hidden, "y");
    ids = reinterpret_cast<const int32_t *>(
        viewData(idView, tokens * topK, "ids"));
    slots = reinterpret_cast<const int32_t *>(
        viewData(slotView, tokens * topK, "slots"));
    weights = reinterpret_cast<const float *>(
        viewData(weightView, tokens * topK, "weights"));
  }
  // acc += sum_j weights[s,j] * y[ids[s,j], slots[s,j]] over kept choices;
  // `row` is fp32 scratch of `hidden` floats.
  void accumulate(int64_t s, float *acc, float *row) const {
    size_t yRow = hidden * moert_dtype_size(yType);
    for (int64_t j = 0; j < topK; ++j) {
      int32_t e = ids[s * topK + j], slot = slots[s * topK + j];
      if (slot < 0)
        continue;
      require(e >= 0 && e < experts && slot < capacity, "token ", s, " choice ",
              j, " reads expert ", e, " slot ", slot, " outside [", experts,
              " x ", capacity, "]");
      const char *src = y + (e * capacity + slot) * yRow;
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
  const char *data = nullptr;
  moert_dtype_t dtype = MOERT_F32;
  int64_t hidden;
  RowReader(moert_view_t view, int64_t tokens, int64_t hidden, const char *name)
      : hidden(hidden) {
    if (!isPresent(view))
      return;
    requireFloatDtype(view, name);
    data = viewData(view, tokens * hidden, name);
    dtype = view.dtype;
  }
  // acc += scale * row s (nothing when absent).
  void addTo(int64_t s, float *acc, float scale, float *row) const {
    if (!data)
      return;
    convertToFloat(data + s * hidden * moert_dtype_size(dtype), dtype, row,
                   hidden);
    for (int64_t h = 0; h < hidden; ++h)
      acc[h] += scale * row[h];
  }
};

// PR-MoE: coef[s, 0..2) = softmax(x[s] . wc[2, H]^T + bc), in scratch.
const float *mixCoefficients(moert_context_t ctx, moert_view_t x,
                             moert_view_t wc, moert_view_t bc, int64_t tokens,
                             int64_t hidden) {
  const float *xData = floatInput(ctx, slotInput, x, tokens * hidden, "x");
  const float *wData = floatInput(ctx, slotWeightA, wc, 2 * hidden, "wc");
  float *coef = ctx->scratchFloats(slotGate, tokens * 2);
  linear(tokens, 2, hidden, xData, wData, coef);
  if (isPresent(bc))
    addRowBias(coef, tokens, 2, floatInput(ctx, slotBias1, bc, 2, "bc"));
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
const float *sharedGates(moert_context_t ctx, moert_view_t x, moert_view_t wSg,
                         int64_t tokens, int64_t hidden) {
  if (!isPresent(wSg))
    return nullptr;
  const float *xData = floatInput(ctx, slotInput, x, tokens * hidden, "x");
  const float *wData = floatInput(ctx, slotWeightD, wSg, hidden, "w_sg");
  float *gate = ctx->scratchFloats(slotSharedGate, tokens);
  linear(tokens, 1, hidden, xData, wData, gate);
  applyInPlace(gate, tokens,
               [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
  return gate;
}

// The checked operands of an FFN with `stack` stacked copies of its weights.
struct FfnOperands {
  const moert_ffn_desc_t &desc;
  int64_t hidden, ffn;
  bool gated;
  FfnOperands(const moert_ffn_desc_t &desc, int64_t stack)
      : desc(desc), hidden(desc.hidden), ffn(desc.ffn),
        gated(desc.kind == MOERT_FFN_GATED) {
    require(desc.kind == MOERT_FFN_GATED || desc.kind == MOERT_FFN_PLAIN,
            "unknown ffn kind ", static_cast<int>(desc.kind));
    require(hidden >= 1 && ffn >= 1, "ffn needs hidden >= 1 and ffn >= 1, got ",
            hidden, " and ", ffn);
    viewData(desc.w_gate, stack * ffn * hidden, gated ? "w_gate" : "w1");
    requireFloatDtype(desc.w_gate, gated ? "w_gate" : "w1");
    viewData(desc.w_down, stack * hidden * ffn, gated ? "w_down" : "w2");
    requireFloatDtype(desc.w_down, gated ? "w_down" : "w2");
    if (gated) {
      viewData(desc.w_up, stack * ffn * hidden, "w_up");
      requireFloatDtype(desc.w_up, "w_up");
      require(!isPresent(desc.b1) && !isPresent(desc.b2),
              "gated ffn takes no biases");
    } else {
      require(!isPresent(desc.w_up), "plain ffn takes no w_up");
      if (isPresent(desc.b1)) {
        viewData(desc.b1, stack * ffn, "b1");
        requireFloatDtype(desc.b1, "b1");
      }
      if (isPresent(desc.b2)) {
        viewData(desc.b2, stack * hidden, "b2");
        requireFloatDtype(desc.b2, "b2");
      }
    }
    requireActivation(desc.activation);
  }

  // fp32 weights of copy `index` (f16/bf16 widened once, here).
  struct Panels {
    const float *first, *up, *down, *b1, *b2;
  };
  Panels panels(moert_context_t ctx, int64_t index) const {
    int64_t panel = ffn * hidden;
    Panels p{};
    p.first =
        floatSlice(ctx, slotWeightA, desc.w_gate, index * panel, panel, "w1");
    p.down = floatSlice(ctx, slotWeightC, desc.w_down, index * panel, panel,
                        "w_down");
    if (gated)
      p.up =
          floatSlice(ctx, slotWeightB, desc.w_up, index * panel, panel, "w_up");
    if (isPresent(desc.b1))
      p.b1 = floatSlice(ctx, slotBias1, desc.b1, index * ffn, ffn, "b1");
    if (isPresent(desc.b2))
      p.b2 = floatSlice(ctx, slotBias2, desc.b2, index * hidden, hidden, "b2");
    return p;
  }

  // y[rows,H] = FFN(x[rows,H]), all fp32.
  void run(moert_context_t ctx, const Panels &p, const float *x, int64_t rows,
           float *y) const {
    float *h = ctx->scratchFloats(slotHiddenA, rows * ffn);
    linear(rows, ffn, hidden, x, p.first, h);
    if (gated) {
      float *u = ctx->scratchFloats(slotHiddenB, rows * ffn);
      linear(rows, ffn, hidden, x, p.up, u);
      activateInPlace(desc.activation, h, rows * ffn);
      multiplyInPlace(h, u, rows * ffn);
    } else {
      if (p.b1)
        addRowBias(h, rows, ffn, p.b1);
      activateInPlace(desc.activation, h, rows * ffn);
    }
    linear(rows, hidden, ffn, h, p.down, y);
    if (p.b2)
      addRowBias(y, rows, hidden, p.b2);
  }
};

// Which rows of an expert-major [E, C, .] buffer hold tokens (see
// moert_experts), checked once.
struct ExpertRows {
  int64_t experts, capacity, blocks, blockRows;
  const int32_t *rows = nullptr;
  // countsOnDevice: only the operand is checked here (a device backend reads
  // and checks the counts when it plans its GEMMs).
  ExpertRows(moert_view_t rowsView, int64_t experts, int64_t capacity,
             int64_t blocks, bool countsOnDevice = false)
      : experts(experts), capacity(capacity), blocks(blocks) {
    require(experts >= 1 && capacity >= 0 && blocks >= 1,
            "bad extents: experts ", experts, ", capacity ", capacity,
            ", blocks ", blocks);
    require(capacity % blocks == 0, "capacity ", capacity,
            " is not a multiple of blocks ", blocks);
    blockRows = capacity / blocks;
    if (!isPresent(rowsView))
      return;
    requireDtype(rowsView, MOERT_I32, "rows");
    rows = reinterpret_cast<const int32_t *>(
        viewData(rowsView, experts * blocks, "rows"));
    if (countsOnDevice)
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
void groupedLinear(moert_context_t ctx, const ExpertRows &rows, moert_view_t w,
                   const char *in, moert_dtype_t inType, char *out,
                   moert_dtype_t outType, int64_t n, int64_t k,
                   const char *name) {
  size_t inRow = k * moert_dtype_size(inType);
  size_t outRow = n * moert_dtype_size(outType);
  for (int64_t e = 0; e < rows.experts; ++e) {
    // Empty experts cost nothing: their weights are not even widened.
    const float *panel = nullptr;
    if (rows.anyUsed(e))
      panel = floatSlice(ctx, slotWeightA, w, e * n * k, n * k, name);
    for (int64_t b = 0; b < rows.blocks; ++b) {
      int64_t used = rows.used(e, b);
      int64_t first = e * rows.capacity + b * rows.blockRows;
      if (used > 0) {
        const float *x;
        if (inType == MOERT_F32) {
          x = reinterpret_cast<const float *>(in + first * inRow);
        } else {
          float *converted = ctx->scratchFloats(slotInput, used * k);
          convertToFloat(in + first * inRow, inType, converted, used * k);
          x = converted;
        }
        if (outType == MOERT_F32) {
          linear(used, n, k, x, panel,
                 reinterpret_cast<float *>(out + first * outRow));
        } else {
          float *y = ctx->scratchFloats(slotOutput, used * n);
          linear(used, n, k, x, panel, y);
          storeFloats(y, out + first * outRow, outType, used * n);
        }
      }
      std::memset(out + (first + used) * outRow, 0,
                  (rows.blockRows - used) * outRow);
    }
  }
}

// A packed GATED FFN (moert_packed_ffn_desc_t) with `stack` stacked copies
// of its weights, checked once.
struct PackedFfn {
  const moert_packed_ffn_desc_t &desc;
  int64_t hidden, ffn;
  PackedFfn(const moert_packed_ffn_desc_t &desc, int64_t stack)
      : desc(desc), hidden(desc.hidden), ffn(desc.ffn) {
    require(hidden >= 1 && ffn >= 1, "ffn needs hidden >= 1 and ffn >= 1, got ",
            hidden, " and ", ffn);
    checkFloatView(desc.w_gate_up, stack * 2 * ffn * hidden, "w_gate_up");
    checkFloatView(desc.w_down, stack * hidden * ffn, "w_down");
    requireActivation(desc.activation);
  }

  // out = FFN(in) over the rows `rows` selects (others of out set to 0):
  // per expert, one GEMM gives [gate | up] per row, act(gate) * up goes into
  // an fp32 [rows, F] panel in one pass, one GEMM gives down. Expert by
  // expert, so both panels stay the size of one expert's rows.
  void run(moert_context_t ctx, const ExpertRows &rows, const char *in,
           moert_dtype_t inType, char *out, moert_dtype_t outType) const {
    float *gateUp = ctx->scratchFloats(slotHiddenA, rows.capacity * 2 * ffn);
    float *h = ctx->scratchFloats(slotHiddenB, rows.capacity * ffn);
    size_t inRows = rows.capacity * hidden * moert_dtype_size(inType);
    size_t outRows = rows.capacity * hidden * moert_dtype_size(outType);
    for (int64_t e = 0; e < rows.experts; ++e) {
      ExpertRows one = rows.expert(e);
      moert_view_t wGateUp = desc.w_gate_up, wDown = desc.w_down;
      wGateUp.offset += e * 2 * ffn * hidden;
      wDown.offset += e * hidden * ffn;
      groupedLinear(ctx, one, wGateUp, in + e * inRows, inType,
                    reinterpret_cast<char *>(gateUp), MOERT_F32, 2 * ffn,
                    hidden, "w_gate_up");
      for (int64_t b = 0; b < rows.blocks; ++b) {
        int64_t first = b * rows.blockRows;
        for (int64_t r = first; r < first + one.used(0, b); ++r) {
          const float *gate = gateUp + r * 2 * ffn;
          float *product = h + r * ffn;
          std::copy_n(gate, ffn, product);
          activateInPlace(desc.activation, product, ffn);
          multiplyInPlace(product, gate + ffn, ffn);
        }
      }
      groupedLinear(ctx, one, wDown, reinterpret_cast<const char *>(h),
                    MOERT_F32, out + e * outRows, outType, hidden, ffn,
                    "w_down");
    }
  }
};

// Applies `fn(x, y)` to fp32 chunks of a and (optionally) b and stores into
// out; chunks are disjoint so out may alias a or b.
template <typename Fn>
void chunked(moert_context_t ctx, moert_view_t a, moert_view_t *b,
             moert_view_t out, int64_t count, Fn fn) {
  requireFloatDtype(a, "a");
  requireFloatDtype(out, "out");
  const char *aData = viewData(a, count, "a");
  const char *bData = nullptr;
  if (b) {
    requireFloatDtype(*b, "b");
    bData = viewData(*b, count, "b");
  }
  char *outData = viewData(out, count, "out");
  constexpr int64_t chunk = 4096;
  float *x = ctx->scratchFloats(slotRow, chunk);
  float *y = ctx->scratchFloats(slotRowB, chunk);
  size_t aSize = moert_dtype_size(a.dtype);
  size_t bSize = b ? moert_dtype_size(b->dtype) : 0;
  size_t outSize = moert_dtype_size(out.dtype);
  for (int64_t begin = 0; begin < count; begin += chunk) {
    int64_t n = std::min(chunk, count - begin);
    convertToFloat(aData + begin * aSize, a.dtype, x, n);
    if (b)
      convertToFloat(bData + begin * bSize, b->dtype, y, n);
    fn(x, y, n);
    storeFloats(x, outData + begin * outSize, out.dtype, n);
  }
}

} // namespace

extern "C" {

moert_status_t moert_router(moert_context_t ctx, moert_view_t x,
                            moert_view_t wg, moert_view_t bias,
                            moert_view_t logits, int64_t tokens, int64_t hidden,
                            int64_t experts) {
  return guard("moert_router", [&] {
    checkContext(ctx);
    require(tokens >= 0 && hidden >= 1 && experts >= 1, "bad extents: tokens ",
            tokens, ", hidden ", hidden, ", experts ", experts);
    requireDtype(logits, MOERT_F32, "logits");
    auto *out =
        reinterpret_cast<float *>(viewData(logits, tokens * experts, "logits"));
    checkFloatView(x, tokens * hidden, "x");
    checkFloatView(wg, experts * hidden, "wg");
    checkOptionalFloatView(bias, experts, "bias");
    MOERT_ROUTE_DEVICE(ctx, router(ctx, x, wg, bias, logits, tokens, hidden,
                                   experts));
    const float *xData = floatInput(ctx, slotInput, x, tokens * hidden, "x");
    const float *wData =
        floatInput(ctx, slotWeightA, wg, experts * hidden, "wg");
    linear(tokens, experts, hidden, xData, wData, out);
    if (isPresent(bias))
      addRowBias(out, tokens, experts,
                 floatInput(ctx, slotBias1, bias, experts, "bias"));
  });
}

moert_status_t moert_dispatch(moert_context_t ctx, moert_view_t x,
                              moert_view_t ids, moert_view_t slots,
                              moert_view_t buf, int64_t tokens, int64_t hidden,
                              int64_t topK, int64_t experts, int64_t capacity) {
  return guard("moert_dispatch", [&] {
    checkContext(ctx);
    require(tokens >= 0 && hidden >= 1 && topK >= 1 && experts >= 1 &&
                capacity >= 0,
            "bad extents");
    requireFloatDtype(x, "x");
    requireFloatDtype(buf, "buf");
    requireDtype(ids, MOERT_I32, "ids");
    requireDtype(slots, MOERT_I32, "slots");
    const char *xData = viewData(x, tokens * hidden, "x");
    auto *idData =
        reinterpret_cast<const int32_t *>(viewData(ids, tokens * topK, "ids"));
    auto *slotData = reinterpret_cast<const int32_t *>(
        viewData(slots, tokens * topK, "slots"));
    char *out = viewData(buf, experts * capacity * hidden, "buf");
    MOERT_ROUTE_DEVICE(ctx, dispatch(ctx, x, ids, slots, buf, tokens, hidden,
                                     topK, experts, capacity));
    size_t inRow = hidden * moert_dtype_size(x.dtype);
    size_t outRow = hidden * moert_dtype_size(buf.dtype);
    std::memset(out, 0, experts * capacity * outRow);
    for (int64_t s = 0; s < tokens; ++s) {
      for (int64_t j = 0; j < topK; ++j) {
        int32_t e = idData[s * topK + j], slot = slotData[s * topK + j];
        if (slot < 0)
          continue;
        require(e >= 0 && e < experts && slot < capacity, "token ", s,
                " choice ", j, " routes to expert ", e, " slot ", slot,
                " outside [", experts, " x ", capacity, "]");
        convert(xData + s * inRow, x.dtype,
                out + (e * capacity + slot) * outRow, buf.dtype, hidden);
      }
    }
  });
}

moert_status_t moert_combine(moert_context_t ctx, moert_view_t y,
                             moert_view_t ids, moert_view_t slots,
                             moert_view_t weights, moert_view_t addend,
                             moert_view_t out, int64_t tokens, int64_t hidden,
                             int64_t topK, int64_t experts, int64_t capacity) {
  return guard("moert_combine", [&] {
    checkContext(ctx);
    CombineSource source(y, ids, slots, weights, tokens, hidden, topK, experts,
                         capacity);
    requireFloatDtype(out, "out");
    char *outData = viewData(out, tokens * hidden, "out");
    RowReader addendRows(addend, tokens, hidden, "addend");
    MOERT_ROUTE_DEVICE(ctx, combine(ctx, y, ids, slots, weights, addend, out,
                                    tokens, hidden, topK, experts, capacity));
    size_t outRow = hidden * moert_dtype_size(out.dtype);
    float *acc = ctx->scratchFloats(slotOutput, hidden);
    float *row = ctx->scratchFloats(slotRow, hidden);
    for (int64_t s = 0; s < tokens; ++s) {
      std::fill_n(acc, hidden, 0.0f);
      source.accumulate(s, acc, row);
      addendRows.addTo(s, acc, 1.0f, row);
      storeFloats(acc, outData + s * outRow, out.dtype, hidden);
    }
  });
}

moert_status_t moert_fused_combine(
    moert_context_t ctx, moert_view_t y, moert_view_t ids, moert_view_t slots,
    moert_view_t weights, moert_view_t mlpOut, moert_view_t wc, moert_view_t bc,
    moert_view_t shared, moert_view_t wSg, moert_view_t x, moert_view_t addend,
    moert_view_t out, int64_t tokens, int64_t hidden, int64_t topK,
    int64_t experts, int64_t capacity) {
  return guard("moert_fused_combine", [&] {
    checkContext(ctx);
    CombineSource source(y, ids, slots, weights, tokens, hidden, topK, experts,
                         capacity);
    requireFloatDtype(out, "out");
    require(!isPresent(wSg) || isPresent(shared),
            "the shared gate needs the shared output");
    require(isPresent(mlpOut) == isPresent(wc),
            "the mix needs both mlp_out and wc");
    RowReader mlpRows(mlpOut, tokens, hidden, "mlp_out");
    RowReader sharedRows(shared, tokens, hidden, "shared");
    RowReader addendRows(addend, tokens, hidden, "addend");
    char *outData = viewData(out, tokens * hidden, "out");
    if (isPresent(wc) || isPresent(wSg))
      checkFloatView(x, tokens * hidden, "x");
    checkOptionalFloatView(wc, 2 * hidden, "wc");
    checkOptionalFloatView(bc, 2, "bc");
    checkOptionalFloatView(wSg, hidden, "w_sg");
    MOERT_ROUTE_DEVICE(ctx, fusedCombine(ctx, y, ids, slots, weights, mlpOut,
                                         wc, bc, shared, wSg, x, addend, out,
                                         tokens, hidden, topK, experts,
                                         capacity));
    // Everything read from x is computed before any row of out (which may
    // alias x) is written.
    const float *coef = isPresent(mlpOut)
                            ? mixCoefficients(ctx, x, wc, bc, tokens, hidden)
                            : nullptr;
    const float *gate = sharedGates(ctx, x, wSg, tokens, hidden);
    size_t outRow = hidden * moert_dtype_size(out.dtype);
    float *acc = ctx->scratchFloats(slotOutput, hidden);
    float *row = ctx->scratchFloats(slotRow, hidden);
    for (int64_t s = 0; s < tokens; ++s) {
      std::fill_n(acc, hidden, 0.0f);
      source.accumulate(s, acc, row);
      if (coef) {
        for (int64_t h = 0; h < hidden; ++h)
          acc[h] *= coef[2 * s];
        mlpRows.addTo(s, acc, coef[2 * s + 1], row);
      }
      sharedRows.addTo(s, acc, gate ? gate[s] : 1.0f, row);
      addendRows.addTo(s, acc, 1.0f, row);
      storeFloats(acc, outData + s * outRow, out.dtype, hidden);
    }
  });
}

moert_status_t moert_experts(moert_context_t ctx, const moert_ffn_desc_t *ffn,
                             moert_view_t in, moert_view_t out,
                             moert_view_t rows, int64_t experts,
                             int64_t capacity, int64_t blocks) {
  return guard("moert_experts", [&] {
    checkContext(ctx);
    require(ffn != nullptr, "null ffn descriptor");
    ExpertRows used(rows, experts, capacity, blocks, onDevice(ctx));
    FfnOperands operands(*ffn, experts);
    int64_t hidden = ffn->hidden, width = ffn->ffn;
    requireFloatDtype(in, "in");
    requireFloatDtype(out, "out");
    const char *inData = viewData(in, experts * capacity * hidden, "in");
    char *outData = viewData(out, experts * capacity * hidden, "out");
    MOERT_ROUTE_DEVICE(ctx, experts(ctx, *ffn, in, out, rows, experts,
                                    capacity, blocks));
    if (operands.gated) {
      // The stage calls in sequence, through fp32 scratch.
      int64_t count = experts * capacity * width;
      float *h = ctx->scratchFloats(slotHiddenA, count);
      float *u = ctx->scratchFloats(slotHiddenB, count);
      groupedLinear(ctx, used, ffn->w_gate, inData, in.dtype,
                    reinterpret_cast<char *>(h), MOERT_F32, width, hidden,
                    "w_gate");
      groupedLinear(ctx, used, ffn->w_up, inData, in.dtype,
                    reinterpret_cast<char *>(u), MOERT_F32, width, hidden,
                    "w_up");
      activateInPlace(ffn->activation, h, count);
      multiplyInPlace(h, u, count);
      groupedLinear(ctx, used, ffn->w_down, reinterpret_cast<const char *>(h),
                    MOERT_F32, outData, out.dtype, hidden, width, "w_down");
      return;
    }
    size_t outRow = hidden * moert_dtype_size(out.dtype);
    for (int64_t e = 0; e < experts; ++e) {
      FfnOperands::Panels panels{};
      if (used.anyUsed(e))
        panels = operands.panels(ctx, e);
      for (int64_t b = 0; b < blocks; ++b) {
        int64_t rowsUsed = used.used(e, b);
        int64_t first = e * capacity + b * used.blockRows;
        if (rowsUsed > 0) {
          const float *x = floatSlice(ctx, slotInput, in, first * hidden,
                                      rowsUsed * hidden, "in");
          float *y = ctx->scratchFloats(slotOutput, rowsUsed * hidden);
          operands.run(ctx, panels, x, rowsUsed, y);
          storeFloats(y, outData + first * outRow, out.dtype,
                      rowsUsed * hidden);
        }
        std::memset(outData + (first + rowsUsed) * outRow, 0,
                    (used.blockRows - rowsUsed) * outRow);
      }
    }
  });
}

moert_status_t moert_fused_experts(moert_context_t ctx,
                                   const moert_packed_ffn_desc_t *ffn,
                                   moert_view_t in, moert_view_t out,
                                   moert_view_t rows, int64_t experts,
                                   int64_t capacity, int64_t blocks,
                                   const moert_packed_ffn_desc_t *shared,
                                   moert_view_t sharedX,
                                   moert_view_t sharedOut, int64_t tokens) {
  return guard("moert_fused_experts", [&] {
    checkContext(ctx);
    require(ffn != nullptr, "null ffn descriptor");
    ExpertRows used(rows, experts, capacity, blocks, onDevice(ctx));
    PackedFfn routed(*ffn, experts); // checks the packed weights
    int64_t hidden = ffn->hidden;
    checkFloatView(in, experts * capacity * hidden, "in");
    checkFloatView(out, experts * capacity * hidden, "out");
    std::optional<PackedFfn> sharedFfn;
    if (shared) {
      require(shared->hidden == hidden, "shared expert hidden ",
              shared->hidden, " differs from the experts' ", hidden);
      sharedFfn.emplace(*shared, 1);
      require(tokens >= 0, "tokens must be >= 0, got ", tokens);
      const char *x = viewData(sharedX, tokens * hidden, "shared_x");
      const char *y = viewData(sharedOut, tokens * hidden, "shared_out");
      requireFloatDtype(sharedX, "shared_x");
      requireFloatDtype(sharedOut, "shared_out");
      require(tokens == 0 ||
                  x + tokens * hidden * moert_dtype_size(sharedX.dtype) <= y ||
                  y + tokens * hidden * moert_dtype_size(sharedOut.dtype) <= x,
              "shared_out must not alias shared_x");
    } else {
      require(!isPresent(sharedX) && !isPresent(sharedOut) && tokens == 0,
              "without shared experts shared_x and shared_out are absent and "
              "tokens is 0");
    }
    MOERT_ROUTE_DEVICE(ctx, fusedExperts(ctx, *ffn, in, out, rows, experts,
                                         capacity, blocks, shared, sharedX,
                                         sharedOut, tokens));
    // The shared expert is one more problem of the grouped loop: one
    // "expert" whose capacity is this rank's tokens, every row used.
    routed.run(ctx, used, viewData(in, experts * capacity * hidden, "in"),
               in.dtype, viewData(out, experts * capacity * hidden, "out"),
               out.dtype);
    if (sharedFfn) {
      ExpertRows sharedRows(moert_absent_view(), 1, tokens, 1);
      sharedFfn->run(ctx, sharedRows,
                    viewData(sharedX, tokens * hidden, "shared_x"),
                    sharedX.dtype,
                    viewData(sharedOut, tokens * hidden, "shared_out"),
                    sharedOut.dtype);
    }
  });
}

moert_status_t moert_experts_linear(moert_context_t ctx, moert_view_t w,
                                    moert_view_t in, moert_view_t out,
                                    moert_view_t rows, int64_t experts,
                                    int64_t capacity, int64_t blocks, int64_t n,
                                    int64_t k) {
  return guard("moert_experts_linear", [&] {
    checkContext(ctx);
    ExpertRows used(rows, experts, capacity, blocks, onDevice(ctx));
    require(n >= 1 && k >= 1, "bad extents: n ", n, ", k ", k);
    viewData(w, experts * n * k, "w");
    requireFloatDtype(w, "w");
    requireFloatDtype(in, "in");
    requireFloatDtype(out, "out");
    const char *inData = viewData(in, experts * capacity * k, "in");
    char *outData = viewData(out, experts * capacity * n, "out");
    MOERT_ROUTE_DEVICE(ctx, expertsLinear(ctx, w, in, out, rows, experts,
                                          capacity, blocks, n, k));
    groupedLinear(ctx, used, w, inData, in.dtype, outData, out.dtype, n, k,
                  "w");
  });
}

moert_status_t moert_activation(moert_context_t ctx,
                                moert_activation_t activation, moert_view_t x,
                                moert_view_t out, int64_t count) {
  return guard("moert_activation", [&] {
    checkContext(ctx);
    require(count >= 0, "count must be >= 0, got ", count);
    checkFloatView(x, count, "x");
    checkFloatView(out, count, "out");
    requireActivation(activation);
    MOERT_ROUTE_DEVICE(ctx, activation(ctx, activation, x, out, count));
    chunked(ctx, x, nullptr, out, count,
            [&](float *v, const float *, int64_t n) {
              activateInPlace(activation, v, n);
            });
  });
}

moert_status_t moert_multiply(moert_context_t ctx, moert_view_t a,
                              moert_view_t b, moert_view_t out, int64_t count) {
  return guard("moert_multiply", [&] {
    checkContext(ctx);
    require(count >= 0, "count must be >= 0, got ", count);
    checkFloatView(a, count, "a");
    checkFloatView(b, count, "b");
    checkFloatView(out, count, "out");
    MOERT_ROUTE_DEVICE(ctx, multiply(ctx, a, b, out, count));
    chunked(ctx, a, &b, out, count, multiplyInPlace);
  });
}

moert_status_t moert_dense_ffn(moert_context_t ctx, const moert_ffn_desc_t *ffn,
                               moert_view_t x, moert_view_t out,
                               int64_t tokens) {
  return guard("moert_dense_ffn", [&] {
    checkContext(ctx);
    require(ffn != nullptr, "null ffn descriptor");
    require(tokens >= 0, "tokens must be >= 0, got ", tokens);
    FfnOperands operands(*ffn, 1);
    int64_t hidden = ffn->hidden;
    requireFloatDtype(out, "out");
    checkFloatView(x, tokens * hidden, "x");
    checkFloatView(out, tokens * hidden, "out");
    MOERT_ROUTE_DEVICE(ctx, denseFfn(ctx, *ffn, x, out, tokens));
    const float *xData = floatInput(ctx, slotInput, x, tokens * hidden, "x");
    char *outData = viewData(out, tokens * hidden, "out");
    float *y = ctx->scratchFloats(slotOutput, tokens * hidden);
    operands.run(ctx, operands.panels(ctx, 0), xData, tokens, y);
    storeFloats(y, outData, out.dtype, tokens * hidden);
  });
}

moert_status_t moert_residual_mix(moert_context_t ctx, moert_view_t x,
                                  moert_view_t wc, moert_view_t bc,
                                  moert_view_t moeOut, moert_view_t mlpOut,
                                  moert_view_t out, int64_t tokens,
                                  int64_t hidden) {
  return guard("moert_residual_mix", [&] {
    checkContext(ctx);
    require(tokens >= 0 && hidden >= 1, "bad extents");
    requireFloatDtype(out, "out");
    int64_t count = tokens * hidden;
    checkFloatView(x, count, "x");
    checkFloatView(wc, 2 * hidden, "wc");
    checkOptionalFloatView(bc, 2, "bc");
    checkFloatView(moeOut, count, "moe_out");
    checkFloatView(mlpOut, count, "mlp_out");
    checkFloatView(out, count, "out");
    MOERT_ROUTE_DEVICE(ctx, residualMix(ctx, x, wc, bc, moeOut, mlpOut, out,
                                        tokens, hidden));
    const float *coef = mixCoefficients(ctx, x, wc, bc, tokens, hidden);
    const float *moe = floatInput(ctx, slotHiddenA, moeOut, count, "moe_out");
    const float *mlp = floatInput(ctx, slotHiddenB, mlpOut, count, "mlp_out");
    char *outData = viewData(out, count, "out");
    float *row = ctx->scratchFloats(slotRow, hidden);
    size_t outRow = hidden * moert_dtype_size(out.dtype);
    for (int64_t s = 0; s < tokens; ++s) {
      for (int64_t h = 0; h < hidden; ++h)
        row[h] = moe[s * hidden + h] * coef[2 * s] +
                 mlp[s * hidden + h] * coef[2 * s + 1];
      storeFloats(row, outData + s * outRow, out.dtype, hidden);
    }
  });
}

moert_status_t moert_shared_add(moert_context_t ctx, moert_view_t routed,
                                moert_view_t shared, moert_view_t x,
                                moert_view_t wSg, moert_view_t out,
                                int64_t tokens, int64_t hidden) {
  return guard("moert_shared_add", [&] {
    checkContext(ctx);
    require(tokens >= 0 && hidden >= 1, "bad extents");
    requireFloatDtype(out, "out");
    int64_t count = tokens * hidden;
    checkFloatView(routed, count, "routed");
    checkFloatView(shared, count, "shared");
    checkFloatView(out, count, "out");
    if (isPresent(wSg)) {
      checkFloatView(x, count, "x");
      checkFloatView(wSg, hidden, "w_sg");
    }
    MOERT_ROUTE_DEVICE(ctx, sharedAdd(ctx, routed, shared, x, wSg, out,
                                      tokens, hidden));
    const float *gate = sharedGates(ctx, x, wSg, tokens, hidden);
    // Row by row so that out may alias routed.
    requireFloatDtype(routed, "routed");
    requireFloatDtype(shared, "shared");
    const char *routedData = viewData(routed, count, "routed");
    const char *sharedData = viewData(shared, count, "shared");
    char *outData = viewData(out, count, "out");
    float *a = ctx->scratchFloats(slotRow, hidden);
    float *b = ctx->scratchFloats(slotRowB, hidden);
    size_t routedRow = hidden * moert_dtype_size(routed.dtype);
    size_t sharedRow = hidden * moert_dtype_size(shared.dtype);
    size_t outRow = hidden * moert_dtype_size(out.dtype);
    for (int64_t s = 0; s < tokens; ++s) {
      convertToFloat(routedData + s * routedRow, routed.dtype, a, hidden);
      convertToFloat(sharedData + s * sharedRow, shared.dtype, b, hidden);
      float g = gate ? gate[s] : 1.0f;
      for (int64_t h = 0; h < hidden; ++h)
        a[h] += g * b[h];
      storeFloats(a, outData + s * outRow, out.dtype, hidden);
    }
  });
}

moert_status_t moert_add(moert_context_t ctx, moert_view_t a, moert_view_t b,
                         moert_view_t out, int64_t count) {
  return guard("moert_add", [&] {
    checkContext(ctx);
    require(count >= 0, "count must be >= 0, got ", count);
    requireFloatDtype(a, "a");
    requireFloatDtype(b, "b");
    requireFloatDtype(out, "out");
    const char *aData = viewData(a, count, "a");
    const char *bData = viewData(b, count, "b");
    char *outData = viewData(out, count, "out");
    MOERT_ROUTE_DEVICE(ctx, add(ctx, a, b, out, count));
    constexpr int64_t chunk = 4096;
    float *x = ctx->scratchFloats(slotRow, chunk);
    float *y = ctx->scratchFloats(slotRowB, chunk);
    size_t aSize = moert_dtype_size(a.dtype), bSize = moert_dtype_size(b.dtype);
    size_t outSize = moert_dtype_size(out.dtype);
    // Chunked through fp32; chunks are disjoint so aliasing is safe.
    for (int64_t begin = 0; begin < count; begin += chunk) {
      int64_t n = std::min(chunk, count - begin);
      convertToFloat(aData + begin * aSize, a.dtype, x, n);
      convertToFloat(bData + begin * bSize, b.dtype, y, n);
      for (int64_t i = 0; i < n; ++i)
        x[i] += y[i];
      storeFloats(x, outData + begin * outSize, out.dtype, n);
    }
  });
}

} // extern "C"
