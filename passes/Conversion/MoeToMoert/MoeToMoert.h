//===- MoeToMoert.h - moe op lowering rules ---------------------*- C++ -*-===//
//
// Each moe op lowers by one rule in two steps over the function's shared
// LoweringState: analysis (in program order, before anything is emitted)
// records its results' bounds and the arena bytes it needs beyond them;
// emission (in program order, after the arena is planned) creates its
// moert ops. A new op is one rule class in its family's file and one line
// in that family's populate function.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_CONVERSION_MOETOMOERT_MOETOMOERT_H
#define MOE_PASSES_CONVERSION_MOETOMOERT_MOETOMOERT_H

#include "passes/Conversion/MoeToMoert/LoweringState.h"

#include "llvm/ADT/StringMap.h"

#include <memory>

namespace mlir::moe {

/// How one op lowers to moert.
class OpLowering {
public:
  virtual ~OpLowering() = default;
  /// The name of the op the rule lowers.
  StringRef getOpName() const { return opName; }
  virtual LogicalResult analyzeOp(Operation *op,
                                  LoweringState &state) const = 0;
  virtual LogicalResult emitOp(Operation *op, LoweringState &state) const = 0;
  /// Whether the op may stand outside a moe.layer (the layer frame, the
  /// return, packed weights). The others need their layer: only results
  /// inside one get arena bytes, and their rules read its plan and index.
  virtual bool allowedOutsideLayers() const { return false; }

protected:
  explicit OpLowering(StringRef opName) : opName(opName) {}

private:
  StringRef opName;
};

/// The rule of ops of type `OpTy`.
template <typename OpTy> class OpLoweringOf : public OpLowering {
public:
  OpLoweringOf() : OpLowering(OpTy::getOperationName()) {}
  /// Records the bounds of `op`'s results and its arena needs (by default
  /// none).
  virtual LogicalResult analyze(OpTy op, LoweringState &state) const {
    return success();
  }
  /// Emits `op`'s moert ops at the state's insertion point.
  virtual LogicalResult emit(OpTy op, LoweringState &state) const = 0;

private:
  LogicalResult analyzeOp(Operation *op, LoweringState &state) const final {
    return analyze(cast<OpTy>(op), state);
  }
  LogicalResult emitOp(Operation *op, LoweringState &state) const final {
    return emit(cast<OpTy>(op), state);
  }
};

/// The rules of the lowering, one per op name.
class LoweringSet {
public:
  template <typename... Rules> LoweringSet &add() {
    (insert(std::make_unique<Rules>()), ...);
    return *this;
  }
  /// The rule that lowers `op`, or null.
  const OpLowering *lookup(Operation *op) const {
    auto it = rules.find(op->getName().getStringRef());
    return it == rules.end() ? nullptr : it->second.get();
  }

private:
  void insert(std::unique_ptr<OpLowering> rule) {
    [[maybe_unused]] bool inserted =
        rules.try_emplace(rule->getOpName(), std::move(rule)).second;
    assert(inserted && "two lowering rules for one op");
  }
  llvm::StringMap<std::unique_ptr<OpLowering>> rules;
};

/// moert.quantized_experts for a gated FFN whose weights are fp8
/// block-quantized (LoweringState::isQuantized): routed experts, or a dense
/// FFN as one expert of `rowsPerExpert` = tokens rows.
void emitQuantizedFfn(LoweringState &state, Location loc, Activation activation,
                      Value gate, Value up, Value down, int64_t ffn,
                      Value input, Value output, Value rows, int64_t experts,
                      Value rowsPerExpert, int64_t blocks);

/// Every rule of convert-moe-to-moert.
void populateMoeToMoertLowerings(LoweringSet &lowerings);

/// The rules by op family.
/// router, gate, fused_gate.
void populateGatingLowerings(LoweringSet &lowerings);
/// dispatch, experts, fused_experts, combine, fused_combine (and the packed
/// gate_up weight they read).
void populateExpertsLowerings(LoweringSet &lowerings);
/// all_to_all, sync_capacity, shard.all_gather / reduce_scatter.
void populateExchangeLowerings(LoweringSet &lowerings);
/// The layer frame (in-place residual add), dense_ffn, residual_mix,
/// shared_add and the model's return.
void populateDenseLowerings(LoweringSet &lowerings);
/// embedding, rms_norm, attention, lm_head, argmax.
void populateDecoderLowerings(LoweringSet &lowerings);
/// layer_norm, bias_add, position_embedding (the PR-MoE GPT).
void populateGptLowerings(LoweringSet &lowerings);
/// Errors unless `op` (an attention op) is data parallel, or tensor
/// parallel with a shard.all_reduce summing its output.
LogicalResult checkAttentionPlan(Operation *op, StringRef what);

/// latent_attention (DeepSeek MLA).
void populateLatentAttentionLowerings(LoweringSet &lowerings);

} // namespace mlir::moe

#endif // MOE_PASSES_CONVERSION_MOETOMOERT_MOETOMOERT_H
