//===- runtime/api/Validate.h - Argument checks of the entry points -*- C++
//-*-===//
//
// The one place for what every backend may assume: contexts and groups
// belong together, views are present, in bounds and of the right dtype,
// FFN descriptors are complete, extents fit. A check resolves a view to the
// Operand the backend gets; messages name the operand as moert.h does.
//
//===----------------------------------------------------------------------===//
#ifndef MOERT_API_VALIDATE_H
#define MOERT_API_VALIDATE_H

#include "runtime/api/Handles.h"

namespace moert::api {

void checkContext(moert_context_t ctx);
// The group's state, after checking that ctx's rank created it.
GroupState &checkGroup(moert_context_t ctx, moert_group_t group);

inline bool isPresent(moert_view_t view) { return view.buffer != nullptr; }
void requireDtype(moert_view_t view, moert_dtype_t dtype, const char *name);
void requireFloatDtype(moert_view_t view, const char *name);
void requireActivation(moert_activation_t activation);
// A present rope config whose type and parameters the formulas accept
// (runtime/common/Rope.h).
void checkRopeConfig(const moert_rope_config_t *cfg);
// longrope's factor lists over rotaryDim / 2 pairs (a no-op for other types).
void checkRopeFactors(const moert_rope_config_t *cfg, int64_t rotaryDim);

// `count` elements of a present view, in bounds and of a known dtype.
Operand operand(moert_view_t view, int64_t count, const char *name);
// The same, of dtype `dtype`.
Operand typedOperand(moert_view_t view, moert_dtype_t dtype, int64_t count,
                     const char *name);
// The same, of a float dtype (f32, f16, bf16).
Operand floatOperand(moert_view_t view, int64_t count, const char *name);
// x, out [tokens, hidden] and a [hidden] weight of a per-token norm, its
// extents and epsilon checked.
struct NormOperands {
  Operand x, weight, out;
};
NormOperands normOperands(moert_context_t ctx, moert_view_t x,
                          moert_view_t weight, moert_view_t out,
                          int64_t tokens, int64_t hidden, float epsilon);
// A float operand, or an absent Operand for an absent view.
Operand optionalFloatOperand(moert_view_t view, int64_t count,
                             const char *name);

// The used-row counts [experts, blocks] of an expert-major buffer (absent:
// every row used), after checking the extents.
Operand expertRows(moert_view_t rows, int64_t experts, int64_t capacity,
                   int64_t blocks);
// An FFN descriptor with `stack` stacked copies of its weights.
FfnOperands ffnOperands(const moert_ffn_desc_t &desc, int64_t stack);
QuantizedFfnOperands
quantizedFfnOperands(const moert_quantized_ffn_desc_t &desc, int64_t stack);
// A quantized [n, k] weight per stacked copy (moert_quantized_experts_linear).
QuantizedLinearOperands quantizedLinearOperands(moert_weight_format_t format,
                                                int64_t blockRows,
                                                int64_t blockCols,
                                                moert_view_t data,
                                                moert_view_t scales, int64_t n,
                                                int64_t k, int64_t stack);
PackedFfnOperands packedFfnOperands(const moert_packed_ffn_desc_t &desc,
                                    int64_t stack);

} // namespace moert::api

#endif // MOERT_API_VALIDATE_H
