//===- InitAll.h - what the moe-mlir tools register -------------*- C++ -*-===//
//
// A curated list: the tools register the dialects and passes moe-mlir uses,
// never all of MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_INITALL_H
#define MOE_COMPILER_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace mlir::moe {

/// The dialects a moe module may contain.
void registerDialects(mlir::DialectRegistry &registry);

/// moe-mlir's passes and the upstream passes useful on its IR.
void registerPasses();

/// moe-translate's importers and exporters.
void registerTranslations();

} // namespace mlir::moe

#endif // MOE_COMPILER_INITALL_H
