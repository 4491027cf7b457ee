//===- AssignParallelism.cpp - per-layer EP / TP / DP plans ---------------===//

#include "passes/OptionChecks.h"
#include "passes/Parallelism/LayerAnalysis.h"
#include "passes/Parallelism/Passes.h"
#include "passes/Parallelism/PlanReport.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/ToolOutputFile.h"

namespace mlir::moe {
#define GEN_PASS_DEF_ASSIGNPARALLELISM
#include "passes/Parallelism/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

cost::Mesh toCostMesh(MeshAttr mesh) {
  return cost::Mesh{mesh.getNodes(),
                    mesh.getGpusPerNode(),
                    mesh.getMemoryBytes(),
                    mesh.getMemoryGbps().convertToDouble(),
                    mesh.getPeakTflops().convertToDouble(),
                    mesh.getIntraNodeGbps().convertToDouble(),
                    mesh.getInterNodeGbps().convertToDouble()};
}

AllToAllVariant toIR(cost::AllToAll variant) {
  return variant == cost::AllToAll::flat ? AllToAllVariant::flat
                                         : AllToAllVariant::hierarchical;
}

DenseIntElementsAttr groupsAttr(OpBuilder &builder, PlanAttr plan) {
  SmallVector<int64_t> flat;
  for (ArrayRef<int64_t> group : plan.getExchangeGroups())
    flat.append(group.begin(), group.end());
  auto type = RankedTensorType::get({plan.getDp(), plan.getEp() * plan.getTp()},
                                    builder.getI64Type());
  return DenseIntElementsAttr::get(type, flat);
}

struct AssignParallelismPass
    : mlir::moe::impl::AssignParallelismBase<AssignParallelismPass> {
  using Base::Base;

  LogicalResult initializeOptions(
      StringRef options,
      function_ref<LogicalResult(const Twine &)> errorHandler) override {
    if (failed(Base::initializeOptions(options, errorHandler)))
      return failure();
    if (failed(checkGivenPositive(getArgument(), tokens, errorHandler)))
      return failure();
    if (attentionTp < 0)
      return errorHandler(getArgument() +
                          ": attention-tp must be 0 (the cost model's "
                          "choice) or positive, got " +
                          Twine(int64_t(attentionTp)));
    return success();
  }
  void runOnOperation() override;

private:
  FailureOr<MeshAttr> resolveMesh();
  LogicalResult shardWeight(Value weight, ArrayRef<ShardAxis> dims,
                            PlanAttr plan);
  template <typename FfnOp> LogicalResult shardFfn(FfnOp ffn, PlanAttr plan);
  LogicalResult shardAttention(AttentionOp attention, PlanAttr plan);
  LogicalResult shardLatentAttention(LatentAttentionOp attention,
                                     PlanAttr plan);
  /// The shard.all_reduce over tp that sums `op`'s partial result.
  void sumOverTp(Operation *op, PlanAttr plan);
  LogicalResult rewriteLayer(LayerParts &parts, PlanAttr plan);
  void shareTokens(LayerOp layer, PlanAttr attentionPlan);
  bool canShareTokens(LayerParts &parts, const cost::Plan &plan,
                      bool anyAttention, int64_t attnTp);
  int64_t chooseAttentionTp(MutableArrayRef<LayerParts> layers,
                            ArrayRef<cost::LayerShape> shapes,
                            const cost::PlanChoice &choice,
                            const cost::Mesh &mesh, int64_t stepTokens,
                            int64_t ranks);
  FlatSymbolRefAttr gridFor(PlanAttr plan);
  void attachShards();
  friend AssignParallelismDeclaredOptions &
  mlir::moe::declaredAssignParallelismOptions();

  /// Weight argument -> how it was split. Attached in one go at the end:
  /// setting argument attributes one by one is quadratic in the argument
  /// count.
  llvm::MapVector<BlockArgument, ShardAttr> shards;
  void printReport(MutableArrayRef<LayerParts> layers, ArrayRef<PlanAttr> plans,
                   const cost::PlanChoice &choice,
                   ArrayRef<int64_t> unsharedAllToAllBytes, MeshAttr mesh,
                   int64_t stepTokens);
};

FailureOr<MeshAttr> AssignParallelismPass::resolveMesh() {
  ModuleOp module = getOperation();
  MLIRContext *context = &getContext();
  auto existing = module->getAttrOfType<MeshAttr>(MoeDialect::kMeshAttrName);
  MeshShape shape;
  if (!mesh.empty()) {
    llvm::Expected<MeshShape> parsed = MeshShape::parse(mesh);
    if (!parsed)
      return module.emitError() << llvm::toString(parsed.takeError());
    shape = *parsed;
  } else if (existing) {
    shape = existing.getShape();
  } else {
    return module.emitError()
           << "no mesh: pass mesh=NODESxGPUS or set a moe.mesh attribute";
  }
  // Start from the module's hardware numbers (or the defaults), then apply
  // the options that were given.
  MeshAttr base = existing ? existing : MeshAttr::get(context, 1, 1);
  // An option left at 0 keeps the mesh's number; any other value, even a
  // nonsensical one, goes to the mesh verifier.
  auto orDefault = [](double option, APFloat value) {
    return option != 0 ? APFloat(option) : value;
  };
  int64_t memoryBytes =
      memoryGiB != 0 ? static_cast<int64_t>(memoryGiB * 1024 * 1024 * 1024)
                     : base.getMemoryBytes();
  MeshAttr resolved = MeshAttr::getChecked(
      [&] { return module.emitError(); }, context, shape.nodes,
      shape.gpusPerNode, memoryBytes, base.getMemoryGbps(),
      base.getPeakTflops(), orDefault(intraNodeGBps, base.getIntraNodeGbps()),
      orDefault(interNodeGBps, base.getInterNodeGbps()));
  if (!resolved)
    return failure();
  return resolved;
}

LogicalResult AssignParallelismPass::shardWeight(Value weight,
                                                 ArrayRef<ShardAxis> dims,
                                                 PlanAttr plan) {
  auto arg = dyn_cast<BlockArgument>(weight);
  auto func =
      arg ? dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp()) : nullptr;
  Operation *user = *weight.getUsers().begin();
  if (!func)
    return user->emitOpError()
           << "has a weight that is not a function argument; the parallelism "
              "pass shards weights where they are loaded";
  if (!weight.hasOneUse())
    return user->emitOpError()
           << "shares weight argument #" << arg.getArgNumber()
           << " with another op; each weight must belong to one layer";
  auto type = cast<RankedTensorType>(weight.getType());
  SmallVector<int64_t> shape(type.getShape());
  for (auto [size, axis] : llvm::zip(shape, dims)) {
    int64_t degree = plan.getDegree(axis);
    if (size % degree != 0)
      return user->emitOpError()
             << "weight argument #" << arg.getArgNumber() << " of type " << type
             << " does not split " << degree << " ways";
    size /= degree;
  }
  arg.setType(RankedTensorType::get(shape, type.getElementType()));
  shards[arg] = ShardAttr::get(&getContext(), dims);
  return success();
}

