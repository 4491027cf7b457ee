//===- CEnums.h - dialect enums as runtime/moert.h enumerators --*- C++ -*-===//
//
// Each dialect enum that crosses the C ABI is paired here, case by case,
// with its runtime/moert.h enum: the C name is the spelling of the C
// enumerator itself (so the two cannot drift apart), and static_asserts
// check that the tables cover every case with equal values.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_CONVERSION_MOERTTOEMITC_CENUMS_H
#define MOE_PASSES_CONVERSION_MOERTTOEMITC_CENUMS_H

#include "dialects/moe/IR/MoeDialect.h"
#include "dialects/moert/IR/MoertDialect.h"

#include "runtime/moert.h"

#include <cstddef>
#include <cstdint>

namespace mlir::moert {

template <typename DialectEnum> struct CEnumerator {
  DialectEnum value;
  int64_t cValue;
  const char *cName;
};

/// {dialect case, C enumerator, "C enumerator"}.
#define MOERT_C_ENUMERATOR(dialectCase, cEnumerator)                           \
  { dialectCase, cEnumerator, #cEnumerator }

/// Entry i pairs dialect value i with C value i, and every case has one.
template <typename DialectEnum, size_t N>
constexpr bool pairsEveryCase(const CEnumerator<DialectEnum> (&table)[N],
                              uint64_t maxDialectValue) {
  if (N != maxDialectValue + 1)
    return false;
  for (size_t i = 0; i < N; ++i)
    if (static_cast<size_t>(table[i].value) != i ||
        table[i].cValue != static_cast<int64_t>(i))
      return false;
  return true;
}

#define MOERT_PAIRED_ENUM(DialectEnum, table, maxValue, ...)                   \
  inline constexpr CEnumerator<DialectEnum> table[] = {__VA_ARGS__};           \
  static_assert(pairsEveryCase(table, maxValue),                               \
                #DialectEnum " and its runtime/moert.h enum differ");          \
  inline const char *cEnumerator(DialectEnum value) {                          \
    return table[static_cast<size_t>(value)].cName;                            \
  }

MOERT_PAIRED_ENUM(moe::Activation, kActivations,
                  moe::getMaxEnumValForActivation(),
                  MOERT_C_ENUMERATOR(moe::Activation::silu, MOERT_ACT_SILU),
                  MOERT_C_ENUMERATOR(moe::Activation::gelu, MOERT_ACT_GELU),
                  MOERT_C_ENUMERATOR(moe::Activation::gelu_tanh,
                                     MOERT_ACT_GELU_TANH),
                  MOERT_C_ENUMERATOR(moe::Activation::relu, MOERT_ACT_RELU),
                  MOERT_C_ENUMERATOR(moe::Activation::swiglu_clamped,
                                     MOERT_ACT_SWIGLU_CLAMPED))

MOERT_PAIRED_ENUM(
    moe::ScoringFunc, kScoringFuncs, moe::getMaxEnumValForScoringFunc(),
    MOERT_C_ENUMERATOR(moe::ScoringFunc::softmax, MOERT_SCORE_SOFTMAX),
    MOERT_C_ENUMERATOR(moe::ScoringFunc::sigmoid, MOERT_SCORE_SIGMOID),
    MOERT_C_ENUMERATOR(moe::ScoringFunc::sparsemixer, MOERT_SCORE_SPARSEMIXER))

MOERT_PAIRED_ENUM(
    moe::GroupScore, kGroupScores, moe::getMaxEnumValForGroupScore(),
    MOERT_C_ENUMERATOR(moe::GroupScore::max, MOERT_GROUP_SCORE_MAX),
    MOERT_C_ENUMERATOR(moe::GroupScore::top2_sum, MOERT_GROUP_SCORE_TOP2_SUM))

MOERT_PAIRED_ENUM(
    moe::Normalization, kNormalizations, moe::getMaxEnumValForNormalization(),
    MOERT_C_ENUMERATOR(moe::Normalization::none, MOERT_NORM_NONE),
    MOERT_C_ENUMERATOR(moe::Normalization::selected, MOERT_NORM_SELECTED),
    MOERT_C_ENUMERATOR(moe::Normalization::kept, MOERT_NORM_KEPT),
    MOERT_C_ENUMERATOR(moe::Normalization::selected_clamped,
                       MOERT_NORM_SELECTED_CLAMPED),
    MOERT_C_ENUMERATOR(moe::Normalization::pnorm, MOERT_NORM_PNORM))

MOERT_PAIRED_ENUM(moe::DropOrder, kDropOrders, moe::getMaxEnumValForDropOrder(),
                  MOERT_C_ENUMERATOR(moe::DropOrder::choice_major,
                                     MOERT_DROP_CHOICE_MAJOR),
                  MOERT_C_ENUMERATOR(moe::DropOrder::token_major,
                                     MOERT_DROP_TOKEN_MAJOR),
                  MOERT_C_ENUMERATOR(moe::DropOrder::probs, MOERT_DROP_PROBS))

MOERT_PAIRED_ENUM(moe::AllToAllDirection, kAllToAllDirections,
                  moe::getMaxEnumValForAllToAllDirection(),
                  MOERT_C_ENUMERATOR(moe::AllToAllDirection::to_experts,
                                     MOERT_A2A_TO_EXPERTS),
                  MOERT_C_ENUMERATOR(moe::AllToAllDirection::from_experts,
                                     MOERT_A2A_FROM_EXPERTS))

MOERT_PAIRED_ENUM(moe::AllToAllVariant, kAllToAllVariants,
                  moe::getMaxEnumValForAllToAllVariant(),
                  MOERT_C_ENUMERATOR(moe::AllToAllVariant::flat,
                                     MOERT_A2A_FLAT),
                  MOERT_C_ENUMERATOR(moe::AllToAllVariant::hierarchical,
                                     MOERT_A2A_HIERARCHICAL))

MOERT_PAIRED_ENUM(WeightFormat, kWeightFormats, getMaxEnumValForWeightFormat(),
                  MOERT_C_ENUMERATOR(WeightFormat::fp8_e4m3_block,
                                     MOERT_WEIGHTS_FP8_E4M3_BLOCK),
                  MOERT_C_ENUMERATOR(WeightFormat::mxfp4, MOERT_WEIGHTS_MXFP4))

MOERT_PAIRED_ENUM(ReduceOp, kReduceOps, getMaxEnumValForReduceOp(),
                  MOERT_C_ENUMERATOR(ReduceOp::sum, MOERT_REDUCE_SUM),
                  MOERT_C_ENUMERATOR(ReduceOp::max, MOERT_REDUCE_MAX))

MOERT_PAIRED_ENUM(moe::RopeType, kRopeTypes, moe::getMaxEnumValForRopeType(),
                  MOERT_C_ENUMERATOR(moe::RopeType::standard,
                                     MOERT_ROPE_DEFAULT),
                  MOERT_C_ENUMERATOR(moe::RopeType::linear, MOERT_ROPE_LINEAR),
                  MOERT_C_ENUMERATOR(moe::RopeType::llama3, MOERT_ROPE_LLAMA3),
                  MOERT_C_ENUMERATOR(moe::RopeType::yarn, MOERT_ROPE_YARN),
                  MOERT_C_ENUMERATOR(moe::RopeType::longrope,
                                     MOERT_ROPE_LONGROPE))

#undef MOERT_PAIRED_ENUM
#undef MOERT_C_ENUMERATOR

} // namespace mlir::moert

#endif // MOE_PASSES_CONVERSION_MOERTTOEMITC_CENUMS_H
