//===- ChildProcess.h - programs moe-run starts ------------------*- C++
//-*-===//
//
// moe-run starts the model's C++ build and the random-weights generator,
// which start programs of their own. A killed moe-run must not leave them
// running, however it is killed: each runs in a process group of its own
// under a small guardian process that kills the group when moe-run dies
// (Linux's parent-death signal) and when moe-run is interrupted.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_COMPILER_DRIVER_CHILDPROCESS_H
#define MOE_COMPILER_DRIVER_CHILDPROCESS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <string>

namespace mlir::moe::driver {

/// Runs the program argv[0] with `argv` and waits for it: its exit status,
/// or -1 with `error` set when it could not start or died by a signal.
int runGuarded(llvm::ArrayRef<llvm::StringRef> argv, std::string &error);

} // namespace mlir::moe::driver

#endif // MOE_COMPILER_DRIVER_CHILDPROCESS_H
