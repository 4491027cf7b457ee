//===- moe-translate.cpp - moe-mlir importers and exporters ---------------===//

#include "compiler/InitAll.h"
#include "compiler/Support/ContextOptions.h"

#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"

int main(int argc, char **argv) {
  mlir::moe::registerTranslations();
  mlir::moe::registerContextOptions();
  return mlir::failed(
      mlir::mlirTranslateMain(argc, argv, "moe-mlir translation driver\n"));
}
