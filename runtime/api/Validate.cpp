//===- runtime/api/Validate.cpp - Argument checks of the entry points -----===//

#include "runtime/api/Validate.h"

#include "runtime/common/Activation.h"
#include "runtime/common/Error.h"
#include "runtime/common/Quantized.h"

#include <cmath>

using namespace moert;
using namespace moert::api;

void moert::api::checkContext(moert_context_t ctx) {
  require(ctx != nullptr && ctx->world != nullptr, "null context");
}

GroupState &moert::api::checkGroup(moert_context_t ctx, moert_group_t group) {
  checkContext(ctx);
  require(group != nullptr, "null group");
  GroupState &state = *group->state;
  require(group->world == ctx->world && state.ranks[state.member] == ctx->rank,
          "group was not created by rank ", ctx->rank);
  return state;
}

void moert::api::requireDtype(moert_view_t view, moert_dtype_t dtype,
                              const char *name) {
  require(view.dtype == dtype, "operand '", name, "' must be ",
          dtypeName(dtype), ", got ", dtypeName(view.dtype));
}

void moert::api::requireFloatDtype(moert_view_t view, const char *name) {
  require(isFloatType(view.dtype), "operand '", name,
          "' must be f32, f16 or bf16, got ", dtypeName(view.dtype));
}

void moert::api::requireActivation(moert_activation_t activation) {
  require(activation != MOERT_ACT_SWIGLU_CLAMPED,
          "MOERT_ACT_SWIGLU_CLAMPED runs through moert_swiglu_clamped only");
  require(isActivation(activation), "unknown activation ",
          static_cast<int>(activation));
}

void moert::api::checkRopeConfig(const moert_rope_config_t *cfg) {
  require(cfg != nullptr, "cfg must not be null");
  require(cfg->type >= MOERT_ROPE_DEFAULT && cfg->type <= MOERT_ROPE_LONGROPE,
          "unknown rope type ", static_cast<int>(cfg->type));
  require(std::isfinite(cfg->theta) && cfg->theta > 0 &&
              std::isfinite(cfg->factor) && cfg->factor > 0 &&
              std::isfinite(cfg->attention_factor),
          "rope theta and factor must be finite and > 0");
  require(cfg->rotary_dim >= 0 && cfg->rotary_dim % 2 == 0,
          "rope rotary_dim must be even and >= 0 (0: the whole head), got ",
          cfg->rotary_dim);
  require(cfg->interleaved == 0 || cfg->interleaved == 1,
          "rope interleaved must be 0 or 1, got ", cfg->interleaved);
  if (cfg->type == MOERT_ROPE_LLAMA3)
    require(cfg->original_max_position >= 1 && cfg->low_freq_factor > 0 &&
                cfg->high_freq_factor > cfg->low_freq_factor,
            "llama3 rope needs original_max_position >= 1 and "
            "high_freq_factor > low_freq_factor > 0");
  if (cfg->type == MOERT_ROPE_YARN)
    require(cfg->original_max_position >= 1 && cfg->beta_fast > 0 &&
                cfg->beta_slow > 0,
            "yarn rope needs original_max_position >= 1 and beta_fast, "
            "beta_slow > 0");
  if (cfg->type == MOERT_ROPE_LONGROPE) {
    require(cfg->original_max_position >= 1 &&
                std::isfinite(cfg->short_mscale) &&
                std::isfinite(cfg->long_mscale),
            "longrope needs original_max_position >= 1 and finite "
            "short_mscale, long_mscale");
  }
}

void moert::api::checkRopeFactors(const moert_rope_config_t *cfg,
                                  int64_t rotaryDim) {
  if (cfg->type != MOERT_ROPE_LONGROPE)
    return;
  require(rotaryDim / 2 <= MOERT_ROPE_MAX_FACTORS, "longrope over ", rotaryDim,
          " dims needs more than MOERT_ROPE_MAX_FACTORS (",
          MOERT_ROPE_MAX_FACTORS, ") factors");
  for (int64_t i = 0; i < rotaryDim / 2; ++i)
    require(std::isfinite(cfg->short_factor[i]) && cfg->short_factor[i] > 0 &&
                std::isfinite(cfg->long_factor[i]) && cfg->long_factor[i] > 0,
            "longrope factor ", i, " must be finite and > 0 (short ",
            cfg->short_factor[i], ", long ", cfg->long_factor[i], ")");
}

