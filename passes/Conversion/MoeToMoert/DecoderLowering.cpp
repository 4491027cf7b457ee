//===- DecoderLowering.cpp - embedding, norms, attention, LM head ---------===//
//
// The decoder around the FFN stack. Attention is data parallel (each rank
// its own tokens, KV caches and the whole weights) or tensor parallel
// (attention-tp: the op already holds this rank's heads, its caches their
// keys and values, and a shard.all_reduce sums the partial outputs).
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MoeToMoert/MoeToMoert.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

LogicalResult mlir::moe::checkAttentionPlan(Operation *op, StringRef what) {
  PlanAttr plan = planOf(op);
  Value result = op->getResult(0);
  bool summed = result.hasOneUse() &&
                isa<shard::AllReduceOp>(*result.getUsers().begin());
  if (plan && (plan.getEp() > 1 || (plan.getTp() > 1 && !summed)))
    return op->emitError()
           << "convert-moe-to-moert lowers data-parallel " << what
           << ", or tensor-parallel " << what
           << " whose output a shard.all_reduce sums; this layer's plan is "
           << plan;
  return success();
}

namespace {

struct EmbeddingLowering : OpLoweringOf<EmbeddingOp> {
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult analyze(EmbeddingOp op, LoweringState &state) const override {
    state.setBound(op.getResult(), state.bound(op.getIds()));
    // The residual stream: every layer updates it in place until the final
    // norm reads it.
    state.addHiddenUse(op.getResult(),
                       state.getFunction().getBody().front().getTerminator());
    return success();
  }
  LogicalResult emit(EmbeddingOp op, LoweringState &state) const override {
    auto table = cast<ShapedType>(op.getTable().getType());
    OpBuilder &b = state.getBuilder();
    Value out = state.newView(op.getResult());
    Value vocab =
        arith::ConstantIntOp::create(b, op.getLoc(), table.getDimSize(0), 64);
    moert::EmbeddingOp::create(b, op.getLoc(), state.getCtx(),
                               state.view(op.getIds()),
                               state.view(op.getTable()), out,
                               state.getTokens(), vocab, table.getDimSize(1));
    return success();
  }
};

/// The rows that sample, gathered as an embedding whose table is the step's
/// hidden states (its run-time rows: the tokens).
struct GatherRowsLowering : OpLoweringOf<GatherRowsOp> {
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult analyze(GatherRowsOp op, LoweringState &state) const override {
    if (!state.isDecoder() ||
        op.getRows() != state.getFunction().getBody().front().getArgument(3))
      return op.emitError() << "convert-moe-to-moert gathers the decoder's "
                               "sampled rows (its fourth argument) only";
    state.setBound(op.getResult(), state.bound(op.getRows()));
    return success();
  }
  LogicalResult emit(GatherRowsOp op, LoweringState &state) const override {
    Value out = state.newView(op.getResult());
    moert::EmbeddingOp::create(
        state.getBuilder(), op.getLoc(), state.getCtx(),
        state.view(op.getRows()), state.view(op.getInput()), out,
        state.getSampleCount(), state.getTokens(), hiddenOf(op.getInput()));
    state.setCount(op.getResult(), state.getSampleCount());
    return success();
  }
};

struct RmsNormLowering : OpLoweringOf<RmsNormOp> {
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult analyze(RmsNormOp op, LoweringState &state) const override {
    state.setBound(op.getResult(), state.bound(op.getInput()));
    return success();
  }
  LogicalResult emit(RmsNormOp op, LoweringState &state) const override {
    OpBuilder &b = state.getBuilder();
    Value out = state.newView(op.getResult());
    Value rows = state.countOf(op.getInput());
    state.setCount(op.getResult(), rows);
    moert::RmsNormOp::create(
        b, op.getLoc(), state.getCtx(), state.view(op.getInput()),
        state.view(op.getWeight()), out, rows, hiddenOf(op.getInput()),
        b.getF32FloatAttr(op.getEpsilon().convertToDouble()));
    return success();
  }
};

/// Scratch of one attention op: q, k, v and the heads' output, each at the
/// token bound, in the activation dtype.
struct AttentionScratch {
  int64_t q, k, v, o, bytes;
  AttentionScratch(AttentionOp op, int64_t tokens) {
    int64_t elem = elementBytes(getElementTypeOrSelf(op.getInput().getType()));
    int64_t qBytes = alignTo(
        mulSizes(mulSizes(tokens, op.getHeads() * op.getHeadDim()), elem));
    int64_t kvBytes = alignTo(
        mulSizes(mulSizes(tokens, op.getKvHeads() * op.getHeadDim()), elem));
    q = 0;
    k = qBytes;
    v = addSizes(k, kvBytes);
    o = addSizes(v, kvBytes);
    bytes = addSizes(o, qBytes);
  }
};

struct AttentionLowering : OpLoweringOf<AttentionOp> {
  LogicalResult analyze(AttentionOp op, LoweringState &state) const override {
    if (failed(checkAttentionPlan(op, "attention")))
      return failure();
    int64_t bound = state.bound(op.getInput());
    state.setBound(op.getResult(), bound);
    state.addScratch(op, AttentionScratch(op, bound).bytes);
    return success();
  }

