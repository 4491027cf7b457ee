//===- LoweringState.h - what the moe op lowerings share --------*- C++ -*-===//
//
// The lowering of one model function as the per-op rules see it. Analysis:
// the rules record each tensor's bound (token or capacity) and the arena
// bytes they need beyond their results; the state numbers the ops, derives
// live ranges and plans the arena. Emission: the rules read and fill the
// tensor -> view and index -> i64 maps and look up rank groups, at the
// builder's insertion point in the step.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PASSES_CONVERSION_MOETOMOERT_LOWERINGSTATE_H
#define MOE_PASSES_CONVERSION_MOETOMOERT_LOWERINGSTATE_H

#include "dialects/moe/IR/MoeOps.h"
#include "dialects/moert/IR/MoertOps.h"
#include "passes/Support/SaturatingSizes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"

namespace mlir::moe {

/// State and arena bytes are placed at multiples of this.
constexpr int64_t kArenaAlignment = 64;
/// The most state bytes (weights and arena) of a rank. Larger plans are
/// rejected before anything is emitted, so that emission's arithmetic on
/// sizes and offsets cannot overflow.
constexpr int64_t kMaxStateBytes = int64_t(1) << 48;
int64_t alignTo(int64_t bytes);
int64_t elementBytes(Type type);

class LoweringState {
public:
  LoweringState(func::FuncOp func, int64_t maxTokens, bool staticCapacity,
                int64_t maxBatch = 0, int64_t maxSeq = 0);

  func::FuncOp getFunction() { return func; }
  /// The whole decoder (token ids, sequences and positions in; logits and
  /// next ids out; a KV cache per attention layer) rather than the FFN
  /// stack (hidden states updated in place).
  bool isDecoder() const { return decoder; }
  /// Leading arguments that are step inputs: x, or ids, sequences,
  /// positions and the rows that sample.
  unsigned getNumInputs() const { return decoder ? 4 : 1; }
  /// Sequences and positions each rank's KV caches hold.
  int64_t getMaxBatch() const { return maxBatch; }
  int64_t getMaxSeq() const { return maxSeq; }
  /// Elements of a cache of `type` at (max batch, max seq).
  int64_t cacheElements(Type cacheType) const;
  OpBuilder &getBuilder() { return builder; }
  /// Dropless gates use C = the token bound (no count is read back).
  bool hasStaticCapacity() const { return staticCapacity; }

  //===--------------------------------------------------------------------===//
  // Analysis: what the rules record, in program order
  //===--------------------------------------------------------------------===//

  /// Bound of the single dynamic dimension of `value` (0 if static).
  int64_t bound(Value value) const { return bounds.lookup(value); }
  void setBound(Value value, int64_t b) { bounds[value] = b; }
  /// Elements of `value` with its dynamic dimension at its bound.
  int64_t staticElements(Value value) const;
  /// The view of `tensor` (f8E4M3FN for the data of a quantized weight).
  moert::ViewType viewTypeOf(Value tensor) const;

  /// Block-quantized FFN weights (the module's moe.weight_quantization):
  /// the gate, up and down weight arguments of the gated experts and dense
  /// FFNs load as fp8 e4m3 data plus f32 scales, one per block. Fails at
  /// what the runtime cannot run quantized.
  LogicalResult collectQuantizedWeights();
  bool isQuantized(Value weight) const {
    return quantizedWeights.contains(weight);
  }
  moert::WeightFormat getWeightFormat() const { return weightFormat; }
  int64_t getBlockRows() const { return blockRows; }
  int64_t getBlockCols() const { return blockCols; }
  /// The scales of quantized `weight`: [E?, ceil(rows / R), ceil(cols /
  /// C)] elements, f32 (fp8) or ui8 e8m0 exponents (mxfp4).
  moert::ViewType scaleViewTypeOf(Value weight) const;
  Value scaleView(Value weight) const { return scaleViews.lookup(weight); }
  void setScaleView(Value weight, Value v) { scaleViews[weight] = v; }
  /// Arena bytes right after `tensor`'s data, alive as long as it is.
  void addBytesAfter(Value tensor, int64_t bytes) {
    extraBytes[tensor] = addSizes(extraBytes[tensor], bytes);
  }
  /// Arena bytes alive only at `op` (its scratch).
  void addScratch(Operation *op, int64_t bytes) { scratchBytes[op] = bytes; }
  /// `tensor` takes no arena bytes: state, or written in place.
  void keepOutOfArena(Value tensor) { outOfArena.insert(tensor); }
  /// `reader`'s lowering reads `tensor`, a use the moe IR does not show.
  void addHiddenUse(Value tensor, Operation *reader) {
    hiddenUses.push_back({tensor, reader});
  }

