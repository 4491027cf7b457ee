//===- runtime/api/Norms.cpp - LayerNorm, bias add, clamp and scale -------===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"

#include <cmath>

using namespace moert;
using namespace moert::api;

namespace {

// x and out of an element-wise map over `count` values (moert_clamp,
// moert_scale): both float views of `count` elements, out may alias x.
struct MapOperands {
  Operand x, out;
};
MapOperands mapOperands(moert_view_t x, moert_view_t out, int64_t count) {
  require(count >= 0, "bad count");
  requireFloatDtype(out, "out");
  return {floatOperand(x, count, "x"), floatOperand(out, count, "out")};
}

} // namespace

extern "C" {

moert_status_t moert_layer_norm(moert_context_t ctx, moert_view_t x,
                                moert_view_t weight, moert_view_t bias,
                                moert_view_t out, int64_t tokens,
                                int64_t hidden, float epsilon) {
  return guard("moert_layer_norm", [&] {
    NormOperands norm =
        normOperands(ctx, x, weight, out, tokens, hidden, epsilon);
    Operand shift = optionalFloatOperand(bias, hidden, "bias");
    ctx->backend().layerNorm(ctx->rank, norm.x, norm.weight, shift, norm.out,
                             tokens, hidden, epsilon);
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

moert_status_t moert_clamp(moert_context_t ctx, moert_view_t x,
                           moert_view_t out, int64_t count, float limit) {
  return guard("moert_clamp", [&] {
    checkContext(ctx);
    require(std::isfinite(limit) && limit > 0.0f,
            "limit must be finite and > 0");
    MapOperands map = mapOperands(x, out, count);
    ctx->backend().clamp(ctx->rank, map.x, map.out, count, limit);
  });
}

moert_status_t moert_scale(moert_context_t ctx, moert_view_t x,
                           moert_view_t out, int64_t count, float factor) {
  return guard("moert_scale", [&] {
    checkContext(ctx);
    require(std::isfinite(factor), "factor must be finite, got ", factor);
    MapOperands map = mapOperands(x, out, count);
    ctx->backend().scale(ctx->rank, map.x, map.out, count, factor);
  });
}

} // extern "C"