/// Column-split gate/up, row-split down; biases follow their GEMM. The
/// weights of an expert group lead with the expert axis, split over ep.
template <typename FfnOp>
LogicalResult AssignParallelismPass::shardFfn(FfnOp ffn, PlanAttr plan) {
  auto shard = [&](Value weight, ArrayRef<ShardAxis> rest) {
    SmallVector<ShardAxis> dims;
    if constexpr (std::is_same_v<FfnOp, ExpertsOp>)
      dims.push_back(ShardAxis::ep);
    llvm::append_range(dims, rest);
    return !weight || succeeded(shardWeight(weight, dims, plan));
  };
  const ShardAxis none = ShardAxis::none, byTp = ShardAxis::tp;
  return success(shard(ffn.getGateWeight(), {byTp, none}) &&
                 shard(ffn.getGateBias(), {byTp}) &&
                 shard(ffn.getUpWeight(), {byTp, none}) &&
                 shard(ffn.getUpBias(), {byTp}) &&
                 shard(ffn.getDownWeight(), {none, byTp}) &&
                 shard(ffn.getDownBias(), {none}));
}

/// Heads split over tp (Megatron style: the group holds the same tokens):
/// q/k/v rows, their biases and the sinks by heads, o by its input columns,
/// each rank
/// its heads' KV cache; the partial outputs are all-reduced.
/// Why `attention` cannot split its heads `tp` ways, if it cannot.
static std::optional<std::string> attentionTpRefusal(AttentionOp attention,
                                                     int64_t tp) {
  if (attention.getHeads() % tp != 0 || attention.getKvHeads() % tp != 0)
    return llvm::formatv("has {0} heads and {1} kv heads, which do not split "
                         "{2} ways (attention-tp)",
                         attention.getHeads(), attention.getKvHeads(), tp)
        .str();
  if (tp > 1 && attention.getQNorm() &&
      cast<ShapedType>(attention.getQNorm().getType()).getDimSize(0) !=
          attention.getHeadDim())
    return llvm::formatv("normalises q and k over the whole projection, which "
                         "needs every head on one rank: tensor-parallel "
                         "attention (attention-tp {0}) is not supported for it",
                         tp)
        .str();
  return std::nullopt;
}

