//===- ToolHelp.cpp - what --help and --version show ----------------------===//

#include "compiler/Support/ToolHelp.h"

#include "compiler/Support/Version.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <memory>

using namespace mlir::moe;
namespace cl = llvm::cl;

/// Each registered option once (a list option is registered under each of
/// its values).
static llvm::DenseSet<cl::Option *> registeredOptions() {
  llvm::DenseSet<cl::Option *> options;
  for (auto &entry : cl::getRegisteredOptions())
    options.insert(entry.second);
  return options;
}

ToolHelp::ToolHelp(llvm::StringRef tool, llvm::StringRef usage,
                   std::vector<HelpGroup> groups)
    : tool(tool), usage(usage), groups(std::move(groups)),
      before(registeredOptions()) {}

void mlir::moe::printVersion(llvm::raw_ostream &os) {
  os << "moe-mlir " MOE_VERSION " (" MOE_GIT_HASH ")\n"
     << "  LLVM/MLIR " LLVM_VERSION_STRING "\n";
}

void ToolHelp::print(llvm::raw_ostream &os) const {
  auto &registered = cl::getRegisteredOptions();
  llvm::DenseSet<cl::Option *> shown;
  std::vector<std::pair<std::string, std::vector<cl::Option *>>> blocks;
  auto add = [&](std::vector<cl::Option *> &block, cl::Option *option) {
    if (option && option->getOptionHiddenFlag() != cl::ReallyHidden &&
        shown.insert(option).second)
      block.push_back(option);
  };
  for (const HelpGroup &group : groups) {
    std::vector<cl::Option *> block;
    for (const std::string &name : group.options)
      add(block, registered.lookup(name));
    blocks.emplace_back(group.title, std::move(block));
  }
  // The tool's own options that no group names: still shown.
  std::vector<cl::Option *> rest;
  for (auto &entry : registered)
    if (own.contains(entry.second) && !entry.second->isPositional())
      add(rest, entry.second);
  llvm::sort(rest, [](cl::Option *a, cl::Option *b) {
    return a->ArgStr < b->ArgStr;
  });
  blocks.emplace_back(tool + " options", std::move(rest));
  std::vector<cl::Option *> generic;
  for (llvm::StringRef name : {"help", "help-hidden", "version"})
    add(generic, registered.lookup(name));
  blocks.emplace_back("Generic options", std::move(generic));

  size_t width = 0;
  for (auto &block : blocks)
    for (cl::Option *option : block.second)
      width = std::max(width, option->getOptionWidth());
  os << "USAGE: " << tool << " " << usage << "\n";
  for (auto &[title, options] : blocks) {
    if (options.empty())
      continue;
    os << "\n" << title << ":\n";
    os.flush();
    // Options print to llvm::outs().
    for (cl::Option *option : options)
      option->printOptionInfo(width);
    llvm::outs().flush();
  }
  os << "\n--help-hidden: every option, LLVM's included\n";
}

void ToolHelp::install() {
  for (cl::Option *option : registeredOptions())
    if (!before.contains(option))
      own.insert(option);
  auto &registered = cl::getRegisteredOptions();
  // LLVM's --help prints every option; ours replaces it (and -h, which
  // LLVM only adds at parsing when no tool option took the name).
  if (cl::Option *llvmHelp = registered.lookup("help"))
    llvmHelp->removeArgument();
  static std::unique_ptr<cl::opt<bool>> help;
  static std::unique_ptr<cl::alias> helpAlias;
  static const ToolHelp *installed;
  installed = this;
  help = std::make_unique<cl::opt<bool>>(
      "help", cl::desc("Display available options (--help-hidden for more)"),
      cl::ValueDisallowed, cl::callback([](const bool &) {
        installed->print(llvm::outs());
        llvm::outs().flush();
        std::exit(0);
      }));
  helpAlias = std::make_unique<cl::alias>("h", cl::desc("Alias for --help"),
                                          cl::aliasopt(*help), cl::Hidden);
  cl::SetVersionPrinter(printVersion);
}
