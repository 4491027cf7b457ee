//===- RunFiles.h - where moe-run writes, and how much ----------*- C++ -*-===//
//
// moe-run never writes into the working directory unless told to: built
// models and random weights go to the cache, a run's outputs (y.npy,
// routing statistics, the plan picture) to a run directory.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_DRIVER_RUNFILES_H
#define MOE_COMPILER_DRIVER_RUNFILES_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mlir::moe::driver {

/// $MOE_RUN_DIR, else <cacheDir>/runs/<input's name>-<mesh>: the same model
/// and mesh run again overwrite their last outputs, nothing else's.
std::string runDirectory(llvm::StringRef cacheDir, llvm::StringRef input,
                         llvm::StringRef mesh);

/// The bytes moert-gen-weights writes for NAME=D0xD1[@E] `specs` of
/// `dtype` (f32 | f16 | bf16); nothing for a spec it cannot read (the
/// generator reports it).
uint64_t randomWeightBytes(llvm::ArrayRef<std::string> specs,
                           llvm::StringRef dtype);

/// Why generating `bytes` of random weights into `path` needs the user's
/// word (more than `limitGiB`), or nothing.
std::optional<std::string> checkRandomWeightSize(uint64_t bytes,
                                                 llvm::StringRef path,
                                                 double limitGiB);

} // namespace mlir::moe::driver

#endif // MOE_COMPILER_DRIVER_RUNFILES_H