static std::optional<std::string>
attentionTpRefusal(LatentAttentionOp attention, int64_t tp) {
  if (attention.getHeads() % tp != 0)
    return llvm::formatv("has {0} heads, which do not split {1} ways "
                         "(attention-tp)",
                         attention.getHeads(), tp)
        .str();
  return std::nullopt;
}

/// Why the attention of `parts` cannot split its heads `tp` ways, if it
/// cannot.
static std::optional<std::string> attentionTpRefusal(LayerParts &parts,
                                                     int64_t tp) {
  if (parts.attention)
    return attentionTpRefusal(parts.attention, tp);
  return attentionTpRefusal(parts.latentAttention, tp);
}

LogicalResult AssignParallelismPass::shardAttention(AttentionOp attention,
                                                    PlanAttr plan) {
  int64_t tp = plan.getTp();
  if (std::optional<std::string> refusal = attentionTpRefusal(attention, tp))
    return attention.emitOpError() << *refusal;
  const ShardAxis none = ShardAxis::none, byTp = ShardAxis::tp;
  auto shard = [&](Value weight, ArrayRef<ShardAxis> dims) {
    return !weight || succeeded(shardWeight(weight, dims, plan));
  };
  if (!shard(attention.getQWeight(), {byTp, none}) ||
      !shard(attention.getKWeight(), {byTp, none}) ||
      !shard(attention.getVWeight(), {byTp, none}) ||
      !shard(attention.getOWeight(), {none, byTp}) ||
      !shard(attention.getQBias(), {byTp}) ||
      !shard(attention.getKBias(), {byTp}) ||
      !shard(attention.getVBias(), {byTp}) ||
      !shard(attention.getSinks(), {byTp}))
    return failure();
  attention.setHeads(attention.getHeads() / tp);
  attention.setKvHeads(attention.getKvHeads() / tp);
  KvCacheType cache = attention.getCache().getType();
  attention.getCache().setType(
      KvCacheType::get(&getContext(), cache.getKvHeads() / tp,
                       cache.getHeadDim(), cache.getElementType()));
  sumOverTp(attention, plan);
  return success();
}

void AssignParallelismPass::sumOverTp(Operation *op, PlanAttr plan) {
  OpBuilder builder(op);
  builder.setInsertionPointAfter(op);
  SmallVector<int16_t> tpAxis = {2};
  Value result = op->getResult(0);
  auto sum = shard::AllReduceOp::create(builder, op->getLoc(), result.getType(),
                                        gridFor(plan).getValue(), tpAxis,
                                        result, shard::ReductionKind::Sum);
  result.replaceAllUsesExcept(sum, sum);
}

