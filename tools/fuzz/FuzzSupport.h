//===- FuzzSupport.h - what the compiler fuzzers share ----------*- C++ -*-===//
//
// Each input gets a fresh context (every dialect the tools register, no
// threads, diagnostics dropped: most inputs are rejected with one) and,
// when it gets that far, the compile path a user's file takes: moe-compile,
// then --moe-to-cpp.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TOOLS_FUZZ_FUZZSUPPORT_H
#define MOE_TOOLS_FUZZ_FUZZSUPPORT_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/SourceMgr.h"

#include <cstddef>
#include <cstdint>
#include <functional>

namespace mlir::moe::fuzz {

/// Bounds that keep one input well under a second: larger inputs are
/// rejected (and kept out of the corpus), larger modules not compiled.
constexpr size_t kMaxInputBytes = 64 * 1024;
constexpr int64_t kMaxCompiledOps = 2000;

class Session {
public:
  /// A session for the input `data`, which `source()` holds.
  Session(const uint8_t *data, size_t size);
  MLIRContext *getContext() { return &context; }
  llvm::SourceMgr &source() { return sourceMgr; }
  /// moe-compile (mesh, fuse and static-capacity picked by a hash of the
  /// input, 16 tokens), then --moe-to-cpp into nothing, if `module` has at
  /// most kMaxCompiledOps ops.
  void compile(ModuleOp module);

private:
  MLIRContext context;
  ScopedDiagnosticHandler dropDiagnostics;
  llvm::SourceMgr sourceMgr;
  uint64_t hash;
};

/// One fuzzer input: too large is rejected (-1: kept out of the corpus),
/// else `read` turns it into a module that, if it gets one, is compiled.
int fuzzModule(const uint8_t *data, size_t size,
               const std::function<OwningOpRef<ModuleOp>(llvm::SourceMgr &,
                                                         MLIRContext *)> &read);

} // namespace mlir::moe::fuzz

#endif // MOE_TOOLS_FUZZ_FUZZSUPPORT_H
