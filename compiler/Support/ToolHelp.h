//===- ToolHelp.h - what --help and --version show --------------*- C++ -*-===//
//
// libLLVM registers hundreds of options of its own (`--amdgpu-*`, codegen
// internals) in every process that links it; LLVM's `--help` lists them all
// among the tool's. The tools print their own options, grouped, instead;
// `--help-hidden` and `--help-list-hidden` stay LLVM's and list everything.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_SUPPORT_TOOLHELP_H
#define MOE_COMPILER_SUPPORT_TOOLHELP_H

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"

#include <string>
#include <vector>

namespace mlir::moe {

/// One block of `--help`: a title and the options it shows, by registered
/// name. A pass or translation list is named by any of its values (e.g.
/// "moe-compile"); a name that is not registered is left out.
struct HelpGroup {
  std::string title;
  std::vector<std::string> options;
};

/// A tool's `--help` and `--version`. Construct it before the tool declares
/// options of its own and install() it before the command line is parsed;
/// options registered in between are the tool's own, and `--help` shows
/// every one of them (those no group names under "<tool> options").
class ToolHelp {
public:
  ToolHelp(llvm::StringRef tool, llvm::StringRef usage,
           std::vector<HelpGroup> groups);

  /// Replaces LLVM's `--help` (and `-h`) with one that prints the groups,
  /// and sets the `--version` printer. The groups are resolved when `--help`
  /// is seen: options registered by the time the command line is parsed
  /// (mlirTranslateMain's) are found.
  void install();

  /// The groups' options as `--help` prints them.
  void print(llvm::raw_ostream &os) const;

private:
  std::string tool, usage;
  std::vector<HelpGroup> groups;
  llvm::DenseSet<llvm::cl::Option *> before, own;
};

/// "moe-mlir <version> (<git hash>)" and the LLVM/MLIR version.
void printVersion(llvm::raw_ostream &os);

} // namespace mlir::moe

#endif // MOE_COMPILER_SUPPORT_TOOLHELP_H
