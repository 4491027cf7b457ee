//===- ModuleBuilder.h - model description to moe IR ------------*- C++ -*-===//
//
// The one place that turns a ModelDesc into a module: every importer goes
// through it, so every family gets the same IR shape.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_IMPORT_MODULEBUILDER_H
#define MOE_COMPILER_IMPORT_MODULEBUILDER_H

#include "compiler/Import/ModelDescription.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace mlir::moe::import {

/// Builds `module attributes {moe.model_type = ...}` with one
/// `func.func @forward(%x: tensor<?xHxDT>, <weights>)` holding one `moe.layer`
/// per layer of `model`, and verifies it. Returns null after emitting a
/// diagnostic (at the config location the failing layer came from).
mlir::OwningOpRef<mlir::ModuleOp> buildModule(const ModelDesc &model,
                                              mlir::MLIRContext *context);

} // namespace mlir::moe::import

#endif // MOE_COMPILER_IMPORT_MODULEBUILDER_H
