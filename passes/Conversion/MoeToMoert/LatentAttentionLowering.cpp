//===- LatentAttentionLowering.cpp - DeepSeek MLA to runtime calls --------===//
//
// moe.latent_attention becomes the q projection(s), the kv_a projection,
// moert_latent_append (latent norm, k_pe rope, cache store), the absorbed
// moert_latent_attention and the o projection. Prefill and decode take the
// same absorbed path (docs/Dialects/MoeRationale.md, "Multi-head latent
// attention"). Data parallel, or tensor parallel (attention-tp: the op
// already holds this rank's heads, its cache the whole latent, and a
// shard.all_reduce sums the partial outputs).
//
//===----------------------------------------------------------------------===//

#include "passes/Conversion/MoeToMoert/MoeToMoert.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Scratch of one latent attention op at the token bound, in the activation
/// dtype: the low-rank q (when q_a is present), q, kv_a's output and the
/// heads' output.
struct LatentScratch {
  int64_t qA = 0, q, kv, o, bytes;
  LatentScratch(LatentAttentionOp op, int64_t tokens) {
    int64_t elem = elementBytes(getElementTypeOrSelf(op.getInput().getType()));
    auto rows = [&](int64_t width) {
      return alignTo(mulSizes(mulSizes(tokens, width), elem));
    };
    int64_t qARank =
        op.getQAWeight()
            ? cast<ShapedType>(op.getQAWeight().getType()).getDimSize(0)
            : 0;
    q = qARank ? rows(qARank) : 0;
    kv = addSizes(q, rows(op.getHeads() * op.getQueryDim()));
    o = addSizes(kv, rows(op.getRank() + op.getRopeDim()));
    bytes = addSizes(o, rows(op.getHeads() * op.getVDim()));
  }
};

struct LatentAttentionLowering : OpLoweringOf<LatentAttentionOp> {
  LogicalResult analyze(LatentAttentionOp op,
                        LoweringState &state) const override {
    PlanAttr plan = planOf(op);
    bool summed = op.getResult().hasOneUse() &&
                  isa<shard::AllReduceOp>(*op.getResult().getUsers().begin());
    if (plan && (plan.getEp() > 1 || (plan.getTp() > 1 && !summed)))
      return op.emitError()
             << "convert-moe-to-moert lowers data-parallel latent attention, "
                "or tensor-parallel latent attention whose output a "
                "shard.all_reduce sums; this layer's plan is "
             << plan;
    int64_t bound = state.bound(op.getInput());
    state.setBound(op.getResult(), bound);
    state.addScratch(op, LatentScratch(op, bound).bytes);
    return success();
  }

  LogicalResult emit(LatentAttentionOp op,
                     LoweringState &state) const override {
    OpBuilder &b = state.getBuilder();
    Location loc = op.getLoc();
    Type element = getElementTypeOrSelf(op.getInput().getType());
    int64_t bound = state.bound(op.getInput());
    int64_t heads = op.getHeads(), nope = op.getNopeDim(), v = op.getVDim(),
            rank = op.getRank(), rope = op.getRopeDim(),
            hidden = hiddenOf(op.getInput());
    int64_t qWidth = heads * op.getQueryDim();
    LatentScratch layout(op, bound);
    int64_t base = state.scratchOffsetOf(op), elem = elementBytes(element);
    auto scratch = [&](int64_t offset, int64_t width) {
      auto vt = moert::ViewType::get(b.getContext(), element, bound * width);
      return moert::ViewOp::create(b, loc, vt, state.getArena(),
                                   (base + offset) / elem)
          .getResult();
    };
    Value ctx = state.getCtx(), tokens = state.getTokens();
    Value x = state.view(op.getInput());
    Value q = scratch(layout.q, qWidth);
    if (Value qAWeight = op.getQAWeight()) {
      int64_t qARank = cast<ShapedType>(qAWeight.getType()).getDimSize(0);
      Value low = scratch(layout.qA, qARank);
      moert::LinearOp::create(b, loc, ctx, x, state.view(qAWeight), Value(),
                              low, tokens, qARank, hidden);
      moert::RmsNormOp::create(
          b, loc, ctx, low, state.view(op.getQANorm()), low, tokens, qARank,
          b.getF32FloatAttr(op.getEpsilon().convertToDouble()));
      moert::LinearOp::create(b, loc, ctx, low, state.view(op.getQWeight()),
                              Value(), q, tokens, qWidth, qARank);
    } else {
      moert::LinearOp::create(b, loc, ctx, x, state.view(op.getQWeight()),
                              Value(), q, tokens, qWidth, hidden);
    }
    Value kv = scratch(layout.kv, rank + rope);
    moert::LinearOp::create(b, loc, ctx, x, state.view(op.getKvAWeight()),
                            Value(), kv, tokens, rank + rope, hidden);
    Value cache = state.view(op.getCache());
    Value positions = state.view(op.getPositions());
    Value sequences = state.view(op.getSequences());
    int64_t maxBatch = state.getMaxBatch(), maxSeq = state.getMaxSeq();
    moert::LatentAppendOp::create(
        b, loc, ctx, op.getRope(), kv, state.view(op.getKvANorm()), cache,
        sequences, positions, tokens, rank, rope, maxBatch, maxSeq,
        b.getF32FloatAttr(op.getEpsilon().convertToDouble()));
    Value o = scratch(layout.o, heads * v);
    moert::LatentAttentionOp::create(
        b, loc, ctx, op.getRope(), q, state.view(op.getKvBWeight()), cache,
        sequences, positions, o, tokens, heads, nope, v, rank, rope, maxBatch,
        maxSeq, b.getF32FloatAttr(op.getScale().convertToDouble()));
    Value out = state.newView(op.getResult());
    moert::LinearOp::create(b, loc, ctx, o, state.view(op.getOWeight()),
                            Value(), out, tokens, hidden, heads * v);
    return success();
  }
};

} // namespace

void mlir::moe::populateLatentAttentionLowerings(LoweringSet &lowerings) {
  lowerings.add<LatentAttentionLowering>();
}
