//===- moe-opt.cpp - the moe-mlir optimizer driver ------------------------===//

#include "compiler/InitAll.h"
#include "compiler/Support/ContextOptions.h"
#include "compiler/Support/InputChecks.h"
#include "compiler/Support/ToolHelp.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::moe::registerDialects(registry);
  mlir::moe::registerPasses();
  mlir::moe::registerContextOptions();
  mlir::moe::ToolHelp help(
      "moe-opt", "[options] <input.mlir>",
      {{"Passes and pipelines (e.g. --moe-compile=\"mesh=2x8 tokens=16\")",
        {"moe-compile", "pass-pipeline"}},
       {"Input and output",
        {"o", "split-input-file", "verify-diagnostics", "emit-bytecode",
         "verify-roundtrip", "allow-unregistered-dialect",
         "mlir-print-op-on-diagnostic", "mlir-print-debuginfo"}},
       {"Debugging",
        {"mlir-print-ir-before", "mlir-print-ir-after",
         "mlir-print-ir-after-all", "mlir-print-ir-after-failure",
         "mlir-timing", "mlir-pass-statistics", "mlir-disable-threading",
         "dump-pass-pipeline", "list-passes", "show-dialects"}}});
  help.install();
  return mlir::asMainReturnCode(
      mlir::moe::optMain(argc, argv, "moe-mlir optimizer driver\n", registry));
}