  LogicalResult emit(AttentionOp op, LoweringState &state) const override {
    OpBuilder &b = state.getBuilder();
    Location loc = op.getLoc();
    Type element = getElementTypeOrSelf(op.getInput().getType());
    int64_t bound = state.bound(op.getInput());
    int64_t heads = op.getHeads(), kvHeads = op.getKvHeads(),
            dim = op.getHeadDim(), hidden = hiddenOf(op.getInput());
    AttentionScratch layout(op, bound);
    int64_t base = state.scratchOffsetOf(op), elem = elementBytes(element);
    auto scratch = [&](int64_t offset, int64_t width) {
      auto vt = moert::ViewType::get(b.getContext(), element, bound * width);
      return moert::ViewOp::create(b, loc, vt, state.getArena(),
                                   (base + offset) / elem)
          .getResult();
    };
    Value q = scratch(layout.q, heads * dim),
          k = scratch(layout.k, kvHeads * dim),
          v = scratch(layout.v, kvHeads * dim),
          o = scratch(layout.o, heads * dim);
    Value ctx = state.getCtx(), tokens = state.getTokens();
    Value x = state.view(op.getInput());
    moert::LinearOp::create(b, loc, ctx, x, state.view(op.getQWeight()),
                            state.optView(op.getQBias()), q, tokens,
                            heads * dim, hidden);
    moert::LinearOp::create(b, loc, ctx, x, state.view(op.getKWeight()),
                            state.optView(op.getKBias()), k, tokens,
                            kvHeads * dim, hidden);
    moert::LinearOp::create(b, loc, ctx, x, state.view(op.getVWeight()),
                            state.optView(op.getVBias()), v, tokens,
                            kvHeads * dim, hidden);
    if (std::optional<APFloat> clip = op.getClipQkv()) {
      // DBRX's clip_qkv: the projections' outputs, before norms and rope.
      auto limit = b.getF32FloatAttr(clip->convertToDouble());
      for (auto [rows, width] : {std::pair<Value, int64_t>{q, heads * dim},
                                 {k, kvHeads * dim},
                                 {v, kvHeads * dim}}) {
        Value count = arith::MulIOp::create(
            b, loc, tokens, arith::ConstantIntOp::create(b, loc, width, 64));
        moert::ClampOp::create(b, loc, ctx, rows, rows, count, limit);
      }
    }
    auto qkNorm = [&] {
      if (!op.getQNorm())
        return;
      // A [D] weight normalises each head (rows of D), else the whole row.
      bool perHead =
          cast<ShapedType>(op.getQNorm().getType()).getDimSize(0) == dim;
      auto epsilon = b.getF32FloatAttr(op.getNormEpsilon().convertToDouble());
      auto norm = [&](Value rows, Value weight, int64_t n) {
        Value count = tokens;
        if (perHead)
          count = arith::MulIOp::create(
              b, loc, tokens, arith::ConstantIntOp::create(b, loc, n, 64));
        moert::RmsNormOp::create(b, loc, ctx, rows, state.view(weight), rows,
                                 count, perHead ? dim : n * dim, epsilon);
      };
      norm(q, op.getQNorm(), heads);
      norm(k, op.getKNorm(), kvHeads);
    };
    Value positions = state.view(op.getPositions());
    Value sequences = state.view(op.getSequences());
    // Hunyuan-MoE normalises the rotated q and k; the others rotate the
    // normalised ones.
    if (!op.getQkNormAfterRope())
      qkNorm();
    if (op.getRopeAttr()) { // none with learned absolute positions
      moert::RopeOp::create(b, loc, ctx, op.getRopeAttr(), q, positions, tokens,
                            heads, dim);
      moert::RopeOp::create(b, loc, ctx, op.getRopeAttr(), k, positions, tokens,
                            kvHeads, dim);
    }
    if (op.getQkNormAfterRope())
      qkNorm();
    Value cache = state.view(op.getCache());
    int64_t maxBatch = state.getMaxBatch(), maxSeq = state.getMaxSeq();
    moert::KvAppendOp::create(b, loc, ctx, k, v, cache, sequences, positions,
                              tokens, kvHeads, dim, maxBatch, maxSeq);
    moert::AttentionOp::create(
        b, loc, ctx, q, cache, sequences, positions,
        state.optView(op.getSinks()), o, tokens, heads, kvHeads, dim, maxBatch,
        maxSeq,
        b.getF32FloatAttr(op.getScale() ? op.getScale()->convertToDouble()
                                        : 1.0 / std::sqrt(double(dim))),
        op.getSlidingWindow());
    Value out = state.newView(op.getResult());
    moert::LinearOp::create(b, loc, ctx, o, state.view(op.getOWeight()),
                            Value(), out, tokens, hidden, heads * dim);
    return success();
  }
};

struct LmHeadLowering : OpLoweringOf<LmHeadOp> {
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult analyze(LmHeadOp op, LoweringState &state) const override {
    state.setBound(op.getResult(), state.bound(op.getInput()));
    return success();
  }
  LogicalResult emit(LmHeadOp op, LoweringState &state) const override {
    auto weight = cast<ShapedType>(op.getWeight().getType());
    Value out = state.newView(op.getResult());
    Value rows = state.countOf(op.getInput());
    state.setCount(op.getResult(), rows);
    moert::LinearOp::create(state.getBuilder(), op.getLoc(), state.getCtx(),
                            state.view(op.getInput()),
                            state.view(op.getWeight()), Value(), out, rows,
                            weight.getDimSize(0), weight.getDimSize(1));
    return success();
  }
};

/// Granite's multipliers: on the embeddings, the attention's output (after
/// a tensor-parallel all-reduce) and the logits. In place where the input
/// dies here, so that the scaled embeddings stay the residual stream the
/// layers update in place; the logits go into the model's output.
struct ScaleLowering : OpLoweringOf<ScaleOp> {
  bool allowedOutsideLayers() const override { return true; }
  static bool inPlace(ScaleOp op, const LoweringState &state) {
    return op.getInput().hasOneUse() && !state.isModelOutput(op.getResult());
  }
  LogicalResult analyze(ScaleOp op, LoweringState &state) const override {
    state.setBound(op.getResult(), state.bound(op.getInput()));
    // The input's view lives on as the result's.
    if (inPlace(op, state)) {
      state.keepOutOfArena(op.getResult());
      for (Operation *reader : op.getResult().getUsers())
        state.addHiddenUse(op.getInput(), reader);
    }
    return success();
  }
  LogicalResult emit(ScaleOp op, LoweringState &state) const override {
    OpBuilder &b = state.getBuilder();
    Location loc = op.getLoc();
    Value out = state.view(op.getInput());
    if (inPlace(op, state))
      state.setView(op.getResult(), out);
    else
      out = state.newView(op.getResult());
    Value rows = state.countOf(op.getInput());
    state.setCount(op.getResult(), rows);
    Value count = arith::MulIOp::create(
        b, loc, rows,
        arith::ConstantIntOp::create(b, loc, hiddenOf(op.getInput()), 64));
    moert::ScaleOp::create(b, loc, state.getCtx(), state.view(op.getInput()),
                           out, count,
                           b.getF32FloatAttr(op.getFactor().convertToDouble()));
    return success();
  }
};

struct ArgmaxLowering : OpLoweringOf<ArgmaxOp> {
  bool allowedOutsideLayers() const override { return true; }
  LogicalResult analyze(ArgmaxOp op, LoweringState &state) const override {
    state.setBound(op.getResult(), state.bound(op.getInput()));
    return success();
  }
  LogicalResult emit(ArgmaxOp op, LoweringState &state) const override {
    Value out = state.newView(op.getResult());
    moert::ArgmaxOp::create(state.getBuilder(), op.getLoc(), state.getCtx(),
                            state.view(op.getInput()), out,
                            state.countOf(op.getInput()),
                            hiddenOf(op.getInput()));
    return success();
  }
};

} // namespace

void mlir::moe::populateDecoderLowerings(LoweringSet &lowerings) {
  lowerings
      .add<EmbeddingLowering, GatherRowsLowering, RmsNormLowering,
           AttentionLowering, LmHeadLowering, ScaleLowering, ArgmaxLowering>();
}
