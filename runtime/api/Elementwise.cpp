//===- runtime/api/Elementwise.cpp - Mixes, shared add, add, RMSNorm -----===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"

#include <cmath>

using namespace moert;
using namespace moert::api;

extern "C" {

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
    Operand input = floatOperand(x, count, "x");
    Operand mix = floatOperand(wc, 2 * hidden, "wc");
    Operand mixBias = optionalFloatOperand(bc, 2, "bc");
    Operand moe = floatOperand(moeOut, count, "moe_out");
    Operand mlp = floatOperand(mlpOut, count, "mlp_out");
    Operand output = floatOperand(out, count, "out");
    ctx->backend().residualMix(ctx->rank, input, mix, mixBias, moe, mlp, output,
                               tokens, hidden);
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
    Operand routedRows = floatOperand(routed, count, "routed");
    Operand sharedRows = floatOperand(shared, count, "shared");
    Operand output = floatOperand(out, count, "out");
    // x feeds the shared gate only.
    Operand input, gate;
    if (isPresent(wSg)) {
      input = floatOperand(x, count, "x");
      gate = floatOperand(wSg, hidden, "w_sg");
    }
    ctx->backend().sharedAdd(ctx->rank, routedRows, sharedRows, input, gate,
                             output, tokens, hidden);
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
    Operand left = operand(a, count, "a");
    Operand right = operand(b, count, "b");
    Operand output = operand(out, count, "out");
    ctx->backend().add(ctx->rank, left, right, output, count);
  });
}

moert_status_t moert_rms_norm(moert_context_t ctx, moert_view_t x,
                              moert_view_t weight, moert_view_t out,
                              int64_t tokens, int64_t hidden, float epsilon) {
  return guard("moert_rms_norm", [&] {
    NormOperands norm =
        normOperands(ctx, x, weight, out, tokens, hidden, epsilon);
    ctx->backend().rmsNorm(ctx->rank, norm.x, norm.weight, norm.out, tokens,
                           hidden, epsilon);
  });
}

} // extern "C"
