//===- Help.h - what moe-run --help shows -----------------------*- C++ -*-===//

#ifndef MOE_COMPILER_DRIVER_HELP_H
#define MOE_COMPILER_DRIVER_HELP_H

#include "compiler/Support/ToolHelp.h"

namespace mlir::moe::driver {

/// moe-run's --help groups; construct before moe-run declares its options.
ToolHelp toolHelp();

} // namespace mlir::moe::driver

#endif // MOE_COMPILER_DRIVER_HELP_H
