//===- LayerAnalysis.h - what a moe.layer is made of ------------*- C++ -*-===//

#ifndef MOE_PASSES_PARALLELISM_LAYERANALYSIS_H
#define MOE_PASSES_PARALLELISM_LAYERANALYSIS_H

#include "dialects/moe/IR/MoeOps.h"
#include "passes/Parallelism/CostModel.h"

namespace mlir::moe {

/// The ops of one layer the parallelism pass rewrites: at most one routed
/// expert group (router -> gate -> dispatch -> experts -> combine) and any
/// number of dense MLPs (dense layer, PR-MoE residual MLP, shared experts).
struct LayerParts {
  LayerOp layer;
  RouterOp router;
  GateOp gate;
  DispatchOp dispatch;
  ExpertsOp experts;
  CombineOp combine;
  SmallVector<DenseFfnOp> denseFfns;
  SmallVector<ResidualMixOp> residualMixes;
  SmallVector<SharedAddOp> sharedAdds;
  /// A decoder layer's attention block (planned data parallel).
  AttentionOp attention;
  /// Or its multi-head latent attention (DeepSeek; data parallel only).
  LatentAttentionOp latentAttention;

  bool hasAttention() { return attention || latentAttention; }

  bool isMoe() { return static_cast<bool>(experts); }
};

/// Finds the parts of `layer`; emits an error at the layer when it holds
/// more than one routed expert group or a broken chain.
FailureOr<LayerParts> analyzeLayer(LayerOp layer);

/// The layer's global shape for the cost model. Weight shapes of a layer
/// that already has a plan are per-rank; `plan` scales them back.
cost::LayerShape describeLayer(LayerParts &parts, PlanAttr plan = {});

} // namespace mlir::moe

#endif // MOE_PASSES_PARALLELISM_LAYERANALYSIS_H