/// Multi-head latent attention's heads split over tp: q (q_b or q_proj) and
/// kv_b rows by heads, o by its input columns; q_a, kv_a, their norms and
/// the latent cache are whole on every rank of the group (the latent is
/// shared by all heads), so each rank appends the same latent; the partial
/// outputs are all-reduced.
LogicalResult
AssignParallelismPass::shardLatentAttention(LatentAttentionOp attention,
                                            PlanAttr plan) {
  int64_t tp = plan.getTp();
  if (std::optional<std::string> refusal = attentionTpRefusal(attention, tp))
    return attention.emitOpError() << *refusal;
  const ShardAxis none = ShardAxis::none, byTp = ShardAxis::tp;
  if (failed(shardWeight(attention.getQWeight(), {byTp, none}, plan)) ||
      failed(shardWeight(attention.getKvBWeight(), {byTp, none}, plan)) ||
      failed(shardWeight(attention.getOWeight(), {none, byTp}, plan)))
    return failure();
  attention.setHeads(attention.getHeads() / tp);
  sumOverTp(attention, plan);
  return success();
}

FlatSymbolRefAttr AssignParallelismPass::gridFor(PlanAttr plan) {
  ModuleOp module = getOperation();
  std::string name = llvm::formatv("grid_dp{0}_ep{1}_tp{2}", plan.getDp(),
                                   plan.getEp(), plan.getTp());
  if (!module.lookupSymbol(name)) {
    OpBuilder builder = OpBuilder::atBlockBegin(module.getBody());
    shard::GridOp::create(builder, module.getLoc(), builder.getStringAttr(name),
                          builder.getDenseI64ArrayAttr(
                              {plan.getDp(), plan.getEp(), plan.getTp()}));
  }
  return FlatSymbolRefAttr::get(&getContext(), name);
}

