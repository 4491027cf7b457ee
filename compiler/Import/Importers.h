//===- Importers.h - model description importers ----------------*- C++ -*-===//

#ifndef MOE_COMPILER_IMPORT_IMPORTERS_H
#define MOE_COMPILER_IMPORT_IMPORTERS_H

namespace mlir::moe {

/// Registers `--import-hf` and `--import-prmoe` with mlir-translate.
void registerImporters();

} // namespace mlir::moe

#endif // MOE_COMPILER_IMPORT_IMPORTERS_H
