//===- Cache.h - moe-run's cache of built models and weights -----*- C++
//-*-===//
//
// Several processes (one per GPU) may fill one cache at once, and any of
// them may be killed or run out of disk. So a file is published whole: it
// is written under a temporary name unique to this host and process, then
// sealed (its size and xxh3 hash in `<file>.seal`) and renamed into place,
// which is atomic. A reader uses a file only when its seal matches it:
// a truncated or altered file is made again, never loaded.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_DRIVER_CACHE_H
#define MOE_COMPILER_DRIVER_CACHE_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"

#include <string>

namespace mlir::moe::driver {

enum class CacheState { Missing, Sealed, Broken };

/// Whether `path` is there and matches its seal; for a Broken one, `why`
/// says what does not match.
CacheState checkSeal(llvm::StringRef path, std::string &why);

/// Makes `path` by `write(tmp)`, which fills the file `tmp` (and sets
/// `error` when it fails), then seals it and moves it into place. A failed
/// or interrupted write leaves nothing behind.
bool publish(llvm::StringRef path,
             llvm::function_ref<bool(llvm::StringRef tmp)> write,
             std::string &error);

/// Writes `text` to `path`, checked after it is closed (a full disk shows
/// only then); `error` names the path.
bool writeTextFile(llvm::StringRef path, llvm::StringRef text,
                   std::string &error);

/// Removes the temporary files a killed process of this host left in `dir`
/// (those of live processes stay).
void removeOrphanTemporaries(llvm::StringRef dir);

} // namespace mlir::moe::driver

#endif // MOE_COMPILER_DRIVER_CACHE_H
