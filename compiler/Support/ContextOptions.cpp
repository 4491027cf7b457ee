//===- ContextOptions.cpp - how the tools' contexts report ----------------===//

#include "compiler/Support/ContextOptions.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/CommandLine.h"

using namespace mlir;

/// MLIRContext's own flag (a cl::opt<bool>), once registered.
static llvm::cl::opt<bool> *printOpOnDiagnosticFlag() {
  return static_cast<llvm::cl::opt<bool> *>(
      llvm::cl::getRegisteredOptions().lookup("mlir-print-op-on-diagnostic"));
}

void mlir::moe::registerContextOptions() {
  registerMLIRContextCLOptions();
  if (llvm::cl::opt<bool> *flag = printOpOnDiagnosticFlag())
    flag->setInitialValue(false);
}

void mlir::moe::applyContextOptions(MLIRContext *context) {
  llvm::cl::opt<bool> *flag = printOpOnDiagnosticFlag();
  context->printOpOnDiagnostic(flag && *flag);
}