LogicalResult AssignParallelismPass::rewriteLayer(LayerParts &parts,
                                                  PlanAttr plan) {
  LayerOp layer = parts.layer;
  layer->setAttr(MoeDialect::kPlanAttrName, plan);
  OpBuilder builder(layer.getContext());
  int64_t group = plan.getEp() * plan.getTp();

  if (parts.attention && plan.getTp() > 1 &&
      failed(shardAttention(parts.attention, plan)))
    return failure();
  if (parts.latentAttention && plan.getTp() > 1 &&
      failed(shardLatentAttention(parts.latentAttention, plan)))
    return failure();
  if (parts.isMoe()) {
    ExpertsOp experts = parts.experts;
    if (failed(shardFfn(experts, plan)))
      return failure();
    if (group > 1) {
      DenseIntElementsAttr groups = groupsAttr(builder, plan);
      IntegerAttr ranksPerNode;
      if (plan.getAllToAll() == AllToAllVariant::hierarchical)
        ranksPerNode = builder.getI64IntegerAttr(
            getOperation()
                ->getAttrOfType<MeshAttr>(MoeDialect::kMeshAttrName)
                .getGpusPerNode());
      DispatchOp dispatch = parts.dispatch;
      if (parts.gate.getRouting().isDropless()) {
        builder.setInsertionPoint(dispatch);
        Value synced = SyncCapacityOp::create(builder, dispatch.getLoc(),
                                              dispatch.getCapacity(), groups);
        dispatch.getCapacityMutable().assign(synced);
      }
      auto bufferType = cast<RankedTensorType>(dispatch.getType());
      int64_t rows = bufferType.isDynamicDim(1)
                         ? ShapedType::kDynamic
                         : bufferType.getDimSize(1) * group;
      auto localType =
          RankedTensorType::get({bufferType.getDimSize(0) / plan.getEp(), rows,
                                 bufferType.getDimSize(2)},
                                bufferType.getElementType());
      builder.setInsertionPoint(experts);
      auto toExperts = AllToAllOp::create(
          builder, experts.getLoc(), localType, dispatch.getResult(),
          AllToAllDirection::to_experts, plan.getAllToAll(), groups,
          builder.getI64IntegerAttr(plan.getTp()), ranksPerNode);
      experts.getInputMutable().assign(toExperts);
      experts.getResult().setType(localType);
      builder.setInsertionPointAfter(experts);
      auto fromExperts = AllToAllOp::create(
          builder, experts.getLoc(), bufferType, experts.getResult(),
          AllToAllDirection::from_experts, plan.getAllToAll(), groups,
          builder.getI64IntegerAttr(plan.getTp()), ranksPerNode);
      parts.combine.getInputMutable().assign(fromExperts);
    }
  }
  for (DenseFfnOp dense : parts.denseFfns) {
    if (plan.getTp() == 1)
      continue;
    if (failed(shardFfn(dense, plan)))
      return failure();
    // Tokens are per rank: gather the tp group's tokens, run the slice, and
    // scatter the summed partial outputs back to their ranks.
    FlatSymbolRefAttr grid = gridFor(plan);
    auto tokensType = cast<RankedTensorType>(dense.getType());
    int64_t gathered = tokensType.isDynamicDim(0)
                           ? ShapedType::kDynamic
                           : tokensType.getDimSize(0) * plan.getTp();
    auto gatheredType = RankedTensorType::get(
        {gathered, tokensType.getDimSize(1)}, tokensType.getElementType());
    Location loc = dense.getLoc();
    builder.setInsertionPoint(dense);
    auto tpAxis = builder.getDenseI16ArrayAttr({2});
    auto allGather =
        shard::AllGatherOp::create(builder, loc, gatheredType, grid, tpAxis,
                                   dense.getInput(), builder.getIndexAttr(0));
    dense.getInputMutable().assign(allGather);
    dense.getResult().setType(gatheredType);
    builder.setInsertionPointAfter(dense);
    auto reduceScatter = shard::ReduceScatterOp::create(
        builder, loc, tokensType, grid, tpAxis, dense.getResult(),
        shard::ReductionKindAttr::get(&getContext(), shard::ReductionKind::Sum),
        builder.getIndexAttr(0));
    dense.getResult().replaceAllUsesExcept(reduceScatter, reduceScatter);
  }

  // Every other weight (router and shared-expert gates, correction biases,
  // residual coefficients) is replicated.
  auto func = layer->getParentOfType<func::FuncOp>();
  WalkResult walk = layer.walk([&](Operation *op) {
    for (Value operand : op->getOperands()) {
      auto arg = dyn_cast<BlockArgument>(operand);
      if (!arg || arg.getOwner()->getParentOp() != func ||
          !func.getArgAttr(arg.getArgNumber(), MoeDialect::kWeightAttrName) ||
          shards.count(arg))
        continue;
      SmallVector<ShardAxis> dims(
          cast<RankedTensorType>(arg.getType()).getRank(), ShardAxis::none);
      if (failed(shardWeight(arg, dims, plan)))
        return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return failure(walk.wasInterrupted());
}

/// Duplicate-token dropping (DeepSpeed-TED): the ranks of an attention tp
/// group hold the same tokens, so each runs the layer on its share of them
/// and the group all-gathers the outputs before the residual add.
void AssignParallelismPass::shareTokens(LayerOp layer,
                                        PlanAttr attentionPlan) {
  FlatSymbolRefAttr grid = gridFor(attentionPlan);
  Block &body = layer.getBody().front();
  Value input = layer.getBodyInput();
  Location loc = layer.getLoc();
  OpBuilder builder = OpBuilder::atBlockBegin(&body);
  auto tpAxis = builder.getDenseI16ArrayAttr({2});
  auto share = shard::AllSliceOp::create(builder, loc, input.getType(), grid,
                                         tpAxis, input,
                                         builder.getIndexAttr(0));
  input.replaceAllUsesExcept(share, share);
  auto yield = cast<YieldOp>(body.getTerminator());
  builder.setInsertionPoint(yield);
  auto all = shard::AllGatherOp::create(builder, loc, input.getType(), grid,
                                        tpAxis, yield.getValue(),
                                        builder.getIndexAttr(0));
  yield.getValueMutable().assign(all);
}

void AssignParallelismPass::attachShards() {
  getOperation().walk([&](func::FuncOp func) {
    func.setType(FunctionType::get(func.getContext(),
                                   func.getBody().getArgumentTypes(),
                                   func.getResultTypes()));
    SmallVector<DictionaryAttr> argAttrs;
    func.getAllArgAttrs(argAttrs);
    for (BlockArgument arg : func.getArguments()) {
      auto it = shards.find(arg);
      if (it == shards.end())
        continue;
      NamedAttrList attrs(argAttrs[arg.getArgNumber()]);
      attrs.set(MoeDialect::kShardAttrName, it->second);
      argAttrs[arg.getArgNumber()] = attrs.getDictionary(func.getContext());
    }
    func.setAllArgAttrs(argAttrs);
  });
}

/// Whether a layer after tensor-parallel attention can drop the duplicate
/// tokens: dropless routing (a capacity would change with the token count)
/// without expert slicing, and a dynamic token dimension.
bool AssignParallelismPass::canShareTokens(LayerParts &parts,
                                           const cost::Plan &plan,
                                           bool anyAttention, int64_t attnTp) {
  if (duplicateTokens == DuplicateTokens::keep || attnTp == 1 ||
      !anyAttention ||
      !parts.isMoe() || plan.tp != 1 || !parts.gate.getRouting().isDropless())
    return false;
  auto tokens = cast<RankedTensorType>(parts.layer.getInput().getType());
  return tokens.isDynamicDim(0);
}

/// attention-tp=0: the heads split (1 for data parallel) over the fewest
/// ranks among those with the least modelled step time, one split for every
/// attention layer (the runner gives a model's ranks one token layout).
/// Each rank holds `stepTokens` tokens either way, so a tp group serves tp
/// times fewer distinct tokens: the throughput policy compares time per
/// distinct token (time x tp), the latency policy the step time itself.
/// The MoE layers after tensor-parallel attention are priced on the group's
/// duplicates or on the rank's share, whichever duplicate-tokens allows and
/// is faster; the memory check stays with the chosen plan.
int64_t AssignParallelismPass::chooseAttentionTp(
    MutableArrayRef<LayerParts> layers, ArrayRef<cost::LayerShape> shapes,
    const cost::PlanChoice &choice, const cost::Mesh &mesh, int64_t stepTokens,
    int64_t ranks) {
  int64_t best = 1;
  std::optional<double> bestSeconds;
  for (int64_t tp = 1; tp <= ranks; ++tp) {
    if (ranks % tp != 0)
      continue;
    bool splits = true;
    double seconds = 0;
    std::vector<cost::Estimate> estimates = choice.estimates;
    for (auto [index, parts] : llvm::enumerate(layers)) {
      cost::Estimate &estimate = estimates[index];
      if (parts.hasAttention()) {
        if (attentionTpRefusal(parts, tp)) {
          splits = false;
          break;
        }
        cost::Plan plan;
        plan.dp = ranks / tp;
        plan.tp = tp;
        estimate = cost::estimate(shapes[index], mesh, plan, stepTokens);
      } else if (canShareTokens(parts, choice.plans[index],
                                /*anyAttention=*/true, tp)) {
        cost::Plan shared = choice.plans[index];
        shared.tokenShare = tp;
        cost::Estimate sharedEstimate =
            cost::estimate(shapes[index], mesh, shared, stepTokens);
        if (duplicateTokens == DuplicateTokens::drop ||
            sharedEstimate.seconds < estimate.seconds)
          estimate = sharedEstimate;
      }
      seconds += estimate.seconds;
    }
    // A split that does not fit is no candidate (with none fitting, the
    // data-parallel plan fails the memory check with its numbers).
    if (!splits || cost::memoryBytes(estimates) > mesh.memoryBytes)
      continue;
    if (policy == cost::Policy::throughput)
      seconds *= tp;
    if (!bestSeconds || seconds < *bestSeconds) {
      best = tp;
      bestSeconds = seconds;
    }
  }
  return best;
}

void AssignParallelismPass::runOnOperation() {
  ModuleOp module = getOperation();
  shards.clear();
  FailureOr<MeshAttr> meshAttr = resolveMesh();
  if (failed(meshAttr))
    return signalPassFailure();

  cost::PlanConstraints constraints;
  if (ep > 0)
    constraints.ep = ep;
  if (tp > 0)
    constraints.tp = tp;
  if (allToAll == AllToAllChoice::flat)
    constraints.allToAll = cost::AllToAll::flat;
  else if (allToAll == AllToAllChoice::hierarchical)
    constraints.allToAll = cost::AllToAll::hierarchical;
  int64_t stepTokens =
      tokens > 0 ? int64_t(tokens) : cost::defaultTokens(policy);

  SmallVector<LayerParts> layers;
  std::vector<cost::LayerShape> shapes;
  WalkResult walk = module.walk([&](LayerOp layer) {
    if (layer->hasAttr(MoeDialect::kPlanAttrName)) {
      layer.emitOpError() << "already has a parallel plan";
      return WalkResult::interrupt();
    }
    FailureOr<LayerParts> parts = analyzeLayer(layer);
    if (failed(parts))
      return WalkResult::interrupt();
    shapes.push_back(describeLayer(*parts));
    layers.push_back(std::move(*parts));
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return signalPassFailure();

  module->setAttr(MoeDialect::kMeshAttrName, *meshAttr);
  cost::Mesh costMesh = toCostMesh(*meshAttr);
  cost::PlanChoice choice =
      cost::choosePlans(shapes, costMesh, policy, stepTokens, constraints);
  if (choice.failedLayer) {
    layers[*choice.failedLayer].layer.emitOpError()
        << "has no parallel plan on the " << meshAttr->getShape().str()
        << " mesh: " << choice.error;
    return signalPassFailure();
  }

  int64_t ranks = meshAttr->getNodes() * meshAttr->getGpusPerNode();
  bool anyAttention = llvm::any_of(
      layers, [](LayerParts &parts) { return parts.hasAttention(); });
  int64_t attnTp = attentionTp != 0
                       ? int64_t(attentionTp)
                       : chooseAttentionTp(layers, shapes, choice, costMesh,
                                           stepTokens, ranks);
  if (ranks % attnTp != 0) {
    module.emitError() << "attention-tp " << attnTp << " does not divide the "
                       << ranks << " ranks";
    return signalPassFailure();
  }
  if (anyAttention)
    module->setAttr(MoeDialect::kAttentionTpAttrName,
                    IntegerAttr::get(IntegerType::get(&getContext(), 64),
                                     attnTp));
  // Attention: data parallel, or heads split over attnTp ranks (priced as
  // planned).
  PlanAttr attentionAttr = PlanAttr::get(&getContext(), ranks / attnTp, 1,
                                         attnTp, AllToAllVariant::flat);
  SmallVector<PlanAttr> plans;
  SmallVector<int64_t> unsharedAllToAllBytes(layers.size(), 0);
  for (auto [index, parts] : llvm::enumerate(layers)) {
    cost::Plan &plan = choice.plans[index];
    PlanAttr attr = PlanAttr::get(&getContext(), plan.dp, plan.ep, plan.tp,
                                  toIR(plan.allToAll));
    if (parts.hasAttention()) {
      attr = attentionAttr;
      plan = cost::Plan();
      plan.dp = ranks / attnTp;
      plan.tp = attnTp;
      choice.estimates[index] =
          cost::estimate(shapes[index], costMesh, plan, stepTokens);
    }
    plans.push_back(attr);
    if (failed(rewriteLayer(parts, attr)))
      return signalPassFailure();
    if (canShareTokens(parts, plan, anyAttention, attnTp)) {
      cost::Plan shared = plan;
      shared.tokenShare = attnTp;
      cost::Estimate sharedEstimate =
          cost::estimate(shapes[index], costMesh, shared, stepTokens);
      if (duplicateTokens == DuplicateTokens::drop ||
          sharedEstimate.seconds < choice.estimates[index].seconds) {
        shareTokens(parts.layer, attentionAttr);
        unsharedAllToAllBytes[index] = choice.estimates[index].allToAllBytes;
        plan = shared;
        choice.estimates[index] = sharedEstimate;
      }
    }
  }
  choice.memoryBytes = cost::memoryBytes(choice.estimates);
  if (choice.memoryBytes > costMesh.memoryBytes) {
    module.emitError() << "the model needs " << choice.memoryBytes
                       << " bytes per rank with its attention layers, more "
                          "than the "
                       << costMesh.memoryBytes << " bytes of a device";
    return signalPassFailure();
  }
  attachShards();
  printReport(layers, plans, choice, unsharedAllToAllBytes, *meshAttr,
              stepTokens);
}

//===----------------------------------------------------------------------===//
// Report
//===----------------------------------------------------------------------===//

std::string layerKind(LayerParts &parts) {
  if (parts.hasAttention())
    return "attn"; // fits the table's kind column
  if (!parts.isMoe())
    return "dense";
  if (!parts.residualMixes.empty())
    return "residual";
  if (!parts.sharedAdds.empty())
    return "shared";
  return "moe";
}

void AssignParallelismPass::printReport(MutableArrayRef<LayerParts> layers,
                                        ArrayRef<PlanAttr> plans,
                                        const cost::PlanChoice &choice,
                                        ArrayRef<int64_t> unsharedAllToAllBytes,
                                        MeshAttr mesh, int64_t stepTokens) {
  PlanSummary summary;
  summary.nodes = mesh.getNodes();
  summary.gpusPerNode = mesh.getGpusPerNode();
  // The policy as its option spells it.
  summary.policy = policy.getParser().findArgStrForValue(policy)->str();
  summary.tokens = stepTokens;
  summary.memoryBytes = choice.memoryBytes;
  summary.deviceMemoryBytes = mesh.getMemoryBytes();
  summary.memoryGbps = mesh.getMemoryGbps().convertToDouble();
  summary.peakTflops = mesh.getPeakTflops().convertToDouble();
  summary.intraNodeGbps = mesh.getIntraNodeGbps().convertToDouble();
  summary.interNodeGbps = mesh.getInterNodeGbps().convertToDouble();
  for (auto [i, layer] : llvm::enumerate(layers)) {
    PlanAttr plan = plans[i];
    PlanRow row;
    row.layer = layer.layer.getIndex();
    row.kind = layerKind(layer);
    row.experts = layer.isMoe() ? layer.gate.getNumExperts() : 0;
    row.dropless = !layer.isMoe() || layer.gate.getRouting().isDropless();
    row.ep = plan.getEp();
    row.tp = plan.getTp();
    row.dp = plan.getDp();
    row.allToAll = layer.isMoe() && plan.getEp() * plan.getTp() > 1
                       ? stringifyAllToAllVariant(plan.getAllToAll()).str()
                       : "-";
    for (ArrayRef<int64_t> group : plan.getExchangeGroups())
      row.exchangeGroups.emplace_back(group.begin(), group.end());
    row.estimate = choice.estimates[i];
    row.tokenShare = choice.plans[i].tokenShare;
    row.unsharedAllToAllBytes = unsharedAllToAllBytes[i];
    summary.rows.push_back(std::move(row));
  }
  // The table also travels with the module (moe-run prints it from the
  // compiled model).
  std::string table = formatPlanTable(summary);
  getOperation()->setAttr(MoeDialect::kPlanTableAttrName,
                          StringAttr::get(&getContext(), table));
  if (report == PlanReport::none)
    return;
  std::string error;
  std::unique_ptr<llvm::ToolOutputFile> file;
  if (!reportFile.empty()) {
    file = openOutputFile(reportFile, &error);
    if (!file) {
      getOperation().emitError() << "cannot write the report: " << error;
      return signalPassFailure();
    }
  }
  raw_ostream &os = file ? file->os() : llvm::outs();
  if (report == PlanReport::table)
    os << table;
  else if (report == PlanReport::json)
    printPlanJson(summary, os);
  else
    printPlanSvg(summary, os);
  if (file)
    file->keep();
}

} // namespace

AssignParallelismDeclaredOptions &
mlir::moe::declaredAssignParallelismOptions() {
  // A pass that never runs holds the declarations.
  static AssignParallelismPass pass;
  static AssignParallelismDeclaredOptions options{
      pass.mesh, pass.tokens,      pass.policy, pass.ep,
      pass.tp,   pass.attentionTp, pass.duplicateTokens, pass.report,
      pass.reportFile};
  return options;
}