  //===--------------------------------------------------------------------===//
  // Planning: what the driver runs between analysis and emission
  //===--------------------------------------------------------------------===//

  /// Checks that the function's arguments are what the rules give views:
  /// the tokens x hidden input `tensor<?xHxT>` (decoder: ids, sequences and
  /// positions `tensor<?xi32>`, then KV caches), then weights of static
  /// shape; binds the inputs to the token bound.
  LogicalResult bindInput();
  /// Gives `op` the next program point (call in program order).
  void visit(Operation *op) {
    int64_t point = points.size();
    points[op] = point;
  }
  /// Live ranges of the tensors that get arena bytes: every result of an
  /// op inside a layer, unless kept out. A layer's result is its input,
  /// updated in place.
  void computeLiveRanges();
  /// Places the arena after `weightBytes` of weights in the state buffer;
  /// returns the arena's size (peak activation bytes), or failure when the
  /// state would pass kMaxStateBytes.
  FailureOr<int64_t> planArena(int64_t weightBytes);
  moert::BufferType getStateType() const { return stateType; }

  //===--------------------------------------------------------------------===//
  // Emission
  //===--------------------------------------------------------------------===//

  /// Starts the step's body: (context, state, statistics, tokens, the
  /// input/output view) or, for the decoder, (context, state, statistics,
  /// tokens, ids, sequences, positions, logits, next ids), the builder at
  /// its end.
  Block *beginStep();
  /// Ends the step and swaps it in as the function's body and signature.
  void finishStep(Block *body);

  Value getCtx() const { return ctx; }
  /// The run-time token count of the ops being lowered: the step's tokens,
  /// or this rank's share of them inside a layer that drops duplicates.
  Value getTokens() const { return layerTokens ? layerTokens : tokens; }
  /// Sets (or, with null, ends) the current layer's token share.
  void setLayerTokens(Value share) { layerTokens = share; }
  /// The run-time row count of `tensor`: the tokens, or (after
  /// moe.gather_rows) the rows that sample.
  Value countOf(Value tensor) const {
    Value count = counts.lookup(tensor);
    return count ? count : getTokens();
  }
  void setCount(Value tensor, Value count) { counts[tensor] = count; }
  /// The decoder's count of rows that sample (a step argument).
  Value getSampleCount() const { return sampleCount; }
  Value getStats() const { return stats; }
  Value getArena() const { return arena; }

  Value view(Value tensor) const { return views.lookup(tensor); }
  Value optView(Value tensor) const { return tensor ? view(tensor) : Value(); }
  void setView(Value tensor, Value v) { views[tensor] = v; }
  /// A new view of the arena bytes planned for `result`, or the step's
  /// output view when the decoder returns it.
  Value newView(Value result);
  /// Whether the decoder returns `value` (it then lives in an output view,
  /// not in the arena).
  bool isModelOutput(Value value) const;
  /// Byte offset of `tensor` (planned in the arena) in the state buffer.
  int64_t offsetOf(Value tensor) const { return offsets.lookup(tensor); }
  /// Byte offset of `op`'s scratch in the state buffer.
  int64_t scratchOffsetOf(Operation *op) const {
    return scratchOffsets.lookup(op);
  }

  Value i64(Value index) const { return scalars.lookup(index); }
  void setI64(Value index, Value value) { scalars[index] = value; }
  /// Errors at `op` unless every operand it reads is lowered: results of
  /// earlier ops have their view (tensors) or i64 (indices). A rule would
  /// otherwise hand a null value to a moert builder.
  LogicalResult checkOperandsLowered(Operation *op) const;

  /// The row counts exchanged along with the to_experts result `exchanged`.
  Value exchangedRows(Value exchanged) const {
    return rowsOf.lookup(exchanged);
  }
  void setExchangedRows(Value exchanged, Value rows) {
    rowsOf[exchanged] = rows;
  }

