//===- ContextOptions.h - how the tools' contexts report --------*- C++ -*-===//
//
// MLIR attaches the whole operation (for an error at the module: the whole
// module, tens of KB) to every diagnostic emitted on an op unless told not
// to. The tools do not, unless `--mlir-print-op-on-diagnostic` asks.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_SUPPORT_CONTEXTOPTIONS_H
#define MOE_COMPILER_SUPPORT_CONTEXTOPTIONS_H

namespace mlir {
class MLIRContext;
} // namespace mlir

namespace mlir::moe {

/// Registers MLIRContext's command-line options with
/// `--mlir-print-op-on-diagnostic` off by default (contexts created after
/// the command line is parsed read it). Call before parsing it.
void registerContextOptions();

/// Applies `--mlir-print-op-on-diagnostic` (off unless registered and
/// given) to a context its creator configured itself: mlirTranslateMain
/// turns printing on whatever the flag says.
void applyContextOptions(MLIRContext *context);

} // namespace mlir::moe

#endif // MOE_COMPILER_SUPPORT_CONTEXTOPTIONS_H