Operand moert::api::operand(moert_view_t view, int64_t count,
                            const char *name) {
  require(view.buffer != nullptr, "operand '", name, "' is absent");
  size_t elementSize = dtypeSize(view.dtype);
  require(elementSize != 0, "operand '", name, "' has unknown dtype ",
          static_cast<int>(view.dtype));
  require(view.offset >= 0 && count >= 0, "operand '", name,
          "' has negative offset ", view.offset, " or count ", count);
  size_t end = (static_cast<size_t>(view.offset) + count) * elementSize;
  require(end <= view.buffer->bytes, "operand '", name, "' (", count, " x ",
          dtypeName(view.dtype), " at element ", view.offset,
          ") runs past its buffer of ", view.buffer->bytes, " bytes");
  return {static_cast<char *>(view.buffer->data) + view.offset * elementSize,
          view.dtype};
}

Operand moert::api::typedOperand(moert_view_t view, moert_dtype_t dtype,
                                 int64_t count, const char *name) {
  requireDtype(view, dtype, name);
  return operand(view, count, name);
}

Operand moert::api::floatOperand(moert_view_t view, int64_t count,
                                 const char *name) {
  requireFloatDtype(view, name);
  return operand(view, count, name);
}

NormOperands moert::api::normOperands(moert_context_t ctx, moert_view_t x,
                                      moert_view_t weight, moert_view_t out,
                                      int64_t tokens, int64_t hidden,
                                      float epsilon) {
  checkContext(ctx);
  require(tokens >= 0 && hidden >= 1, "bad extents");
  require(epsilon >= 0.0f && std::isfinite(epsilon),
          "epsilon must be finite and >= 0, got ", epsilon);
  requireFloatDtype(out, "out");
  int64_t count = tokens * hidden;
  return {floatOperand(x, count, "x"), floatOperand(weight, hidden, "weight"),
          floatOperand(out, count, "out")};
}

Operand moert::api::optionalFloatOperand(moert_view_t view, int64_t count,
                                         const char *name) {
  return isPresent(view) ? floatOperand(view, count, name) : Operand{};
}

Operand moert::api::expertRows(moert_view_t rows, int64_t experts,
                               int64_t capacity, int64_t blocks) {
  require(experts >= 1 && capacity >= 0 && blocks >= 1, "bad extents: experts ",
          experts, ", capacity ", capacity, ", blocks ", blocks);
  require(capacity % blocks == 0, "capacity ", capacity,
          " is not a multiple of blocks ", blocks);
  if (!isPresent(rows))
    return {};
  return typedOperand(rows, MOERT_I32, experts * blocks, "rows");
}

namespace {
// A weight checked for bounds first, then for a float dtype.
Operand weight(moert_view_t view, int64_t count, const char *name) {
  Operand checked = operand(view, count, name);
  requireFloatDtype(view, name);
  return checked;
}
} // namespace

FfnOperands moert::api::ffnOperands(const moert_ffn_desc_t &desc,
                                    int64_t stack) {
  require(desc.kind == MOERT_FFN_GATED || desc.kind == MOERT_FFN_PLAIN,
          "unknown ffn kind ", static_cast<int>(desc.kind));
  int64_t hidden = desc.hidden, ffn = desc.ffn;
  require(hidden >= 1 && ffn >= 1, "ffn needs hidden >= 1 and ffn >= 1, got ",
          hidden, " and ", ffn);
  FfnOperands w{desc.kind, desc.activation, hidden, ffn, {}, {}, {}, {}, {}};
  bool gated = w.gated();
  w.wGate = weight(desc.w_gate, stack * ffn * hidden, gated ? "w_gate" : "w1");
  w.wDown = weight(desc.w_down, stack * hidden * ffn, gated ? "w_down" : "w2");
  if (gated) {
    w.wUp = weight(desc.w_up, stack * ffn * hidden, "w_up");
    require(!isPresent(desc.b1) && !isPresent(desc.b2),
            "gated ffn takes no biases");
  } else {
    require(!isPresent(desc.w_up), "plain ffn takes no w_up");
    if (isPresent(desc.b1))
      w.b1 = weight(desc.b1, stack * ffn, "b1");
    if (isPresent(desc.b2))
      w.b2 = weight(desc.b2, stack * hidden, "b2");
  }
  requireActivation(desc.activation);
  return w;
}