  /// The group of this rank's row of `table`, kept by init, looked up
  /// once per layer.
  Value group(DenseIntElementsAttr table, Location loc);
  /// The tp group of `plan`: rows of tp consecutive ranks.
  Value tpGroup(PlanAttr plan, Location loc);
  /// Ends a layer: its group lookups go out of scope.
  void endLayer() {
    layerGroups.clear();
    layerTokens = Value();
  }
  /// Every table the step looked up, by the slot init keeps its group in.
  const llvm::MapVector<Attribute, int32_t> &getGroupSlots() const {
    return groupSlots;
  }

  /// The down bias predicate of an FFN whose down weight is `down` (null
  /// when the FFN is not sliced over tp).
  Value downBiasIf(Value down, Value downBias, Location loc);
  /// The step's tokens * hidden (the per-member block of a tp collective).
  Value tokenElements(int64_t hidden, Location loc);

private:
  /// i1: this rank is its tp group's first member (it adds the down bias).
  Value firstSlice(PlanAttr plan, Location loc);

  func::FuncOp func;
  int64_t maxTokens;
  bool staticCapacity;
  int64_t maxBatch, maxSeq;
  bool decoder;
  OpBuilder builder;

  DenseMap<Value, int64_t> bounds;
  DenseMap<Operation *, int64_t> points;
  DenseMap<Value, int64_t> extraBytes; // planned after a tensor's data
  llvm::MapVector<Operation *, int64_t> scratchBytes;
  DenseSet<Value> outOfArena;
  SmallVector<std::pair<Value, Operation *>> hiddenUses;

  SmallVector<Value> planned; // tensors placed in the arena, in def order
  DenseMap<Value, std::pair<int64_t, int64_t>> ranges; // tensor -> live range
  DenseMap<Value, int64_t> offsets; // tensor -> state byte offset
  DenseMap<Operation *, int64_t> scratchOffsets;
  moert::BufferType stateType; // weights, then the arena

  Value ctx, tokens, stats, arena, sampleCount;
  Value layerTokens; // the current layer's token share, if it has one
  DenseMap<Value, Value> counts;  // tensor -> its run-time rows, if not tokens
  DenseMap<Value, Value> views;   // moe tensor -> moert view
  DenseMap<Value, Value> scalars; // moe index -> i64
  DenseMap<Value, Value> rowsOf;  // to_experts result -> its row counts
  DenseSet<Value> quantizedWeights;
  DenseMap<Value, Value> scaleViews; // quantized weight -> its scales
  moert::WeightFormat weightFormat = moert::WeightFormat::fp8_e4m3_block;
  int64_t blockRows = 0, blockCols = 0;
  // Rank groups: init keeps each distinct table's group in a slot (in
  // first-use order); a layer looks each one up once.
  llvm::MapVector<Attribute, int32_t> groupSlots;
  DenseMap<Attribute, Value> layerGroups;
};

//===----------------------------------------------------------------------===//
// Questions the rules of several families ask of the moe IR
//===----------------------------------------------------------------------===//

/// The last (hidden) dimension of `tensor`.
int64_t hiddenOf(Value tensor);
/// The plan of the layer holding `op` (null outside a planned layer).
PlanAttr planOf(Operation *op);
/// The layer plan and shard of weight argument `arg` (null if unsplit).
std::pair<PlanAttr, ShardAttr> shardOf(func::FuncOp func, BlockArgument arg);
/// An FFN whose partial outputs are summed over `parts` tp slices must hold
/// an F-slice of its down weight (else the sum multiplies the output).
LogicalResult checkSliced(Operation *ffn, Value down, int64_t parts);
/// The dispatch that fills the experts' input (through a to_experts
/// all-to-all with expert parallelism).
DispatchOp dispatchOf(Value expertsInput);
/// The input of the routed experts (fused or not) that produced `rows`.
Value routedExpertsInput(Value rows);
/// The per-expert counts of the gate (fused or not) that produced `ids`.
Value gateCounts(Value ids);

} // namespace mlir::moe

#endif // MOE_PASSES_CONVERSION_MOETOMOERT_LOWERINGSTATE_H
