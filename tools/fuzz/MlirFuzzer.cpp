//===- MlirFuzzer.cpp - moe-opt's input: parse, verify, compile -----------===//
//
// What a user's .mlir reaches in moe-opt --moe-compile and moe-run: the
// parser, the checks before verifying, the verifier, and on modules that
// pass them the moe-compile pipeline and the C++ emitter.
//
//===----------------------------------------------------------------------===//

#include "compiler/Support/InputChecks.h"
#include "tools/fuzz/FuzzSupport.h"

using namespace mlir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return moe::fuzz::fuzzModule(
      data, size, [](llvm::SourceMgr &source, MLIRContext *context) {
        return moe::parseAndVerifyModule(source, context);
      });
}
