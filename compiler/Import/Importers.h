//===- Importers.h - model description importers ----------------*- C++ -*-===//

#ifndef MOE_COMPILER_IMPORT_IMPORTERS_H
#define MOE_COMPILER_IMPORT_IMPORTERS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/SourceMgr.h"

namespace mlir::moe {

/// The config of a checkpoint directory (`DIR/config.json`); any other path
/// unchanged.
std::string resolveConfigPath(llvm::StringRef path);

/// Registers `--import-hf` and `--import-prmoe` with mlir-translate.
void registerImporters();

/// A Hugging Face config.json (--import-hf) or a PR-MoE description
/// (--import-prmoe) in `sourceMgr` to a module. Null (after a diagnostic)
/// on error.
OwningOpRef<ModuleOp> importHFConfig(llvm::SourceMgr &sourceMgr,
                                     MLIRContext *context);
/// The whole decoder of a Hugging Face checkpoint (--import-hf-model).
OwningOpRef<ModuleOp> importHFModel(llvm::SourceMgr &sourceMgr,
                                    MLIRContext *context);
OwningOpRef<ModuleOp> importPRMoEConfig(llvm::SourceMgr &sourceMgr,
                                        MLIRContext *context);
/// The whole GPT decoder of a PR-MoE description (--import-prmoe-model).
OwningOpRef<ModuleOp> importPRMoEModel(llvm::SourceMgr &sourceMgr,
                                       MLIRContext *context);

/// The config file in `sourceMgr` to a module: a PR-MoE description when
/// its model_type is "prmoe", a Hugging Face config otherwise. Null (after a
/// diagnostic) on error. `wholeModel`: the whole decoder, else the
/// FFN stack.
OwningOpRef<ModuleOp> importModelConfig(llvm::SourceMgr &sourceMgr,
                                        MLIRContext *context,
                                        bool wholeModel = false);

} // namespace mlir::moe

#endif // MOE_COMPILER_IMPORT_IMPORTERS_H
