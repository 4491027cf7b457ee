//===- runtime/api/Ffn.cpp - Expert and dense FFNs ------------------------===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"

#include <cmath>
#include <optional>

using namespace moert;
using namespace moert::api;

extern "C" {

moert_status_t moert_experts(moert_context_t ctx, const moert_ffn_desc_t *ffn,
                             moert_view_t in, moert_view_t out,
                             moert_view_t rows, int64_t experts,
                             int64_t capacity, int64_t blocks) {
  return guard("moert_experts", [&] {
    checkContext(ctx);
    require(ffn != nullptr, "null ffn descriptor");
    Operand used = expertRows(rows, experts, capacity, blocks);
    FfnOperands weights = ffnOperands(*ffn, experts);
    int64_t count = experts * capacity * ffn->hidden;
    Operand input = floatOperand(in, count, "in");
    Operand output = floatOperand(out, count, "out");
    ctx->backend().experts(ctx->rank, weights, input, output, used, experts,
                           capacity, blocks);
  });
}

moert_status_t moert_quantized_experts(moert_context_t ctx,
                                       const moert_quantized_ffn_desc_t *ffn,
                                       moert_view_t in, moert_view_t out,
                                       moert_view_t rows, int64_t experts,
                                       int64_t capacity, int64_t blocks) {
  return guard("moert_quantized_experts", [&] {
    checkContext(ctx);
    require(ffn != nullptr, "null ffn descriptor");
    Operand used = expertRows(rows, experts, capacity, blocks);
    QuantizedFfnOperands weights = quantizedFfnOperands(*ffn, experts);
    int64_t count = experts * capacity * ffn->hidden;
    Operand input = floatOperand(in, count, "in");
    Operand output = floatOperand(out, count, "out");
    ctx->backend().quantizedExperts(ctx->rank, weights, input, output, used,
                                    experts, capacity, blocks);
  });
}

moert_status_t moert_quantized_experts_linear(
    moert_context_t ctx, moert_weight_format_t format, int64_t block_rows,
    int64_t block_cols, moert_view_t w, moert_view_t w_scales, moert_view_t in,
    moert_view_t out, moert_view_t rows, int64_t experts, int64_t capacity,
    int64_t blocks, int64_t n, int64_t k) {
  return guard("moert_quantized_experts_linear", [&] {
    checkContext(ctx);
    Operand used = expertRows(rows, experts, capacity, blocks);
    QuantizedLinearOperands weight = quantizedLinearOperands(
        format, block_rows, block_cols, w, w_scales, n, k, experts);
    Operand input = floatOperand(in, experts * capacity * k, "in");
    Operand output = floatOperand(out, experts * capacity * n, "out");
    ctx->backend().quantizedExpertsLinear(ctx->rank, weight, input, output,
                                          used, experts, capacity, blocks);
  });
}

moert_status_t
moert_fused_experts(moert_context_t ctx, const moert_packed_ffn_desc_t *ffn,
                    moert_view_t in, moert_view_t out, moert_view_t rows,
                    int64_t experts, int64_t capacity, int64_t blocks,
                    const moert_packed_ffn_desc_t *shared, moert_view_t sharedX,
                    moert_view_t sharedOut, int64_t tokens) {
  return guard("moert_fused_experts", [&] {
    checkContext(ctx);
    require(ffn != nullptr, "null ffn descriptor");
    Operand used = expertRows(rows, experts, capacity, blocks);
    PackedFfnOperands routed = packedFfnOperands(*ffn, experts);
    int64_t hidden = ffn->hidden;
    Operand input = floatOperand(in, experts * capacity * hidden, "in");
    Operand output = floatOperand(out, experts * capacity * hidden, "out");
    std::optional<PackedFfnOperands> sharedFfn;
    Operand sharedInput, sharedOutput;
    if (shared) {
      require(shared->hidden == hidden, "shared expert hidden ", shared->hidden,
              " differs from the experts' ", hidden);
      sharedFfn = packedFfnOperands(*shared, 1);
      require(tokens >= 0, "tokens must be >= 0, got ", tokens);
      sharedInput = operand(sharedX, tokens * hidden, "shared_x");
      sharedOutput = operand(sharedOut, tokens * hidden, "shared_out");
      requireFloatDtype(sharedX, "shared_x");
      requireFloatDtype(sharedOut, "shared_out");
      const char *x = sharedInput.as<const char>();
      const char *y = sharedOutput.as<const char>();
      require(tokens == 0 ||
                  x + tokens * hidden * dtypeSize(sharedX.dtype) <= y ||
                  y + tokens * hidden * dtypeSize(sharedOut.dtype) <= x,
              "shared_out must not alias shared_x");
    } else {
      require(!isPresent(sharedX) && !isPresent(sharedOut) && tokens == 0,
              "without shared experts shared_x and shared_out are absent and "
              "tokens is 0");
    }
    ctx->backend().fusedExperts(
        ctx->rank, routed, input, output, used, experts, capacity, blocks,
        sharedFfn ? &*sharedFfn : nullptr, sharedInput, sharedOutput, tokens);
  });
}

moert_status_t moert_experts_linear(moert_context_t ctx, moert_view_t w,
                                    moert_view_t in, moert_view_t out,
                                    moert_view_t rows, int64_t experts,
                                    int64_t capacity, int64_t blocks, int64_t n,
                                    int64_t k) {
  return guard("moert_experts_linear", [&] {
    checkContext(ctx);
    Operand used = expertRows(rows, experts, capacity, blocks);
    require(n >= 1 && k >= 1, "bad extents: n ", n, ", k ", k);
    Operand weight = operand(w, experts * n * k, "w");
    requireFloatDtype(w, "w");
    requireFloatDtype(in, "in");
    requireFloatDtype(out, "out");
    Operand input = operand(in, experts * capacity * k, "in");
    Operand output = operand(out, experts * capacity * n, "out");
    ctx->backend().expertsLinear(ctx->rank, weight, input, output, used,
                                 experts, capacity, blocks, n, k);
  });
}

moert_status_t moert_activation(moert_context_t ctx,
                                moert_activation_t activation, moert_view_t x,
                                moert_view_t out, int64_t count) {
  return guard("moert_activation", [&] {
    checkContext(ctx);
    require(count >= 0, "count must be >= 0, got ", count);
    Operand input = floatOperand(x, count, "x");
    Operand output = floatOperand(out, count, "out");
    requireActivation(activation);
    ctx->backend().activation(ctx->rank, activation, input, output, count);
  });
}

moert_status_t moert_multiply(moert_context_t ctx, moert_view_t a,
                              moert_view_t b, moert_view_t out, int64_t count) {
  return guard("moert_multiply", [&] {
    checkContext(ctx);
    require(count >= 0, "count must be >= 0, got ", count);
    Operand left = floatOperand(a, count, "a");
    Operand right = floatOperand(b, count, "b");
    Operand output = floatOperand(out, count, "out");
    ctx->backend().multiply(ctx->rank, left, right, output, count);
  });
}

moert_status_t moert_swiglu_clamped(moert_context_t ctx, moert_view_t gate,
                                    moert_view_t up, moert_view_t out,
                                    int64_t count, float alpha, float limit) {
  return guard("moert_swiglu_clamped", [&] {
    checkContext(ctx);
    require(count >= 0, "count must be >= 0, got ", count);
    require(std::isfinite(alpha) && alpha > 0.0f,
            "alpha must be finite and > 0, got ", alpha);
    require(std::isfinite(limit) && limit > 0.0f,
            "limit must be finite and > 0, got ", limit);
    Operand g = floatOperand(gate, count, "gate");
    Operand u = floatOperand(up, count, "up");
    Operand output = floatOperand(out, count, "out");
    ctx->backend().swigluClamped(ctx->rank, g, u, output, count, alpha, limit);
  });
}

moert_status_t moert_experts_bias_add(moert_context_t ctx, moert_view_t bias,
                                      moert_view_t x, moert_view_t out,
                                      moert_view_t rows, int64_t experts,
                                      int64_t capacity, int64_t blocks,
                                      int64_t n) {
  return guard("moert_experts_bias_add", [&] {
    checkContext(ctx);
    Operand used = expertRows(rows, experts, capacity, blocks);
    require(n >= 1, "bad extent: n ", n);
    Operand b = floatOperand(bias, experts * n, "bias");
    Operand input = floatOperand(x, experts * capacity * n, "x");
    Operand output = floatOperand(out, experts * capacity * n, "out");
    ctx->backend().expertsBiasAdd(ctx->rank, b, input, output, used, experts,
                                  capacity, blocks, n);
  });
}

moert_status_t moert_dense_ffn(moert_context_t ctx, const moert_ffn_desc_t *ffn,
                               moert_view_t x, moert_view_t out,
                               int64_t tokens) {
  return guard("moert_dense_ffn", [&] {
    checkContext(ctx);
    require(ffn != nullptr, "null ffn descriptor");
    require(tokens >= 0, "tokens must be >= 0, got ", tokens);
    FfnOperands weights = ffnOperands(*ffn, 1);
    requireFloatDtype(out, "out");
    Operand input = floatOperand(x, tokens * ffn->hidden, "x");
    Operand output = floatOperand(out, tokens * ffn->hidden, "out");
    ctx->backend().denseFfn(ctx->rank, weights, input, output, tokens);
  });
}

} // extern "C"
