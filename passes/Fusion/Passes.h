//===- Passes.h - kernel fusion passes --------------------------*- C++ -*-===//

#ifndef MOE_PASSES_FUSION_PASSES_H
#define MOE_PASSES_FUSION_PASSES_H

#include "dialects/moe/IR/MoeOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;
} // namespace mlir

namespace mlir::moe {

#define GEN_PASS_DECL
#include "passes/Fusion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Fusion/Passes.h.inc"

/// One pattern per fusion of moe-fuse-kernels.
void populateFuseKernelsPatterns(RewritePatternSet &patterns);

} // namespace mlir::moe

#endif // MOE_PASSES_FUSION_PASSES_H
