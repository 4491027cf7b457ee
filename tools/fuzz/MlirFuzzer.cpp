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
  if (size > moe::fuzz::kMaxInputBytes)
    return -1;
  moe::fuzz::Session session(data, size);
  if (OwningOpRef<ModuleOp> module =
          moe::parseAndVerifyModule(session.source(), session.getContext()))
    session.compile(*module);
  return 0;
}
