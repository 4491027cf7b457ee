//===- InputChecks.h - what upstream verifiers would crash on ---*- C++ -*-===//
//
// Some verifiers of Debian's MLIR 22 (the shard dialect's collectives)
// index a tensor's shape with an axis from the op and divide by the device
// group's size without checking either first: `mlir::verify` then reads
// out of bounds or divides by zero on such input. The tools therefore read
// MLIR in three steps: parse without verifying, check what those verifiers
// assume (a located error on each), then verify.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_SUPPORT_INPUTCHECKS_H
#define MOE_COMPILER_SUPPORT_INPUTCHECKS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Pass/Pass.h"

#include <memory>

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace mlir::moe {

/// Checks every op under `root` (and `root`) for what the upstream
/// verifiers assume: tensor axes within the operand's rank, grids without
/// an empty dimension. Emits an error at each op that breaks it.
LogicalResult checkBeforeVerify(Operation *root);

/// Parses the main buffer of `sourceMgr` as a module, then
/// checkBeforeVerify, then mlir::verify. Null after a diagnostic.
OwningOpRef<ModuleOp> parseAndVerifyModule(llvm::SourceMgr &sourceMgr,
                                           MLIRContext *context);

/// MlirOptMain with its parser's verification replaced by a first pass
/// that runs checkBeforeVerify, then mlir::verify (MlirOptMain parses and
/// verifies in one step, with no hook between). Without verification on
/// parsing (`--mlir-very-unsafe-disable-verifier-on-parsing`) it adds
/// nothing. `--verify-roundtrip` re-parses, verifying, before any pass:
/// it is not covered.
LogicalResult optMain(int argc, char **argv, StringRef toolName,
                      DialectRegistry &registry);

} // namespace mlir::moe

#endif // MOE_COMPILER_SUPPORT_INPUTCHECKS_H
