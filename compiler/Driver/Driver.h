//===- Driver.h - moe-run: compile, build, load and run ---------*- C++ -*-===//

#ifndef MOE_COMPILER_DRIVER_DRIVER_H
#define MOE_COMPILER_DRIVER_DRIVER_H

namespace mlir::moe {

/// The whole of moe-run (see docs/CompiledModel.md); returns the exit code.
int runDriver(int argc, char **argv);

} // namespace mlir::moe

#endif // MOE_COMPILER_DRIVER_DRIVER_H
