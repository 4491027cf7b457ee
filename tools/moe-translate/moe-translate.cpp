//===- moe-translate.cpp - moe-mlir importers and exporters ---------------===//

#include "compiler/Import/Importers.h"
#include "compiler/InitAll.h"
#include "compiler/Support/ContextOptions.h"
#include "compiler/Support/ToolHelp.h"

#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"
#include "llvm/ADT/StringRef.h"

#include <string>
#include <vector>

int main(int argc, char **argv) {
  mlir::moe::registerTranslations();
  mlir::moe::registerContextOptions();
  // mlirTranslateMain registers its options when called: --help finds them.
  mlir::moe::ToolHelp help(
      "moe-translate", "[options] <config.json | checkpoint dir | input.mlir>",
      {{"Translations (e.g. --import-hf DIR, --moe-to-cpp)", {"import-hf"}},
       {"Input and output",
        {"o", "split-input-file", "verify-diagnostics", "no-implicit-module",
         "allow-unregistered-dialect", "mlir-print-op-on-diagnostic",
         "mlir-print-debuginfo", "error-diagnostics-only"}}});
  help.install();
  // mlirTranslateMain reads its input itself, so a checkpoint directory
  // (`--import-hf DIR`) becomes DIR/config.json here. Only the input: a
  // positional argument, not the value of `-o`.
  std::vector<std::string> storage(argv, argv + argc);
  bool positionalOnly = false;
  for (size_t i = 1; i < storage.size(); ++i) {
    llvm::StringRef arg = storage[i];
    if (!positionalOnly && arg == "--") {
      positionalOnly = true;
    } else if (!positionalOnly && (arg == "-o" || arg == "--o")) {
      ++i;
    } else if (positionalOnly || !arg.starts_with("-")) {
      storage[i] = mlir::moe::resolveConfigPath(arg);
    }
  }
  std::vector<char *> args;
  for (std::string &arg : storage)
    args.push_back(arg.data());
  args.push_back(nullptr);
  return mlir::failed(mlir::mlirTranslateMain(
      argc, args.data(), "moe-mlir translation driver\n"));
}
