//===- InitLowering.h - the weights and the init entry ----------*- C++ -*-===//
//
// A model function's weights live in the first bytes of the rank's state
// buffer, one slot per weight tensor (a packed gate_up is one slot its two
// arguments load into). `@f_init` loads each rank's shard of every slot
// once and keeps the rank groups the step looks up; the step views the
// slots.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_CONVERSION_MOETOMOERT_INITLOWERING_H
#define MOE_PASSES_CONVERSION_MOETOMOERT_INITLOWERING_H

#include "passes/Conversion/MoeToMoert/LoweringState.h"

namespace mlir::moe {

class InitLowering {
public:
  explicit InitLowering(LoweringState &state) : state(state) {}

  /// Places every weight argument in the state buffer.
  LogicalResult placeWeights();
  /// The state bytes the weights take (the KV caches follow them).
  int64_t getWeightBytes() const { return weightBytes; }
  /// The state bytes of the KV caches (the arena follows them).
  int64_t getCacheBytes() const { return cacheBytes; }
  /// Creates `@f_init`, which loads every slot (planArena first).
  LogicalResult emitInit();
  /// The step's view of every slot and KV cache, at the builder's
  /// insertion point.
  void emitWeightViews();
  /// Appends to init the keep_group of every table the step used.
  void emitKeptGroups();

private:
  /// A weight argument loaded into a slot at `elementOffset`, experts
  /// `stride` elements apart (0: dense).
  struct WeightPart {
    BlockArgument arg;
    int64_t elementOffset = 0, stride = 0;
  };
  /// The state bytes of one weight tensor: an argument, or the packed
  /// gate_up concatenation of two (filled by one load each).
  struct WeightSlot {
    Value value;
    int64_t offset; // bytes into the state buffer
    SmallVector<WeightPart, 2> parts;
    bool scales = false; // the f32 block scales of quantized `value`
  };
  LogicalResult
  emitLoad(const WeightSlot &slot, const WeightPart &part, Value ctx,
           Value file, Value stateBuffer,
           llvm::function_ref<Value(Location, PlanAttr, ShardAxis, int64_t)>
               shardOffset);

  LogicalResult emitFusedRowsLoad(
      BlockArgument arg, DenseI64ArrayAttr rows, StringRef key, Value dst,
      Value ctx, Value file, PlanAttr plan, ArrayRef<ShardAxis> axes,
      llvm::function_ref<Value(Location, PlanAttr, ShardAxis, int64_t)>
          shardOffset);

  LoweringState &state;
  SmallVector<WeightSlot> slots;
  int64_t weightBytes = 0;
  /// KV cache arguments and their byte offsets; nothing loads them (every
  /// position is written before attention reads it).
  SmallVector<std::pair<BlockArgument, int64_t>> caches;
  int64_t cacheBytes = 0;
  func::FuncOp initFunc;
};

} // namespace mlir::moe

#endif // MOE_PASSES_CONVERSION_MOETOMOERT_INITLOWERING_H
