//===- runtime/fuzz/NpyFuzzer.cpp - moert-run's --input -------------------===//
//
// Any bytes as a .npy file: a 2-D float32 matrix or a moert::Error.
//
//===----------------------------------------------------------------------===//

#include "runtime/common/Error.h"
#include "runtime/runner/Npy.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    moert::runner::parseNpy(
        "fuzz.npy",
        std::string_view(reinterpret_cast<const char *>(data), size));
  } catch (const moert::Error &) {
  }
  return 0;
}
