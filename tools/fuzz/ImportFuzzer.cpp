//===- ImportFuzzer.cpp - a model config: import, compile -----------------===//
//
// The importer MOE_FUZZ_IMPORTER (importHFConfig for --import-hf,
// importPRMoEConfig for --import-prmoe, importPRMoEModel for
// --import-prmoe-model: JSON, locations, the reader, the module builder) and, on what it accepts, the moe-compile pipeline and the
// C++ emitter: moe-run's path for a config file.
//
//===----------------------------------------------------------------------===//

#include "compiler/Import/Importers.h"
#include "tools/fuzz/FuzzSupport.h"

using namespace mlir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return moe::fuzz::fuzzModule(
      data, size, [](llvm::SourceMgr &source, MLIRContext *context) {
        return moe::MOE_FUZZ_IMPORTER(source, context);
      });
}
