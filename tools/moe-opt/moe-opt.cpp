//===- moe-opt.cpp - the moe-mlir optimizer driver ------------------------===//

#include "compiler/InitAll.h"
#include "compiler/Support/ContextOptions.h"
#include "compiler/Support/InputChecks.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::moe::registerDialects(registry);
  mlir::moe::registerPasses();
  mlir::moe::registerContextOptions();
  return mlir::asMainReturnCode(
      mlir::moe::optMain(argc, argv, "moe-mlir optimizer driver\n", registry));
}
