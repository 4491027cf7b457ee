//===- runtime/api/Norms.cpp - LayerNorm and the bias add -----------------===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"

#include <cmath>

using namespace moert;
using namespace moert::api;

extern "C" {

moert_status_t moert_layer_norm(moert_context_t ctx, moert_view_t x,
                                moert_view_t weight, moert_view_t bias,
                                moert_view_t out, int64_t tokens,
                                int64_t hidden, float epsilon) {
  return guard("moert_layer_norm", [&] {
    checkContext(ctx);
    require(tokens >= 0 && hidden >= 1, "bad extents");
    require(epsilon >= 0.0f && std::isfinite(epsilon),
            "epsilon must be finite and >= 0, got ", epsilon);
    requireFloatDtype(out, "out");
    int64_t count = tokens * hidden;
    Operand input = floatOperand(x, count, "x");
    Operand scale = floatOperand(weight, hidden, "weight");
    Operand shift = optionalFloatOperand(bias, hidden, "bias");
    Operand output = floatOperand(out, count, "out");
    ctx->backend().layerNorm(ctx->rank, input, scale, shift, output, tokens,
                             hidden, epsilon);
  });
}

moert_status_t moert_bias_add(moert_context_t ctx, moert_view_t x,
                              moert_view_t bias, moert_view_t out,
                              int64_t tokens, int64_t hidden) {
  return guard("moert_bias_add", [&] {
    checkContext(ctx);
    require(tokens >= 0 && hidden >= 1, "bad extents");
    requireFloatDtype(out, "out");
    int64_t count = tokens * hidden;
    Operand input = floatOperand(x, count, "x");
    Operand shift = floatOperand(bias, hidden, "bias");
    Operand output = floatOperand(out, count, "out");
    ctx->backend().biasAdd(ctx->rank, input, shift, output, tokens, hidden);
  });
}

} // extern "C"
