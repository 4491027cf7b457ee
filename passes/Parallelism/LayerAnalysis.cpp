//===- LayerAnalysis.cpp - what a moe.layer is made of --------------------===//

#include "passes/Parallelism/LayerAnalysis.h"

#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moe;

/// Records `op` in `slot`, failing if the layer already has one.
template <typename OpTy>
static LogicalResult recordUnique(LayerOp layer, OpTy &slot, OpTy op) {
  if (slot) {
    InFlightDiagnostic diag = layer.emitOpError()
                              << "holds more than one '"
                              << OpTy::getOperationName()
                              << "'; one routed expert group per layer is "
                                 "supported";
    diag.attachNote(op.getLoc()) << "second one here";
    return failure();
  }
  slot = op;
  return success();
}

FailureOr<LayerParts> mlir::moe::analyzeLayer(LayerOp layer) {
  LayerParts parts;
  parts.layer = layer;
  for (Operation &op : layer.getBody().front()) {
    LogicalResult ok =
        llvm::TypeSwitch<Operation *, LogicalResult>(&op)
            .Case([&](RouterOp o) {
              return recordUnique(layer, parts.router, o);
            })
            .Case([&](GateOp o) { return recordUnique(layer, parts.gate, o); })
            .Case([&](DispatchOp o) {
              return recordUnique(layer, parts.dispatch, o);
            })
            .Case([&](ExpertsOp o) {
              return recordUnique(layer, parts.experts, o);
            })
            .Case([&](CombineOp o) {
              return recordUnique(layer, parts.combine, o);
            })
            .Case([&](DenseFfnOp o) {
              parts.denseFfns.push_back(o);
              return success();
            })
            .Case([&](ResidualMixOp o) {
              parts.residualMixes.push_back(o);
              return success();
            })
            .Case([&](SharedAddOp o) {
              parts.sharedAdds.push_back(o);
              return success();
            })
            .Case([&](AttentionOp o) {
              return recordUnique(layer, parts.attention, o);
            })
            .Case([&](LatentAttentionOp o) {
              return recordUnique(layer, parts.latentAttention, o);
            })
            .Default([](Operation *) { return success(); });
    if (failed(ok))
      return failure();
  }
  bool anyRouted = parts.router || parts.gate || parts.dispatch ||
                   parts.experts || parts.combine;
  bool allRouted = parts.router && parts.gate && parts.dispatch &&
                   parts.experts && parts.combine;
  if (anyRouted && !allRouted)
    return layer.emitOpError()
           << "has an incomplete routed expert chain; the parallelism pass "
              "needs router, gate, dispatch, experts and combine";
  if (allRouted && parts.experts.getInput() != parts.dispatch.getResult())
    return layer.emitOpError()
           << "experts must consume the dispatch buffer directly";
  if (allRouted && parts.combine.getInput() != parts.experts.getResult())
    return layer.emitOpError()
           << "combine must consume the experts' output directly";
  return parts;
}

static int64_t elementBytes(Value value) {
  Type element = cast<ShapedType>(value.getType()).getElementType();
  return (element.getIntOrFloatBitWidth() + 7) / 8;
}

static int64_t bytesOf(Value value) {
  auto type = cast<ShapedType>(value.getType());
  return type.hasStaticShape() ? type.getNumElements() * elementBytes(value)
                               : 0;
}

cost::LayerShape mlir::moe::describeLayer(LayerParts &parts, PlanAttr plan) {
  int64_t tp = plan ? plan.getTp() : 1;
  cost::LayerShape shape;
  Value input = parts.layer.getInput();
  auto inputType = cast<RankedTensorType>(input.getType());
  shape.hidden = inputType.getDimSize(1);
  shape.bytesPerElement = elementBytes(input);
  if (auto module = parts.layer->getParentOfType<ModuleOp>())
    if (auto quant = module->getAttrOfType<DictionaryAttr>(
            MoeDialect::kWeightQuantAttrName))
      if (auto block = quant.getAs<DenseI64ArrayAttr>("block")) {
        shape.quantBlockRows = block[0];
        shape.quantBlockCols = block[1];
        auto format = quant.getAs<StringAttr>("format");
        shape.quantMxfp4 = format && format.getValue() == "mxfp4";
      }
  if (parts.isMoe()) {
    RoutingAttr routing = parts.gate.getRouting();
    shape.experts = parts.gate.getNumExperts();
    shape.topK = routing.getTopK();
    shape.capacityFactor = routing.getCapacityFactor().convertToDouble();
    shape.minCapacity = routing.getMinCapacity();
    shape.expertFfn = parts.experts.getFfnSize() * tp;
    shape.expertGated = parts.experts.isGated();
    shape.expertBias = parts.experts.getUpBias() || parts.experts.getGateBias();
    shape.expertGateBias =
        parts.experts.getUpBias() && parts.experts.getGateBias();
    shape.replicatedBytes += bytesOf(parts.router.getWeight());
    if (parts.router.getBias())
      shape.replicatedBytes += bytesOf(parts.router.getBias());
    if (parts.gate.getCorrectionBias())
      shape.replicatedBytes += bytesOf(parts.gate.getCorrectionBias());
  }
  if (AttentionOp attention = parts.attention) {
    shape.attentionHeads = attention.getHeads() * tp;
    shape.attentionKvHeads = attention.getKvHeads() * tp;
    shape.headDim = attention.getHeadDim();
  }
  if (LatentAttentionOp mla = parts.latentAttention) {
    shape.attentionHeads = mla.getHeads() * tp;
    shape.attentionKvHeads = shape.attentionHeads;
    shape.headDim = mla.getQueryDim();
    if (Value qA = mla.getQAWeight())
      shape.qLoraRank = cast<ShapedType>(qA.getType()).getDimSize(0);
    shape.latentRank = mla.getRank();
    shape.ropeDim = mla.getRopeDim();
    shape.vHeadDim = mla.getVDim();
  }
  for (DenseFfnOp dense : parts.denseFfns) {
    shape.denseFfn += dense.getFfnSize() * tp;
    shape.denseGated = dense.isGated();
    shape.denseBias |= static_cast<bool>(dense.getUpBias());
  }
  for (ResidualMixOp mix : parts.residualMixes)
    if (mix.getCoefWeight())
      shape.replicatedBytes +=
          bytesOf(mix.getCoefWeight()) + bytesOf(mix.getCoefBias());
  for (SharedAddOp add : parts.sharedAdds)
    if (add.getGateWeight())
      shape.replicatedBytes += bytesOf(add.getGateWeight());
  return shape;
}