PackedFfnOperands
moert::api::packedFfnOperands(const moert_packed_ffn_desc_t &desc,
                              int64_t stack) {
  int64_t hidden = desc.hidden, ffn = desc.ffn;
  require(hidden >= 1 && ffn >= 1, "ffn needs hidden >= 1 and ffn >= 1, got ",
          hidden, " and ", ffn);
  PackedFfnOperands w{desc.activation, hidden, ffn, {}, {}};
  w.wGateUp =
      floatOperand(desc.w_gate_up, stack * 2 * ffn * hidden, "w_gate_up");
  w.wDown = floatOperand(desc.w_down, stack * hidden * ffn, "w_down");
  requireActivation(desc.activation);
  return w;
}

namespace {

// One quantized weight of `rows` x `cols` per stacked copy.
QuantizedOperand quantizedWeight(const moert_quantized_weight_t &weight,
                                 const QuantizedLayout &layout, int64_t stack,
                                 const std::string &name) {
  std::string data = name + ".data", scales = name + ".scales";
  return {typedOperand(weight.data, layout.dataType(),
                       stack * layout.dataElements(), data.c_str()),
          typedOperand(weight.scales, layout.scaleType(),
                       stack * layout.scaleElements(), scales.c_str())};
}

// The block shape the format takes.
void requireBlocks(moert_weight_format_t format, int64_t blockRows,
                   int64_t blockCols) {
  switch (format) {
  case MOERT_WEIGHTS_FP8_E4M3_BLOCK:
    require(blockRows >= 1 && blockCols >= 1,
            "fp8 block size must be positive, got ", blockRows, " x ",
            blockCols);
    return;
  case MOERT_WEIGHTS_MXFP4:
    require(blockRows == 1 && blockCols == 32, "mxfp4 blocks are 1 x 32, got ",
            blockRows, " x ", blockCols);
    return;
  }
  fail(MOERT_INVALID_ARGUMENT, "unknown weight format ",
       static_cast<int>(format));
}

} // namespace

QuantizedLinearOperands
moert::api::quantizedLinearOperands(moert_weight_format_t format,
                                    int64_t blockRows, int64_t blockCols,
                                    moert_view_t data, moert_view_t scales,
                                    int64_t n, int64_t k, int64_t stack) {
  require(n >= 1 && k >= 1, "bad extents: n ", n, ", k ", k);
  require(stack >= 1, "quantized weights need experts >= 1, got ", stack);
  requireBlocks(format, blockRows, blockCols);
  require(format != MOERT_WEIGHTS_MXFP4 || k % 32 == 0,
          "mxfp4 needs k a multiple of 32, got ", k);
  QuantizedLayout layout{format, n, k, blockRows, blockCols};
  moert_quantized_weight_t weight{data, scales};
  return {format, blockRows, blockCols,
          n,      k,         quantizedWeight(weight, layout, stack, "w")};
}

QuantizedFfnOperands
moert::api::quantizedFfnOperands(const moert_quantized_ffn_desc_t &desc,
                                 int64_t stack) {
  int64_t hidden = desc.hidden, ffn = desc.ffn;
  require(hidden >= 1 && ffn >= 1, "ffn needs hidden >= 1 and ffn >= 1, got ",
          hidden, " and ", ffn);
  require(stack >= 1, "quantized ffn needs experts >= 1, got ", stack);
  requireBlocks(desc.format, desc.block_rows, desc.block_cols);
  require(
      desc.format != MOERT_WEIGHTS_MXFP4 || (hidden % 32 == 0 && ffn % 32 == 0),
      "mxfp4 needs hidden and ffn multiples of 32, got ", hidden, " and ", ffn);
  requireActivation(desc.activation);
  QuantizedLayout upLayout{desc.format, ffn, hidden, desc.block_rows,
                           desc.block_cols};
  QuantizedLayout downLayout{desc.format, hidden, ffn, desc.block_rows,
                             desc.block_cols};
  return {desc.format,
          desc.block_rows,
          desc.block_cols,
          desc.activation,
          hidden,
          ffn,
          quantizedWeight(desc.gate, upLayout, stack, "gate"),
          quantizedWeight(desc.up, upLayout, stack, "up"),
          quantizedWeight(desc.down, downLayout, stack, "down")};
}
