//===- Passes.h - parallelism passes ----------------------------*- C++ -*-===//

#ifndef MOE_PASSES_PARALLELISM_PASSES_H
#define MOE_PASSES_PARALLELISM_PASSES_H

#include "dialects/moe/IR/MoeOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::moe {

#define GEN_PASS_DECL
#include "passes/Parallelism/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Parallelism/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_PASSES_PARALLELISM_PASSES_H
