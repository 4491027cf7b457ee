//===- RunFiles.cpp - where moe-run writes, and how much ------------------===//

#include "compiler/Driver/RunFiles.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <cstdlib>

using namespace mlir::moe;

std::string driver::runDirectory(llvm::StringRef cacheDir,
                                 llvm::StringRef input, llvm::StringRef mesh) {
  if (const char *env = std::getenv("MOE_RUN_DIR"); env && *env)
    return env;
  // A checkpoint directory is named by its last component, a file by its
  // stem (config.json by its directory's name).
  llvm::StringRef trimmed = input.rtrim('/');
  llvm::StringRef name = llvm::sys::path::stem(trimmed);
  if (name == "config")
    name = llvm::sys::path::filename(llvm::sys::path::parent_path(trimmed));
  llvm::SmallString<256> dir(cacheDir);
  llvm::sys::path::append(dir, "runs", (name.empty() ? "model" : name) + "-" +
                                           mesh);
  return std::string(dir);
}

uint64_t driver::randomWeightBytes(llvm::ArrayRef<std::string> specs,
                                   llvm::StringRef dtype) {
  uint64_t element = dtype == "f32" ? 4 : 2;
  uint64_t total = 0;
  for (llvm::StringRef spec : specs) {
    auto [name, shape] = spec.rsplit('=');
    auto [dims, stack] = shape.split('@');
    uint64_t count = 1, value = 0;
    llvm::SmallVector<llvm::StringRef> parts;
    dims.split(parts, 'x');
    for (llvm::StringRef d : parts)
      count *= d.getAsInteger(10, value) ? 0 : value;
    if (!stack.empty())
      count *= stack.getAsInteger(10, value) ? 0 : value;
    total += count * element;
  }
  return total;
}

std::optional<std::string>
driver::checkRandomWeightSize(uint64_t bytes, llvm::StringRef path,
                              double limitGiB) {
  double gib = double(bytes) / double(1ull << 30);
  if (gib <= limitGiB)
    return std::nullopt;
  return llvm::formatv(
             "this model's random weights are {0:F1} GiB, to be generated "
             "into {1}; pass --yes (or --max-random-weights-gb {2}) to "
             "generate them, or --weights for a checkpoint",
             gib, path, uint64_t(gib) + 1)
      .str();
}
