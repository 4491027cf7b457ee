//===- runtime/api/Permute.cpp - Dispatch and combine ---------------------===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"

using namespace moert;
using namespace moert::api;

namespace {

// Per-choice routing weights [S, k] f32, or an absent Operand.
Operand optionalWeights(moert_view_t weights, int64_t choices) {
  if (!isPresent(weights))
    return {};
  return typedOperand(weights, MOERT_F32, choices, "weights");
}

// The expert rows y[E, C, H] and the [S, k] mapping table a combine reads.
struct CombineSource {
  Operand y, ids, slots, weights;
};

CombineSource combineSource(moert_view_t y, moert_view_t ids,
                            moert_view_t slots, moert_view_t weights,
                            int64_t tokens, int64_t hidden, int64_t topK,
                            int64_t experts, int64_t capacity) {
  require(tokens >= 0 && hidden >= 1 && topK >= 1 && experts >= 1 &&
              capacity >= 0,
          "bad extents");
  requireFloatDtype(y, "y");
  requireDtype(ids, MOERT_I32, "ids");
  requireDtype(slots, MOERT_I32, "slots");
  // Absent weights: the rows were weighted at dispatch (weight 1 here).
  return {operand(y, experts * capacity * hidden, "y"),
          operand(ids, tokens * topK, "ids"),
          operand(slots, tokens * topK, "slots"),
          optionalWeights(weights, tokens * topK)};
}

} // namespace

extern "C" {

moert_status_t moert_dispatch(moert_context_t ctx, moert_view_t x,
                              moert_view_t ids, moert_view_t slots,
                              moert_view_t weights, moert_view_t buf,
                              int64_t tokens, int64_t hidden, int64_t topK,
                              int64_t experts, int64_t capacity) {
  return guard("moert_dispatch", [&] {
    checkContext(ctx);
    require(tokens >= 0 && hidden >= 1 && topK >= 1 && experts >= 1 &&
                capacity >= 0,
            "bad extents");
    requireFloatDtype(x, "x");
    requireFloatDtype(buf, "buf");
    requireDtype(ids, MOERT_I32, "ids");
    requireDtype(slots, MOERT_I32, "slots");
    Operand in = operand(x, tokens * hidden, "x");
    Operand idIn = operand(ids, tokens * topK, "ids");
    Operand slotIn = operand(slots, tokens * topK, "slots");
    Operand scale = optionalWeights(weights, tokens * topK);
    Operand out = operand(buf, experts * capacity * hidden, "buf");
    ctx->backend().dispatch(ctx->rank, in, idIn, slotIn, scale, out, tokens,
                            hidden, topK, experts, capacity);
  });
}

moert_status_t moert_combine(moert_context_t ctx, moert_view_t y,
                             moert_view_t ids, moert_view_t slots,
                             moert_view_t weights, moert_view_t addend,
                             moert_view_t out, int64_t tokens, int64_t hidden,
                             int64_t topK, int64_t experts, int64_t capacity) {
  return guard("moert_combine", [&] {
    checkContext(ctx);
    CombineSource source = combineSource(y, ids, slots, weights, tokens, hidden,
                                         topK, experts, capacity);
    requireFloatDtype(out, "out");
    Operand result = operand(out, tokens * hidden, "out");
    Operand plus = optionalFloatOperand(addend, tokens * hidden, "addend");
    ctx->backend().combine(ctx->rank, source.y, source.ids, source.slots,
                           source.weights, plus, result, tokens, hidden, topK,
                           experts, capacity);
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
    CombineSource source = combineSource(y, ids, slots, weights, tokens, hidden,
                                         topK, experts, capacity);
    requireFloatDtype(out, "out");
    require(!isPresent(wSg) || isPresent(shared),
            "the shared gate needs the shared output");
    require(isPresent(mlpOut) == isPresent(wc),
            "the mix needs both mlp_out and wc");
    int64_t rows = tokens * hidden;
    Operand mlp = optionalFloatOperand(mlpOut, rows, "mlp_out");
    Operand sharedRows = optionalFloatOperand(shared, rows, "shared");
    Operand plus = optionalFloatOperand(addend, rows, "addend");
    Operand result = operand(out, rows, "out");
    // x feeds the mix coefficients and the shared gate only.
    Operand in;
    if (isPresent(wc) || isPresent(wSg))
      in = floatOperand(x, rows, "x");
    Operand mix = optionalFloatOperand(wc, 2 * hidden, "wc");
    Operand mixBias = optionalFloatOperand(bc, 2, "bc");
    Operand sharedGate = optionalFloatOperand(wSg, hidden, "w_sg");
    ctx->backend().fusedCombine(ctx->rank, source.y, source.ids, source.slots,
                                source.weights, mlp, mix, mixBias, sharedRows,
                                sharedGate, in, plus, result, tokens, hidden,
                                topK, experts, capacity);
  });
}

} // extern "C"
